"""From API objects (JSON dicts) to the backend's observations.

Conventions, where Kubernetes leaves a choice:

* **versions** are shown without the leading ``v`` and without a provider suffix
  (``v1.29.3-eks-adc7111`` → ``1.29.3``, ``containerd://2.2.0`` → ``containerd``, ``2.2.0``),
  as the planner and the fleet model write them;
* **pool** of a node: the label given to the backend (default ``pitstop.dev/pool``), else the
  managed providers' node-pool labels (EKS, GKE, AKS, Karpenter), else ``control-plane`` for
  nodes with the control-plane role, else ``default``;
* **owner** of a pod: its *controller* reference only (``ownerReferences[].controller``), as
  kubectl's drain reads it; a pod of a ReplicaSet that a Deployment owns belongs to workload
  ``namespace/<deployment>``;
* **requests** of a pod: the larger of its containers' sum and its largest init container, plus
  the pod overhead (how the scheduler counts them);
* **PDB selector**: its ``matchLabels`` (``null`` selects nothing, ``{}`` everything);
  ``matchExpressions`` cannot be carried by :class:`~pitstop.backend.PdbObservation` and are
  left out, so such a PDB is seen as selecting *more* pods than it does (the cautious side
  for the executor's parallelism; the eviction API still applies the real selector).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pitstop.backend import NodeObservation, PdbObservation, PodObservation

__all__ = [
    "MIRROR_ANNOTATION",
    "POOL_LABELS",
    "node_observation",
    "parse_quantity",
    "parse_time",
    "pdb_observation",
    "pod_observation",
    "runtime_of",
    "short_version",
    "workload_index",
]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
POOL_LABELS = (
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "karpenter.sh/nodepool",
)
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
_SUFFIX = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``2``, ``256Gi``, ``1e3``) as a number;
    ValueError when it is not one."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    try:
        return Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text!r}") from None


def _millicpu(value: object) -> int:
    return math.ceil(parse_quantity(value) * 1000)


def _bytes(value: object) -> int:
    return math.ceil(parse_quantity(value))


def parse_time(value: str) -> float:
    """An RFC 3339 timestamp of the API (``2026-11-26T07:24:41Z``) as POSIX seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def short_version(value: str) -> str:
    """``v1.36.3`` → ``1.36.3``; ``v1.29.3-eks-adc7111`` → ``1.29.3``; other text as given
    (less a leading ``v``)."""
    m = _SEMVER.match(value.strip())
    if m:
        return ".".join(m.groups())
    return value.strip().removeprefix("v")


def runtime_of(value: str) -> tuple[str, str]:
    """``containerd://2.2.0`` → (``containerd``, ``2.2.0``); ``cri-o://1.30.1`` → (``cri-o``,
    …); ``docker://…`` → docker."""
    scheme, sep, version = value.partition("://")
    if not sep:
        return "", short_version(value) if value else ""
    return scheme, short_version(version)


def _ready(conditions: list[dict[str, Any]] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in conditions or [])


def node_observation(obj: dict[str, Any], pool_label: str) -> NodeObservation:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels: dict[str, str] = meta.get("labels") or {}
    info = status.get("nodeInfo") or {}
    pool = labels.get(pool_label) or next((labels[k] for k in POOL_LABELS if labels.get(k)), "")
    if not pool:
        pool = ("control-plane" if "node-role.kubernetes.io/control-plane" in labels
                else "default")
    runtime, runtime_version = runtime_of(str(info.get("containerRuntimeVersion") or ""))
    alloc = status.get("allocatable") or status.get("capacity") or {}
    proxy = str(info.get("kubeProxyVersion") or "")
    return NodeObservation(
        name=str(meta.get("name")), pool=pool, ready=_ready(status.get("conditions")),
        unschedulable=bool(spec.get("unschedulable")),
        kubelet=short_version(str(info.get("kubeletVersion") or "")),
        kube_proxy=short_version(proxy) if proxy else None,
        runtime=runtime, runtime_version=runtime_version,
        annotations=dict(meta.get("annotations") or {}),
        allocatable_millicpu=_millicpu(alloc["cpu"]) if "cpu" in alloc else 0,
        allocatable_memory=_bytes(alloc["memory"]) if "memory" in alloc else 0,
        allocatable_pods=int(_bytes(alloc["pods"])) if "pods" in alloc else 0,
    )


