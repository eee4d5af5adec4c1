"""Clusters of one wave worked on at once (``maxParallelClusters``), on the twin: faster than
one after another, never more clusters at once than allowed, the same end state, the same
result for the same seed, and one cluster's stop (a failed gate, an approval) stops the
others at a safe point before the wave is rolled back or the run pauses."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.executor.approvals import approve_step
from pitstop.executor.core import Executor, RunResult
from pitstop.executor.run import RunDir, create_run, open_run
from pitstop.model import FaultScenario, Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.twin import Twin

from .test_executor import CAT, START, TARGET, fleet_doc

CLUSTERS = ("c1", "c2", "c3")


def _fleet(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Three clusters like test_executor's c1 (6 nodes, web ×4 under a PDB), one wave."""
    doc = fleet_doc()
    one = doc["spec"]["clusters"][0]
    doc["spec"]["clusters"] = []
    for name in CLUSTERS:
        c = copy.deepcopy(one)
        c["name"] = name
        c["environment"] = (env or {}).get(name, "staging")
        for pool in c["nodePools"]:
            for n in pool["nodes"]:
                n["name"] = f"{name}-{n['name']}"
        doc["spec"]["clusters"].append(c)
    return doc


def _run(tmp: Path, parallel: int, *, seed: int = 1, faults: list[dict[str, Any]] | None = None,
         env: dict[str, str] | None = None, approvals: list[dict[str, Any]] | None = None,
         run_id: str | None = None) -> tuple[RunResult, Twin, RunDir, list[Any]]:
    fleet = Fleet.model_validate(_fleet(env))
    # one wave of every cluster, whatever its environment
    spec: dict[str, Any] = {"maxParallelClusters": parallel,
                            "waves": [{"name": "all", "clusters": {"matchLabels": {}}}]}
    if approvals:
        spec["approvals"] = approvals
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})
    target = UpgradeTarget.model_validate({"spec": {"versions": TARGET}})
    plan = make_plan(fleet, target, policy, CAT, now=START)
    assert plan.steps, plan.findings
    run = create_run(tmp, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": seed}, run_id=run_id)
    fs = FaultScenario.model_validate({"metadata": {"name": "f"},
                                       "spec": {"faults": faults}}) if faults else None
    twin = Twin.create(fleet, seed=seed, state_path=run.path / "twin.sqlite", faults=fs,
                       start=START.timestamp())
    seen: list[Any] = []
    twin.subscribe(lambda: seen.extend(twin.check_invariants()))
    return Executor(run, twin).execute(), twin, run, seen


def _spans(run: RunDir) -> dict[str, tuple[float, float]]:
    """Per cluster: its first step's start to its last step's end (journal)."""
    by_id = {s.id: s for s in run.plan.steps}
    out: dict[str, tuple[float, float]] = {}
    for rec in run.journal.steps():
        if rec.started is None or rec.finished is None:
            continue
        c = by_id[rec.step_id].cluster
        lo, hi = out.get(c, (rec.started, rec.finished))
        out[c] = (min(lo, rec.started), max(hi, rec.finished))
    return out


def _most_at_once(run: RunDir) -> int:
    """The most clusters with a step under way at one moment (from the step records)."""
    by_id = {s.id: s for s in run.plan.steps}
    edges: list[tuple[float, int, str]] = []
    for rec in run.journal.steps():
        if rec.started is not None and rec.finished is not None:
            c = by_id[rec.step_id].cluster
            edges += [(rec.started, 1, c), (rec.finished, -1, c)]
    live: dict[str, int] = {}
    most = 0
    for _, d, c in sorted(edges, key=lambda e: (e[0], e[1])):
        live[c] = live.get(c, 0) + d
        most = max(most, sum(1 for v in live.values() if v > 0))
    return most


def _final(twin: Twin) -> dict[str, tuple[str, str, bool, bool]]:
    return {n.name: (n.kubelet, n.runtime_version, n.ready, n.unschedulable)
            for c in CLUSTERS for n in twin.observe(c).nodes}


def _makespan(run: RunDir) -> float:
    spans = _spans(run).values()
    return max(hi for _, hi in spans) - min(lo for lo, _ in spans)


def test_clusters_of_a_wave_run_at_once_and_end_as_one_after_another_does(
        tmp_path: Path) -> None:
    serial, twin1, run1, seen1 = _run(tmp_path / "serial", parallel=1)
    parallel, twin3, run3, seen3 = _run(tmp_path / "parallel", parallel=0)
    assert serial.status == parallel.status == "completed", (serial.reason, parallel.reason)
    assert not seen1 and not seen3, (seen1[:3], seen3[:3])
    # the same end state: every node at the target, Ready, uncordoned
    assert _final(twin1) == _final(twin3)
    assert set(_final(twin3).values()) == {("1.36.5", "2.3.7", True, False)}
    # one after another: the clusters' spans do not overlap; at once: they all do
    assert _most_at_once(run1) == 1
    assert _most_at_once(run3) == 3
    s1, s3 = _makespan(run1), _makespan(run3)
    assert s3 < 0.5 * s1, (s3, s1)
    # every cluster took about as long alone as with the others
    alone = {c: hi - lo for c, (lo, hi) in _spans(run1).items()}
    together = {c: hi - lo for c, (lo, hi) in _spans(run3).items()}
    for c in CLUSTERS:
        assert together[c] < 1.5 * alone[c], (c, together[c], alone[c])
    audit = (run3.path / "audit.jsonl").read_text()
    assert '"wave-lanes"' in audit and "at most 3 at once" in audit


def test_at_most_max_parallel_clusters(tmp_path: Path) -> None:
    result, _, run, seen = _run(tmp_path, parallel=2)
    assert result.status == "completed", result.reason
    assert not seen
    assert _most_at_once(run) == 2
    # the third cluster starts only when one of the first two is done
    spans = _spans(run)
    assert spans["c3"][0] >= min(spans["c1"][1], spans["c2"][1])
    assert spans["c3"][0] < max(spans["c1"][1], spans["c2"][1])


def test_the_same_seed_gives_the_same_interleaving(tmp_path: Path) -> None:
    # the twin draws an operation's duration from the seed and its key, which holds the run
    # id: the same seed and run id give the same durations, so the same interleaving
    def log(twin: Twin) -> list[tuple[float, str, str, str, str]]:
        return [(e.time, e.cluster, e.source, e.kind, e.subject) for e in twin.events()]

    _, t1, _, _ = _run(tmp_path / "one", parallel=0, seed=4, run_id="same")
    _, t2, _, _ = _run(tmp_path / "two", parallel=0, seed=4, run_id="same")
    one, two = log(t1), log(t2)
    assert len(one) > 100 and one == two
    # and the clusters' work is interleaved in it, not one block after another
    order = [c for _, c, source, _, _ in one if source == "call"]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > 20, switches


def test_a_failed_gate_in_one_cluster_stops_the_others_then_rolls_the_wave_back(
        tmp_path: Path) -> None:
    result, twin, run, seen = _run(
        tmp_path, parallel=0,
        faults=[{"type": "runtimeUpgradeFails", "nodes": ["c2-n3"]}])
    assert result.status == "rolled-back", result.reason
    assert "c2-n3" in result.reason
    assert not seen, seen[:3]
    # the others were told to stop and did so at a safe point: nothing left cordoned, every
    # node of the wave back at its old versions
    final = _final(twin)
    assert set(final.values()) == {("1.35.8", "2.2.9", True, False)}, final
    audit = (run.path / "audit.jsonl").read_text()
    assert audit.count('"cluster-halted"') == 2
    assert "cluster c2 of the wave stopped" in audit
    # the rollback ran once, after every cluster had stopped
    events = [line for line in audit.splitlines() if '"rollback-wave"' in line]
    assert len(events) == 1


def test_an_approval_in_one_cluster_pauses_the_wave_and_resume_finishes_it(
        tmp_path: Path) -> None:
    # c2 is production (its first step waits for an approval); c1 and c3 are staging
    result, twin, run, seen = _run(
        tmp_path, parallel=0, env={"c2": "production"},
        approvals=[{"environment": "production", "required": 1}])
    assert result.status == "paused", result.reason
    assert "approval" in result.reason and "c2/" in result.reason
    # c1 and c3 stopped at a safe point: no node left mid-upgrade or cordoned, and c3 — whose
    # lane started after c2 had stopped — did not start at all
    assert not any(n[3] for n in _final(twin).values())
    statuses = {s.step_id: s.status for s in run.journal.steps()}
    assert all(v == "pending" for k, v in statuses.items() if k.startswith(("c2/", "c3/")))
    audit = (run.path / "audit.jsonl").read_text()
    assert audit.count('"cluster-halted"') == 1  # c1; c3 was never taken up
    waiting = next(s for s in run.plan.steps if s.cluster == "c2" and s.requires_approval)
    approve_step(run, waiting.id, "cab", at=datetime.now(UTC).timestamp())
    again = open_run(run.path)
    twin2 = Twin.open(run.path / "twin.sqlite")
    twin2.subscribe(lambda: seen.extend(twin2.check_invariants()))
    done = Executor(again, twin2).execute()
    assert done.status == "completed", done.reason
    assert not seen, seen[:3]
    assert set(_final(twin2).values()) == {("1.36.5", "2.3.7", True, False)}
