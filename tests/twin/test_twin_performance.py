"""A 500-node cluster with 5,000 pods: observe stays fast, and a full drain of every node
simulates in seconds."""

from __future__ import annotations

import time
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


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_observe_and_a_full_drain_of_500_nodes_are_fast(tmp_path: Path) -> None:
    t = Twin.create(_big_fleet(), seed=3, state_path=tmp_path / "big.db")
    obs, cold = _timed(lambda: t.observe("big"))
    assert (len(obs.nodes), len(obs.pods)) == (NODES, NODES + APPS * REPLICAS)
    assert cold < 0.05

    slowest = 0.0
    start = time.perf_counter()
    for name in [n.name for n in obs.nodes]:
        t.cordon("big", name, "drain")
        while True:
            now, took = _timed(lambda: t.observe("big"))
            slowest = max(slowest, took)
            left = [p for p in now.pods_on(name) if p.owner_kind != "DaemonSet"]
            if not left:
                break
            for p in left:
                if not p.deleting:
                    t.evict("big", p.namespace, p.name, p.uid)
            t.clock.sleep(5)
        t.uncordon("big", name)
    drain = time.perf_counter() - start
    assert slowest < 0.05, f"slowest observe {slowest * 1000:.1f} ms"
    assert drain < 20, f"full drain took {drain:.1f} s"
    assert t.check_invariants() == []
    t.clock.sleep(60)  # the last replacements start
    final = t.observe("big")
    assert sum(p.ready for p in final.pods) == NODES + APPS * REPLICAS
    assert len(t.events(source="call", destructive=True)) >= 2 * NODES + APPS * REPLICAS
