"""A 500-node cluster with 5,000 pods: a full drain of every node keeps every PDB and brings
every pod back (how fast: bench/twin_scale.py prints it)."""

from __future__ import annotations

from pathlib import Path

from pitstop.model import Fleet
from pitstop.twin import Twin

NODES, APPS, REPLICAS = 500, 50, 90  # 4,500 Deployment pods + 500 DaemonSet pods


def _big_fleet() -> Fleet:
    nodes = [{"name": f"n{i:03d}", "kubelet": "1.34.2",
              "containerRuntime": {"name": "containerd", "version": "2.1.4"},
              "allocatable": {"cpu": "16", "memory": "64Gi", "pods": 110}}
             for i in range(NODES)]
    workloads = [{"kind": "Deployment", "name": f"app{i}", "namespace": "apps",
                  "replicas": REPLICAS, "labels": {"app": f"app{i}"},
                  "requests": {"cpu": "100m", "memory": "256Mi"}} for i in range(APPS)]
    workloads.append({"kind": "DaemonSet", "name": "agent", "namespace": "kube-system",
                      "labels": {"app": "agent"}})
    pdbs = [{"name": f"app{i}", "namespace": "apps", "selector": {"matchLabels": {
        "app": f"app{i}"}}, "maxUnavailable": "10%"} for i in range(APPS)]
    return Fleet.model_validate({"metadata": {"name": "big"}, "spec": {"clusters": [{
        "name": "big", "controlPlane": {
            "apiServers": [{"name": "cp-1", "version": "1.34.2"}],
            "controllerManager": {"version": "1.34.2"}, "scheduler": {"version": "1.34.2"}},
        "nodePools": [{"name": "general", "nodes": nodes}], "workloads": workloads,
        "podDisruptionBudgets": pdbs}]}})


def test_a_full_drain_of_500_nodes_keeps_pdbs_and_pods(tmp_path: Path) -> None:
    t = Twin.create(_big_fleet(), seed=3, state_path=tmp_path / "big.db")
    obs = t.observe("big")
    assert (len(obs.nodes), len(obs.pods)) == (NODES, NODES + APPS * REPLICAS)

    for name in [n.name for n in obs.nodes]:
        t.cordon("big", name, "drain")
        while True:
            now = t.observe("big")
            left = [p for p in now.pods_on(name) if p.owner_kind != "DaemonSet"]
            if not left:
                break
            for p in left:
                if not p.deleting:
                    t.evict("big", p.namespace, p.name, p.uid)
            t.clock.sleep(5)
        t.uncordon("big", name)
    assert t.check_invariants() == []
    t.clock.sleep(60)  # the last replacements start
    final = t.observe("big")
    assert sum(p.ready for p in final.pods) == NODES + APPS * REPLICAS
    assert len(t.events(source="call", destructive=True)) >= 2 * NODES + APPS * REPLICAS
