"""The one I/O seam of the executor: the :class:`Backend` protocol, and the values it trades.

The twin (``pitstop.twin``) and every real backend (Kubernetes, SSH hosts, etcd) implement it; the
executor and the shared drain logic use nothing else. Every call is quick: work that takes time
(a component upgrade, a new node, an etcd snapshot) is *started* and returns an
:class:`Operation` that the executor polls, so the same executor drives a simulation in virtual
time and a real fleet in real time. Time itself comes from the backend's :class:`Clock`.
"""

from pitstop.backend.api import (
    Action,
    AddNode,
    Backend,
    BackendError,
    Clock,
    ClusterObservation,
    EtcdMemberObservation,
    EtcdRestore,
    EtcdSnapshot,
    EvictionResult,
    HealthSignals,
    NodeObservation,
    Operation,
    OperationState,
    PdbObservation,
    PodObservation,
    RemoveNode,
    UpgradeComponent,
    action_from_dict,
    action_to_dict,
    call_concurrency,
)

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
