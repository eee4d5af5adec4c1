"""``pitstop inventory``: a :class:`~pitstop.model.Fleet` snapshot of live clusters.

One :class:`~pitstop.model.Cluster` per kubeconfig context, read with LIST calls that are all
paginated (``limit``/``continue``) and need only the read verbs of ``deploy/rbac/pitstop.yaml``.

What is read, and from where:

* **Nodes** (``/api/v1/nodes``), grouped into pools by the first of ``pool_labels``, then of
  :data:`~pitstop.kube.parse.DEFAULT_POOL_LABELS` (``pitstop.dev/pool``, the EKS, eksctl, GKE,
  AKS and Karpenter pool labels, ``node.kubernetes.io/instance-type``), that a node carries; a
  node with none of them is in pool ``control-plane`` when it has a control-plane role label,
  else ``default`` (:func:`~pitstop.kube.parse.node_pool`, as the backend's observations).
  Versions come from ``status.nodeInfo``: kubelet, runtime (``containerd://2.2.0``), OS image,
  kernel. kube-proxy's version is the image tag of the kube-proxy pod on that node when there
  is one, else ``nodeInfo.kubeProxyVersion`` (deprecated, empty on recent kubelets), else unset
  (the model then takes the kubelet's). The model has no taint field: each taint is recorded as
  a node label ``taint.pitstop.dev/<key>: <value>:<effect>`` (effects of one key joined by
  ``,``).
* **Control plane**: one API server per ``kube-apiserver`` pod in ``kube-system`` (kubeadm
  static pods: named by node, version from the image tag); without such pods (managed control
  planes, binaries run outside pods) one API server with ``/version``'s version, named by the
  server's host. kube-controller-manager and kube-scheduler likewise from their pods' image tags,
  else the API server's version (they are not visible otherwise). etcd only from etcd pods
  (a trailing image revision such as ``3.5.12-0`` is dropped).
* **Workloads**: Deployments, StatefulSets, DaemonSets, ReplicaSets without a Deployment,
  Jobs and bare Pods (mirror pods of static pods are none), with replicas, pod labels,
  per-pod requests (:func:`~pitstop.kube.parse.pod_requests`, as the scheduler and the
  backend's observations count them: containers, sidecars, init containers, pod-level
  resources and overhead; the most of the workload's pods, else of its pod template), emptyDir
  use, the nodes their pods run on, the pool a ``nodeSelector`` pins them to, and their images.
  Pods of other controllers (operators' custom resources) are recorded as a ReplicaSet named
  after the controller: the drain semantics are the same (evicted, recreated elsewhere), the
  model has no other kind.
* **PDBs** (``policy/v1``).
* **Add-ons** from image tags: CoreDNS, CNI DaemonSets (Calico, Cilium, Flannel, Weave, AWS VPC
  CNI, Antrea), kube-proxy, metrics-server.
* **API usage**, as Pluto finds it in a cluster: discovery says which resources are served; the
  objects of every served kind that the catalog lists are read, and the apiVersion of their
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation is recorded when the catalog
  lists it as deprecated or removed (source ``last-applied``). Kinds the credentials may not
  list are skipped and named in the notes.

:func:`image_uses` and :func:`image_findings` summarise images and whether they are pinned by
digest, ready to be shown as findings.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pitstop.backend import BackendError
from pitstop.errors import PitstopError
from pitstop.kube.parse import (
    DEFAULT_POOL_LABELS,
    Requests,
    controller_ref,
    is_control_plane,
    is_mirror,
    millicpu,
    node_pool,
    pod_requests,
    pool_label_order,
    quantity_value,
    uses_empty_dir,
)
from pitstop.model import (
    AddOn,
    ApiObjectRef,
    ApiServer,
    Cluster,
    ContainerRuntime,
    ControlPlane,
    ControlPlaneComponent,
    Etcd,
    EtcdMember,
    Fleet,
    Node,
    NodePool,
    PodDisruptionBudget,
    Quantity,
    Workload,
)
from pitstop.model.common import LabelSelector, Metadata
from pitstop.model.fleet import FleetSpec
from pitstop.preflight.findings import Finding, Severity
from pitstop.versions import Version, VersionError, parse_version

if TYPE_CHECKING:
    from pitstop.catalog import Catalog
    from pitstop.kube.connect import KubeApi

__all__ = [
    "CONTEXT_LABEL",
    "DEFAULT_POOL_LABELS",
    "LAST_APPLIED",
    "TAINT_LABEL_PREFIX",
    "ClusterInventory",
    "ImageUse",
    "Inventory",
    "InventoryError",
    "cluster_name_for",
    "image_findings",
    "image_uses",
    "inventory",
    "inventory_cluster",
    "take_inventory",
]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
TAINT_LABEL_PREFIX = "taint.pitstop.dev/"
CONTEXT_LABEL = "pitstop.dev/context"
DEFAULT_PAGE_SIZE = 500  # kubectl's --chunk-size
RuntimeName = Literal["containerd", "cri-o", "docker"]
WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"]
AddOnKind = Literal["cni", "dns", "metrics", "other"]
RUNTIMES: dict[str, RuntimeName] = {
    "containerd": "containerd", "cri-o": "cri-o", "crio": "cri-o", "docker": "docker"}
# Kinds the inventory lists anyway, as (kind, group): their annotations are read from those lists.
_LISTED = frozenset({
    ("Deployment", "apps"), ("StatefulSet", "apps"), ("DaemonSet", "apps"),
    ("ReplicaSet", "apps"), ("Job", "batch"), ("PodDisruptionBudget", "policy"), ("Pod", ""),
    ("Node", ""),
})
# Kinds never written by people (or only reviews): not worth a LIST when scanning API usage.
_NOT_APPLIED = frozenset({
    "Event", "Lease", "LeaseCandidate", "ControllerRevision", "EndpointSlice", "Endpoints",
    "Eviction", "ResourceSlice", "CSINode", "IPAddress", "StorageVersionMigration",
})


class InventoryError(PitstopError):
    """A cluster could not be read (unreachable, credentials refused, a LIST forbidden)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class ImageUse:
    """One image reference in one cluster, and the workloads that run it."""

    cluster: str
    image: str
    digest_pinned: bool
    workloads: tuple[str, ...]  # "Kind namespace/name"


