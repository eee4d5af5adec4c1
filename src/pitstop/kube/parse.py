"""The Kubernetes JSON vocabulary: pure functions from API objects (JSON dicts, as the API
server serves them) to values. Every reader of the API in pitstop uses these, and only these:
the backend's observations (:func:`node_observation`, :func:`pod_observation`,
:func:`pdb_observation`) and ``pitstop inventory`` (:mod:`pitstop.kube.inventory`), so the
executor and the planner count a pod, a pool or a quantity the same way. Tested on objects
captured from a real API server (``tests/data/kube/``).

Conventions, where Kubernetes leaves a choice:

* **quantities** (:func:`parse_quantity`): the grammar of ``resource.Quantity``: a signed
  decimal number (``2``, ``1.5``, ``.5``, ``1.``; an empty one, as in ``Mi``, is 0 to the API
  server too) and one of the binary suffixes ``Ki`` … ``Ei``, the decimal suffixes
  ``n u m k M G T P E`` (``E`` alone is exa), or a decimal exponent ``e``/``E`` with a signed
  integer (``129e6``, ``1E-3``); as exact numbers, rounded up to a nano as the API server rounds
  them, binary quantities capped at 2^63 − 1 as it caps them. CPU is counted in millicores and
  memory in bytes, both rounded up (``MilliValue``/``Value``);
* **versions** are shown without the leading ``v`` and without a provider suffix
  (``v1.29.3-eks-adc7111`` → ``1.29.3``, ``containerd://2.2.0`` → ``containerd``, ``2.2.0``),
  as the planner and the fleet model write them;
* **pool** of a node (:func:`node_pool`): the first of the labels asked for, then of
  :data:`DEFAULT_POOL_LABELS` (pitstop's own, the managed providers' node-pool labels: EKS,
  eksctl, GKE, AKS, Karpenter; then the instance type), that the node carries; else
  ``control-plane`` for a node with a control-plane role label, else ``default``;
* **owner** of a pod: its *controller* reference only (``ownerReferences[].controller``), as
  kubectl's drain reads it; a pod of a ReplicaSet that a Deployment controls belongs to
  workload ``namespace/<deployment>``;
* **mirror pod**: one with the ``kubernetes.io/config.mirror`` annotation (the kubelet's copy
  of a static pod), as kubectl's drain tells them;
* **requests** of a pod (:func:`pod_requests`), as the scheduler adds them (component-helpers
  ``PodRequests``): the app containers plus the restartable init containers (sidecars), at
  least each init container's peak (itself plus the sidecars started before it), pod-level
  ``spec.resources.requests`` instead for the resources it sets, plus the RuntimeClass
  ``overhead``. A pod template counts as its pods will, defaulted by the API server: a
  container's limit stands in for a request left out, and a pod-level limit for the pod-level
  request of a resource that no container asks for;
* **PDB selector**: its ``matchLabels`` (``null`` selects nothing, ``{}`` everything) and its
  ``matchExpressions``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any, NamedTuple

from pitstop.backend import NodeObservation, PdbObservation, PodObservation

__all__ = [
    "CONTROL_PLANE_ROLES",
    "DEFAULT_POOL_LABELS",
    "MIRROR_ANNOTATION",
    "Requests",
    "controller_ref",
    "is_control_plane",
    "is_mirror",
    "is_ready",
    "millicpu",
    "node_observation",
    "node_pool",
    "parse_quantity",
    "parse_time",
    "pdb_observation",
    "pod_observation",
    "pod_requests",
    "pod_workload",
    "pool_label_order",
    "quantity_value",
    "runtime_of",
    "short_version",
    "uses_empty_dir",
    "workload_index",
]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_POOL_LABELS: tuple[str, ...] = (
    "pitstop.dev/pool",
    "eks.amazonaws.com/nodegroup",
    "alpha.eksctl.io/nodegroup-name",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "karpenter.sh/nodepool",
    "node.kubernetes.io/instance-type",
)
CONTROL_PLANE_ROLES = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")

# -- quantities -------------------------------------------------------------------------------

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}  # powers of 2
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}  # powers of 10
# the number may be empty ("+", ".", "Mi", "e3"): the API server reads those as 0
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)")
_NANO = 10**9
_MAX_BINARY = 2**63 - 1


def parse_quantity(value: object) -> Fraction:
    """A Kubernetes resource quantity (``500m``, ``2``, ``1.5Gi``, ``129e6``, ``1E-3``) as an
    exact number; ValueError when it is not one (see the module docstring for the grammar)."""
    return _quantity(str(value))


@functools.lru_cache(maxsize=4096)  # a cluster uses few distinct quantities, many times
def _quantity(text: str) -> Fraction:
    trimmed = text.strip()  # as the API server's JSON decoding trims it
    m = _QUANTITY.fullmatch(trimmed)
    if m is None or not trimmed:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    frac = m["frac"] or ""
    number = Fraction(int((m["whole"] or "") + frac or "0"), 10 ** len(frac))
    suffix = m["suffix"]
    if suffix in _BINARY:
        number = min(number * 2 ** _BINARY[suffix], Fraction(_MAX_BINARY))
    else:
        exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
        number *= Fraction(10) ** exponent
    if (number * _NANO).denominator != 1:  # the API server keeps nanos, rounding up
        number = Fraction(math.ceil(number * _NANO), _NANO)
    return -number if m["sign"] == "-" else number


def millicpu(value: object) -> int:
    """A CPU quantity in millicores, rounded up (``MilliValue``): ``250m`` → 250, ``1.5`` →
    1500, ``1u`` → 1."""
    return _milli(str(value))


def quantity_value(value: object) -> int:
    """A quantity as a whole number, rounded up (``Value``): ``1Gi`` → 2**30, ``129e6``."""
    return _whole(str(value))


@functools.lru_cache(maxsize=4096)
def _milli(text: str) -> int:
    return math.ceil(_quantity(text) * 1000)


@functools.lru_cache(maxsize=4096)
def _whole(text: str) -> int:
    return math.ceil(_quantity(text))


class Requests(NamedTuple):
    """CPU in millicores and memory in bytes that a pod (or container) requests."""

    millicpu: int = 0
    memory: int = 0


def _requested(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """A container's requests, its limits standing in for requests left out (as the API
    server defaults a Pod's containers)."""
    resources = resources or {}
    return {**(resources.get("limits") or {}), **(resources.get("requests") or {})}


