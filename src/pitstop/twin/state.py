"""The twin's world, object by object: mutable records, each saved as one row.

Persisted fields are listed in each ``to_row``; the rest (indexes, counters, cached
observations) are rebuilt when a twin is opened. Workloads are written once and never change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pitstop.backend import (
    Action,
    NodeObservation,
    Operation,
    OperationState,
    PodObservation,
    action_from_dict,
    action_to_dict,
)
from pitstop.model import LabelSelector

__all__ = [
    "ClusterState",
    "NodeState",
    "OpState",
    "PdbState",
    "PodState",
    "WorkloadState",
    "action_from_row",
    "action_to_row",
]

# Controllers that replace a deleted pod, and when: at once (the pod starts terminating) or
# once it is gone (StatefulSets keep the name; a DaemonSet pod belongs to its node).
REPLACE_AT_ONCE = frozenset({"Deployment", "ReplicaSet", "Job", "CronJob"})
REPLACE_WHEN_GONE = frozenset({"StatefulSet", "DaemonSet"})


@dataclass(slots=True, eq=False)
class WorkloadState:
    cluster: str
    namespace: str
    name: str
    kind: str
    replicas: int
    labels: dict[str, str]
    millicpu: int
    memory: int
    empty_dir: bool
    node_pool: str | None
    owner_kind: str | None
    owner_name: str | None
    # derived
    pods: dict[str, PodState] = field(default_factory=dict)
    available: int = 0
    pdbs: list[PdbState] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_row(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "namespace": self.namespace, "name": self.name,
                "kind": self.kind, "replicas": self.replicas, "labels": self.labels,
                "millicpu": self.millicpu, "memory": self.memory, "empty_dir": self.empty_dir,
                "node_pool": self.node_pool, "owner_kind": self.owner_kind,
                "owner_name": self.owner_name}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WorkloadState:
        return cls(**row)


@dataclass(slots=True, eq=False)
class PodState:
    seq: int  # creation order: observations list pods in this order
    uid: str
    namespace: str
    name: str
    workload: WorkloadState
    node: str | None = None
    phase: str = "Pending"
    ready: bool = False
    deleted_at: float | None = None
    created: float = 0.0
    start_epoch: int = 0  # bumped at every (re)start; a stale pod-ready event is ignored
    needs_restart: bool = False  # its containers died (runtime restart): start again when Ready
    gone_scheduled: bool = False
    obs: PodObservation | None = None  # cache, dropped on every change

    @property
    def cluster(self) -> str:
        return self.workload.cluster

    @property
    def available(self) -> bool:
        """Counts towards availability and PDB health: Running, Ready and not deleting."""
        return self.ready and self.deleted_at is None and self.phase == "Running"

    def to_row(self) -> dict[str, Any]:
        return {"seq": self.seq, "uid": self.uid, "namespace": self.namespace, "name": self.name,
                "workload": self.workload.key, "node": self.node, "phase": self.phase,
                "ready": self.ready, "deleted_at": self.deleted_at, "created": self.created,
                "start_epoch": self.start_epoch, "needs_restart": self.needs_restart,
                "gone_scheduled": self.gone_scheduled}


@dataclass(slots=True, eq=False)
class NodeState:
    cluster: str
    name: str
    pool: str
    kubelet: str
    kube_proxy: str | None
    runtime: str
    runtime_version: str
    alloc_cpu: int  # 0: unknown, counted as unlimited
    alloc_mem: int
    alloc_pods: int
    orig_kubelet: str  # versions before the run: what "upgraded" is measured against
    orig_runtime_version: str
    origin: str  # "fleet", or the key of the AddNode operation that made it
    ready: bool = True
    unschedulable: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    epoch: int = 0  # bumped at every readiness change; stale timed events are ignored
    never_ready: bool = False
    removing: bool = False
    # derived
    pods: dict[str, PodState] = field(default_factory=dict)
    used_cpu: int = 0
    used_mem: int = 0
    obs: NodeObservation | None = None

    @property
    def upgraded(self) -> bool:
        return (self.kubelet != self.orig_kubelet
                or self.runtime_version != self.orig_runtime_version)

    def to_row(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "name": self.name, "pool": self.pool,
                "kubelet": self.kubelet, "kube_proxy": self.kube_proxy, "runtime": self.runtime,
                "runtime_version": self.runtime_version, "alloc_cpu": self.alloc_cpu,
                "alloc_mem": self.alloc_mem, "alloc_pods": self.alloc_pods,
                "orig_kubelet": self.orig_kubelet,
                "orig_runtime_version": self.orig_runtime_version, "origin": self.origin,
                "ready": self.ready, "unschedulable": self.unschedulable,
                "annotations": self.annotations, "epoch": self.epoch,
                "never_ready": self.never_ready, "removing": self.removing}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> NodeState:
        return cls(**row)


@dataclass(slots=True, eq=False)
class PdbState:
    cluster: str
    namespace: str
    name: str
    selector: dict[str, Any] | None  # LabelSelector as written (camelCase)
    min_available: int | str | None
    max_unavailable: int | str | None
    unhealthy_policy: str = "IfHealthyBudget"
    generation: int = 1
    observed_generation: int = 1
    # derived
    workloads: list[WorkloadState] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def matcher(self) -> LabelSelector | None:
        return None if self.selector is None else LabelSelector.model_validate(self.selector)

    def to_row(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "namespace": self.namespace, "name": self.name,
                "selector": self.selector, "min_available": self.min_available,
                "max_unavailable": self.max_unavailable,
                "unhealthy_policy": self.unhealthy_policy, "generation": self.generation,
                "observed_generation": self.observed_generation}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PdbState:
        return cls(**row)


@dataclass(slots=True, eq=False)
class ClusterState:
    """Everything of a cluster that is not a node, pod, PDB or workload."""

    name: str
    pools: dict[str, dict[str, Any]]  # name -> {control_plane, template: {...}}
    apiservers: dict[str, dict[str, Any]]  # instance -> {version, up}
    controller_manager: dict[str, str]  # instance -> version
    scheduler: dict[str, str]
    cloud_controller_manager: dict[str, str]
    managed_control_plane: bool
    etcd: list[dict[str, Any]]  # [{name, version, up}]
    etcd_leader: str | None
    etcd_managed: bool
    addons: dict[str, str]
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    control_plane_steps: list[str] = field(default_factory=list)  # components, in order done
    restoring: bool = False

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClusterState:
        return cls(**row)

    def etcd_quorum(self) -> bool:
        if not self.etcd:
            return not self.restoring
        up = sum(1 for m in self.etcd if m["up"])
        return up > len(self.etcd) // 2

    def apiserver_serving(self, name: str) -> bool:
        """An instance answers /readyz: it runs, and etcd has quorum."""
        return bool(self.apiservers[name]["up"]) and self.etcd_quorum()


def action_to_row(action: Action) -> dict[str, Any]:
    return action_to_dict(action)


def action_from_row(row: dict[str, Any]) -> Action:
    return action_from_dict(row)


@dataclass(slots=True, eq=False)
class OpState:
    cluster: str
    key: str
    action: Action
    state: OperationState = OperationState.RUNNING
    message: str = ""
    started: float = 0.0
    finished: float | None = None

    def observe(self) -> Operation:
        return Operation(key=self.key, action=self.action, state=self.state,
                         message=self.message, started=self.started, finished=self.finished)

    def to_row(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "key": self.key, "action": action_to_row(self.action),
                "state": str(self.state), "message": self.message, "started": self.started,
                "finished": self.finished}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OpState:
        return cls(cluster=row["cluster"], key=row["key"],
                   action=action_from_row(row["action"]), state=OperationState(row["state"]),
                   message=row["message"], started=row["started"], finished=row["finished"])
