"""The ``Fleet`` object: clusters, their control planes, node pools, add-ons and workloads.

A fleet is written by hand, generated, or taken from live clusters by ``pitstop inventory``.
Versions are the versions running now; the planner reads them, never changes them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pitstop.model.common import (
    API_VERSION,
    Duration,
    IntOrPercent,
    LabelSelector,
    Metadata,
    Quantity,
    SpecModel,
    VersionStr,
    repeated,
)
from pitstop.model.limits import MAX_PODS_PER_CLUSTER, MAX_REPLICAS
from pitstop.model.names import (
    ApiServerName,
    ClusterName,
    ComponentName,
    EtcdMemberName,
    InstanceName,
    Labels,
    Namespace,
    NodeName,
    ObjectName,
    PdbName,
    PoolName,
    WorkloadName,
    forbidden_character,
    is_subdomain,
)

__all__ = [
    "AddOn",
    "ApiObjectRef",
    "ApiServer",
    "Cluster",
    "ClusterTelemetry",
    "ContainerRuntime",
    "ControlPlane",
    "ControlPlaneComponent",
    "Etcd",
    "EtcdMember",
    "Fleet",
    "FleetSpec",
    "Node",
    "NodePool",
    "PodDisruptionBudget",
    "PrometheusEndpointSpec",
    "Workload",
]

RuntimeName = Literal["containerd", "cri-o", "docker"]
Environment = Literal["development", "test", "staging", "production"]

_URL_RE = re.compile(r"^(?P<scheme>https?)://(?P<authority>[^/?#\s]+)(?P<path>/[^?#\s]*)?"
                     r"(?P<rest>[?#].*)?$")
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION_PART_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _api_version(value: str, *, allow_empty: bool) -> str:
    """``v1`` or ``group/version`` as Kubernetes writes it (the group a DNS-1123 subdomain,
    the version a DNS-1035 label such as v1beta1)."""
    if not value and allow_empty:
        return value
    group, slash, version = value.rpartition("/")
    ok = (len(version) <= 63 and _VERSION_PART_RE.match(version) is not None
          and (not slash or is_subdomain(group)))
    if not ok:
        where = forbidden_character(value)
        raise ValueError(f"{value[:80]!r} is not an apiVersion: write v1 or group/version, e.g. "
                         "apps/v1 or policy/v1beta1" + (f" (it holds {where})" if where else "")
                         + ". Fix: write the apiVersion as the object has it")
    return value


class ContainerRuntime(SpecModel):
    name: RuntimeName = "containerd"
    version: VersionStr


class ApiServer(SpecModel):
    """One kube-apiserver instance (a control-plane host or replica)."""

    name: ApiServerName
    version: VersionStr


class ControlPlaneComponent(SpecModel):
    """kube-controller-manager or kube-scheduler: every instance runs this version."""

    version: VersionStr
    instances: list[InstanceName] = Field(default_factory=list)


class EtcdMember(SpecModel):
    name: EtcdMemberName
    version: VersionStr | None = None


class Etcd(SpecModel):
    version: VersionStr
    members: list[EtcdMember] = Field(default_factory=list)
    managed: bool = Field(
        default=True,
        description="false when the provider runs etcd (EKS, GKE, AKS): pitstop never plans it",
    )

    def member_versions(self) -> list[tuple[str, str]]:
        return [(m.name, m.version or self.version) for m in self.members] or [
            ("etcd", self.version)
        ]


class ControlPlane(SpecModel):
    api_servers: list[ApiServer] = Field(min_length=1)
    controller_manager: ControlPlaneComponent
    scheduler: ControlPlaneComponent
    cloud_controller_manager: ControlPlaneComponent | None = None
    etcd: Etcd | None = None
    managed: bool = Field(
        default=False,
        description="true when the provider upgrades the control plane (pitstop asks it to)",
    )


class Node(SpecModel):
    name: NodeName
    kubelet: VersionStr
    kube_proxy: VersionStr | None = Field(
        default=None, description="defaults to the kubelet's version"
    )
    container_runtime: ContainerRuntime
    os: str = ""
    kernel: str = ""
    capacity: Quantity | None = None
    allocatable: Quantity | None = None
    labels: Labels = Field(default_factory=dict)
    unschedulable: bool = False

    @property
    def proxy_version(self) -> str:
        return self.kube_proxy or self.kubelet


class NodePool(SpecModel):
    name: PoolName
    labels: Labels = Field(default_factory=dict)
    control_plane: bool = Field(default=False, description="nodes that host control-plane pods")
    nodes: list[Node] = Field(min_length=1)


class AddOn(SpecModel):
    name: ComponentName = Field(description="coredns, calico, cilium, flannel, metrics-server…")
    kind: Literal["cni", "dns", "ingress", "metrics", "storage", "other"] = "other"
    version: VersionStr


class PodDisruptionBudget(SpecModel):
    name: PdbName
    namespace: Namespace = "default"
    selector: LabelSelector | None = Field(
        default=None, description="null selects no pod; {} selects every pod of the namespace"
    )
    min_available: IntOrPercent | None = None
    max_unavailable: IntOrPercent | None = None
    unhealthy_pod_eviction_policy: Literal["IfHealthyBudget", "AlwaysAllow"] = "IfHealthyBudget"

    @model_validator(mode="after")
    def _one_of(self) -> PodDisruptionBudget:
        if (self.min_available is None) == (self.max_unavailable is None):
            raise ValueError("set exactly one of minAvailable and maxUnavailable")
        return self


class Workload(SpecModel):
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]
    name: WorkloadName
    namespace: Namespace = "default"
    api_version: str = Field(default="", description="defaults to the current API group of kind")
    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS,
                          description="ignored for DaemonSets (one pod per node)")
    labels: Labels = Field(default_factory=dict, description="labels of its pods")
    requests: Quantity = Field(default_factory=Quantity, description="requests of one pod")
    empty_dir: bool = Field(default=False, description="pods keep data in emptyDir volumes")
    node_pool: PoolName | None = Field(default=None,
                                       description="pool its pods run in (any if unset)")
    nodes: list[NodeName] = Field(
        default_factory=list,
        description="nodes its pods run on, one entry per pod; spread over the pool when empty",
    )
    images: list[str] = Field(default_factory=list)

    @field_validator("api_version")
    @classmethod
    def _api(cls, value: str) -> str:
        return _api_version(value, allow_empty=True)

    @property
    def effective_api_version(self) -> str:
        if self.api_version:
            return self.api_version
        return {"Job": "batch/v1", "CronJob": "batch/v1", "Pod": "v1"}.get(self.kind, "apps/v1")


class ApiObjectRef(SpecModel):
    """An object of the cluster that uses an API version (seen live or in manifests)."""

    api_version: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    name: ObjectName
    namespace: Namespace | Literal[""] = ""
    source: str = Field(default="", description="where it was seen: live, a file, a Helm release")

    @field_validator("api_version")
    @classmethod
    def _api(cls, value: str) -> str:
        return _api_version(value, allow_empty=False)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if len(value) > 63 or _KIND_RE.match(value) is None:
            raise ValueError(f"{value[:63]!r} is not a kind: a name such as Deployment or "
                             "PodDisruptionBudget (letters and digits, starting with a letter, "
                             "at most 63 characters). Fix: write the kind as kubectl shows it")
        return value


class PrometheusEndpointSpec(SpecModel):
    """Where the cluster's Prometheus answers (its HTTP API): gates of kind ``prometheus`` and
    the policy's alert gates read it. ``bearerTokenFile`` is read at every query (its one line
    goes out as ``Authorization: Bearer``); ``caFile`` verifies an https server. Both files
    are checked to exist when a run is prepared (docs/prometheus-gates.md)."""

    url: str = Field(min_length=1, max_length=2048,
                     description="base URL, e.g. https://prometheus.monitoring:9090")
    bearer_token_file: str | None = Field(default=None, min_length=1, max_length=4096)
    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)
    timeout: Duration = Field(default=timedelta(seconds=10),
                              description="per request (connect, read); above 0, at most 5m")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = _URL_RE.match(value)
        if parts is None:
            raise ValueError(f"{value[:80]!r} is not an http(s) URL. Fix: write e.g. "
                             "https://prometheus.monitoring:9090")
        if "@" in parts["authority"]:
            raise ValueError("the URL holds credentials, which would be written into run "
                             "records. Fix: put a token in a file and name it in "
                             "bearerTokenFile")
        if parts["rest"]:
            raise ValueError("the URL has a query or fragment; give the base URL only. Fix: "
                             "write e.g. https://prometheus.monitoring:9090/prefix")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=5):
            raise ValueError("timeout must be above 0 and at most 5m. Fix: write e.g. 10s")
        return value


class ClusterTelemetry(SpecModel):
    """Where pitstop reads the cluster's telemetry."""

    prometheus: PrometheusEndpointSpec | None = None