def _controller(meta: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)


def workload_index(replicasets: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, ReplicaSet) → name of the Deployment that controls it."""
    out: dict[tuple[str, str], str] = {}
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        ref = _controller(meta)
        if ref is not None and ref.get("kind") == "Deployment":
            out[(str(meta.get("namespace")), str(meta.get("name")))] = str(ref.get("name"))
    return out


def _requests(spec: dict[str, Any]) -> tuple[int, int]:
    def of(containers: list[dict[str, Any]] | None) -> list[tuple[int, int]]:
        out = []
        for c in containers or []:
            req = (c.get("resources") or {}).get("requests") or {}
            out.append((_millicpu(req["cpu"]) if "cpu" in req else 0,
                        _bytes(req["memory"]) if "memory" in req else 0))
        return out

    main = of(spec.get("containers"))
    init = of(spec.get("initContainers"))
    cpu = max(sum(c for c, _ in main), max((c for c, _ in init), default=0))
    mem = max(sum(m for _, m in main), max((m for _, m in init), default=0))
    overhead = spec.get("overhead") or {}
    cpu += _millicpu(overhead["cpu"]) if "cpu" in overhead else 0
    mem += _bytes(overhead["memory"]) if "memory" in overhead else 0
    return cpu, mem


def pod_observation(obj: dict[str, Any], deployments: dict[tuple[str, str], str],
                    now: float) -> PodObservation:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    ref = _controller(meta)
    owner_kind = str(ref.get("kind")) if ref is not None else None
    owner_name = str(ref.get("name")) if ref is not None else None
    workload = f"{ns}/{name}"
    if owner_name is not None:
        workload = f"{ns}/{owner_name}"
        if owner_kind == "ReplicaSet" and (ns, owner_name) in deployments:
            workload = f"{ns}/{deployments[(ns, owner_name)]}"
    deleted = meta.get("deletionTimestamp")
    cpu, mem = _requests(spec)
    return PodObservation(
        namespace=ns, name=name, uid=str(meta.get("uid")), node=spec.get("nodeName") or None,
        phase=str(status.get("phase") or "Pending"), ready=_ready(status.get("conditions")),
        labels=dict(meta.get("labels") or {}), owner_kind=owner_kind, owner_name=owner_name,
        workload=workload, deleting=deleted is not None,
        deleting_for=max(0.0, now - parse_time(deleted)) if deleted else 0.0,
        mirror=MIRROR_ANNOTATION in (meta.get("annotations") or {}),
        empty_dir=any("emptyDir" in v for v in spec.get("volumes") or []),
        millicpu=cpu, memory=mem)


def _int_or_str(value: object) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    return str(value)


def pdb_observation(obj: dict[str, Any]) -> PdbObservation:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    raw = spec.get("selector")
    selector = None if raw is None else dict(raw.get("matchLabels") or {})
    exprs = tuple((str(e.get("key")), str(e.get("operator")), tuple(e.get("values") or ()))
                  for e in (raw or {}).get("matchExpressions") or ())
    return PdbObservation(
        namespace=str(meta.get("namespace")), name=str(meta.get("name")), selector=selector,
        match_expressions=exprs,
        min_available=_int_or_str(spec.get("minAvailable")),
        max_unavailable=_int_or_str(spec.get("maxUnavailable")),
        disruptions_allowed=int(status.get("disruptionsAllowed") or 0),
        current_healthy=int(status.get("currentHealthy") or 0),
        desired_healthy=int(status.get("desiredHealthy") or 0),
        expected_pods=int(status.get("expectedPods") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        generation=int(meta.get("generation") or 0),
    )
