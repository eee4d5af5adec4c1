"""Long-running actions on the twin: control plane, etcd, add-ons, nodes added and removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.backend import (
    AddNode,
    Backend,
    BackendError,
    EtcdRestore,
    EtcdSnapshot,
    OperationState,
    RemoveNode,
    UpgradeComponent,
)
from tests.twin.twinlib import C, fleet, node, pods_of, settle, twin, workload


def test_the_twin_is_a_backend(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet())
    assert isinstance(t, Backend) and t.name == "twin"
    with pytest.raises(BackendError, match="unknown cluster"):
        t.observe("nope")
    with pytest.raises(BackendError, match="no operation"):
        t.poll(C, "nope")
    with pytest.raises(BackendError, match="not found"):
        t.cordon(C, "nope", "x")


def test_the_only_apiserver_restarting_makes_the_api_unavailable(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(apiservers=1))
    op = t.start(C, "api", UpgradeComponent("cp-1", "kube-apiserver", "1.34.3"))
    health = t.health(C)
    assert health.apiserver_ok == {"cp-1": False} and health.apiserver_latency_ms is None
    with pytest.raises(BackendError, match="API is unavailable"):
        t.observe(C)
    t.clock.sleep(29.9)
    assert t.poll(C, op.key).state is OperationState.RUNNING
    settle(t)
    assert t.poll(C, op.key).state is OperationState.SUCCEEDED
    assert t.observe(C).apiservers == {"cp-1": "1.34.3"}
    assert t.health(C).apiserver_ok == {"cp-1": True}


def test_one_of_three_apiservers_restarting_keeps_the_api(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(apiservers=3))
    t.start(C, "api", UpgradeComponent("cp-2", "kube-apiserver", "1.34.3"))
    assert t.health(C).apiserver_ok == {"cp-1": True, "cp-2": False, "cp-3": True}
    assert t.observe(C).apiservers["cp-2"] == "1.34.2"


def test_controllers_by_instance_or_all_at_once(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(apiservers=2))
    t.start(C, "cm1", UpgradeComponent("cp-1", "kube-controller-manager", "1.34.3"))
    settle(t)
    assert t.observe(C).controller_manager == "1.34.2"  # the oldest instance
    t.start(C, "cm", UpgradeComponent("kube-controller-manager", "kube-controller-manager",
                                      "1.34.3"))
    t.start(C, "sched", UpgradeComponent("kube-scheduler", "kube-scheduler", "1.34.3"))
    t.start(C, "dns", UpgradeComponent("coredns", "coredns", "1.12.2"))
    settle(t)
    obs = t.observe(C)
    assert (obs.controller_manager, obs.scheduler, obs.addons) == (
        "1.34.3", "1.34.3", {"coredns": "1.12.2"})


def test_an_etcd_leader_restart_hands_leadership_over(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(etcd=3))
    leader = next(m for m in t.health(C).etcd if m.leader)
    t.start(C, "e", UpgradeComponent(leader.name, "etcd", "3.5.27"))
    members = {m.name: m for m in t.health(C).etcd}
    assert not members[leader.name].healthy and not members[leader.name].leader
    assert sum(m.leader for m in members.values()) == 1
    assert all(t.health(C).apiserver_ok.values())  # 2 of 3 members keep quorum
    settle(t)
    members = {m.name: m for m in t.observe(C).etcd}
    assert members[leader.name].version == "3.5.27" and members[leader.name].healthy


def test_snapshot_then_restore_and_a_restore_of_nothing(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(etcd=3))
    missing = t.start(C, "r0", EtcdRestore("never-taken", "3.5.26"))
    assert (missing.state, missing.message) == (OperationState.FAILED,
                                                "no etcd snapshot named 'never-taken'")
    t.start(C, "s", EtcdSnapshot("before"))
    settle(t)
    assert t.poll(C, "s").state is OperationState.SUCCEEDED
    for m in ("etcd-1", "etcd-2", "etcd-3"):
        t.start(C, m, UpgradeComponent(m, "etcd", "3.6.5"))
        settle(t)
    t.start(C, "r", EtcdRestore("before", "3.5.26"))
    assert not any(t.health(C).apiserver_ok.values())  # no quorum: no API
    settle(t)
    assert {m.version for m in t.observe(C).etcd} == {"3.5.26"}


def test_a_new_node_joins_ready_and_takes_pending_pods(tmp_path: Path) -> None:
    f = fleet([node("n0", cpu="1")], [workload("web", 2, cpu="800m"),
                                      workload("agent", kind="DaemonSet", cpu="10m")])
    t = twin(tmp_path, f)
    assert [p.node for p in pods_of(t.observe(C), "web")] == ["n0", None]
    op = t.start(C, "add", AddNode("general", "n1", "1.34.3", "containerd", "2.1.5"))
    new = t.observe(C).node("n1")
    assert new is not None and not new.ready and new.allocatable_millicpu == 1000
    assert [p.node for p in pods_of(t.observe(C), "agent")] == ["n0", "n1"]
    t.clock.sleep(119)
    assert t.poll(C, op.key).state is OperationState.RUNNING
    settle(t)
    obs = t.observe(C)
    assert obs.node("n1").ready and obs.node("n1").kubelet == "1.34.3"  # type: ignore[union-attr]
    assert sorted(p.node or "" for p in pods_of(obs, "web")) == ["n0", "n1"]
    assert all(p.ready for p in obs.pods)


def test_actions_that_cannot_apply_fail_with_a_message(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet())
    answers = {
        "a": UpgradeComponent("n0", "cri-o", "1.34.2"),
        "b": UpgradeComponent("ghost", "kubelet", "1.34.3"),
        "c": UpgradeComponent("cp-9", "kube-apiserver", "1.34.3"),
        "d": AddNode("nopool", "n9", "1.34.3", "containerd", "2.1.5"),
        "e": AddNode("general", "n0", "1.34.3", "containerd", "2.1.5"),
        "f": RemoveNode("ghost"),
        "g": UpgradeComponent("n0", "flux-capacitor", "1.0.0"),
    }
    messages = {}
    for key, action in answers.items():
        op = t.start(C, key, action)
        assert op.state is OperationState.FAILED and op.finished == op.started
        messages[key] = op.message
    assert messages["a"].startswith("node n0 runs containerd, not cri-o")
    assert messages["d"] == "no node pool 'nopool'" and "exists" in messages["e"]
    assert all(n.ready for n in t.observe(C).nodes)  # nothing happened
