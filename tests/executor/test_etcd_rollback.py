"""The executor's way back for etcd, on the twin: a wave rollback keeps etcd and says which
snapshot to restore and how; with ``restore_etcd`` it restores that snapshot into the old
version (an ``EtcdRestore`` operation, journaled and audited) and marks the etcd steps
rolled-back. The live version of this runs against real etcd in
``tests/hosts/test_apply_etcd.py``."""

from __future__ import annotations

from pathlib import Path

from pitstop.audit import verify
from pitstop.executor.core import Executor
from pitstop.executor.run import create_run
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.twin import Twin

from .test_executor import CAT, START, fleet_doc


def test_rollback_keeps_etcd_unless_asked_then_restores_the_snapshot(tmp_path: Path) -> None:
    doc = fleet_doc(nodes=2)
    doc["spec"]["clusters"][0]["controlPlane"]["etcd"] = {
        "version": "3.5.26", "members": [{"name": f"e{i}"} for i in range(3)]}
    fleet = Fleet.model_validate(doc)
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {}})
    target = UpgradeTarget.model_validate({"spec": {"versions": {"etcd": "3.6.8"}}})
    plan = make_plan(fleet, target, policy, CAT, now=START)
    assert plan.reachable, plan.blocking
    assert [s.action for s in plan.steps] == ["etcd-snapshot"] + ["upgrade-etcd-member"] * 3
    run = create_run(tmp_path, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    assert Executor(run, twin).execute().status == "completed"
    assert {m.version for m in twin.observe("c1").etcd} == {"3.6.8"}
    wave = plan.steps[0].wave
    snap = plan.steps[0].id

    kept = Executor(run, twin).rollback_wave(wave, "operator")
    assert "etcd of cluster c1 kept: 3 member step(s) toward 3.6.8" in kept
    assert f"the snapshot of step {snap}" in kept and "into a new etcd 3.5.26 cluster" in kept
    assert f"pitstop rollback {run.path} --wave {wave} --restore-etcd" in kept
    assert {m.version for m in twin.observe("c1").etcd} == {"3.6.8"}
    assert {run.journal.step(s.id).status for s in plan.steps} == {"done"}

    restored = Executor(run, twin).rollback_wave(wave, "operator", restore_etcd=True)
    assert f"etcd of cluster c1 (restored {snap} into etcd 3.5.26" in restored
    assert {m.version for m in twin.observe("c1").etcd} == {"3.5.26"}
    assert {run.journal.step(s.id).status for s in plan.steps} == {"rolled-back"}
    ops = [a for a in run.journal.actions(snap) if a.kind == "operation-done"]
    assert [(a.target.rsplit("/", 1)[-1], a.outcome) for a in ops] == [
        ("snapshot", "succeeded"), ("restore", "succeeded")]
    # nothing left to restore: a second call changes nothing
    actions = len(run.journal.actions())
    again = Executor(run, twin).rollback_wave(wave, "operator", restore_etcd=True)
    assert "etcd" not in again and len(run.journal.actions()) == actions
    assert verify(run.path / "audit.jsonl").ok
