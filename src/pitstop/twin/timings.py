"""How long things take in the twin, and the deterministic draws that pick each duration.

Every duration is drawn uniformly from a ``(low, high)`` range in seconds. A draw is a hash of
the seed and the *identity* of what is being timed (an operation's key, a pod's uid and start
count, …), never of how many draws came before, so a twin resumed in another process draws the
same numbers as one that ran without interruption.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Span", "TwinTimings", "draw", "uniform"]

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TwinTimings:
    """Duration ranges (seconds) of everything the twin simulates. The defaults are typical of
    kubeadm clusters on cloud VMs; override any of them with ``TwinTimings(pod_startup=(5, 10))``.
    """

    node_restart: Span = (60.0, 120.0)
    """kubelet or container runtime upgraded in place: NotReady until the node is Ready again."""
    kube_proxy_restart: Span = (5.0, 15.0)
    pod_termination: Span = (5.0, 30.0)
    """deletionTimestamp set → pod gone (graceful termination)."""
    pod_startup: Span = (10.0, 40.0)
    """bound to a Ready node → Running and Ready (image pull, start, readiness probe)."""
    node_provisioning: Span = (120.0, 240.0)
    """AddNode: the node appears NotReady and is Ready after this."""
    node_removal: Span = (30.0, 90.0)
    """RemoveNode: the instance shuts down, then the node object and its pods are gone."""
    apiserver_restart: Span = (30.0, 60.0)
    controller_restart: Span = (10.0, 30.0)
    """kube-controller-manager, kube-scheduler, cloud-controller-manager."""
    etcd_member_restart: Span = (10.0, 20.0)
    etcd_snapshot: Span = (20.0, 60.0)
    etcd_restore: Span = (120.0, 300.0)
    addon_rollout: Span = (20.0, 60.0)
    managed_control_plane: Span = (600.0, 1200.0)
    """A provider upgrading its managed control plane (EKS, GKE, AKS)."""
    pdb_sync: Span = (1.0, 3.0)
    """An edited PDB until the disruption controller observes its new generation."""
    not_ready_eviction: float = 300.0
    """Pods leave a NotReady node after this (the default ``tolerationSeconds`` of the
    ``node.kubernetes.io/not-ready`` taint); DaemonSet pods tolerate it and stay."""
    apiserver_latency_ms: Span = (15.0, 35.0)
    """Baseline request latency, redrawn every 10 s of virtual time."""
    error_rate_baseline: float = 0.002

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TwinTimings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items() if k in known}
        return cls(**values)


def draw(seed: int, *identity: object) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``identity`` (strings and ints)."""
    digest = hashlib.blake2b(repr((seed, *identity)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def uniform(span: Span, seed: int, *identity: object) -> float:
    """A duration drawn from ``span``, in milliseconds precision."""
    low, high = span
    return round(low + (high - low) * draw(seed, *identity), 3)
