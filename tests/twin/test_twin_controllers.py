"""Controllers and the scheduler of the twin: replacements, placement by requests, Pending."""

from __future__ import annotations

from pathlib import Path

from pitstop.backend import OperationState, RemoveNode, UpgradeComponent
from pitstop.twin.timings import TwinTimings
from tests.twin.twinlib import C, fleet, node, pod, pods_of, settle, twin, workload


def test_a_replacement_has_a_new_uid_and_goes_where_its_requests_fit(tmp_path: Path) -> None:
    # n0 runs web (1 CPU); n1 has 0.5 CPU left; n2 is empty. First fit by name skips n1.
    f = fleet([node("n0", cpu="2"), node("n1", cpu="2"), node("n2", cpu="2")],
              [workload("web", cpu="1", nodes=["n0"]),
               workload("filler", cpu="1500m", nodes=["n1"])])
    t = twin(tmp_path, f)
    (old,) = pods_of(t.observe(C), "web")
    t.cordon(C, "n0", "drain")
    t.evict(C, "default", old.name, old.uid)
    web = pods_of(t.observe(C), "web")
    (new,) = [p for p in web if p.uid != old.uid]
    assert new.name != old.name and new.owner_kind == "ReplicaSet"
    assert new.owner_name == old.owner_name and new.workload == "default/web"
    assert (new.node, new.phase, new.ready) == ("n2", "Pending", False)
    assert pod(t.observe(C), old.name).deleting
    t.clock.sleep(40)  # startup ≤ 40 s, termination ≤ 30 s
    web = pods_of(t.observe(C), "web")
    assert [(p.uid, p.node, p.phase, p.ready) for p in web] == [(new.uid, "n2", "Running", True)]


def test_no_room_leaves_the_replacement_pending_until_room_appears(tmp_path: Path) -> None:
    f = fleet([node("n0", cpu="2"), node("n1", cpu="2")],
              [workload("web", cpu="1500m", nodes=["n0"]),
               workload("filler", cpu="1500m", nodes=["n1"])])
    t = twin(tmp_path, f)
    (old,) = pods_of(t.observe(C), "web")
    t.cordon(C, "n0", "drain")
    t.evict(C, "default", old.name, old.uid)
    t.clock.sleep(600)
    (new,) = pods_of(t.observe(C), "web")
    assert (new.node, new.phase) == (None, "Pending")
    assert t.health(C).metrics["pods_pending"] == 1
    t.uncordon(C, "n0")
    (placed,) = pods_of(t.observe(C), "web")
    assert placed.uid == new.uid and placed.node == "n0"
    t.clock.sleep(40)
    assert pod(t.observe(C), new.name).ready


def test_a_pending_pod_is_placed_when_a_node_returns_ready(tmp_path: Path) -> None:
    f = fleet([node("n0", cpu="2"), node("n1", cpu="2")],
              [workload("web", cpu="1500m", nodes=["n0"]),
               workload("filler", cpu="1500m", nodes=["n1"])])
    t = twin(tmp_path, f)
    (old,) = pods_of(t.observe(C), "web")
    t.cordon(C, "n0", "drain")
    t.evict(C, "default", old.name, old.uid)
    t.clock.sleep(40)  # the old pod is gone: n0 is empty, but cordoned
    op = t.start(C, "kubelet-n0", UpgradeComponent("n0", "kubelet", "1.34.3"))
    t.uncordon(C, "n0")  # schedulable again, but NotReady while the kubelet restarts
    assert pods_of(t.observe(C), "web")[0].node is None
    while t.poll(C, op.key).state is OperationState.RUNNING:
        t.clock.sleep(5)
        if t.observe(C).node("n0").ready:  # type: ignore[union-attr]
            break
    assert pods_of(t.observe(C), "web")[0].node == "n0"


