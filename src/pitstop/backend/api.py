"""The backend protocol and its values.

Design rules (what keeps this seam narrow and honest):

* Observations are plain frozen values: what the fleet looks like now. The executor re-reads
  them instead of remembering, so a resumed run and a fresh run see the same world.
* Mutations are few and named after what Kubernetes and hosts actually do: cordon, uncordon,
  annotate, evict (with the eviction API's answers), delete, and long-running :class:`Action`\\ s
  that are started and polled.
* Starting an action is idempotent by ``key``: starting the same key again returns the existing
  operation instead of doing the work twice. Backends record every destructive call they carry
  out, so tests can prove that nothing was repeated.
* Errors: a call that could not be made (connection refused, permission denied, a bug in a
  check) raises :class:`BackendError`. An answer the fleet gave (a PDB refused an eviction, an
  upgrade failed) is a value, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pitstop.errors import BackendError
from pitstop.model.common import requirement_matches

__all__ = [
    "Action",
    "AddNode",
    "Backend",
    "BackendError",
    "Clock",
    "ClusterObservation",
    "EtcdMemberObservation",
    "EtcdRestore",
    "EtcdSnapshot",
    "EvictionResult",
    "HealthSignals",
    "NodeObservation",
    "Operation",
    "OperationState",
    "PdbObservation",
    "PodObservation",
    "RemoveNode",
    "UpgradeComponent",
    "action_from_dict",
    "action_to_dict",
    "call_concurrency",
]




@runtime_checkable
class Clock(Protocol):
    """Seconds since an epoch the backend chooses. The twin's clock is virtual: ``sleep``
    advances it and runs every simulated event due meanwhile."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


# ---------------------------------------------------------------------------------------------
# Observations


@dataclass(frozen=True, slots=True)
class NodeObservation:
    name: str
    pool: str
    ready: bool
    unschedulable: bool
    kubelet: str
    kube_proxy: str | None
    runtime: str  # containerd | cri-o | docker
    runtime_version: str
    annotations: dict[str, str] = field(default_factory=dict)
    allocatable_millicpu: int = 0  # 0 = unknown
    allocatable_memory: int = 0
    allocatable_pods: int = 0

    def version_of(self, component: str) -> str | None:
        """The version the node reports for a node component (``kubelet``, ``kube-proxy``,
        else its runtime); None when it reports none. kube-proxy: recent kubelets leave
        ``nodeInfo.kubeProxyVersion`` empty (deprecated), and kube-proxy then counts at the
        kubelet's version, as the fleet model and the planner count it."""
        if component == "kubelet":
            return self.kubelet or None
        if component == "kube-proxy":
            return self.kube_proxy or self.kubelet or None
        return self.runtime_version or None


@dataclass(frozen=True, slots=True)
class PodObservation:
    namespace: str
    name: str
    uid: str
    node: str | None  # None while Pending unscheduled
    phase: str  # Pending | Running | Succeeded | Failed
    ready: bool
    labels: dict[str, str]
    owner_kind: str | None  # ReplicaSet, StatefulSet, DaemonSet, Job, … (None: no controller)
    owner_name: str | None
    workload: str  # "namespace/name" of the controller that owns it (for availability)
    deleting: bool = False  # metadata.deletionTimestamp set
    deleting_for: float = 0.0  # seconds since deletionTimestamp
    mirror: bool = False  # static pod (annotation kubernetes.io/config.mirror)
    empty_dir: bool = False
    millicpu: int = 0
    memory: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PdbObservation:
    namespace: str
    name: str
    selector: dict[str, str] | None  # matchLabels; None selects nothing, {} everything
    min_available: int | str | None
    max_unavailable: int | str | None
    disruptions_allowed: int
    current_healthy: int
    desired_healthy: int
    expected_pods: int
    observed_generation: int
    generation: int
    # matchExpressions: (key, In|NotIn|Exists|DoesNotExist, values), all of which must hold
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """The budget covers a pod of ``namespace`` with ``labels`` (matchLabels and every
        matchExpressions requirement, as the disruption controller reads them)."""
        if self.selector is None or namespace != self.namespace:
            return False
        if any(labels.get(k) != v for k, v in self.selector.items()):
            return False
        return all(requirement_matches(k, op, vals, labels)
                   for k, op, vals in self.match_expressions)


