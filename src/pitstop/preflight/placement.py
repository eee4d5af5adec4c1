"""Deterministic pod placement: which pods of which workload run on which node.

A fleet file does not list pods; it lists workloads. Preflight needs pods (a PDB protects pods, a
drain evicts pods, capacity is consumed by pods), so this module derives them, the same way every
time:

* ``Workload.nodes`` given: one pod per entry, on that node (``replicas`` is then ignored);
* a DaemonSet: one pod per node of its pool, or of every non-control-plane pool when
  ``nodePool`` is unset — unschedulable (cordoned) nodes included, as DaemonSet pods tolerate that;
* anything else: ``replicas`` pods spread round-robin over the *schedulable* nodes of its pool (or
  of every non-control-plane pool when unset), taken in node-name order. Each workload starts
  where the previous workload of the same pool stopped, so the pods of many small workloads
  spread over the whole pool instead of piling onto its first nodes — as kube-scheduler's
  default scoring (least allocated, spread by hostname) does for pods of equal requests. With no
  schedulable node the pods are pending (``node is None``).

Pod ``i`` of workload ``ns/name`` is called ``ns/name-i`` (a bare pod, kind ``Pod``, is
``ns/name``).

Pure and lazy: nothing is computed until asked, and DaemonSets are never expanded pod by pod
unless a caller asks for their pods (capacity works per pool instead), so placement stays cheap
on clusters of thousands of nodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from pitstop.model import Cluster, Node, NodePool, PodDisruptionBudget
from pitstop.model.fleet import Workload

__all__ = ["Placement", "Pod", "pdb_selects", "place"]

_by_name = attrgetter("name")


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod: ordinal ``ordinal`` of ``workload``, running on ``node`` (None while pending)."""

    workload: Workload
    ordinal: int
    node: str | None

    @property
    def name(self) -> str:
        """``namespace/workload-ordinal``, e.g. ``shop/web-0``; a bare pod (kind ``Pod``) keeps
        its own name, ``namespace/name``."""
        w = self.workload
        if w.kind == "Pod" and self.ordinal == 0:
            return f"{w.namespace}/{w.name}"
        return f"{w.namespace}/{w.name}-{self.ordinal}"


def pdb_selects(pdb: PodDisruptionBudget, workload: Workload) -> bool:
    """True when ``pdb`` selects the pods of ``workload``: same namespace and the selector
    matches the pods' labels. A null selector selects nothing; ``{}`` selects every pod of the
    namespace."""
    if pdb.selector is None or pdb.namespace != workload.namespace:
        return False
    return pdb.selector.matches(workload.labels)


