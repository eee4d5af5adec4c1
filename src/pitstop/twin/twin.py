"""The :class:`Twin`: the backend interface over a simulated fleet, persisted in SQLite.

    twin = Twin.create(fleet, seed=7, state_path=run / "twin.db", faults=scenario)
    twin.cordon("prod-eu-1", "node-a", "upgrade")
    twin.clock.sleep(30)                  # virtual time: events due meanwhile happen, in order
    ...
    twin = Twin.open(run / "twin.db")     # in another process, after a crash: same world

Each mutating call and each simulated event is committed before the next begins, so a twin
opened after its process was killed continues from the last completed call or event. Reads
(``observe``, ``health``, ``poll``) change nothing.

Beyond :class:`~pitstop.backend.Backend`, a twin answers what a rehearsal wants to know:
:meth:`Twin.events` (the event log), :meth:`Twin.availability` and :meth:`Twin.min_available`
(ready pods per workload over time), :meth:`Twin.check_invariants` (no PDB below its minimum),
and lets a test or a scenario edit a PDB (:meth:`Twin.edit_pdb`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from pitstop.backend import (
    Action,
    AddNode,
    BackendError,
    ClusterObservation,
    EtcdRestore,
    EtcdSnapshot,
    EvictionResult,
    HealthSignals,
    Operation,
    OperationState,
    RemoveNode,
    UpgradeComponent,
)
from pitstop.errors import ConfigError, ConfigProblem
from pitstop.model import FaultScenario, Fleet
from pitstop.twin import actions, views
from pitstop.twin.build import build_world, link_pdbs
from pitstop.twin.faults import FaultBook, SimulatedCrash
from pitstop.twin.metrics import TwinMetrics
from pitstop.twin.state import (
    ClusterState,
    NodeState,
    OpState,
    PdbState,
    PodState,
    WorkloadState,
)
from pitstop.twin.store import SCHEMA_VERSION, Store
from pitstop.twin.timings import TwinTimings
from pitstop.twin.views import InvariantViolation
from pitstop.twin.world import Changes, World

__all__ = ["AvailabilitySample", "Twin", "TwinClock", "TwinEvent"]


@dataclass(frozen=True, slots=True)
class TwinEvent:
    """One entry of the event log.

    ``source`` is ``call`` (a backend call: cordon, uncordon, annotate, evict, delete, start)
    or ``sim`` (the simulation: pod-created, pod-scheduled, pod-ready, pod-gone,
    node-ready, node-not-ready, node-added, node-removed, taint-eviction, operation-finished,
    pdb-synced, pdb-edited). ``destructive`` marks calls that changed the fleet: an eviction
    or deletion that set a pod deleting, a cordon or uncordon that flipped the node, the start
    of a *new* operation. A repeated call (a start by a known key, an eviction of a pod already
    deleting, a cordon of a cordoned node) is logged with ``destructive`` false."""

    seq: int
    time: float
    cluster: str
    source: str
    kind: str
    subject: str  # node name, namespace/pod, or operation key
    uid: str  # the pod's uid for pod events
    detail: str
    destructive: bool


class AvailabilitySample(NamedTuple):
    time: float
    ready: int  # Running, Ready and not deleting
    desired: int  # replicas the controller wants


class TwinClock:
    """Virtual time: ``sleep`` runs every event due meanwhile, in order, then sets the clock."""

    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def now(self) -> float:
        return self._twin.world.now

    def sleep(self, seconds: float) -> None:
        self._twin.advance(seconds)


def _describe(action: Action) -> str:
    if isinstance(action, UpgradeComponent):
        return f"upgrade {action.component} on {action.target} to {action.version}"
    if isinstance(action, AddNode):
        return (f"add node {action.name} to pool {action.pool} (kubelet {action.kubelet}, "
                f"{action.runtime} {action.runtime_version})")
    if isinstance(action, RemoveNode):
        return f"remove node {action.node}"
    if isinstance(action, EtcdSnapshot):
        return f"etcd snapshot {action.name}"
    if isinstance(action, EtcdRestore):
        return f"etcd restore {action.snapshot} into {action.version}"
    raise TypeError(action)


def _scenario_data(scenario: FaultScenario) -> Any:
    """The scenario as JSON data that validates again (durations as seconds)."""
    def seconds(value: object) -> float:
        if isinstance(value, timedelta):
            return value.total_seconds()
        raise TypeError(value)

    return json.loads(json.dumps(scenario.model_dump(by_alias=True), default=seconds))


def _check_faults(fleet: Fleet, scenario: FaultScenario) -> None:
    clusters = {c.name for c in fleet.spec.clusters}
    named = [(i, getattr(f, "cluster", None)) for i, f in enumerate(scenario.spec.faults)]
    problems = [
        ConfigProblem(f"FaultScenario/{scenario.metadata.name}", None,
                      f"spec.faults[{i}].cluster", f"no cluster {name!r} in the fleet.",
                      f"use one of {', '.join(sorted(clusters))}.")
        for i, name in named if name is not None and name not in clusters]
    if problems:
        raise ConfigError(problems)


class Twin:
    """A simulated fleet behind the :class:`~pitstop.backend.Backend` interface."""

    def __init__(self, world: World, store: Store) -> None:
        self.world = world
        self._store = store
        self._clock = TwinClock(self)
        self._subscribers: list[Callable[[], None]] = []
        world.register_handler("op-done", self._on_op_done)

    # -- making and opening ----------------------------------------------------------------
    @classmethod
    def create(cls, fleet: Fleet, *, seed: int, state_path: Path,
               faults: FaultScenario | None = None, timings: TwinTimings | None = None,
               start: float = 0.0) -> Twin:
        """A new twin of ``fleet``, saved at ``state_path`` (which must not exist). Its clock
        reads ``start`` (e.g. a POSIX timestamp; ``processCrash.at`` counts from it)."""
        state_path = Path(state_path)
        if state_path.exists():
            raise BackendError(f"{state_path} exists; open it with Twin.open or remove it")
        if faults is not None:
            _check_faults(fleet, faults)
        timings = timings or TwinTimings()
        world = build_world(fleet, seed, timings, FaultBook(faults, epoch=start), start=start)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        store = Store(state_path, create=True)
        twin = cls(world, store)
        static = {"schema": SCHEMA_VERSION, "seed": seed, "timings": timings.to_dict(),
                  "faults": _scenario_data(faults) if faults else None,
                  "fleet": fleet.metadata.name, "clusters": list(world.clusters),
                  "start": start}
        workloads = [(w.cluster, w.key, w.to_row())
                     for ws in world.workloads.values() for w in ws.values()]
        store.commit(world, twin._meta(), static=static, workloads=workloads)
        return twin

    @classmethod
    def open(cls, state_path: Path) -> Twin:
        """The twin saved at ``state_path``, exactly as its last commit left it."""
        state_path = Path(state_path)
        if not state_path.exists():
            raise BackendError(f"no twin at {state_path}")
        store = Store(state_path, create=False)
        meta = store.meta()
        if meta.get("schema") != SCHEMA_VERSION:
            store.close()
            raise BackendError(f"{state_path}: twin state of schema {meta.get('schema')}, "
                               f"this pitstop reads {SCHEMA_VERSION}")
        scenario = (FaultScenario.model_validate(meta["faults"]) if meta.get("faults")
                    else None)
        world = World(meta["seed"], TwinTimings.from_dict(meta["timings"]),
                      FaultBook(scenario, meta["fault_state"], epoch=meta["start"]))
        _load(world, store, meta)
        return cls(world, store)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        w = self.world
        return {"now": w.now, "event_seq": w.event_seq, "log_seq": w.log_seq,
                "pod_seq": w.pod_seq, "destructive_calls": w.destructive_calls,
                "fault_state": w.faults.state}

    def _commit(self) -> None:
        self.world.sample()
        self._store.commit(self.world, self._meta())
        for callback in self._subscribers:
            callback()

    def _guard(self) -> None:
        """The process "dies" here when a crash fault is due (recorded first: it fires once)."""
        w = self.world
        index = w.faults.crash_due(w.now, w.destructive_calls)
        if index is not None:
            self._crash(index)

    def _crash(self, index: int) -> None:
        w = self.world
        w.faults.fire(index)
        w.log("", "sim", "process-crash", f"fault {index}", detail=f"t={w.now:g}s")
        self._commit()
        raise SimulatedCrash(f"simulated crash of the executor's process (fault {index}) "
                             f"at t={w.now:g}s")

    def _cluster(self, cluster: str, *, api: bool = False) -> ClusterState:
        c = self.world.clusters.get(cluster)
        if c is None:
            raise BackendError(f"unknown cluster {cluster!r}")
        if api and not any(c.apiserver_serving(n) for n in c.apiservers):
            raise BackendError(f"{cluster}: the Kubernetes API is unavailable (no kube-apiserver "
                               "is serving); retry later")
        return c

    def _node(self, cluster: str, node: str) -> NodeState:
        n = self.world.nodes[cluster].get(node)
        if n is None:
            raise BackendError(f"{cluster}: node {node!r} not found")
        return n

    def _call(self, cluster: str, kind: str, subject: str, *, uid: str = "", detail: str = "",
              destructive: bool) -> None:
        self.world.log(cluster, "call", kind, subject, uid=uid, detail=detail,
                       destructive=destructive)
        if destructive:
            self.world.destructive_calls += 1
        self._commit()

    # -- the Backend interface -------------------------------------------------------------
    @property
    def name(self) -> str:
        return "twin"

    @property
    def clock(self) -> TwinClock:
        return self._clock

    @property
    def metrics(self) -> TwinMetrics:
        """The twin's metric series (:mod:`pitstop.twin.metrics`): what telemetry gates read."""
        return TwinMetrics(self.world)

    def observe(self, cluster: str) -> ClusterObservation:
        self._guard()
        self._cluster(cluster, api=True)
        return views.observe(self.world, cluster)

    def health(self, cluster: str) -> HealthSignals:
        self._guard()
        self._cluster(cluster)
        return views.health(self.world, cluster)

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        self._guard()
        self._cluster(cluster, api=True)
        changed = self.world.set_unschedulable(self._node(cluster, node), True)
        self._call(cluster, "cordon", node, detail=reason, destructive=changed)

    def uncordon(self, cluster: str, node: str) -> None:
        self._guard()
        self._cluster(cluster, api=True)
        changed = self.world.set_unschedulable(self._node(cluster, node), False)
        self._call(cluster, "uncordon", node, destructive=changed)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        self._guard()
        self._cluster(cluster, api=True)
        n = self._node(cluster, node)
        if value is None:
            n.annotations.pop(key, None)
        else:
            n.annotations[key] = value
        self.world.touch_node(n)
        self._call(cluster, "annotate", node, detail=f"{key}={value}", destructive=False)

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        """The eviction API: a pod not found, or whose uid is not ``uid`` (it was replaced),
        is GONE (404)."""
        self._guard()
        self._cluster(cluster, api=True)
        p = self.world.by_name[cluster].get((namespace, pod))
        if p is None or p.uid != uid:
            result, changed = EvictionResult.GONE, False
        else:
            was_deleting = p.deleted_at is not None
            result = self.world.evict(p)
            changed = result is EvictionResult.EVICTED and not was_deleting
        self._call(cluster, "evict", f"{namespace}/{pod}", uid=uid, detail=str(result),
                   destructive=changed)
        return result

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        """DELETE with graceful termination, no PDB check; nothing when the pod is gone."""
        self._guard()
        self._cluster(cluster, api=True)
        p = self.world.by_name[cluster].get((namespace, pod))
        changed = p is not None and p.uid == uid and self.world.begin_delete(p)
        self._call(cluster, "delete", f"{namespace}/{pod}", uid=uid,
                   detail="deleted" if changed else "not found or deleting already",
                   destructive=changed)

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        """Start ``action`` under ``key``; a known key returns its operation and does nothing
        (a different action under a known key is a caller's bug: BackendError)."""
        self._guard()
        self._cluster(cluster)
        w = self.world
        existing = w.ops[cluster].get(key)
        if existing is not None:
            if existing.action != action:
                raise BackendError(f"{cluster}: operation {key!r} exists for another action "
                                   f"({_describe(existing.action)})")
            self._call(cluster, "start", key, detail=f"known key: {existing.state}",
                       destructive=False)
            return existing.observe()
        op = OpState(cluster=cluster, key=key, action=action, started=w.now)
        w.ops[cluster][key] = op
        w.changes.ops.add((cluster, key))
        try:
            duration = actions.begin(w, op)
        except actions.Refused as refused:
            w.finish_op(op, OperationState.FAILED, str(refused))
        else:
            w.at(w.now + duration, "op-done", (cluster, key))
        self._call(cluster, "start", key, detail=_describe(action), destructive=True)
        return op.observe()

    def poll(self, cluster: str, key: str) -> Operation:
        self._guard()
        self._cluster(cluster)
        op = self.world.ops[cluster].get(key)
        if op is None:
            raise BackendError(f"{cluster}: no operation {key!r}")
        return op.observe()

    # -- time ------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move virtual time ``seconds`` ahead, processing (and committing) every event due."""
        if seconds < 0:
            raise ValueError(f"cannot sleep {seconds} seconds")
        self._guard()
        w = self.world
        target = w.now + seconds
        crash_at = w.faults.next_crash_time()
        stop = target if crash_at is None or crash_at > target else crash_at
        while w.run_next(stop):
            self._commit()
        w.now = max(w.now, stop)
        self._guard()  # the crash time was reached: the process dies now
        self._commit()

    def next_event_time(self) -> float | None:
        """When the next simulated event is due (None: nothing will happen by itself)."""
        return self.world.next_event_time()

    def _on_op_done(self, cluster: str, key: str) -> None:
        w = self.world
        op = w.ops[cluster][key]
        if op.state is not OperationState.RUNNING:
            return
        state, message = actions.finish(w, op)
        w.finish_op(op, state, message)
        w.log(cluster, "sim", "operation-finished", key,
              detail=f"{state}: {message}" if message else str(state))

    # -- what a rehearsal reads ------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every committed call and every simulated event (a
        progress display, or a test checking invariants at every event)."""
        self._subscribers.append(callback)

    def events(self, *, cluster: str | None = None, source: str | None = None,
               destructive: bool | None = None, since: int = 0) -> list[TwinEvent]:
        """The event log in order (entries after sequence ``since``), optionally filtered."""
        out = [TwinEvent(seq, t, c, src, kind, subject, uid, detail, bool(d))
               for seq, t, c, src, kind, subject, uid, detail, d in self._store.log(since)]
        return [e for e in out
                if (cluster is None or e.cluster == cluster)
                and (source is None or e.source == source)
                and (destructive is None or e.destructive == destructive)]

    def availability(self) -> dict[str, list[AvailabilitySample]]:
        """Per workload (``cluster/namespace/name``): a sample at time 0 and at every change
        of its ready or desired pod count."""
        out: dict[str, list[AvailabilitySample]] = {}
        for cluster, workload, t, ready, desired in self._store.samples():
            out.setdefault(f"{cluster}/{workload}", []).append(
                AvailabilitySample(t, ready, desired))
        return out

    def min_available(self) -> dict[str, AvailabilitySample]:
        """Per workload, its worst sample: the lowest ready/desired ratio (earliest of ties)."""
        def ratio(s: AvailabilitySample) -> float:
            return s.ready / s.desired if s.desired else 1.0

        return {k: min(samples, key=lambda s: (ratio(s), s.time))
                for k, samples in self.availability().items()}

    def pdb_floors(self) -> dict[str, int]:
        """Per workload a PDB covers (keys as in :meth:`availability`): the fewest ready pods
        its PDB allows now. A PDB over several workloads is shared: a workload's floor is what
        remains of ``desiredHealthy`` once the others have all their pods."""
        w = self.world
        out: dict[str, int] = {}
        for cluster, pdbs in w.pdbs.items():
            for pdb in pdbs.values():
                desired = w.budget(pdb).desired_healthy
                for wl in pdb.workloads:
                    others = sum(w.wanted(o) for o in pdb.workloads if o is not wl)
                    key = f"{cluster}/{wl.key}"
                    out[key] = max(out.get(key, 0), desired - others)
        return out

    def check_invariants(self) -> list[InvariantViolation]:
        """PDBs whose healthy pods are below their minimum now (empty when all is well)."""
        return views.check_invariants(self.world)

    def edit_pdb(self, cluster: str, namespace: str, name: str, *,
                 min_available: int | str | None = None,
                 max_unavailable: int | str | None = None) -> None:
        """Someone edits a PDB: its generation moves on, and the eviction API refuses its pods
        (429) until the disruption controller observes it, ``pdb_sync`` seconds later."""
        if (min_available is None) == (max_unavailable is None):
            raise ValueError("set exactly one of min_available and max_unavailable")
        self._cluster(cluster)
        pdb = self.world.pdbs[cluster].get(f"{namespace}/{name}")
        if pdb is None:
            raise BackendError(f"{cluster}: no PodDisruptionBudget {namespace}/{name}")
        self.world.edit_pdb(pdb, min_available, max_unavailable)
        self.world.log(cluster, "sim", "pdb-edited", pdb.key, detail=f"generation "
                       f"{pdb.generation}")
        self._commit()


def _load(world: World, store: Store, meta: dict[str, Any]) -> None:
    """Rebuild ``world`` (and its indexes) from the store's rows."""
    for key in ("now", "event_seq", "log_seq", "pod_seq", "destructive_calls"):
        setattr(world, key, meta[key])
    states = {row["name"]: ClusterState.from_row(row) for row in store.rows("clusters")}
    for name in meta["clusters"]:  # the fleet's order
        world.add_cluster(states[name])
    for row in store.rows("workloads"):
        w = WorkloadState.from_row(row)
        world.workloads[w.cluster][w.key] = w
    for row in store.rows("pdbs"):
        pdb = PdbState.from_row(row)
        world.pdbs[pdb.cluster][pdb.key] = pdb
    for cluster in world.clusters:
        link_pdbs(world, cluster)
    for row in sorted(store.rows("nodes"), key=lambda r: (r["cluster"], r["name"])):
        node = NodeState.from_row(row)
        world.nodes[node.cluster][node.name] = node
    rows = [(c, _pod_row(world, c, data)) for c, data in store.pod_rows()]
    for cluster, pod in sorted(rows, key=lambda r: r[1].seq):
        w = pod.workload
        world.pods[cluster][pod.uid] = pod
        world.by_name[cluster][(pod.namespace, pod.name)] = pod
        w.pods[pod.uid] = pod
        w.available += pod.available
        if pod.node is None:
            world.pending[cluster][pod.uid] = pod
        else:
            node = world.nodes[cluster][pod.node]
            node.pods[pod.uid] = pod
            node.used_cpu += w.millicpu
            node.used_mem += w.memory
    for row in store.rows("operations"):
        op = OpState.from_row(row)
        world.ops[op.cluster][op.key] = op
        a = op.action
        if (op.state is OperationState.RUNNING and isinstance(a, UpgradeComponent)
                and a.component in actions.NODE_COMPONENTS - {"kube-proxy"}):
            world.node_busy(op.cluster, a.target).add(op.key)
    world.agenda = sorted(store.agenda())  # a sorted list is a heap
    for ws in world.workloads.values():
        for w in ws.values():
            world.last_sample[w] = (w.available, world.wanted(w))
    world.changes = Changes()


def _pod_row(world: World, cluster: str, row: dict[str, Any]) -> PodState:
    data = dict(row)
    data["workload"] = world.workloads[cluster][data["workload"]]
    return PodState(**data)
