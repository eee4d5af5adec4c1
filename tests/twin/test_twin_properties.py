"""Property: evictions through the eviction API never take a workload below its PDB minimum,
checked at every simulated event; a forced delete can, and the check sees it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pitstop.twin import InvariantViolation
from tests.twin.twinlib import C, fleet, node, pdb, twin, workload

FLEET = fleet(
    [node(f"n{i}", cpu="2", memory="8Gi") for i in range(4)],
    [workload("web", 4, cpu="300m"), workload("api", 3, cpu="500m"),
     workload("db", 3, kind="StatefulSet", cpu="400m"), workload("cache", 2, cpu="200m"),
     workload("agent", kind="DaemonSet", cpu="50m"), workload("solo", 1, cpu="100m")],
    [pdb("web", "web", maxUnavailable=1), pdb("api", "api", minAvailable="60%"),
     pdb("db", "db", minAvailable=2), pdb("cache", "cache", maxUnavailable="50%")])

Op = tuple[str, int]
ops_strategy = st.lists(st.one_of(
    st.tuples(st.sampled_from(["cordon", "uncordon"]), st.integers(0, 3)),
    st.tuples(st.just("disrupt"), st.integers(0, 200)),
    st.tuples(st.just("sleep"), st.integers(0, 90)),
), max_size=40)


def run(ops: list[Op], seed: int, *, force: bool) -> list[InvariantViolation]:
    """Apply ``ops``; ``disrupt`` evicts (or, with ``force``, deletes) the k-th pod seen."""
    with tempfile.TemporaryDirectory() as d:
        t = twin(Path(d), FLEET, seed=seed)
        seen: list[InvariantViolation] = list(t.check_invariants())
        t.subscribe(lambda: seen.extend(t.check_invariants()))
        for kind, arg in ops:
            if kind == "cordon":
                t.cordon(C, f"n{arg}", "property")
            elif kind == "uncordon":
                t.uncordon(C, f"n{arg}")
            elif kind == "sleep":
                t.clock.sleep(arg)
            else:
                pods = t.observe(C).pods
                p = pods[arg % len(pods)]
                if force:
                    t.delete_pod(C, p.namespace, p.name, p.uid)
                else:
                    t.evict(C, p.namespace, p.name, p.uid)
        t.clock.sleep(300)
        t.close()
        return seen


@settings(max_examples=30, deadline=None)
@given(ops=ops_strategy, seed=st.integers(0, 10_000))
def test_evictions_never_break_a_budget(ops: list[Op], seed: int) -> None:
    assert run(ops, seed, force=False) == []


def test_forced_deletes_do_break_budgets_and_the_check_says_so() -> None:
    ops: list[Op] = [("disrupt", 0), ("disrupt", 1)]  # two web pods at once (maxUnavailable 1)
    assert run(ops, 1, force=False) == []
    broken = run(ops, 1, force=True)
    assert broken and {v.pdb for v in broken} == {"default/web"}
    assert (broken[0].current_healthy, broken[0].desired_healthy) == (2, 3)