class Placement:
    """The placement of every pod of one cluster. Build it with :func:`place`."""

    __slots__ = ("_by_node", "_node_pool", "_nodes_of", "_offsets", "_pools", "_schedulable",
                 "_sorted", "cluster")

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._pools: dict[str, NodePool] = {p.name: p for p in cluster.node_pools}
        self._nodes_of: dict[int, Sequence[str | None]] = {}
        self._sorted: dict[str | None, list[str]] = {}
        self._schedulable: dict[str, list[Node]] = {}
        self._node_pool: dict[str, NodePool] | None = None
        self._by_node: dict[str, list[Pod]] | None = None
        self._offsets: dict[int, int] | None = None

    # -- pools -----------------------------------------------------------------------------
    def pool(self, name: str) -> NodePool:
        return self._pools[name]

    def pools_for(self, workload: Workload) -> list[NodePool]:
        """Pools the pods of ``workload`` may run in: its ``nodePool``, else every
        non-control-plane pool."""
        if workload.node_pool is not None:
            return [self._pools[workload.node_pool]]
        return [p for p in self.cluster.node_pools if not p.control_plane]

    def pool_of(self, node: str) -> NodePool:
        """The pool ``node`` belongs to (KeyError for an unknown node)."""
        if self._node_pool is None:
            self._node_pool = {n.name: p for p in self.cluster.node_pools for n in p.nodes}
        return self._node_pool[node]

    def schedulable(self, pool: str) -> list[Node]:
        """The schedulable (not cordoned) nodes of ``pool``, sorted by name. Cached: the list is
        shared, do not modify it."""
        cached = self._schedulable.get(pool)
        if cached is None:
            cached = sorted((n for n in self._pools[pool].nodes if not n.unschedulable),
                            key=_by_name)
            self._schedulable[pool] = cached
        return cached

    def schedulable_nodes(self, pool: str | None) -> list[str]:
        """Names of the schedulable nodes of ``pool`` (None: of every non-control-plane pool),
        sorted. Cached: the list is shared, do not modify it."""
        cached = self._sorted.get(pool)
        if cached is None:
            if pool is not None:
                cached = [n.name for n in self.schedulable(pool)]
            else:
                cached = sorted(n.name for p in self.cluster.node_pools if not p.control_plane
                                for n in self.schedulable(p.name))
            self._sorted[pool] = cached
        return cached

    # -- pods ------------------------------------------------------------------------------
    def is_pool_daemonset(self, workload: Workload) -> bool:
        """A DaemonSet placed by pool (one pod per node), not by an explicit node list."""
        return workload.kind == "DaemonSet" and not workload.nodes

    def pod_count(self, workload: Workload) -> int:
        """How many pods ``workload`` has (the PDB's expected pods), without expanding them."""
        if workload.nodes:
            return len(workload.nodes)
        if workload.kind == "DaemonSet":
            return sum(len(p.nodes) for p in self.pools_for(workload))
        return workload.replicas

    def nodes_of(self, workload: Workload) -> Sequence[str | None]:
        """Node of each pod of ``workload``, by ordinal (None: pending)."""
        key = id(workload)
        cached = self._nodes_of.get(key)
        if cached is not None:
            return cached
        out: Sequence[str | None]
        if workload.nodes:
            out = list(workload.nodes)
        elif workload.kind == "DaemonSet":
            out = sorted(n.name for p in self.pools_for(workload) for n in p.nodes)
        else:
            targets = self.schedulable_nodes(workload.node_pool)
            if not targets:
                out = [None] * workload.replicas
            else:
                k = len(targets)
                start = self._offset(workload)
                out = [targets[(start + i) % k] for i in range(workload.replicas)]
        self._nodes_of[key] = out
        return out

    def _offset(self, workload: Workload) -> int:
        """Where the round-robin of ``workload`` starts: the replicas of the workloads placed
        round-robin before it in the same pool (one pass over the workloads, then cached)."""
        if self._offsets is None:
            offsets: dict[int, int] = {}
            used: dict[str | None, int] = {}
            for w in self.cluster.workloads:
                if w.nodes or w.kind == "DaemonSet":
                    continue
                offsets[id(w)] = used.get(w.node_pool, 0)
                used[w.node_pool] = used.get(w.node_pool, 0) + w.replicas
            self._offsets = offsets
        return self._offsets.get(id(workload), 0)

    def pods_of(self, workload: Workload) -> list[Pod]:
        return [Pod(workload, i, node) for i, node in enumerate(self.nodes_of(workload))]

    def pods(self) -> Iterator[Pod]:
        """Every pod of the cluster, workload by workload, in ordinal order."""
        for w in self.cluster.workloads:
            yield from self.pods_of(w)

    def pods_on(self, node: str) -> list[Pod]:
        """Pods running on ``node`` (DaemonSet pods included)."""
        if self._by_node is None:
            by_node: dict[str, list[Pod]] = {}
            for pod in self.pods():
                if pod.node is not None:
                    by_node.setdefault(pod.node, []).append(pod)
            self._by_node = by_node
        return list(self._by_node.get(node, ()))

    # -- disruption budgets ----------------------------------------------------------------
    def workloads_of_pdb(self, pdb: PodDisruptionBudget) -> list[Workload]:
        return [w for w in self.cluster.workloads if pdb_selects(pdb, w)]

    def pdbs_of(self, workload: Workload) -> list[PodDisruptionBudget]:
        return [b for b in self.cluster.pod_disruption_budgets if pdb_selects(b, workload)]

    def pods_of_pdb(self, pdb: PodDisruptionBudget) -> list[Pod]:
        return [pod for w in self.workloads_of_pdb(pdb) for pod in self.pods_of(w)]

    def pod_count_of_pdb(self, pdb: PodDisruptionBudget) -> int:
        return sum(self.pod_count(w) for w in self.workloads_of_pdb(pdb))


def place(cluster: Cluster) -> Placement:
    """The deterministic placement of ``cluster``'s pods (computed lazily)."""
    return Placement(cluster)
