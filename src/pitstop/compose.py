"""Hosts that are Kubernetes nodes: one backend made of the Kubernetes backend and the hosts
backend, for ``pitstop apply --backend hosts+kube``.

A container runtime is upgraded on the host (:class:`~pitstop.hosts.backend.HostsBackend`:
SSH, the package manager, the daemon restart, every container checked), but the node it
serves is cordoned and drained through the API server
(:class:`~pitstop.kube.fleet.KubeFleet`: policy/v1 evictions under the live PDBs), as the
policy says (a runtime patch may be restarted without a drain: strategy ``no-drain``). Who does
what:

=================================  ==========================================================
observe                            the cluster as the API server shows it (nodes, pods, PDBs,
                                   control plane), with each inventory host's *runtime* as the
                                   host shows it (the build its daemon runs; a node is Ready
                                   only when its kubelet says so and its runtime answers) and
                                   etcd from the hosts
health                             the API server's, etcd from the hosts; metrics of both (the
                                   hosts' task counts as ``host_…`` where names clash)
cordon, uncordon, annotate,        the Kubernetes API
evict, delete_pod
start/poll: runtime, etcd          the hosts backend
start/poll: kubelet, control plane the Kubernetes backend (node upgrader, command hook)
=================================  ==========================================================

Node names are the same in the inventory and the cluster (``plan_problems`` checks that
every host a step changes is a node of the cluster, before a run is created).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pitstop.backend import (
    Action,
    BackendError,
    Clock,
    ClusterObservation,
    EtcdRestore,
    EtcdSnapshot,
    EvictionResult,
    HealthSignals,
    Operation,
    UpgradeComponent,
)
from pitstop.hosts.backend import RUNTIMES, HostsBackend
from pitstop.hosts.backend import plan_problems as host_problems
from pitstop.kube.fleet import KubeFleet
from pitstop.kube.fleet import plan_problems as kube_problems
from pitstop.model import HostInventory
from pitstop.planner import Plan
from pitstop.planner.plan import Step, StepAction, Strategy

__all__ = ["HostsOnNodes", "plan_problems"]

HOST_COMPONENTS = RUNTIMES | {"etcd"}
HOST_ACTIONS = frozenset({StepAction.ETCD_SNAPSHOT, StepAction.UPGRADE_ETCD_MEMBER})


def _for_hosts(action: Action) -> bool:
    return isinstance(action, EtcdSnapshot | EtcdRestore) or (
        isinstance(action, UpgradeComponent) and action.component in HOST_COMPONENTS)


def plan_problems(inventory: HostInventory, plan: Plan, clusters: list[str], *,
                  control_plane_hook: bool = False) -> list[str]:
    """Why hosts+kube cannot carry ``plan`` out (empty: it can): each part of each step is
    checked by the backend that will do it."""
    host_steps: list[Step] = []
    kube_steps: list[Step] = []
    for s in plan.steps:
        if s.action in HOST_ACTIONS:
            host_steps.append(s)
        elif s.action == StepAction.UPGRADE_NODES:
            on_host = tuple(c for c in s.changes if c.component in HOST_COMPONENTS)
            on_node = tuple(c for c in s.changes if c.component not in HOST_COMPONENTS)
            # the drain is the API's either way; the hosts backend must know every target
            host_steps.append(replace(s, changes=on_host, strategy=Strategy.IN_PLACE))
            kube_steps.append(replace(s, changes=on_node))  # the drain, and any kubelet part
        else:
            kube_steps.append(s)
    out = host_problems(inventory, replace(plan, steps=host_steps))
    out += kube_problems(replace(plan, steps=kube_steps), clusters,
                         control_plane_hook=control_plane_hook)
    return out


class HostsOnNodes:
    """The Backend interface over hosts that are nodes of live clusters (module docstring)."""

    def __init__(self, kube: KubeFleet, hosts: HostsBackend) -> None:
        self.kube = kube
        self.hosts = hosts

    @property
    def name(self) -> str:
        return "hosts+kube"

    @property
    def clock(self) -> Clock:
        return self.kube.clock

    @property
    def concurrent_calls(self) -> int:
        return self.kube.concurrent_calls  # evictions go to the API server

    def close(self) -> None:
        """Both parts: the hosts backend first waits for its operations in flight."""
        try:
            self.hosts.close()
        finally:
            self.kube.close()

    def _on_hosts(self, cluster: str) -> bool:
        return self.hosts.inventory.cluster(cluster) is not None

    def observe(self, cluster: str) -> ClusterObservation:
        seen = self.kube.observe(cluster)
        if not self._on_hosts(cluster):
            return seen
        hosts = self.hosts.observe(cluster)
        on_hosts = {n.name: n for n in hosts.nodes}
        nodes = []
        for n in seen.nodes:
            h = on_hosts.get(n.name)
            nodes.append(n if h is None else replace(
                n, runtime=h.runtime, runtime_version=h.runtime_version,
                ready=n.ready and h.ready))
        return replace(seen, nodes=tuple(nodes), etcd=hosts.etcd or seen.etcd)

    def health(self, cluster: str) -> HealthSignals:
        api = self.kube.health(cluster)
        if not self._on_hosts(cluster):
            return api
        hosts = self.hosts.health(cluster)
        metrics: dict[str, float] = dict(api.metrics)
        for k, v in hosts.metrics.items():
            metrics[f"host_{k}" if k in metrics else k] = v
        return replace(api, etcd=hosts.etcd or api.etcd, metrics=metrics)

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        self.kube.cordon(cluster, node, reason)

    def uncordon(self, cluster: str, node: str) -> None:
        self.kube.uncordon(cluster, node)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        self.kube.annotate(cluster, node, key, value)

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        return self.kube.evict(cluster, namespace, pod, uid)

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        self.kube.delete_pod(cluster, namespace, pod, uid)

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        if _for_hosts(action):
            return self.hosts.start(cluster, key, action)
        return self.kube.start(cluster, key, action)

    def poll(self, cluster: str, key: str) -> Operation:
        """The backend holding ``key`` answers: the hosts backend's operations are in its state
        file, so a resumed process routes the same way without a table of its own."""
        if self.hosts.knows(key):
            return self.hosts.poll(cluster, key)
        try:
            return self.kube.poll(cluster, key)
        except BackendError as exc:
            raise BackendError(f"{cluster}: no operation {key!r} on the hosts or in the "
                               f"cluster ({exc})") from None

    @staticmethod
    def record(hosts: dict[str, Any], kube: dict[str, Any]) -> dict[str, Any]:
        """``run.json``'s backend entry."""
        return {"kind": "hosts+kube", "hosts": hosts, "kube": kube}
