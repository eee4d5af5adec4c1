"""Seeded determinism, and operations idempotent by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.backend import BackendError, OperationState, UpgradeComponent
from pitstop.twin import Twin
from tests.twin.twinlib import C, fleet, pdb, settle, twin, workload


def _rehearse(t: Twin) -> list[tuple[float, str, str, str]]:
    for n in ("n0", "n1"):
        t.cordon(C, n, "drain")
        for p in t.observe(C).pods_on(n):
            t.evict(C, p.namespace, p.name, p.uid)
        t.start(C, f"{n}-kubelet", UpgradeComponent(n, "kubelet", "1.34.3"))
        t.clock.sleep(150)
        t.uncordon(C, n)
    settle(t)
    return [(e.time, e.source, e.kind, e.subject) for e in t.events()]


def _fleet():  # type: ignore[no-untyped-def]
    return fleet(workloads=[workload("web", 4), workload("db", 2, kind="StatefulSet")],
                 pdbs=[pdb("web", "web", maxUnavailable=1)])


def test_the_same_seed_gives_the_same_event_log(tmp_path: Path) -> None:
    one = _rehearse(twin(tmp_path, _fleet(), seed=5, name="one.db"))
    two = _rehearse(twin(tmp_path, _fleet(), seed=5, name="two.db"))
    assert one == two
    # a log with something in it: both drains, evictions, pods rescheduled and Ready again
    kinds = {k for _, _, k, _ in one}
    assert {"cordon", "evict", "pod-gone", "pod-scheduled", "pod-ready", "node-not-ready",
            "node-ready", "uncordon"} <= kinds, kinds
    assert len(one) > 20


def test_another_seed_draws_other_durations(tmp_path: Path) -> None:
    one = _rehearse(twin(tmp_path, _fleet(), seed=5, name="one.db"))
    two = _rehearse(twin(tmp_path, _fleet(), seed=6, name="two.db"))
    finished = [[e[0] for e in log if e[2] == "operation-finished"] for log in (one, two)]
    assert finished[0] != finished[1]
    ready = [sorted(e[0] for e in log if e[2] == "pod-ready") for log in (one, two)]
    assert ready[0] != ready[1]


def test_durations_stay_within_their_ranges(tmp_path: Path) -> None:
    t = twin(tmp_path, _fleet(), seed=9)
    op = t.start(C, "k", UpgradeComponent("n2", "kubelet", "1.34.3"))
    settle(t)
    done = t.poll(C, "k")
    assert done.finished is not None
    assert 60 <= done.finished - op.started <= 120


def test_start_is_idempotent_by_key(tmp_path: Path) -> None:
    t = twin(tmp_path, _fleet())
    action = UpgradeComponent("n0", "kubelet", "1.34.3")
    first = t.start(C, "k", action)
    t.clock.sleep(10)
    again = t.start(C, "k", action)
    assert again == first  # same operation, same start time: nothing redone
    settle(t)
    assert t.start(C, "k", action).state is OperationState.SUCCEEDED
    log = t.events()
    assert [e.destructive for e in log if e.kind == "start"] == [True, False, False]
    assert sum(1 for e in log if e.kind == "node-not-ready") == 1
    assert sum(1 for e in log if e.kind == "operation-finished") == 1
    with pytest.raises(BackendError, match="another action"):
        t.start(C, "k", UpgradeComponent("n1", "kubelet", "1.34.3"))