@dataclass
class ClusterInventory:
    cluster: Cluster
    context: str
    notes: list[str] = field(default_factory=list)
    pages: dict[str, int] = field(default_factory=dict)  # LIST path -> pages read


@dataclass
class Inventory:
    fleet: Fleet
    clusters: list[ClusterInventory]

    @property
    def notes(self) -> list[str]:
        return [f"{c.cluster.name}: {n}" for c in self.clusters for n in c.notes]


# ---------------------------------------------------------------------------------------------
# Entry points


def inventory(contexts: list[str], kubeconfig: str | None, *,
              page_size: int = DEFAULT_PAGE_SIZE,
              pool_labels: Sequence[str] = DEFAULT_POOL_LABELS,
              name: str = "inventory") -> Fleet:
    """A Fleet with one Cluster per context (the kubeconfig's current context when
    ``contexts`` is empty; in-cluster config when there is no kubeconfig at all)."""
    return take_inventory(contexts, kubeconfig, page_size=page_size, pool_labels=pool_labels,
                          name=name).fleet


def take_inventory(contexts: Sequence[str], kubeconfig: str | None, *,
                   page_size: int = DEFAULT_PAGE_SIZE,
                   pool_labels: Sequence[str] = DEFAULT_POOL_LABELS,
                   name: str = "inventory", catalog: Catalog | None = None) -> Inventory:
    """:func:`inventory` with the notes and page counts of each cluster."""
    from pitstop.catalog import load_catalog
    from pitstop.kube.connect import connect

    cat = catalog or load_catalog()
    results: list[ClusterInventory] = []
    used: set[str] = set()
    wanted: list[str | None] = [*contexts] or [None]
    for ctx in wanted:
        try:
            api = connect(kubeconfig, ctx)
        except BackendError as exc:
            raise InventoryError(str(exc)) from None
        try:
            context = api.context or "in-cluster"
            cname = cluster_name_for(context, used)
            used.add(cname)
            results.append(inventory_cluster(api, cname, context=context, page_size=page_size,
                                             pool_labels=pool_labels, catalog=cat))
        except BackendError as exc:
            raise InventoryError(f"context {ctx or api.context}: {exc}") from None
        finally:
            api.close()
    fleet = Fleet(
        metadata=Metadata(name=name, annotations={
            "pitstop.dev/inventory-time": datetime.now(UTC).isoformat(timespec="seconds")}),
        spec=FleetSpec(clusters=[r.cluster for r in results]))
    return Inventory(fleet, results)