class Cluster(SpecModel):
    name: ClusterName
    environment: Environment = "production"
    labels: Labels = Field(default_factory=dict)
    provider: Literal["kubeadm", "kops", "kubespray", "cluster-api", "eks", "gke", "aks",
                      "k3s", "rke2", "kind", "other"] = "kubeadm"
    control_plane: ControlPlane
    node_pools: list[NodePool] = Field(default_factory=list)
    addons: list[AddOn] = Field(default_factory=list)
    workloads: list[Workload] = Field(default_factory=list)
    pod_disruption_budgets: list[PodDisruptionBudget] = Field(default_factory=list)
    api_usage: list[ApiObjectRef] = Field(default_factory=list)
    telemetry: ClusterTelemetry | None = Field(
        default=None, description="where gates read metrics and alerts (Prometheus)")

    @model_validator(mode="after")
    def _unique_names(self) -> Cluster:
        seen: set[str] = set()
        for pool in self.node_pools:
            for node in pool.nodes:
                if node.name in seen:
                    raise ValueError(f"node {node.name!r} appears twice; node names are unique")
                seen.add(node.name)
        pools = [p.name for p in self.node_pools]
        dup = repeated(pools)
        if dup:
            raise ValueError(f"node pool names repeat: {dup}")
        for w in self.workloads:
            if w.node_pool is not None and w.node_pool not in pools:
                raise ValueError(
                    f"workload {w.namespace}/{w.name} names nodePool {w.node_pool!r}, "
                    f"which this cluster lacks (pools: {', '.join(pools) or 'none'})"
                )
            bad = [n for n in w.nodes if n not in seen]
            if bad:
                raise ValueError(
                    f"workload {w.namespace}/{w.name} places pods on unknown nodes {bad[:3]}"
                )
        pods = self.pod_count()
        if pods > MAX_PODS_PER_CLUSTER:
            raise ValueError(
                f"the workloads of cluster {self.name} make {pods} pods, more than the "
                f"{MAX_PODS_PER_CLUSTER} of the largest cluster Kubernetes supports (its "
                "scalability limit, which pitstop keeps). Fix: check the replicas; a larger "
                "cluster cannot be planned")
        return self

    def pod_count(self) -> int:
        """The pods the workloads make together, as preflight places them: one per ``nodes``
        entry, one per node of its pools for a DaemonSet, else ``replicas``."""
        by_pool = {p.name: len(p.nodes) for p in self.node_pools}
        workers = sum(len(p.nodes) for p in self.node_pools if not p.control_plane)
        total = 0
        for w in self.workloads:
            if w.nodes:
                total += len(w.nodes)
            elif w.kind == "DaemonSet":
                total += by_pool.get(w.node_pool, 0) if w.node_pool is not None else workers
            else:
                total += w.replicas
            if total > MAX_PODS_PER_CLUSTER:
                break
        return total

    def all_nodes(self) -> list[tuple[NodePool, Node]]:
        return [(p, n) for p in self.node_pools for n in p.nodes]

    @property
    def full_labels(self) -> dict[str, str]:
        """Labels used to select the cluster: its own, plus ``environment`` and ``name``."""
        return {"environment": self.environment, "name": self.name, **self.labels}


class FleetSpec(SpecModel):
    clusters: list[Cluster] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_clusters(self) -> FleetSpec:
        dup = repeated(c.name for c in self.clusters)
        if dup:
            raise ValueError(f"cluster names repeat: {dup}")
        return self


class Fleet(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["Fleet"] = "Fleet"
    metadata: Metadata
    spec: FleetSpec

    def cluster(self, name: str) -> Cluster:
        for c in self.spec.clusters:
            if c.name == name:
                return c
        raise KeyError(name)

    @classmethod
    def example_json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema(by_alias=True)
