"""Compact fleets for the twin's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pitstop.backend import ClusterObservation, PodObservation
from pitstop.model import FaultScenario, Fleet
from pitstop.twin import Twin, TwinTimings

C = "c1"  # the cluster of single-cluster fleets


def node(name: str, cpu: str = "4", memory: str = "16Gi", pods: int = 110,
         kubelet: str = "1.34.2", runtime: str = "containerd", runtime_version: str = "2.1.4",
         **extra: Any) -> dict[str, Any]:
    return {"name": name, "kubelet": kubelet,
            "containerRuntime": {"name": runtime, "version": runtime_version},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods}, **extra}


def workload(name: str, replicas: int = 1, *, kind: str = "Deployment", ns: str = "default",
             cpu: str = "100m", memory: str = "128Mi", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "namespace": ns, "replicas": replicas,
            "labels": {"app": name}, "requests": {"cpu": cpu, "memory": memory}, **extra}


def pdb(name: str, app: str, *, ns: str = "default", **budget: Any) -> dict[str, Any]:
    """``pdb("web", "web", maxUnavailable=1)``."""
    return {"name": name, "namespace": ns, "selector": {"matchLabels": {"app": app}}, **budget}


Spec = dict[str, Any]


def fleet(nodes: list[Spec] | None = None, workloads: list[Spec] | None = None,
          pdbs: list[Spec] | None = None, *, apiservers: int = 1, etcd: int = 1,
          pools: dict[str, list[Spec]] | None = None, name: str = C,
          addons: list[Spec] | None = None, extra_clusters: list[Spec] | None = None) -> Fleet:
    pools = pools or {"general": nodes or [node(f"n{i}") for i in range(3)]}
    cp: dict[str, Any] = {
        "apiServers": [{"name": f"cp-{i}", "version": "1.34.2"} for i in range(1, apiservers + 1)],
        "controllerManager": {"version": "1.34.2",
                              "instances": [f"cp-{i}" for i in range(1, apiservers + 1)]},
        "scheduler": {"version": "1.34.2"},
    }
    if etcd:
        cp["etcd"] = {"version": "3.5.26", "members": [{"name": f"etcd-{i}"}
                                                        for i in range(1, etcd + 1)]}
    cluster = {"name": name, "controlPlane": cp,
               "nodePools": [{"name": p, "nodes": ns} for p, ns in pools.items()],
               "workloads": workloads or [], "podDisruptionBudgets": pdbs or [],
               "addons": addons or [{"name": "coredns", "kind": "dns", "version": "1.12.1"}]}
    return Fleet.model_validate({"metadata": {"name": "t"},
                                 "spec": {"clusters": [cluster, *(extra_clusters or [])]}})


def faults(*items: dict[str, Any]) -> FaultScenario:
    return FaultScenario.model_validate({"metadata": {"name": "f"},
                                         "spec": {"faults": list(items)}})


def twin(tmp_path: Path, f: Fleet, *, seed: int = 1, name: str = "twin.db",
         scenario: FaultScenario | None = None, timings: TwinTimings | None = None) -> Twin:
    return Twin.create(f, seed=seed, state_path=tmp_path / name, faults=scenario,
                       timings=timings)


def pods_of(obs: ClusterObservation, workload: str, ns: str = "default") -> list[PodObservation]:
    return [p for p in obs.pods if p.workload == f"{ns}/{workload}"]


def pod(obs: ClusterObservation, name: str, ns: str = "default") -> PodObservation:
    found = [p for p in obs.pods if p.namespace == ns and p.name == name]
    assert len(found) == 1, (name, [p.name for p in obs.pods])
    return found[0]


def settle(t: Twin, limit: float = 3600.0) -> None:
    """Sleep until nothing is scheduled to happen (or ``limit`` virtual seconds passed)."""
    end = t.clock.now() + limit
    while (nxt := t.next_event_time()) is not None and nxt <= end:
        t.clock.sleep(nxt - t.clock.now())
