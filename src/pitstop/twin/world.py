"""The simulated clusters and the controllers that act on them, in virtual time.

What the world models (and what it leaves out) — each rule is one method below:

* **Scheduler** — a pod without a node goes to the first node, in name order, of its
  workload's pool (every non-control-plane pool when unset) that is Ready, schedulable and has
  room for its requests (CPU, memory, pod count; a node without allocatable figures has room
  for anything but its pod count, 110 by default). Pods that fit nowhere stay Pending and are
  placed as soon as room appears on a node. The initial layout comes from preflight's
  :func:`~pitstop.preflight.placement.place` (``Workload.nodes`` is the initial placement
  only, not a constraint).
* **Controllers** — Deployments, ReplicaSets, Jobs and CronJobs create a replacement (new uid,
  new name) as soon as a pod starts deleting; a StatefulSet recreates the pod under the *same
  name* (new uid) once the old one is gone; a DaemonSet recreates its pod on the same node once
  gone, and puts a pod on every node added to its pools; a bare pod is never replaced.
* **Pods** — bound to a Ready node, a pod starts (Pending) and is Running and Ready after a
  startup delay. A deleting pod is gone after its graceful-termination delay; a pod that was
  never bound is gone at once; one on a NotReady node stays Terminating until the node is back
  (or removed), as the kubelet must confirm.
* **Nodes** — NotReady makes its pods unready (their containers keep running through a
  kubelet or containerd restart, and restart with any other runtime); a node NotReady for
  ``not_ready_eviction`` seconds loses its non-DaemonSet pods (taint-based eviction).
* **Time** — every delay is a deterministic draw (:mod:`pitstop.twin.timings`); timed
  transitions are events on an agenda ordered by (time, sequence).

Every change is noted in :attr:`World.changes` so the store writes only what changed.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pitstop.backend import EvictionResult, OperationState
from pitstop.twin.disruption import BudgetStatus, budget_status
from pitstop.twin.faults import FaultBook
from pitstop.twin.state import (
    REPLACE_AT_ONCE,
    REPLACE_WHEN_GONE,
    ClusterState,
    NodeState,
    OpState,
    PdbState,
    PodState,
    WorkloadState,
)
from pitstop.twin.timings import TwinTimings, uniform

__all__ = ["Changes", "World", "make_uid"]

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated names

Args = tuple[Any, ...]


def _hash(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


def make_uid(seed: int, cluster: str, *identity: object) -> str:
    """A UUID-shaped uid that depends only on what the pod is (not on creation order)."""
    h = _hash(seed, cluster, *identity).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def safe_suffix(*parts: object, length: int = 5) -> str:
    digest = _hash(*parts)
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:length])


@dataclass
class Changes:
    """What changed since the last commit (objects by identity; ``None``: deleted)."""

    pods: dict[str, tuple[str, PodState | None]] = field(default_factory=dict)
    nodes: dict[tuple[str, str], NodeState | None] = field(default_factory=dict)
    clusters: set[str] = field(default_factory=set)
    pdbs: set[tuple[str, str]] = field(default_factory=set)
    ops: set[tuple[str, str]] = field(default_factory=set)
    agenda_add: dict[int, tuple[float, str, Args]] = field(default_factory=dict)
    agenda_done: set[int] = field(default_factory=set)
    log: list[tuple[Any, ...]] = field(default_factory=list)
    samples: list[tuple[str, str, float, int, int]] = field(default_factory=list)
    touched: set[WorkloadState] = field(default_factory=set)


class World:
    def __init__(self, seed: int, timings: TwinTimings, faults: FaultBook) -> None:
        self.seed = seed
        self.timings = timings
        self.faults = faults
        self.now = 0.0
        self.event_seq = 0
        self.log_seq = 0
        self.pod_seq = 0
        self.destructive_calls = 0
        self.clusters: dict[str, ClusterState] = {}
        self.workloads: dict[str, dict[str, WorkloadState]] = {}
        self.pdbs: dict[str, dict[str, PdbState]] = {}
        self.nodes: dict[str, dict[str, NodeState]] = {}
        self.pods: dict[str, dict[str, PodState]] = {}  # cluster -> uid -> pod, creation order
        self.by_name: dict[str, dict[tuple[str, str], PodState]] = {}
        self.pending: dict[str, dict[str, PodState]] = {}  # unbound pods, creation order
        self.ops: dict[str, dict[str, OpState]] = {}
        self.node_ops: dict[tuple[str, str], set[str]] = {}  # running restarts per node
        self.agenda: list[tuple[float, int, str, Args]] = []
        self.changes = Changes()
        self.last_sample: dict[WorkloadState, tuple[int, int]] = {}
        self._eligible: dict[tuple[str, str | None], list[NodeState]] = {}
        self.version: dict[str, int] = {}  # bumped at every change of a cluster's nodes or pods
        self.view_cache: dict[str, Any] = {}  # views.py keeps its observations here
        self._handlers: dict[str, Callable[..., None]] = {
            "pod-ready": self._on_pod_ready,
            "pod-gone": self._on_pod_gone,
            "taint-eviction": self._on_taint_eviction,
            "pdb-sync": self._on_pdb_sync,
        }

    def add_cluster(self, state: ClusterState) -> None:
        name = state.name
        self.clusters[name] = state
        for table in (self.workloads, self.pdbs, self.nodes, self.pods, self.by_name,
                      self.pending, self.ops):
            table.setdefault(name, {})

    # -- bookkeeping -----------------------------------------------------------------------
    def log(self, cluster: str, source: str, kind: str, subject: str, *, uid: str = "",
            detail: str = "", destructive: bool = False) -> None:
        self.log_seq += 1
        self.changes.log.append((self.log_seq, self.now, cluster, source, kind, subject, uid,
                                 detail, int(destructive)))

    def at(self, when: float, kind: str, args: Args) -> None:
        self.event_seq += 1
        heapq.heappush(self.agenda, (when, self.event_seq, kind, args))
        self.changes.agenda_add[self.event_seq] = (when, kind, args)

    def touch_node(self, node: NodeState) -> None:
        node.obs = None
        self.version[node.cluster] = self.version.get(node.cluster, 0) + 1
        self.changes.nodes[(node.cluster, node.name)] = node

    def touch_cluster(self, cluster: str) -> None:
        self.changes.clusters.add(cluster)

    def _touch_pod(self, pod: PodState, was_available: bool) -> None:
        now_available = pod.available
        if now_available != was_available:
            pod.workload.available += 1 if now_available else -1
            self.changes.touched.add(pod.workload)
        pod.obs = None
        self.version[pod.cluster] = self.version.get(pod.cluster, 0) + 1
        self.changes.pods[pod.uid] = (pod.cluster, pod)

    def _set(self, pod: PodState, **values: Any) -> None:
        before = pod.available
        for name, value in values.items():
            setattr(pod, name, value)
        self._touch_pod(pod, before)

    def wanted(self, w: WorkloadState) -> int:
        """How many pods the controller of ``w`` wants (a per-node DaemonSet: one per node)."""
        if w.replicas < 0:
            return len(self.eligible_nodes(w.cluster, w.node_pool))
        return w.replicas

    def sample(self) -> None:
        """Record availability of every workload whose figures changed."""
        touched = self.changes.touched
        if not touched:
            return
        for w in sorted(touched, key=lambda w: (w.cluster, w.key)):
            figures = (w.available, self.wanted(w))
            if self.last_sample.get(w) != figures:
                self.last_sample[w] = figures
                self.changes.samples.append((w.cluster, w.key, self.now, *figures))
        touched.clear()

    def touch_daemonsets(self, cluster: str) -> None:
        self.changes.touched.update(w for w in self.workloads[cluster].values() if w.replicas < 0)

    # -- pools and placement ---------------------------------------------------------------
    def pool_allows(self, w: WorkloadState, pool: str) -> bool:
        if w.node_pool is not None:
            return w.node_pool == pool
        return not self.clusters[w.cluster].pools[pool]["control_plane"]

    def eligible_nodes(self, cluster: str, pool: str | None) -> list[NodeState]:
        """Every node of ``pool`` (None: of every non-control-plane pool), by name. Cached."""
        key = (cluster, pool)
        cached = self._eligible.get(key)
        if cached is None:
            pools = self.clusters[cluster].pools
            cached = sorted((n for n in self.nodes[cluster].values()
                             if n.pool == pool or (pool is None
                                                   and not pools[n.pool]["control_plane"])),
                            key=lambda n: n.name)
            self._eligible[key] = cached
        return cached

    def nodes_changed(self, cluster: str) -> None:
        for key in [k for k in self._eligible if k[0] == cluster]:
            del self._eligible[key]
        self.touch_daemonsets(cluster)

    @staticmethod
    def has_room(node: NodeState, w: WorkloadState) -> bool:
        """Room for one more pod of ``w``: pod count, CPU and memory requests."""
        if len(node.pods) >= node.alloc_pods:
            return False
        if node.alloc_cpu and node.used_cpu + w.millicpu > node.alloc_cpu:
            return False
        return not (node.alloc_mem and node.used_mem + w.memory > node.alloc_mem)

    @classmethod
    def fits(cls, node: NodeState, pod: PodState) -> bool:
        if not node.ready or node.unschedulable or node.removing:
            return False
        return cls.has_room(node, pod.workload)

    def least_allocated(self, w: WorkloadState) -> NodeState | None:
        """The node kube-scheduler's default scoring would favour for a pod of ``w``: of the
        Ready, schedulable nodes of its pool with room, the one with the smallest share of
        its CPU (then memory, then pod slots) requested; ties go to the first by name. So
        replacement pods spread over the pool instead of piling onto its first nodes."""
        best: NodeState | None = None
        best_score = (2.0, 2.0, 2.0)
        for node in self.eligible_nodes(w.cluster, w.node_pool):
            if node.ready and not node.unschedulable and not node.removing \
                    and self.has_room(node, w):
                score = (node.used_cpu / node.alloc_cpu if node.alloc_cpu else 0.0,
                         node.used_mem / node.alloc_mem if node.alloc_mem else 0.0,
                         len(node.pods) / node.alloc_pods if node.alloc_pods else 0.0)
                if score < best_score:
                    best, best_score = node, score
        return best

    def schedule(self, pod: PodState) -> None:
        node = self.least_allocated(pod.workload)
        if node is None:
            self.pending[pod.cluster][pod.uid] = pod
        else:
            self.bind(pod, node)

    def room_on(self, node: NodeState) -> None:
        """Room may have appeared on ``node``: place pending pods that fit, oldest first."""
        pending = self.pending[node.cluster]
        if not pending or not node.ready or node.unschedulable or node.removing:
            return
        for pod in list(pending.values()):
            if self.pool_allows(pod.workload, node.pool) and self.fits(node, pod):
                self.bind(pod, node)
            elif len(node.pods) >= node.alloc_pods:
                return

    def bind(self, pod: PodState, node: NodeState) -> None:
        self.pending[pod.cluster].pop(pod.uid, None)
        self._set(pod, node=node.name)
        node.pods[pod.uid] = pod
        node.used_cpu += pod.workload.millicpu
        node.used_mem += pod.workload.memory
        self.log(pod.cluster, "sim", "pod-scheduled", f"{pod.namespace}/{pod.name}",
                 uid=pod.uid, detail=node.name)
        if node.ready:
            self.start_pod(pod)

    def start_pod(self, pod: PodState) -> None:
        """Start (or restart) the pod's containers on its Ready node."""
        pod.start_epoch += 1
        self._set(pod, ready=False, needs_restart=False)
        delay = uniform(self.timings.pod_startup, self.seed, "startup", pod.cluster, pod.uid,
                        pod.start_epoch)
        self.at(self.now + delay, "pod-ready", (pod.cluster, pod.uid, pod.start_epoch))

    # -- pods: create, delete, replace -----------------------------------------------------
    def add_pod(self, w: WorkloadState, name: str, uid: str, *, node: NodeState | None = None,
                running: bool = False) -> PodState:
        """Create a pod. ``running``: it exists Running and Ready on ``node`` already (the
        initial layout)."""
        self.pod_seq += 1
        pod = PodState(seq=self.pod_seq, uid=uid, namespace=w.namespace, name=name, workload=w,
                       created=self.now)
        self.pods[w.cluster][uid] = pod
        self.by_name[w.cluster][(w.namespace, name)] = pod
        w.pods[uid] = pod
        self._touch_pod(pod, False)
        self.changes.touched.add(w)
        if running and node is not None:
            self._set(pod, node=node.name, phase="Running", ready=node.ready)
            node.pods[uid] = pod
            node.used_cpu += w.millicpu
            node.used_mem += w.memory
            return pod
        self.log(w.cluster, "sim", "pod-created", f"{w.namespace}/{name}", uid=uid)
        if node is not None:
            self.bind(pod, node)
        else:
            self.schedule(pod)
        return pod

    def begin_delete(self, pod: PodState) -> bool:
        """Set the pod's deletionTimestamp; False when it was deleting already."""
        if pod.deleted_at is not None:
            return False
        self._set(pod, deleted_at=self.now)
        if pod.workload.kind in REPLACE_AT_ONCE:
            self.replace(pod)
        if pod.node is None:
            self.gone(pod)
        elif self.nodes[pod.cluster][pod.node].ready:
            self._terminate(pod)
        return True

    def _terminate(self, pod: PodState) -> None:
        if pod.gone_scheduled:
            return
        pod.gone_scheduled = True
        self.changes.pods[pod.uid] = (pod.cluster, pod)
        delay = uniform(self.timings.pod_termination, self.seed, "terminate", pod.cluster,
                        pod.uid)
        self.at(self.now + delay, "pod-gone", (pod.cluster, pod.uid))

    def gone(self, pod: PodState) -> None:
        """The pod object disappears (terminated, never bound, or its node was removed)."""
        cluster = pod.cluster
        w = pod.workload
        if pod.available:
            w.available -= 1
        self.changes.touched.add(w)
        del self.pods[cluster][pod.uid]
        del w.pods[pod.uid]
        if self.by_name[cluster].get((pod.namespace, pod.name)) is pod:
            del self.by_name[cluster][(pod.namespace, pod.name)]
        self.pending[cluster].pop(pod.uid, None)
        self.changes.pods[pod.uid] = (cluster, None)
        self.version[cluster] = self.version.get(cluster, 0) + 1
        self.log(cluster, "sim", "pod-gone", f"{pod.namespace}/{pod.name}", uid=pod.uid)
        node = self.nodes[cluster].get(pod.node) if pod.node else None
        if node is not None:
            del node.pods[pod.uid]
            node.used_cpu -= w.millicpu
            node.used_mem -= w.memory
        if w.kind in REPLACE_WHEN_GONE or (w.kind in REPLACE_AT_ONCE and pod.deleted_at is None):
            self.replace(pod)
        if node is not None:
            self.room_on(node)

    def replace(self, pod: PodState) -> None:
        """The pod's controller creates its successor (see the module docstring)."""
        w = pod.workload
        uid = make_uid(self.seed, w.cluster, "replaces", pod.uid)
        if w.kind == "DaemonSet":
            node = self.nodes[w.cluster].get(pod.node) if pod.node else None
            if node is not None and not node.removing:
                self.add_pod(w, self._fresh_name(w, w.name, uid), uid, node=node)
        elif w.kind == "StatefulSet":
            self.add_pod(w, pod.name, uid)
        else:
            self.add_pod(w, self._fresh_name(w, w.owner_name or w.name, uid), uid)

    def _fresh_name(self, w: WorkloadState, base: str, uid: str) -> str:
        length = 5
        while True:
            name = f"{base}-{safe_suffix(uid, length=length)}"
            if (w.namespace, name) not in self.by_name[w.cluster]:
                return name
            length += 1

    def daemon_pods_for(self, node: NodeState) -> None:
        for w in self.workloads[node.cluster].values():
            if w.replicas < 0 and self.pool_allows(w, node.pool):
                uid = make_uid(self.seed, node.cluster, "daemon", w.key, node.name, node.origin)
                self.add_pod(w, self._fresh_name(w, w.name, uid), uid, node=node)

    # -- nodes -----------------------------------------------------------------------------
    def node_down(self, node: NodeState, *, containers_survive: bool) -> None:
        for pod in sorted(node.pods.values(), key=lambda p: p.seq):
            if not containers_survive and pod.phase == "Running":
                pod.needs_restart = True
            if pod.ready or not containers_survive:
                self._set(pod, ready=False)
        if not node.ready:
            return
        node.ready = False
        node.epoch += 1
        self.touch_node(node)
        self.log(node.cluster, "sim", "node-not-ready", node.name)
        self.at(self.now + self.timings.not_ready_eviction, "taint-eviction",
                (node.cluster, node.name, node.epoch))

    def node_up(self, node: NodeState) -> None:
        if node.ready or node.never_ready or node.removing:
            return
        node.ready = True
        node.epoch += 1
        self.touch_node(node)
        self.log(node.cluster, "sim", "node-ready", node.name)
        for pod in sorted(node.pods.values(), key=lambda p: p.seq):
            if pod.deleted_at is not None:
                self._terminate(pod)
            elif pod.phase == "Running" and not pod.needs_restart:
                self._set(pod, ready=True)
            else:
                self.start_pod(pod)
        self.room_on(node)

    def set_unschedulable(self, node: NodeState, value: bool) -> bool:
        if node.unschedulable == value:
            return False
        node.unschedulable = value
        self.touch_node(node)
        if not value:
            self.room_on(node)
        return True

    def remove_node(self, node: NodeState) -> None:
        for pod in sorted(node.pods.values(), key=lambda p: p.seq):
            self.gone(pod)
        del self.nodes[node.cluster][node.name]
        self.changes.nodes[(node.cluster, node.name)] = None
        self.version[node.cluster] = self.version.get(node.cluster, 0) + 1
        self.nodes_changed(node.cluster)
        self.log(node.cluster, "sim", "node-removed", node.name)

    # -- disruption budgets and the eviction API -------------------------------------------
    def budget(self, pdb: PdbState) -> BudgetStatus:
        return budget_status(pdb, self.wanted,
                             blocked=self.faults.pdb_blocked(pdb.cluster, pdb.key))

    def evict(self, pod: PodState) -> EvictionResult:
        """The eviction API's server side (``pkg/registry/core/pod/storage/eviction.go``)."""
        if pod.deleted_at is not None or pod.phase != "Running":
            self.begin_delete(pod)  # Pending/Succeeded/Failed or deleting: no PDB check
            return EvictionResult.EVICTED
        pdbs = pod.workload.pdbs
        if len(pdbs) > 1:
            return EvictionResult.MULTIPLE_PDBS
        if pdbs:
            pdb = pdbs[0]
            status = self.budget(pdb)
            unhealthy_may_go = not pod.ready and (
                pdb.unhealthy_policy == "AlwaysAllow"
                or (status.current_healthy >= status.desired_healthy > 0))
            if not unhealthy_may_go:
                if pdb.observed_generation < pdb.generation:
                    return EvictionResult.BUDGET_EXHAUSTED
                if status.disruptions_allowed <= 0:
                    return EvictionResult.BUDGET_EXHAUSTED
        self.begin_delete(pod)
        return EvictionResult.EVICTED

    def edit_pdb(self, pdb: PdbState, min_available: int | str | None,
                 max_unavailable: int | str | None) -> None:
        pdb.min_available = min_available
        pdb.max_unavailable = max_unavailable
        pdb.generation += 1
        self.changes.pdbs.add((pdb.cluster, pdb.key))
        delay = uniform(self.timings.pdb_sync, self.seed, "pdb-sync", pdb.cluster, pdb.key,
                        pdb.generation)
        self.at(self.now + delay, "pdb-sync", (pdb.cluster, pdb.key, pdb.generation))

    # -- timed events ----------------------------------------------------------------------
    def next_event_time(self) -> float | None:
        return self.agenda[0][0] if self.agenda else None

    def run_next(self, until: float) -> bool:
        """Process the next event due at or before ``until``; False when there is none."""
        if not self.agenda or self.agenda[0][0] > until:
            return False
        when, seq, kind, args = heapq.heappop(self.agenda)
        self.now = max(self.now, when)
        if self.changes.agenda_add.pop(seq, None) is None:
            self.changes.agenda_done.add(seq)
        self._handlers[kind](*args)
        return True

    def _on_pod_ready(self, cluster: str, uid: str, epoch: int) -> None:
        pod = self.pods[cluster].get(uid)
        if pod is None or pod.start_epoch != epoch or pod.deleted_at is not None:
            return
        node = self.nodes[cluster].get(pod.node) if pod.node else None
        if node is None or not node.ready:
            return
        self._set(pod, phase="Running", ready=True)
        self.log(cluster, "sim", "pod-ready", f"{pod.namespace}/{pod.name}", uid=uid)

    def _on_pod_gone(self, cluster: str, uid: str) -> None:
        pod = self.pods[cluster].get(uid)
        if pod is not None:
            self.gone(pod)

    def _on_taint_eviction(self, cluster: str, name: str, epoch: int) -> None:
        node = self.nodes[cluster].get(name)
        if node is None or node.ready or node.epoch != epoch:
            return
        for pod in sorted(node.pods.values(), key=lambda p: p.seq):
            if pod.workload.kind != "DaemonSet" and self.begin_delete(pod):
                self.log(cluster, "sim", "taint-eviction", f"{pod.namespace}/{pod.name}",
                         uid=pod.uid, detail=f"node {name} NotReady for "
                         f"{self.timings.not_ready_eviction:g}s")

    def _on_pdb_sync(self, cluster: str, key: str, generation: int) -> None:
        pdb = self.pdbs[cluster].get(key)
        if pdb is not None and pdb.observed_generation < generation:
            pdb.observed_generation = generation
            self.changes.pdbs.add((cluster, key))
            self.log(cluster, "sim", "pdb-synced", key, detail=f"generation {generation}")

    def register_handler(self, kind: str, handler: Callable[..., None]) -> None:
        self._handlers[kind] = handler

    # -- operations ------------------------------------------------------------------------
    def node_busy(self, cluster: str, node: str) -> set[str]:
        return self.node_ops.setdefault((cluster, node), set())

    def finish_op(self, op: OpState, state: OperationState, message: str = "") -> None:
        op.state = state
        op.message = message
        op.finished = self.now
        self.changes.ops.add((op.cluster, op.key))

    def running_ops(self) -> Iterable[OpState]:
        for ops in self.ops.values():
            yield from (op for op in ops.values() if op.state is OperationState.RUNNING)
