"""Building the twin's world from a :class:`~pitstop.model.Fleet` (time 0: every node Ready,
every placed pod Running and Ready).

Pods go where preflight's :func:`~pitstop.preflight.placement.place` puts them when the node has
room for their requests (DaemonSet pods always); a pod that does not fit there is handed to the
scheduler (first fit by name), and stays Pending when it fits nowhere.
"""

from __future__ import annotations

from typing import Any

from pitstop.model import Cluster, Fleet, Node
from pitstop.model.fleet import Workload
from pitstop.preflight.placement import place
from pitstop.twin.faults import FaultBook
from pitstop.twin.state import ClusterState, NodeState, PdbState, WorkloadState
from pitstop.twin.timings import TwinTimings
from pitstop.twin.world import World, make_uid, safe_suffix

__all__ = ["build_world", "link_pdbs"]

DEFAULT_MAX_PODS = 110  # the kubelet's default --max-pods


def _allocatable(node: Node) -> tuple[int, int, int]:
    q = node.allocatable or node.capacity
    if q is None:
        return 0, 0, DEFAULT_MAX_PODS
    return q.millicpu, q.memory_bytes, q.pods if q.pods is not None else DEFAULT_MAX_PODS


def _owner(cluster: Cluster, w: Workload) -> tuple[str | None, str | None]:
    """The pods' controller, as Kubernetes shows it (a Deployment's pods belong to its
    ReplicaSet ``<name>-<pod-template-hash>``; a CronJob's to one of its Jobs)."""
    if w.kind == "Deployment":
        return "ReplicaSet", f"{w.name}-{safe_suffix(cluster.name, w.namespace, w.name, length=10)}"
    if w.kind == "CronJob":
        scheduled = int(make_uid(0, cluster.name, "cronjob", w.namespace, w.name)[:8], 16)
        return "Job", f"{w.name}-{scheduled % 10**8:08d}"
    if w.kind == "Pod":
        return None, None
    return w.kind, w.name


def _cluster_state(cluster: Cluster) -> ClusterState:
    cp = cluster.control_plane
    pools = {}
    for p in cluster.node_pools:
        first = min(p.nodes, key=lambda n: n.name)
        cpu, mem, pods = _allocatable(first)
        pools[p.name] = {"control_plane": p.control_plane, "template": {
            "alloc_cpu": cpu, "alloc_mem": mem, "alloc_pods": pods, "kube_proxy": True,
            "orig_kubelet": first.kubelet,
            "orig_runtime_version": first.container_runtime.version}}

    def instances(comp: str, versions: tuple[str, list[str]] | None) -> dict[str, str]:
        if versions is None:
            return {}
        version, names = versions
        return dict.fromkeys(names, version) or {comp: version}

    ccm = cp.cloud_controller_manager
    etcd = cp.etcd
    members: list[dict[str, Any]] = [
        {"name": n, "version": v, "up": True} for n, v in etcd.member_versions()
    ] if etcd is not None and etcd.managed else []
    return ClusterState(
        name=cluster.name, pools=pools,
        apiservers={a.name: {"version": a.version, "up": True} for a in cp.api_servers},
        controller_manager=instances("kube-controller-manager", (
            cp.controller_manager.version, cp.controller_manager.instances)),
        scheduler=instances("kube-scheduler", (cp.scheduler.version, cp.scheduler.instances)),
        cloud_controller_manager=instances("cloud-controller-manager",
                                           (ccm.version, ccm.instances) if ccm else None),
        managed_control_plane=cp.managed,
        etcd=members, etcd_leader=members[0]["name"] if members else None,
        etcd_managed=etcd is not None and etcd.managed,
        addons={a.name: a.version for a in cluster.addons})


def link_pdbs(world: World, cluster: str) -> None:
    """Attach each PDB to the workloads whose pods it selects (pods carry their workload's
    labels, so selecting workloads is selecting pods)."""
    for w in world.workloads[cluster].values():
        w.pdbs = []
    for pdb in world.pdbs[cluster].values():
        matcher = pdb.matcher()
        pdb.workloads = [] if matcher is None else [
            w for w in world.workloads[cluster].values()
            if w.namespace == pdb.namespace and matcher.matches(w.labels)]
        for w in pdb.workloads:
            w.pdbs.append(pdb)


def _add_cluster(world: World, cluster: Cluster) -> None:
    world.add_cluster(_cluster_state(cluster))
    name = cluster.name
    world.touch_cluster(name)
    for pool, node in cluster.all_nodes():
        cpu, mem, pods = _allocatable(node)
        state = NodeState(
            cluster=name, name=node.name, pool=pool.name, kubelet=node.kubelet,
            kube_proxy=node.proxy_version, runtime=node.container_runtime.name,
            runtime_version=node.container_runtime.version, alloc_cpu=cpu, alloc_mem=mem,
            alloc_pods=pods, orig_kubelet=node.kubelet,
            orig_runtime_version=node.container_runtime.version, origin="fleet",
            unschedulable=node.unschedulable)
        world.nodes[name][node.name] = state
        world.touch_node(state)
    placement = place(cluster)
    for w in cluster.workloads:
        owner_kind, owner_name = _owner(cluster, w)
        per_node = placement.is_pool_daemonset(w)
        ws = WorkloadState(
            cluster=name, namespace=w.namespace, name=w.name, kind=w.kind,
            replicas=-1 if per_node else placement.pod_count(w), labels=dict(w.labels),
            millicpu=w.requests.millicpu, memory=w.requests.memory_bytes,
            empty_dir=w.empty_dir, node_pool=w.node_pool, owner_kind=owner_kind,
            owner_name=owner_name)
        world.workloads[name][ws.key] = ws
    for b in cluster.pod_disruption_budgets:
        world.pdbs[name][f"{b.namespace}/{b.name}"] = PdbState(
            cluster=name, namespace=b.namespace, name=b.name,
            selector=None if b.selector is None else b.selector.model_dump(by_alias=True),
            min_available=b.min_available, max_unavailable=b.max_unavailable,
            unhealthy_policy=b.unhealthy_pod_eviction_policy)
        world.changes.pdbs.add((name, f"{b.namespace}/{b.name}"))
    link_pdbs(world, name)
    for w in cluster.workloads:
        ws = world.workloads[name][f"{w.namespace}/{w.name}"]
        for pod in placement.pods_of(w):
            ns, pod_name = pod.name.split("/", 1)
            uid = make_uid(world.seed, name, "initial", ns, pod_name)
            where = world.nodes[name][pod.node] if pod.node else None
            if where is None or not (ws.kind == "DaemonSet" or world.has_room(where, ws)):
                where = world.least_allocated(ws)
            if where is not None:
                world.add_pod(ws, pod_name, uid, node=where, running=True)
            else:
                world.add_pod(ws, pod_name, uid)  # Pending: no room anywhere


def build_world(fleet: Fleet, seed: int, timings: TwinTimings, faults: FaultBook, *,
                start: float = 0.0) -> World:
    world = World(seed, timings, faults)
    world.now = start
    for cluster in fleet.spec.clusters:
        _add_cluster(world, cluster)
    world.sample()
    return world