def pod_requests(pod_spec: Mapping[str, Any]) -> Requests:
    """A pod's effective requests, as the scheduler counts them (see the module docstring);
    ``pod_spec`` is a Pod's ``spec`` or a pod template's (then counted as the API server will
    default the pod: limits stand in for requests left out, and pod-level limits for the
    pod-level requests of a resource no container asks for)."""
    total = {"cpu": 0, "memory": 0}
    side = {"cpu": 0, "memory": 0}
    peak = {"cpu": 0, "memory": 0}
    asked: set[str] = set()
    for c in pod_spec.get("containers") or []:
        req = _requested(c.get("resources"))
        for key in total.keys() & req.keys():
            total[key] += _AMOUNT[key](req[key])
            asked.add(key)
    for c in pod_spec.get("initContainers") or []:
        req = _requested(c.get("resources"))
        sidecar = c.get("restartPolicy") == "Always"  # runs beside the app containers
        for key in total:
            amount = _AMOUNT[key](req[key]) if key in req else 0
            if sidecar:
                side[key] += amount
                total[key] += amount
            else:  # runs to completion beside the sidecars started before it
                peak[key] = max(peak[key], side[key] + amount)
        asked.update(total.keys() & req.keys())
    out = {key: max(total[key], peak[key]) for key in total}
    pod_level = pod_spec.get("resources") or {}
    requests = pod_level.get("requests") or {}
    limits = pod_level.get("limits") or {}
    for key in out:
        if key in requests:
            out[key] = _AMOUNT[key](requests[key])
        elif key in limits and key not in asked:
            out[key] = _AMOUNT[key](limits[key])
    overhead = pod_spec.get("overhead") or {}
    for key in out.keys() & overhead.keys():
        out[key] += _AMOUNT[key](overhead[key])
    return Requests(out["cpu"], out["memory"])


_AMOUNT = {"cpu": millicpu, "memory": quantity_value}


# -- versions and times -----------------------------------------------------------------------


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


# -- objects ----------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def is_ready(obj: Mapping[str, Any]) -> bool:
    """A node or pod whose ``Ready`` condition is ``True``."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked ``controller`` (an object has at most one), or None."""
    return next((dict(r) for r in _meta(obj).get("ownerReferences") or []
                 if r.get("controller")), None)


def is_mirror(pod: Mapping[str, Any]) -> bool:
    """The kubelet's mirror of a static pod (drain leaves it alone: the kubelet runs it)."""
    return MIRROR_ANNOTATION in (_meta(pod).get("annotations") or {})


def uses_empty_dir(pod_spec: Mapping[str, Any]) -> bool:
    """The pod keeps data in an ``emptyDir`` volume (lost when it is evicted)."""
    return any("emptyDir" in v for v in pod_spec.get("volumes") or [])