def cluster_name_for(context: str, taken: Iterable[str] = ()) -> str:
    """A cluster name (lower-case DNS-like) for a context name such as an EKS ARN."""
    base = re.sub(r"[^a-z0-9.-]+", "-", context.lower()).strip("-.") or "cluster"
    taken = set(taken)
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


# ---------------------------------------------------------------------------------------------
# Reading one cluster


class _Reader:
    def __init__(self, api: KubeApi, page_size: int, context: str) -> None:
        self.api = api
        self.page_size = page_size
        self.context = context
        self.notes: list[str] = []
        self.pages_read: dict[str, int] = {}

    def pages(self, path: str, *, field_selector: str = "") -> Iterator[list[dict[str, Any]]]:
        """Pages of a LIST (``limit``/``continue``). A continue token that expired (410 Gone)
        restarts the list once from the beginning. Non-2xx raises :class:`_Refused`."""
        restarted = False
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", self.page_size)]
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            answer = self.api.request("GET", path, query=query)
            self.pages_read[path] = self.pages_read.get(path, 0) + 1
            if answer.status == 410 and token and not restarted:
                restarted, token = True, ""
                continue
            if not answer.ok:
                raise _Refused(path, answer.status, answer.message)
            yield list(answer.body.get("items") or [])
            token = str((answer.body.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def items(self, path: str, *, field_selector: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.pages(path, field_selector=field_selector):
            out.extend(page)
        return out

    def required(self, path: str, *, field_selector: str = "") -> list[dict[str, Any]]:
        try:
            return self.items(path, field_selector=field_selector)
        except _Refused as exc:
            hint = (" Fix: grant list on it (deploy/rbac/pitstop.yaml has every verb the "
                    "inventory needs)." if exc.status in (401, 403) else "")
            raise InventoryError(f"{self.context}: LIST {path} answered HTTP {exc.status}: "
                                 f"{exc.message}.{hint}") from None


class _Refused(Exception):
    def __init__(self, path: str, status: int, message: str) -> None:
        super().__init__(f"{path}: {status} {message}")
        self.path, self.status, self.message = path, status, message


def inventory_cluster(api: KubeApi, name: str, *, context: str = "",
                      page_size: int = DEFAULT_PAGE_SIZE,
                      pool_labels: Sequence[str] = DEFAULT_POOL_LABELS,
                      catalog: Catalog | None = None) -> ClusterInventory:
    """Read one cluster through ``api`` into a :class:`Cluster` named ``name``."""
    from pitstop.catalog import load_catalog

    cat = catalog or load_catalog()
    r = _Reader(api, page_size, context or name)
    version = api.get("/version")
    raw_nodes = r.required("/api/v1/nodes")
    pods = r.required("/api/v1/pods",
                      field_selector="status.phase!=Succeeded,status.phase!=Failed")
    deployments = r.required("/apis/apps/v1/deployments")
    statefulsets = r.required("/apis/apps/v1/statefulsets")
    daemonsets = r.required("/apis/apps/v1/daemonsets")
    replicasets = r.required("/apis/apps/v1/replicasets")
    jobs = r.required("/apis/batch/v1/jobs")
    pdbs = r.required("/apis/policy/v1/poddisruptionbudgets")

    kube_system = [p for p in pods if _ns(p) == "kube-system"]
    proxy_on = {_spec(p).get("nodeName", ""): v for p in kube_system
                for v in [_component_version(p, "kube-proxy")] if v}
    pools, node_pool = _pools(raw_nodes, pool_labels, proxy_on, r.notes)
    control_plane, provider = _control_plane(api, version, kube_system, raw_nodes)
    workloads = _workloads(pods, deployments, statefulsets, daemonsets, replicasets, jobs,
                           node_pool, pool_labels, r.notes)
    objects: list[tuple[str, str, dict[str, Any]]] = [
        *(("Deployment", "apps", o) for o in deployments),
        *(("StatefulSet", "apps", o) for o in statefulsets),
        *(("DaemonSet", "apps", o) for o in daemonsets),
        *(("ReplicaSet", "apps", o) for o in replicasets),
        *(("Job", "batch", o) for o in jobs),
        *(("PodDisruptionBudget", "policy", o) for o in pdbs),
        *(("Pod", "", o) for o in pods),
        *(("Node", "", o) for o in raw_nodes),
    ]
    api_usage = _api_usage(r, cat, objects)
    labels = {CONTEXT_LABEL: context} if context else {}
    cluster = Cluster(
        name=name, labels=labels, provider=provider, control_plane=control_plane,
        node_pools=pools, addons=_addons(deployments, daemonsets, r.notes),
        workloads=workloads, pod_disruption_budgets=[_pdb(p) for p in pdbs],
        api_usage=api_usage)
    return ClusterInventory(cluster, r.context, r.notes, r.pages_read)


# ---------------------------------------------------------------------------------------------
# Nodes and pools


def _pools(raw_nodes: list[dict[str, Any]], pool_labels: Sequence[str],
           proxy_on: dict[str, Version], notes: list[str]
           ) -> tuple[list[NodePool], dict[str, str]]:
    groups: dict[str, list[Node]] = defaultdict(list)
    group_label: dict[str, dict[str, str]] = {}
    control: dict[str, bool] = defaultdict(bool)
    for raw in sorted(raw_nodes, key=_name):
        meta = raw.get("metadata") or {}
        labels: dict[str, str] = dict(meta.get("labels") or {})
        pool, key = node_pool(labels, pool_labels)
        is_cp = is_control_plane(labels)
        node = _node(raw, labels, proxy_on.get(_name(raw)), notes)
        if node is None:
            continue
        groups[pool].append(node)
        group_label.setdefault(pool, {key: pool} if key else {})
        control[pool] |= is_cp
    pools = [NodePool(name=p, labels=group_label[p], control_plane=control[p], nodes=nodes)
             for p, nodes in sorted(groups.items())]
    return pools, {n.name: p.name for p in pools for n in p.nodes}


def _node(raw: dict[str, Any], labels: dict[str, str], proxy: Version | None,
          notes: list[str]) -> Node | None:
    name = _name(raw)
    status = raw.get("status") or {}
    spec = raw.get("spec") or {}
    info = status.get("nodeInfo") or {}
    kubelet = _version(info.get("kubeletVersion", ""))
    if kubelet is None:
        notes.append(f"node {name} left out: kubelet version "
                     f"{info.get('kubeletVersion', '')!r} is not a version")
        return None
    runtime_text = str(info.get("containerRuntimeVersion", ""))
    scheme, _, rt_version = runtime_text.partition("://")
    rt_name = RUNTIMES.get(scheme)
    rt_ver = _version(rt_version)
    if rt_name is None or rt_ver is None:
        notes.append(f"node {name} left out: container runtime {runtime_text!r} is not one "
                     "pitstop knows (containerd, cri-o, docker)")
        return None
    if proxy is None:
        proxy = _version(info.get("kubeProxyVersion", ""))
    taints: dict[str, list[str]] = defaultdict(list)
    for t in spec.get("taints") or []:
        taints[TAINT_LABEL_PREFIX + str(t.get("key", ""))].append(
            f"{t.get('value', '')}:{t.get('effect', '')}")
    return Node(
        name=name, kubelet=str(kubelet), kube_proxy=str(proxy) if proxy else None,
        container_runtime=ContainerRuntime(name=rt_name, version=str(rt_ver)),
        os=str(info.get("osImage", "")), kernel=str(info.get("kernelVersion", "")),
        capacity=_node_quantity(status.get("capacity")),
        allocatable=_node_quantity(status.get("allocatable")),
        labels={**labels, **{k: ",".join(v) for k, v in taints.items()}},
        unschedulable=bool(spec.get("unschedulable", False)))


def _node_quantity(res: dict[str, Any] | None) -> Quantity | None:
    if not res:
        return None
    cpu = res.get("cpu")
    mem = res.get("memory")
    pods = res.get("pods")
    try:
        return Quantity(
            cpu=_format_cpu(millicpu(cpu)) if cpu is not None else None,
            memory=_format_memory(quantity_value(mem)) if mem is not None else None,
            pods=quantity_value(pods) if pods is not None else None)
    except ValueError as exc:
        raise InventoryError(f"a node's resources: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Control plane


def _control_plane(api: KubeApi, version: dict[str, Any], kube_system: list[dict[str, Any]],
                   raw_nodes: list[dict[str, Any]]) -> tuple[ControlPlane, str]:
    served = _version(str(version.get("gitVersion", "")))
    if served is None:
        raise InventoryError(f"/version answered gitVersion {version.get('gitVersion')!r}, "
                             "which is not a version")

    def instances(component: str) -> list[tuple[str, Version]]:
        out = []
        for p in kube_system:
            v = _component_version(p, component)
            if v is not None:
                out.append((_spec(p).get("nodeName") or _name(p), v))
        return sorted(out)

    apis = instances("kube-apiserver")
    host = urlparse(api.host).hostname or "kube-apiserver"
    api_servers = [ApiServer(name=n, version=str(v)) for n, v in apis] or [
        ApiServer(name=host, version=str(served))]

    def component(name: str) -> ControlPlaneComponent:
        found = instances(name)
        if not found:  # not visible as pods: assume it runs the API server's version
            return ControlPlaneComponent(version=str(served))
        return ControlPlaneComponent(version=str(min(v for _, v in found)),
                                     instances=[n for n, _ in found])

    git = str(version.get("gitVersion", ""))
    labels = [k for n in raw_nodes for k in ((n.get("metadata") or {}).get("labels") or {})]
    provider_ids = [str((n.get("spec") or {}).get("providerID", "")) for n in raw_nodes]
    if "-eks-" in git:
        provider = "eks"
    elif "-gke." in git:
        provider = "gke"
    elif any(k.startswith("kubernetes.azure.com/") for k in labels):
        provider = "aks"
    elif "+k3s" in git:
        provider = "k3s"
    elif "+rke2" in git:
        provider = "rke2"
    elif any(p.startswith("kind://") for p in provider_ids):
        provider = "kind"
    elif apis:
        provider = "kubeadm"  # static control-plane pods, as kubeadm runs them
    else:
        provider = "other"
    managed = provider in ("eks", "gke", "aks")
    etcd_found = instances("etcd")
    etcd = None if managed or not etcd_found else Etcd(
        version=str(min(v for _, v in etcd_found)),
        members=[EtcdMember(name=n, version=str(v)) for n, v in etcd_found])
    ccm = instances("cloud-controller-manager")
    cp = ControlPlane(
        api_servers=api_servers, controller_manager=component("kube-controller-manager"),
        scheduler=component("kube-scheduler"),
        cloud_controller_manager=ControlPlaneComponent(
            version=str(min(v for _, v in ccm)), instances=[n for n, _ in ccm]) if ccm else None,
        etcd=etcd, managed=managed)
    return cp, provider


def _component_version(pod: dict[str, Any], component: str) -> Version | None:
    """The version of ``component`` (an image name such as ``kube-apiserver``) that the pod
    runs, from its image tag; None when the pod does not run it or the tag is no version."""
    for c in _spec(pod).get("containers") or []:
        repo, tag, _ = split_image(str(c.get("image", "")))
        base = repo.rsplit("/", 1)[-1]
        if base == component or (component == "cloud-controller-manager"
                                 and base.endswith("cloud-controller-manager")):
            if component == "etcd":
                tag = re.sub(r"-\d+$", "", tag)  # kubeadm's image revision: 3.5.12-0
            return _version(tag)
    return None


# ---------------------------------------------------------------------------------------------
# Workloads


def _workloads(pods: list[dict[str, Any]], deployments: list[dict[str, Any]],
               statefulsets: list[dict[str, Any]], daemonsets: list[dict[str, Any]],
               replicasets: list[dict[str, Any]], jobs: list[dict[str, Any]],
               node_pool: dict[str, str], pool_labels: Sequence[str],
               notes: list[str]) -> list[Workload]:
    owners: dict[str, tuple[WorkloadKind, dict[str, Any]]] = {}
    kinds: tuple[tuple[WorkloadKind, list[dict[str, Any]]], ...] = (
        ("Deployment", deployments), ("StatefulSet", statefulsets), ("DaemonSet", daemonsets),
        ("Job", jobs))
    for kind, objs in kinds:
        for o in objs:
            owners[_uid(o)] = (kind, o)
    rs_parent: dict[str, str] = {}
    for rs in replicasets:
        ref = controller_ref(rs)
        if ref and ref.get("kind") == "Deployment" and ref.get("uid") in owners:
            rs_parent[_uid(rs)] = str(ref["uid"])
        else:
            owners[_uid(rs)] = ("ReplicaSet", rs)
    pods_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    bare: list[dict[str, Any]] = []
    foreign: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in pods:
        if (p.get("metadata") or {}).get("deletionTimestamp"):
            continue  # on its way out: not part of the steady state
        if is_mirror(p):
            continue  # a mirror pod of a static pod: the kubelet runs it, drain skips it
        ref = controller_ref(p)
        if ref is None:
            bare.append(p)
            continue
        uid = str(ref.get("uid", ""))
        uid = rs_parent.get(uid, uid)
        if uid in owners:
            pods_of[uid].append(p)
        else:
            foreign[(_ns(p), str(ref.get("kind", "")), str(ref.get("name", "")))].append(p)

    out: list[Workload] = []
    for uid, (kind, obj) in owners.items():
        template = (obj.get("spec") or {}).get("template") or {}
        out.append(_workload(kind, obj, template, pods_of.get(uid, []), node_pool, pool_labels))
    for p in bare:
        out.append(_workload("Pod", p, p, [p], node_pool, pool_labels))
    for (ns, owner_kind, name), ps in sorted(foreign.items()):
        notes.append(f"{len(ps)} pod(s) of {owner_kind} {ns}/{name} (a controller pitstop does not "
                     f"model) are recorded as ReplicaSet {ns}/{name}")
        fake = {"metadata": {"name": name, "namespace": ns}, "spec": {"replicas": len(ps)}}
        out.append(_workload("ReplicaSet", fake, ps[0], ps, node_pool, pool_labels))
    return sorted(out, key=lambda w: (w.namespace, w.kind, w.name))


def _workload(kind: WorkloadKind, obj: dict[str, Any], template: dict[str, Any],
              pods: list[dict[str, Any]], node_pool: dict[str, str],
              pool_labels: Sequence[str]) -> Workload:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    pod_spec = template.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    elif kind == "DaemonSet":
        replicas = int(status.get("desiredNumberScheduled") or 0)
    elif kind == "Job":
        replicas = int(status.get("active") or 0)
    else:
        replicas = 1
    selector = pod_spec.get("nodeSelector") or {}
    pinned = next((selector[k] for k in pool_label_order(pool_labels) if k in selector), None)
    pools = set(node_pool.values())
    images: list[str] = []
    for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        image = str(c.get("image", ""))
        if image and image not in images:
            images.append(image)
    nodes = sorted(str(_spec(p).get("nodeName")) for p in pods
                   if _spec(p).get("nodeName") in node_pool)
    return Workload(
        kind=kind, name=_name(obj), namespace=_ns(obj), replicas=max(replicas, 0),
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
        requests=_requests(pod_spec, pods),
        empty_dir=uses_empty_dir(pod_spec),
        node_pool=pinned if pinned in pools else None, nodes=nodes, images=images)


def _requests(pod_spec: dict[str, Any], pods: list[dict[str, Any]]) -> Quantity:
    """What one pod of the workload requests (:func:`~pitstop.kube.parse.pod_requests`): the
    most of its pods' (the API server has applied LimitRange defaults and the RuntimeClass
    overhead to them; during a rollout the larger one counts), else its pod template's."""
    try:
        found = [pod_requests(_spec(p)) for p in pods] or [pod_requests(pod_spec)]
    except ValueError as exc:
        raise InventoryError(f"a pod's requests: {exc}") from None
    return _quantity(Requests(max(r.millicpu for r in found), max(r.memory for r in found)))


def _quantity(r: Requests) -> Quantity:
    return Quantity(cpu=_format_cpu(r.millicpu) if r.millicpu else None,
                    memory=_format_memory(r.memory) if r.memory else None)


def _pdb(raw: dict[str, Any]) -> PodDisruptionBudget:
    spec = raw.get("spec") or {}
    sel = spec.get("selector")
    selector = None if sel is None else LabelSelector.model_validate(sel)
    min_a, max_u = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_a is None and max_u is None:
        min_a = 0  # policy/v1 without either: the disruption controller requires 0 healthy
    return PodDisruptionBudget(
        name=_name(raw), namespace=_ns(raw), selector=selector,
        min_available=min_a, max_unavailable=max_u if min_a is None else None,
        unhealthy_pod_eviction_policy=spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget")


# ---------------------------------------------------------------------------------------------
# Add-ons


# (add-on, kind, workload kind, image repository suffixes)
_ADDON_IMAGES: tuple[tuple[str, AddOnKind, str, tuple[str, ...]], ...] = (
    ("coredns", "dns", "Deployment", ("coredns/coredns", "/coredns")),
    ("metrics-server", "metrics", "Deployment", ("/metrics-server",)),
    ("calico", "cni", "DaemonSet", ("calico/node",)),
    ("cilium", "cni", "DaemonSet", ("cilium/cilium",)),
    ("flannel", "cni", "DaemonSet", ("/flannel",)),
    ("weave", "cni", "DaemonSet", ("weaveworks/weave-kube",)),
    ("aws-vpc-cni", "cni", "DaemonSet", ("/amazon-k8s-cni",)),
    ("antrea", "cni", "DaemonSet", ("antrea/antrea-agent-ubuntu", "antrea/antrea-ubuntu")),
    ("kube-proxy", "other", "DaemonSet", ("/kube-proxy",)),
)


def _addons(deployments: list[dict[str, Any]], daemonsets: list[dict[str, Any]],
            notes: list[str]) -> list[AddOn]:
    found: dict[str, tuple[AddOnKind, Version]] = {}
    for wkind, objs in (("Deployment", deployments), ("DaemonSet", daemonsets)):
        for o in objs:
            pod_spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in pod_spec.get("containers") or []:
                repo, tag, _ = split_image(str(c.get("image", "")))
                for addon, kind, want, suffixes in _ADDON_IMAGES:
                    if want != wkind or not any(("/" + repo).endswith(s) for s in suffixes):
                        continue
                    v = _version(tag)
                    if v is None:
                        notes.append(f"{addon} ({wkind} {_ns(o)}/{_name(o)}) left out: image "
                                     f"tag {tag!r} is not a version")
                    elif addon not in found or v < found[addon][1]:
                        found[addon] = (kind, v)  # several: the oldest is what limits
    return [AddOn(name=n, kind=k, version=str(v))
            for n, (k, v) in sorted(found.items())]


# ---------------------------------------------------------------------------------------------
# API usage


def _api_usage(r: _Reader, catalog: Catalog,
               listed: list[tuple[str, str, dict[str, Any]]]) -> list[ApiObjectRef]:
    known = {(a.api_version, a.kind) for a in catalog.apis}
    refs: set[ApiObjectRef] = set()

    def check(obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        text = (meta.get("annotations") or {}).get(LAST_APPLIED)
        if not text:
            return
        try:
            applied = json.loads(text)
        except ValueError:
            return
        if not isinstance(applied, dict):
            return
        key = (str(applied.get("apiVersion", "")), str(applied.get("kind", "")))
        if key in known:
            refs.add(ApiObjectRef(api_version=key[0], kind=key[1], name=_name(obj),
                                  namespace=_ns(obj), source="last-applied"))

    for _, _, obj in listed:
        check(obj)
    done = {(group, kind) for kind, group in _LISTED}
    wanted: dict[str, set[str]] = defaultdict(set)  # group -> kinds
    for api_version, kind in known:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if kind not in _NOT_APPLIED and (group, kind) not in done:
            wanted[group].add(kind)
    skipped: list[str] = []
    for group, path in _served_resources(r, wanted):
        try:
            for page in r.pages(path):
                for obj in page:
                    check(obj)
        except _Refused as exc:
            if exc.status not in (401, 403, 404, 405):
                raise BackendError(f"LIST {path}: HTTP {exc.status}: {exc.message}") from None
            skipped.append(path.rsplit("/", 1)[-1] + (f".{group}" if group else ""))
    if skipped:
        r.notes.append(f"API usage not read for {len(skipped)} resource(s) these "
                           f"credentials may not list: {', '.join(sorted(skipped))}")
    return sorted(refs, key=lambda a: (a.api_version, a.kind, a.namespace, a.name))


def _served_resources(r: _Reader, wanted: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(group, LIST path) of each served resource whose kind is wanted for its group: the
    group's preferred version when it serves the kind, else another served version."""
    versions: dict[str, list[str]] = {}
    if "" in wanted:
        versions[""] = list(r.api.get("/api").get("versions") or [])
    for g in r.api.get("/apis").get("groups") or []:
        name = str(g.get("name", ""))
        if name in wanted:
            pref = str((g.get("preferredVersion") or {}).get("groupVersion", ""))
            gvs = [str(v.get("groupVersion", "")) for v in g.get("versions") or []]
            versions[name] = [pref, *(v for v in gvs if v != pref)] if pref else gvs
    out: list[tuple[str, str]] = []
    for group, gvs in sorted(versions.items()):
        todo = set(wanted[group])
        for gv in gvs:
            if not todo:
                break
            base = f"/api/{gv}" if group == "" else f"/apis/{gv}"
            answer = r.api.request("GET", base)
            if not answer.ok:
                continue
            for res in answer.body.get("resources") or []:
                kind = str(res.get("kind", ""))
                if ("/" not in str(res.get("name", "")) and kind in todo
                        and "list" in (res.get("verbs") or [])):
                    todo.discard(kind)
                    out.append((group, f"{base}/{res['name']}"))
    return out


# ---------------------------------------------------------------------------------------------
# Images


def split_image(ref: str) -> tuple[str, str, str]:
    """``registry/repo:tag@sha256:…`` → (``registry/repo``, ``tag``, ``sha256:…``)."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:], digest
    return name, "", digest


def image_uses(cluster: Cluster) -> list[ImageUse]:
    """Every image reference of the cluster's workloads, and whether a digest pins it."""
    users: dict[str, list[str]] = defaultdict(list)
    for w in cluster.workloads:
        for image in w.images:
            users[image].append(f"{w.kind} {w.namespace}/{w.name}")
    return [ImageUse(cluster.name, image, bool(split_image(image)[2]), tuple(ws))
            for image, ws in sorted(users.items())]


def image_findings(fleet: Fleet) -> list[Finding]:
    """``image-not-digest-pinned`` (warning), one per cluster with such images: a pod that a
    drain moves pulls its tag again and may get different content mid-upgrade."""
    out: list[Finding] = []
    for c in fleet.spec.clusters:
        loose = [u for u in image_uses(c) if not u.digest_pinned]
        if not loose:
            continue
        shown = ", ".join(u.image for u in loose[:5]) + (
            f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        out.append(Finding(
            "image-not-digest-pinned", Severity.WARNING,
            f"{len(loose)} image reference(s) are not pinned by digest ({shown}): pods moved by "
            "a drain pull the tag again and may run different content than before.",
            "pin images by digest (image@sha256:…) before the upgrade.",
            c.name, tuple(sorted({w for u in loose for w in u.workloads})), "inventory"))
    return out


# ---------------------------------------------------------------------------------------------
# Small helpers


def _name(o: dict[str, Any]) -> str:
    return str((o.get("metadata") or {}).get("name", ""))


def _ns(o: dict[str, Any]) -> str:
    return str((o.get("metadata") or {}).get("namespace", ""))


def _uid(o: dict[str, Any]) -> str:
    return str((o.get("metadata") or {}).get("uid", ""))


def _spec(o: dict[str, Any]) -> dict[str, Any]:
    spec = o.get("spec")
    return spec if isinstance(spec, dict) else {}


def _version(text: str) -> Version | None:
    try:
        return parse_version(str(text)) if text else None
    except VersionError:
        return None


def _format_cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _format_memory(n: int) -> str | int:
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return n
