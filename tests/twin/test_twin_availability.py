"""Availability accounting: ready versus desired pods per workload, over virtual time."""

from __future__ import annotations

from pathlib import Path

from pitstop.backend import AddNode, UpgradeComponent
from pitstop.twin import AvailabilitySample
from tests.twin.twinlib import C, fleet, node, pdb, pods_of, settle, twin, workload


def test_an_eviction_dips_availability_until_the_replacement_is_ready(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(workloads=[workload("web", 3)],
                             pdbs=[pdb("web", "web", maxUnavailable=1)]))
    t.clock.sleep(100)
    p = pods_of(t.observe(C), "web")[0]
    t.evict(C, p.namespace, p.name, p.uid)
    settle(t)
    samples = t.availability()[f"{C}/default/web"]
    ready_at = next(e.time for e in t.events() if e.kind == "pod-ready")
    assert samples == [AvailabilitySample(0.0, 3, 3), AvailabilitySample(100.0, 2, 3),
                       AvailabilitySample(ready_at, 3, 3)]
    assert t.min_available()[f"{C}/default/web"] == AvailabilitySample(100.0, 2, 3)
    assert t.pdb_floors() == {f"{C}/default/web": 2}


def test_a_node_restart_makes_its_pods_unavailable_and_containerd_keeps_them_running(
        tmp_path: Path) -> None:
    f = fleet(workloads=[workload("web", 2, nodes=["n0", "n1"])])
    t = twin(tmp_path, f)
    t.start(C, "rt", UpgradeComponent("n0", "containerd", "2.1.5"))
    assert [s.ready for s in t.availability()[f"{C}/default/web"]] == [2, 1]
    settle(t)
    samples = t.availability()[f"{C}/default/web"]
    node_ready = next(e.time for e in t.events() if e.kind == "node-ready")
    assert samples[-1] == AvailabilitySample(node_ready, 2, 2)  # no restart of the containers
    t2 = twin(tmp_path, fleet(workloads=[workload("web", 2, nodes=["n0", "n1"])],
                              nodes=[node(f"n{i}", runtime="cri-o", runtime_version="1.34.1")
                                     for i in range(3)]), name="crio.db")
    t2.start(C, "rt", UpgradeComponent("n0", "cri-o", "1.34.2"))
    settle(t2)
    crio = t2.availability()[f"{C}/default/web"]
    node_ready = next(e.time for e in t2.events() if e.kind == "node-ready")
    assert crio[-1].ready == 2 and crio[-1].time > node_ready  # containers restarted


def test_daemonset_desired_follows_the_nodes(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(workloads=[workload("agent", kind="DaemonSet")]))
    t.start(C, "add", AddNode("general", "n3", "1.34.3", "containerd", "2.1.5"))
    settle(t)
    samples = t.availability()[f"{C}/default/agent"]
    assert (samples[0].ready, samples[0].desired) == (3, 3)
    assert (samples[1].ready, samples[1].desired) == (3, 4)
    assert (samples[-1].ready, samples[-1].desired) == (4, 4)
