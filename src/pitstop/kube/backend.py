"""The backend interface over a real Kubernetes cluster.

Client library: the official ``kubernetes`` client (kubernetes-client/python), chosen over
``lightkube`` and ``kr8s`` for what pitstop must connect to, not for convenience:

* **credentials** — its loaders handle every kubeconfig form that kubectl handles: merged
  ``$KUBECONFIG`` lists, contexts, client certificates, tokens, token files, in-cluster service
  accounts with token rotation, and exec credential plugins in ``client.authentication.k8s.io``
  ``v1`` *and* ``v1beta1`` that answer with a token *or a client certificate*, get
  ``KUBERNETES_EXEC_INFO`` and are run again when their token expires. lightkube 1.0.1's exec
  support accepts only ``v1alpha1``/``v1beta1`` plugins that answer with a token (no ``v1``, no
  certificates, no ``KUBERNETES_EXEC_INFO``), and kr8s is asyncio-first, which the synchronous
  :class:`~pitstop.backend.Backend` protocol would have to wrap in an event-loop thread;
* **synchronous**, like the protocol and the executor;
* **maintained with Kubernetes** (generated from each release's OpenAPI; 37.x speaks 1.37) and
  typed (``py.typed``), so ``mypy --strict`` holds.

Its generated models are not used for reads: bodies stay JSON (see
:mod:`pitstop.kube.connect`), which keeps observing ten thousand pods cheap.

What each call does:

=================  ===========================================================================
observe            LIST nodes, pods, ReplicaSets (to resolve Deployments) and policy/v1 PDBs,
                   each paginated; control-plane versions (below)
health             ``/readyz`` of every apiserver instance (latency of the first); metrics from
                   the optional ``metrics`` source (e.g. :func:`pod_readiness_metrics`)
cordon/uncordon    PATCH ``spec.unschedulable`` (only when it changes)
annotate           JSON merge patch of ``metadata.annotations`` (``None`` removes the key)
evict              POST policy/v1 Eviction to ``pods/<name>/eviction`` with a UID
                   precondition: 200/201 EVICTED, 404 GONE, 409 (the UID changed: another pod
                   by that name) GONE, 429 BUDGET_EXHAUSTED, 500 "more than one
                   PodDisruptionBudget" MULTIPLE_PDBS, 403 NamespaceTerminating
                   TERMINATING_NAMESPACE; any other answer is a :class:`BackendError`
delete_pod         DELETE with a UID precondition (gone or replaced: nothing to do)
start/poll         node actions through the :class:`~pitstop.kube.upgrade.NodeUpgrader`;
                   ``kube-apiserver`` / ``kube-controller-manager`` / ``kube-scheduler``
                   upgrades through the optional
                   :class:`~pitstop.kube.controlplane.ControlPlaneUpgrader` (e.g. the command
                   hook :class:`~pitstop.kube.controlplane.CommandControlPlaneUpgrader`: a
                   command per instance, run detached, then verified from the API — the
                   instance's own ``/version`` and ``/readyz``, or the component's
                   leader-election Lease renewed after the restart); without one they FAIL
                   with a message saying how to configure it; etcd and add-on actions FAIL
                   (they need a host or provider backend)
=================  ===========================================================================

Control-plane versions: each kube-apiserver instance announces itself with an identity Lease
in ``kube-system`` (label ``apiserver.kubernetes.io/identity=kube-apiserver``, annotation
``kubernetes.io/peer-advertise-address``). With one instance (or none announced), its version is
``/version`` of the configured server. With several, each peer address is asked for its own
``/version`` (an instance that cannot be reached is left out of ``apiservers`` and reported not
ok by ``health``). The controller-manager and the scheduler publish no version through the API
(their leader-election Leases carry only a holder identity). Their versions come from the image
tags of their static pods in ``kube-system`` (label ``component=kube-controller-manager`` /
``kube-scheduler``, as kubeadm runs them), and **where no such pod exists (managed control
planes, or binaries run directly as in pitstop's test cluster) are assumed to be the oldest
apiserver's** — the skew policy's ceiling, never an over-statement of what runs. etcd is not
reachable through the API: ``etcd`` is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pitstop.backend import (
    Action,
    AddNode,
    BackendError,
    Clock,
    ClusterObservation,
    EvictionResult,
    HealthSignals,
    Operation,
    OperationState,
    RemoveNode,
    UpgradeComponent,
)
from pitstop.kube.connect import KubeApi, connect
from pitstop.kube.controlplane import (
    CONTROL_PLANE_COMPONENTS,
    IDENTITY_LABEL,
    PEER_ANNOTATION,
    ControlPlaneUpgrader,
    apiserver_endpoints,
)
from pitstop.kube.parse import (
    node_observation,
    pdb_observation,
    pod_observation,
    short_version,
    workload_index,
)
from pitstop.kube.upgrade import NODE_COMPONENTS, NodeUpgrader, Refused, UpgradeContext
from pitstop.store import OpRecord, SqliteOperationStore, process_identity
from pitstop.versions import UNREADABLE, version_key

__all__ = ["IDENTITY_LABEL", "PEER_ANNOTATION", "Call", "KubeBackend", "MetricsSource",
           "RealClock", "pod_readiness_metrics"]

MULTIPLE_PDBS_TEXT = "more than one poddisruptionbudget"

MetricsSource = Callable[[ClusterObservation], dict[str, float]]


class RealClock:
    """Wall-clock time (POSIX seconds)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Call:
    """One call the backend carried out. ``destructive``: it changed the cluster (a cordon that
    flipped the node, an accepted eviction, the start of a *new* operation)."""

    time: float
    kind: str
    subject: str
    detail: str
    destructive: bool