def test_daemonset_pods_are_recreated_on_their_own_node_only(tmp_path: Path) -> None:
    f = fleet(workloads=[workload("agent", kind="DaemonSet", ns="kube-system")])
    t = twin(tmp_path, f)
    before = pods_of(t.observe(C), "agent", "kube-system")
    assert sorted(p.node for p in before) == ["n0", "n1", "n2"]
    (on_n0,) = [p for p in before if p.node == "n0"]
    t.cordon(C, "n0", "drain")  # DaemonSet pods tolerate a cordon
    t.delete_pod(C, "kube-system", on_n0.name, on_n0.uid)
    t.clock.sleep(10)
    assert [p.uid for p in pods_of(t.observe(C), "agent", "kube-system")
            if p.node == "n0"] == [on_n0.uid]  # no replacement while it terminates
    t.clock.sleep(60)
    after = pods_of(t.observe(C), "agent", "kube-system")
    assert sorted(p.node for p in after) == ["n0", "n1", "n2"]
    (new,) = [p for p in after if p.node == "n0"]
    assert new.uid != on_n0.uid and new.owner_kind == "DaemonSet" and new.ready
    assert {p.uid for p in after if p.node != "n0"} == {p.uid for p in before if p.node != "n0"}


def test_removing_a_node_takes_its_daemonset_pod_and_replaces_the_others_elsewhere(
        tmp_path: Path) -> None:
    f = fleet(workloads=[workload("agent", kind="DaemonSet"), workload("web", nodes=["n0"])])
    t = twin(tmp_path, f)
    t.start(C, "rm-n0", RemoveNode("n0"))
    settle(t)
    obs = t.observe(C)
    assert obs.node("n0") is None
    assert sorted(p.node for p in pods_of(obs, "agent")) == ["n1", "n2"]
    assert [p.node for p in pods_of(obs, "web")] == ["n1"]
    assert t.availability()[f"{C}/default/agent"][-1][1:] == (2, 2)


def test_statefulset_replacement_keeps_the_name_after_the_old_pod_is_gone(
        tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(workloads=[workload("db", 2, kind="StatefulSet")]))
    old = pod(t.observe(C), "db-0")
    assert old.owner_kind == "StatefulSet"
    t.evict(C, "default", "db-0", old.uid)
    t.clock.sleep(4.9)  # termination takes 5–30 s: db-0 is still the old pod
    assert [p.uid for p in pods_of(t.observe(C), "db") if p.name == "db-0"] == [old.uid]
    t.clock.sleep(30)
    new = pod(t.observe(C), "db-0")
    assert new.uid != old.uid and not new.deleting
    t.clock.sleep(40)
    assert pod(t.observe(C), "db-0").ready


def test_a_bare_pod_is_not_replaced(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(workloads=[workload("debug", kind="Pod")]))
    (p,) = pods_of(t.observe(C), "debug")
    assert p.owner_kind is None and p.name == "debug"
    t.delete_pod(C, "default", p.name, p.uid)
    settle(t)
    assert pods_of(t.observe(C), "debug") == []


def test_pods_leave_a_node_not_ready_for_five_minutes(tmp_path: Path) -> None:
    timings = TwinTimings(node_restart=(900.0, 900.0))  # a kubelet that takes 15 minutes
    f = fleet(workloads=[workload("web", nodes=["n0"]), workload("agent", kind="DaemonSet")])
    t = twin(tmp_path, f, timings=timings)
    (web,) = pods_of(t.observe(C), "web")
    t.start(C, "k", UpgradeComponent("n0", "kubelet", "1.34.3"))
    t.clock.sleep(299)
    assert not pod(t.observe(C), web.name).deleting
    t.clock.sleep(2)
    obs = t.observe(C)
    assert pod(obs, web.name).deleting  # stuck Terminating: the kubelet is down
    assert [p.node for p in pods_of(obs, "web") if not p.deleting] == ["n1"]
    assert all(not p.deleting for p in pods_of(obs, "agent"))  # DaemonSets tolerate it
    settle(t)
    assert [p.node for p in pods_of(t.observe(C), "web")] == ["n1"]  # gone once n0 is back