def workload_index(replicasets: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, ReplicaSet) → name of the Deployment that controls it."""
    out: dict[tuple[str, str], str] = {}
    for rs in replicasets:
        ref = controller_ref(rs)
        if ref is not None and ref.get("kind") == "Deployment":
            meta = _meta(rs)
            out[(str(meta.get("namespace")), str(meta.get("name")))] = str(ref.get("name"))
    return out


def pod_workload(pod: Mapping[str, Any], deployments: Mapping[tuple[str, str], str]) -> str:
    """``namespace/name`` of the workload a pod belongs to: the Deployment of its ReplicaSet
    (``deployments``: :func:`workload_index`), else its controller, else the pod itself."""
    meta = _meta(pod)
    ns = str(meta.get("namespace"))
    ref = controller_ref(pod)
    if ref is None:
        return f"{ns}/{meta.get('name')}"
    owner = str(ref.get("name"))
    if ref.get("kind") == "ReplicaSet" and (ns, owner) in deployments:
        return f"{ns}/{deployments[(ns, owner)]}"
    return f"{ns}/{owner}"


# -- nodes ------------------------------------------------------------------------------------


def pool_label_order(first: Sequence[str] = ()) -> tuple[str, ...]:
    """The labels that name a node's pool, in the order they are tried: ``first``, then
    :data:`DEFAULT_POOL_LABELS` (each label once)."""
    return tuple(dict.fromkeys([*first, *DEFAULT_POOL_LABELS]))


def is_control_plane(labels: Mapping[str, str]) -> bool:
    return any(k in labels for k in CONTROL_PLANE_ROLES)


def node_pool(labels: Mapping[str, str], first: Sequence[str] = ()) -> tuple[str, str | None]:
    """The pool of a node with ``labels`` and the label that names it (None for the
    ``control-plane`` and ``default`` fallbacks); ``first``: labels tried before
    :data:`DEFAULT_POOL_LABELS`."""
    for key in pool_label_order(first):
        if labels.get(key):
            return labels[key], key
    return ("control-plane" if is_control_plane(labels) else "default"), None


def node_observation(obj: Mapping[str, Any], pool_label: str) -> NodeObservation:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels: dict[str, str] = dict(meta.get("labels") or {})
    info = status.get("nodeInfo") or {}
    runtime, runtime_version = runtime_of(str(info.get("containerRuntimeVersion") or ""))
    alloc = status.get("allocatable") or status.get("capacity") or {}
    proxy = str(info.get("kubeProxyVersion") or "")
    return NodeObservation(
        name=str(meta.get("name")), pool=node_pool(labels, (pool_label,))[0],
        ready=is_ready(obj), unschedulable=bool(spec.get("unschedulable")),
        kubelet=short_version(str(info.get("kubeletVersion") or "")),
        kube_proxy=short_version(proxy) if proxy else None,
        runtime=runtime, runtime_version=runtime_version,
        annotations=dict(meta.get("annotations") or {}),
        allocatable_millicpu=millicpu(alloc["cpu"]) if "cpu" in alloc else 0,
        allocatable_memory=quantity_value(alloc["memory"]) if "memory" in alloc else 0,
        allocatable_pods=quantity_value(alloc["pods"]) if "pods" in alloc else 0,
    )


# -- pods and PDBs ----------------------------------------------------------------------------


def pod_observation(obj: Mapping[str, Any], deployments: Mapping[tuple[str, str], str],
                    now: float) -> PodObservation:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ref = controller_ref(obj)
    deleted = meta.get("deletionTimestamp")
    requests = pod_requests(spec)
    return PodObservation(
        namespace=str(meta.get("namespace")), name=str(meta.get("name")),
        uid=str(meta.get("uid")), node=spec.get("nodeName") or None,
        phase=str(status.get("phase") or "Pending"), ready=is_ready(obj),
        labels=dict(meta.get("labels") or {}),
        owner_kind=str(ref.get("kind")) if ref is not None else None,
        owner_name=str(ref.get("name")) if ref is not None else None,
        workload=pod_workload(obj, deployments), deleting=deleted is not None,
        deleting_for=max(0.0, now - parse_time(deleted)) if deleted else 0.0,
        mirror=is_mirror(obj), empty_dir=uses_empty_dir(spec),
        millicpu=requests.millicpu, memory=requests.memory)


def _int_or_str(value: object) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    return str(value)


def pdb_observation(obj: Mapping[str, Any]) -> PdbObservation:
    meta = _meta(obj)
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