def pod_readiness_metrics(obs: ClusterObservation) -> dict[str, float]:
    """A canary signal read from the cluster itself, for clusters without a metrics system:
    ``error_rate`` is the share of pods not Ready on the nodes at the newest kubelet version
    (the upgraded ones), ``error_rate_baseline`` the same share on the other nodes (or on all
    nodes, when all run one version). Pods deleting or finished do not count. Also
    ``nodes_not_ready`` and ``pods_pending``. A real application error rate (Prometheus, a
    load balancer's 5xx share) is the better signal: pass it as ``metrics``."""
    versions = {n.kubelet for n in obs.nodes if n.kubelet}
    newest = max(versions, key=version_key) if versions else ""
    upgraded = {n.name for n in obs.nodes if n.kubelet == newest}
    others = {n.name for n in obs.nodes} - upgraded or upgraded

    def share(nodes: set[str]) -> float:
        pods = [p for p in obs.pods if p.node in nodes and not p.deleting
                and p.phase not in ("Succeeded", "Failed")]
        return sum(1 for p in pods if not p.ready) / len(pods) if pods else 0.0

    return {"error_rate": share(upgraded), "error_rate_baseline": share(others),
            "nodes_not_ready": float(sum(1 for n in obs.nodes if not n.ready)),
            "pods_pending": float(sum(1 for p in obs.pods
                                      if p.node is None and p.phase == "Pending"))}


