"""What callers see of the world: observations, health signals, and the safety invariant.

Observations are cached per object and rebuilt only for objects that changed (a deleting pod's
``deleting_for`` depends on the time, so those are rebuilt at every new instant): a cluster of
500 nodes and 5,000 pods observes in about a millisecond when little changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pitstop.backend import (
    ClusterObservation,
    EtcdMemberObservation,
    HealthSignals,
    NodeObservation,
    PdbObservation,
    PodObservation,
)
from pitstop.twin.state import NodeState, PdbState, PodState
from pitstop.twin.timings import uniform
from pitstop.twin.world import World
from pitstop.versions import parse_version

__all__ = ["InvariantViolation", "check_invariants", "health", "observe"]

ETCD_DB_SIZE = 96 * 2**20
ETCD_QUOTA = 2 * 2**30  # etcd's default --quota-backend-bytes


@dataclass(frozen=True, slots=True)
class InvariantViolation:
    """A PDB's pods are fewer healthy than it requires, at ``time``."""

    cluster: str
    pdb: str
    workloads: tuple[str, ...]
    current_healthy: int
    desired_healthy: int
    time: float

    def __str__(self) -> str:
        return (f"{self.cluster}: PDB {self.pdb} has {self.current_healthy} healthy pod(s), "
                f"needs {self.desired_healthy} (workloads {', '.join(self.workloads)}) "
                f"at t={self.time:g}s")


def _pod(world: World, pod: PodState) -> PodObservation:
    w = pod.workload
    return PodObservation(
        namespace=pod.namespace, name=pod.name, uid=pod.uid, node=pod.node, phase=pod.phase,
        ready=pod.ready, labels=dict(w.labels), owner_kind=w.owner_kind,
        owner_name=w.owner_name, workload=w.key, deleting=pod.deleted_at is not None,
        deleting_for=0.0 if pod.deleted_at is None else world.now - pod.deleted_at,
        empty_dir=w.empty_dir, millicpu=w.millicpu, memory=w.memory)


def _node(node: NodeState) -> NodeObservation:
    if node.obs is None:
        node.obs = NodeObservation(
            name=node.name, pool=node.pool, ready=node.ready, unschedulable=node.unschedulable,
            kubelet=node.kubelet, kube_proxy=node.kube_proxy, runtime=node.runtime,
            runtime_version=node.runtime_version, annotations=dict(node.annotations),
            allocatable_millicpu=node.alloc_cpu, allocatable_memory=node.alloc_mem,
            allocatable_pods=node.alloc_pods)
    return node.obs


def _pdb(world: World, pdb: PdbState) -> PdbObservation:
    s = world.budget(pdb)
    selector: dict[str, str] | None = None
    exprs: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    if pdb.selector is not None:
        selector = dict(pdb.selector.get("matchLabels") or {})
        exprs = tuple((str(e["key"]), str(e["operator"]), tuple(e.get("values") or ()))
                      for e in pdb.selector.get("matchExpressions") or ())
    return PdbObservation(
        namespace=pdb.namespace, name=pdb.name, selector=selector, match_expressions=exprs,
        min_available=pdb.min_available, max_unavailable=pdb.max_unavailable,
        disruptions_allowed=s.disruptions_allowed, current_healthy=s.current_healthy,
        desired_healthy=s.desired_healthy, expected_pods=s.expected_pods,
        observed_generation=pdb.observed_generation, generation=pdb.generation)


def _nodes_and_pods(world: World, cluster: str
                    ) -> tuple[tuple[NodeObservation, ...], tuple[PodObservation, ...]]:
    version = world.version.get(cluster, 0)
    cached: Any = world.view_cache.get(cluster)
    if cached is not None and cached[0] == version and (not cached[1] or cached[2] == world.now):
        return cached[3], cached[4]
    nodes = tuple(_node(n) for n in sorted(world.nodes[cluster].values(), key=lambda n: n.name))
    pods: list[PodObservation] = []
    time_dependent = False
    for pod in world.pods[cluster].values():
        if pod.deleted_at is not None:
            time_dependent = True
            pods.append(_pod(world, pod))
            continue
        if pod.obs is None:
            pod.obs = _pod(world, pod)
        pods.append(pod.obs)
    out = tuple(pods)
    world.view_cache[cluster] = (version, time_dependent, world.now, nodes, out)
    return nodes, out


def _lowest(versions: dict[str, str]) -> str:
    return min(versions.values(), key=parse_version) if versions else ""


def _etcd(world: World, cluster: str) -> tuple[EtcdMemberObservation, ...]:
    c = world.clusters[cluster]
    raft = 1000 + int(world.now * 10)
    return tuple(EtcdMemberObservation(
        name=m["name"], version=m["version"], healthy=bool(m["up"]),
        leader=m["name"] == c.etcd_leader, raft_index=raft, db_size=ETCD_DB_SIZE,
        quota=ETCD_QUOTA) for m in c.etcd)


def observe(world: World, cluster: str) -> ClusterObservation:
    c = world.clusters[cluster]
    nodes, pods = _nodes_and_pods(world, cluster)
    return ClusterObservation(
        cluster=cluster, time=world.now,
        apiservers={n: a["version"] for n, a in c.apiservers.items()},
        controller_manager=_lowest(c.controller_manager), scheduler=_lowest(c.scheduler),
        etcd=_etcd(world, cluster), nodes=nodes, pods=pods,
        pdbs=tuple(_pdb(world, p) for _, p in sorted(world.pdbs[cluster].items())),
        addons=dict(c.addons))


def health(world: World, cluster: str) -> HealthSignals:
    """``apiserver_ok`` per instance (running, and etcd has quorum); latency ``None`` while no
    instance serves; metrics: ``error_rate`` (raised by a ``canaryErrorRate`` fault while an
    upgraded node runs), ``error_rate_baseline``, ``nodes_not_ready``, ``pods_pending``
    (unbound pods)."""
    c = world.clusters[cluster]
    ok = {name: c.apiserver_serving(name) for name in c.apiservers}
    latency: float | None = None
    if any(ok.values()):
        latency = world.faults.latency_ms(cluster, c.control_plane_steps) or uniform(
            world.timings.apiserver_latency_ms, world.seed, "latency", cluster,
            int(world.now // 10))
    nodes = world.nodes[cluster].values()
    baseline = world.timings.error_rate_baseline
    rate = world.faults.error_rate(cluster, nodes)
    return HealthSignals(
        time=world.now, apiserver_ok=ok, apiserver_latency_ms=latency,
        etcd=_etcd(world, cluster),
        metrics={"error_rate": baseline if rate is None else rate,
                 "error_rate_baseline": baseline,
                 "nodes_not_ready": float(sum(1 for n in nodes if not n.ready)),
                 "pods_pending": float(len(world.pending[cluster]))})


def check_invariants(world: World) -> list[InvariantViolation]:
    """Every PDB whose selected pods are fewer healthy than its ``desiredHealthy`` now.

    A fleet that starts below its budgets (more replicas than room, or a budget above the
    replica count) reports that from time 0; preflight flags such fleets."""
    out = []
    for cluster, pdbs in world.pdbs.items():
        for key, pdb in sorted(pdbs.items()):
            if not pdb.workloads:
                continue  # it selects no pod: no workload can be below it
            s = world.budget(pdb)
            if s.current_healthy < s.desired_healthy:
                out.append(InvariantViolation(
                    cluster, key, tuple(w.key for w in pdb.workloads), s.current_healthy,
                    s.desired_healthy, world.now))
    return out
