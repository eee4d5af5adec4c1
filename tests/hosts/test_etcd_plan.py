"""The plan for a real 3-member etcd 3.4.23 cluster under Kubernetes 1.24: etcd 3.5.1 is
known-bad in the catalog, so it is refused without a waiver and planned (snapshot first, then
one member at a time) with one. The planned steps are then carried out on the live cluster
through the actuator's separate, idempotent calls, the way a backend's start/poll would."""

from __future__ import annotations

import time

from pitstop.backend.api import OperationState
from pitstop.catalog import load_catalog
from pitstop.hosts.etcd import EtcdActuator, MemberStep
from pitstop.planner import make_plan
from pitstop.versions import Minor
from tests.hosts.etcdlib import NEW, OLD, MakeCluster
from tests.planlib import NOW, cluster, default_policy, fleet, node, policy, target

WAIVER = {"rule": "known-bad", "component": "etcd", "version": NEW,
          "reason": "lab cluster on loopback, data is throwaway", "approvedBy": "sre-lead",
          "expires": "2027-01-31T00:00:00Z"}


def _poll(a: EtcdActuator, name: str, timeout: float = 60.0) -> MemberStep:
    deadline = time.monotonic() + timeout
    step = a.member_upgrade_state(name, NEW)
    while step.state is OperationState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
        step = a.member_upgrade_state(name, NEW)
    return step


def test_known_bad_etcd_planned_only_with_a_waiver_then_carried_out(
        make_cluster: MakeCluster) -> None:
    live = make_cluster(OLD)
    a = live.actuator
    cat = load_catalog()
    # the fleet as observed: the live members, their versions; Kubernetes 1.24
    obs = a.health()
    c = cluster("lab", "1.24.17", pools={"p": [node("n1", "1.24.17", "1.6.20")]})
    c["controlPlane"]["etcd"] = {"version": OLD, "members": [
        {"name": o.name, "version": o.version} for o in obs]}
    f = fleet(c)
    assert {str(x) for x in cat.etcd_for_kubernetes[Minor(1, 24)].supported_lines} == {
        "3.4", "3.5"}

    refused = make_plan(f, target(etcd=NEW), default_policy(), cat, now=NOW, preflight=False)
    assert not refused.reachable and not refused.steps
    bad = next(x for x in refused.blocking if x.code == "target-known-bad")
    assert f"etcd {NEW}" in bad.message and "waiver" in bad.fix

    plan = make_plan(f, target(etcd=NEW), policy({"waivers": [WAIVER]}), cat, now=NOW,
                     preflight=False)
    assert plan.reachable, plan.blocking
    assert "known-bad-waived" in {x.code for x in plan.findings}
    assert [s.action for s in plan.steps] == ["etcd-snapshot"] + ["upgrade-etcd-member"] * 3
    assert [s.targets for s in plan.steps[1:]] == [(o.name,) for o in obs]
    assert all(s.to_version == NEW for s in plan.steps[1:])

    # carry it out: the snapshot, then each member step (which member: the actuator's run-time
    # choice, followers first and the leader last), each followed by its gate
    snap = a.snapshot(live.root / "snapshots" / f"{plan.steps[0].id.replace('/', '_')}.db")
    assert a.verify_snapshot(snap.path).sha256 == snap.sha256
    order: list[tuple[str, bool]] = []
    for step in plan.steps[1:]:
        name = a.next_member(NEW)
        assert name is not None and (name,) in [s.targets for s in plan.steps[1:]]
        order.append((name, next(o.leader for o in a.health() if o.name == name)))
        first = a.begin_member_upgrade(name, NEW)
        assert first.state is OperationState.RUNNING
        done = _poll(a, name)
        assert done.state is OperationState.SUCCEEDED, done.message
        # idempotent: starting the same step again restarts nothing
        pid = live.pids()[name]
        assert a.begin_member_upgrade(name, NEW).state is OperationState.SUCCEEDED
        assert live.pids()[name] == pid
        assert a.gate().ok, step.id
    assert [was_leader for _, was_leader in order] == [False, False, True]
    assert sorted(n for n, _ in order) == [o.name for o in obs]
    assert a.next_member(NEW) is None
    assert [o.version for o in a.health()] == [NEW] * 3