class KubeBackend:
    """A :class:`~pitstop.backend.Backend` for one Kubernetes cluster.

    ``kubeconfig``/``context`` choose the cluster as kubectl would (None, None: ``$KUBECONFIG``,
    ``~/.kube/config``, then in-cluster); ``api`` passes a ready connection instead. The cluster
    answers to the name ``cluster`` (default: the context's name, or ``in-cluster``); a call for
    another name is refused, so a plan can never act on the wrong cluster. ``state_file`` keeps
    operations for other processes (``pitstop resume``); ``metrics`` adds named numbers to
    :meth:`health` (the canary gate reads ``error_rate`` and ``error_rate_baseline``; without a
    source they are missing and that gate reports Error). ``control_plane_upgrader`` carries out
    kube-apiserver, kube-controller-manager and kube-scheduler upgrades (without one they fail
    with a message saying how to configure it). ``calls`` lists every call made."""

    def __init__(self, kubeconfig: str | None, context: str | None,
                 node_upgrader: NodeUpgrader, pool_label: str = "pitstop.dev/pool", *,
                 cluster: str | None = None, state_file: Path | str | None = None,
                 metrics: MetricsSource | None = None, api: KubeApi | None = None,
                 clock: Clock | None = None,
                 control_plane_upgrader: ControlPlaneUpgrader | None = None) -> None:
        self._conn = api if api is not None else connect(kubeconfig, context)
        self.node_upgrader = node_upgrader
        self.control_plane_upgrader = control_plane_upgrader
        self.pool_label = pool_label
        self.cluster = cluster or self._conn.context or "in-cluster"
        self.metrics = metrics
        self._clock: Clock = clock if clock is not None else RealClock()
        self._ops = SqliteOperationStore(Path(state_file) if state_file else None)
        self._owner = process_identity()
        self.calls: list[Call] = []
        # evictions the drain may send at once (the API server serves them concurrently, as
        # `kubectl drain` sends them); the client's connection pool is as wide
        self.concurrent_calls = 8

    # -- plumbing --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return "kube"

    @property
    def clock(self) -> Clock:
        return self._clock

    def _api(self, cluster: str) -> KubeApi:
        if cluster != self.cluster:
            raise BackendError(f"this backend is connected to cluster {self.cluster!r} "
                               f"({self._conn.source}), not {cluster!r}")
        return self._conn

    @property
    def api(self) -> KubeApi:
        return self._conn

    def _record(self, kind: str, subject: str, detail: str, destructive: bool) -> None:
        self.calls.append(Call(self.clock.now(), kind, subject, detail, destructive))

    def close(self) -> None:
        self._conn.close()
        self._ops.close()

    # -- observations ----------------------------------------------------------------------
    def observe(self, cluster: str) -> ClusterObservation:
        api = self._api(cluster)
        now = self.clock.now()
        nodes = tuple(sorted((node_observation(n, self.pool_label)
                              for n in api.list("/api/v1/nodes")), key=lambda n: n.name))
        raw_pods = api.list("/api/v1/pods")
        deployments = workload_index(api.list("/apis/apps/v1/replicasets"))
        pods = tuple(pod_observation(p, deployments, now) for p in raw_pods)
        pdbs = tuple(sorted((pdb_observation(b)
                             for b in api.list("/apis/policy/v1/poddisruptionbudgets")),
                            key=lambda b: b.key))
        apiservers = self._apiserver_versions(api)
        oldest = min(apiservers.values(), key=version_key) if apiservers else ""
        static = _static_pod_versions(raw_pods)
        return ClusterObservation(
            cluster=cluster, time=now, apiservers=apiservers,
            controller_manager=static.get("kube-controller-manager", oldest),
            scheduler=static.get("kube-scheduler", oldest), etcd=(), nodes=nodes, pods=pods,
            pdbs=pdbs)

    def _apiserver_versions(self, api: KubeApi) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, peer in apiserver_endpoints(api).items():
            try:
                answer = peer.request("GET", "/version", timeout=5.0)
            except BackendError:
                continue
            finally:
                if peer is not api:
                    peer.close()
            if answer.ok and answer.body.get("gitVersion"):
                out[name] = short_version(str(answer.body["gitVersion"]))
        if not out:
            raise BackendError(f"no apiserver of {self.cluster} answered /version")
        return out

    def health(self, cluster: str) -> HealthSignals:
        api = self._api(cluster)
        ok: dict[str, bool] = {}
        latency: float | None = None
        for name, peer in apiserver_endpoints(api).items():
            t0 = time.monotonic()
            try:
                ok[name] = peer.request("GET", "/readyz", timeout=5.0).ok
            except BackendError:
                ok[name] = False
            finally:
                if peer is not api:
                    peer.close()
            if ok[name] and latency is None:
                latency = (time.monotonic() - t0) * 1000.0
        metrics = self.metrics(self.observe(cluster)) if self.metrics is not None else {}
        return HealthSignals(time=self.clock.now(), apiserver_ok=ok,
                             apiserver_latency_ms=latency, etcd=(), metrics=metrics)

    # -- nodes -----------------------------------------------------------------------------
    def _set_unschedulable(self, cluster: str, node: str, value: bool) -> bool:
        api = self._api(cluster)
        current = api.request("GET", f"/api/v1/nodes/{node}")
        if current.status == 404:
            raise BackendError(f"{cluster}: node {node!r} not found")
        if not current.ok:
            raise BackendError(f"GET node {node}: HTTP {current.status}: {current.message}")
        if bool((current.body.get("spec") or {}).get("unschedulable")) == value:
            return False
        answer = api.request("PATCH", f"/api/v1/nodes/{node}",
                             body={"spec": {"unschedulable": value}},
                             content_type="application/strategic-merge-patch+json")
        if not answer.ok:
            raise BackendError(f"PATCH node {node}: HTTP {answer.status}: {answer.message}")
        return True

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        changed = self._set_unschedulable(cluster, node, True)
        self._record("cordon", node, reason, changed)

    def uncordon(self, cluster: str, node: str) -> None:
        changed = self._set_unschedulable(cluster, node, False)
        self._record("uncordon", node, "", changed)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        api = self._api(cluster)
        answer = api.request("PATCH", f"/api/v1/nodes/{node}",
                             body={"metadata": {"annotations": {key: value}}},
                             content_type="application/merge-patch+json")
        if answer.status == 404:
            raise BackendError(f"{cluster}: node {node!r} not found")
        if not answer.ok:
            raise BackendError(f"PATCH node {node}: HTTP {answer.status}: {answer.message}")
        self._record("annotate", node, f"{key}={value}", False)

    # -- pods ------------------------------------------------------------------------------
    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        api = self._api(cluster)
        answer = api.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
            body={"apiVersion": "policy/v1", "kind": "Eviction",
                  "metadata": {"name": pod, "namespace": namespace},
                  "deleteOptions": {"preconditions": {"uid": uid}}})
        result = _eviction_result(answer.status, answer.message, answer.causes())
        if result is None:
            raise BackendError(f"evicting {namespace}/{pod}: HTTP {answer.status}: "
                               f"{answer.message}")
        self._record("evict", f"{namespace}/{pod}", f"{uid}: {result}",
                     result is EvictionResult.EVICTED)
        return result

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        api = self._api(cluster)
        answer = api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod}",
                             body={"apiVersion": "v1", "kind": "DeleteOptions",
                                   "preconditions": {"uid": uid}})
        if answer.status in (404, 409):  # gone, or another pod by that name now
            self._record("delete", f"{namespace}/{pod}", f"{uid}: gone", False)
            return
        if not answer.ok:
            raise BackendError(f"deleting {namespace}/{pod}: HTTP {answer.status}: "
                               f"{answer.message}")
        self._record("delete", f"{namespace}/{pod}", f"{uid}: deleted", True)

    # -- operations ------------------------------------------------------------------------
    def _ctx(self, api: KubeApi) -> UpgradeContext:
        return UpgradeContext(api, self.pool_label, self.clock.now(), self.cluster)

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        """Start ``action`` under ``key``; a known key (in memory or in the state file) returns
        its operation, polled, and starts nothing (another action under it: BackendError)."""
        api = self._api(cluster)
        with self._ops.transaction():
            existing = self._ops.get(key)
            if existing is not None:
                if existing.action != action:
                    raise BackendError(f"{cluster}: operation {key!r} exists for another "
                                       f"action ({existing.action!r})")
                self._record("start", key, f"known key: {existing.state}", False)
                return self._refresh(api, existing).operation()
            now = self.clock.now()
            data: dict[str, Any] = {}
            state, message, finished = OperationState.RUNNING, "", None
            try:
                if _is_control_plane(action):
                    assert isinstance(action, UpgradeComponent)
                    if self.control_plane_upgrader is None:
                        raise Refused(
                            f"{action!r}: no control-plane upgrader is configured, and the "
                            "Kubernetes API cannot restart an apiserver. Fix: configure the "
                            "control-plane upgrade command (KubeBackend(control_plane_upgrader="
                            "CommandControlPlaneUpgrader([...]))), see docs/operations.md")
                    data = self.control_plane_upgrader.begin(self._ctx(api), action)
                elif _is_node(action):
                    assert isinstance(action, UpgradeComponent | AddNode | RemoveNode)
                    data = self.node_upgrader.begin(self._ctx(api), action)
                else:
                    raise Refused(f"{action!r} is not something the Kubernetes API can do: etcd "
                                  "and add-on changes need a host or provider backend")
            except Refused as refused:
                state, finished, message = OperationState.FAILED, now, str(refused)
            rec = OpRecord(key, self.cluster, action, state, message, now, finished, self._owner,
                           data)
            self._ops.insert(rec)
            self._record("start", key, repr(action), True)
            return rec.operation()

    def poll(self, cluster: str, key: str) -> Operation:
        api = self._api(cluster)
        with self._ops.transaction():
            rec = self._ops.get(key)
            if rec is None:
                raise BackendError(f"{cluster}: no operation {key!r}")
            return self._refresh(api, rec).operation()

    def _refresh(self, api: KubeApi, rec: OpRecord) -> OpRecord:
        """``rec`` as it is now: a running operation is checked, and its end stored."""
        if rec.state is not OperationState.RUNNING:
            return rec
        action = rec.action
        ctx = self._ctx(api)
        if _is_control_plane(action):
            assert isinstance(action, UpgradeComponent)
            if self.control_plane_upgrader is None:
                raise BackendError(f"{self.cluster}: operation {rec.key!r} is a control-plane "
                                   "upgrade in progress, but this backend has no control-plane "
                                   "upgrader configured: configure the same upgrade command "
                                   "the run started with")
            state, message = self.control_plane_upgrader.check(ctx, action, rec.started,
                                                               rec.data)
        else:
            assert isinstance(action, UpgradeComponent | AddNode | RemoveNode)
            state, message = self.node_upgrader.check(ctx, action, rec.started, rec.data)
        if state is OperationState.RUNNING:
            self._ops.save_data(rec.key, rec.data)  # what the check noted (it may add to it)
            return rec
        self._ops.finish(rec.key, state, message, ctx.now, rec.data)
        return replace(rec, state=state, message=message, finished=ctx.now)


