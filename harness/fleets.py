"""Fleets the tests and the benchmarks share."""

from __future__ import annotations

from pitstop.model import Fleet

__all__ = ["APPS", "NODES", "REPLICAS", "big_fleet"]

NODES, APPS, REPLICAS = 500, 50, 90  # 4,500 Deployment pods + 500 DaemonSet pods


def big_fleet() -> Fleet:
    """One cluster of 500 nodes, 50 Deployments of 90 replicas under 10 % PDBs, and a
    DaemonSet."""
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