@dataclass(frozen=True, slots=True)
class EtcdMemberObservation:
    name: str
    version: str
    healthy: bool
    leader: bool
    raft_index: int
    db_size: int
    quota: int
    alarms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterObservation:
    cluster: str
    time: float
    apiservers: dict[str, str]  # instance -> version
    controller_manager: str
    scheduler: str
    etcd: tuple[EtcdMemberObservation, ...]
    nodes: tuple[NodeObservation, ...]
    pods: tuple[PodObservation, ...]
    pdbs: tuple[PdbObservation, ...]
    addons: dict[str, str] = field(default_factory=dict)  # name -> version

    def node(self, name: str) -> NodeObservation | None:
        return next((n for n in self.nodes if n.name == name), None)

    def pods_on(self, node: str) -> list[PodObservation]:
        return [p for p in self.pods if p.node == node]


@dataclass(frozen=True, slots=True)
class HealthSignals:
    """What gates read. ``metrics`` carries named numbers (e.g. ``error_rate`` for canary
    nodes and ``error_rate_baseline``); a backend that cannot read a signal leaves it out, and
    the gate reports Error (the check broke), not Failed."""

    time: float
    apiserver_ok: dict[str, bool]
    apiserver_latency_ms: float | None
    etcd: tuple[EtcdMemberObservation, ...]
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Mutations


class EvictionResult(StrEnum):
    """The eviction API's answers (policy/v1 Eviction on pods/eviction)."""

    EVICTED = "evicted"  # 201: accepted; the pod is now deleting
    GONE = "gone"  # 404: nothing to evict
    BUDGET_EXHAUSTED = "budget-exhausted"  # 429: a PDB allows no disruption now; retry later
    MULTIPLE_PDBS = "multiple-pdbs"  # 500: more than one PDB selects the pod; never retried
    TERMINATING_NAMESPACE = "terminating-namespace"  # 403: wait if the pod is deleting


@dataclass(frozen=True, slots=True)
class UpgradeComponent:
    """Upgrade ``component`` on a node (kubelet, kube-proxy, containerd, cri-o) or on a
    control-plane instance (kube-apiserver, kube-controller-manager, kube-scheduler, etcd), or
    an add-on (target = add-on name)."""

    target: str
    component: str
    version: str


@dataclass(frozen=True, slots=True)
class AddNode:
    """A new node in ``pool`` at these versions (replace strategy); ``name`` chosen by caller."""

    pool: str
    name: str
    kubelet: str
    runtime: str
    runtime_version: str


@dataclass(frozen=True, slots=True)
class RemoveNode:
    node: str


@dataclass(frozen=True, slots=True)
class EtcdSnapshot:
    name: str


@dataclass(frozen=True, slots=True)
class EtcdRestore:
    snapshot: str
    version: str  # the etcd version to restore into


Action = UpgradeComponent | AddNode | RemoveNode | EtcdSnapshot | EtcdRestore

_ACTION_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (
    UpgradeComponent, AddNode, RemoveNode, EtcdSnapshot, EtcdRestore)}


def action_to_dict(action: Action) -> dict[str, Any]:
    """An action as plain data (``type`` plus its fields), for backends that persist
    operations so that another process can poll them."""
    return {"type": type(action).__name__, **asdict(action)}


def action_from_dict(data: dict[str, Any]) -> Action:
    """The inverse of :func:`action_to_dict`; unknown fields are ignored, an unknown type is a
    :class:`BackendError`."""
    cls = _ACTION_TYPES.get(str(data.get("type")))
    if cls is None:
        raise BackendError(f"persisted operation names an unknown action {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    action: Action = cls(**{k: v for k, v in data.items() if k in names})
    return action


class OperationState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Operation:
    key: str
    action: Action
    state: OperationState
    message: str = ""
    started: float = 0.0
    finished: float | None = None


# ---------------------------------------------------------------------------------------------
# The protocol


def call_concurrency(backend: object) -> int:
    """How many calls (evictions) a backend takes at once: its optional ``concurrent_calls``
    attribute, else 1. A real API server serves many; the twin is a simulation in virtual time
    and takes one at a time."""
    try:
        return max(1, int(getattr(backend, "concurrent_calls", 1)))
    except (TypeError, ValueError):
        return 1


@runtime_checkable
class Backend(Protocol):
    """What the executor may do to a fleet. See the module docstring for the rules."""

    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    def observe(self, cluster: str) -> ClusterObservation: ...

    def health(self, cluster: str) -> HealthSignals: ...

    def cordon(self, cluster: str, node: str, reason: str) -> None: ...

    def uncordon(self, cluster: str, node: str) -> None: ...

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None: ...

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult: ...

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None: ...

    def start(self, cluster: str, key: str, action: Action) -> Operation: ...

    def poll(self, cluster: str, key: str) -> Operation: ...