def _is_control_plane(action: Action) -> bool:
    return isinstance(action, UpgradeComponent) and action.component in CONTROL_PLANE_COMPONENTS


def _is_node(action: Action) -> bool:
    return isinstance(action, AddNode | RemoveNode) or (
        isinstance(action, UpgradeComponent) and action.component in NODE_COMPONENTS)


def _eviction_result(status: int, message: str, causes: list[str]) -> EvictionResult | None:
    if status in (200, 201):
        return EvictionResult.EVICTED
    if status == 404:
        return EvictionResult.GONE
    if status == 409 and "uid" in message.lower():
        return EvictionResult.GONE  # the precondition failed: the pod by that name is another
    if status == 429:
        return EvictionResult.BUDGET_EXHAUSTED
    if status == 500 and MULTIPLE_PDBS_TEXT in message.lower():
        return EvictionResult.MULTIPLE_PDBS
    if status == 403 and "NamespaceTerminating" in causes:
        return EvictionResult.TERMINATING_NAMESPACE
    return None


def _static_pod_versions(pods: list[dict[str, Any]]) -> dict[str, str]:
    """kube-controller-manager / kube-scheduler versions from kubeadm's static pods (the image
    tag, e.g. ``registry.k8s.io/kube-scheduler:v1.36.3``); the oldest instance of several."""
    found: dict[str, list[str]] = {}
    for p in pods:
        meta = p.get("metadata") or {}
        component = (meta.get("labels") or {}).get("component")
        if meta.get("namespace") != "kube-system" or component not in (
                "kube-controller-manager", "kube-scheduler"):
            continue
        for c in (p.get("spec") or {}).get("containers") or []:
            last = str(c.get("image") or "").rsplit("/", 1)[-1]
            tag = last.rsplit(":", 1)[1] if ":" in last else ""
            if version_key(tag) != UNREADABLE:
                found.setdefault(str(component), []).append(short_version(tag))
    return {k: min(v, key=version_key) for k, v in found.items()}
