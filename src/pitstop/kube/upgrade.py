"""Node-level actions of the Kubernetes backend: the pluggable :class:`NodeUpgrader`, and
:class:`KwokNodeUpgrader` for clusters whose nodes kwok simulates. For real kubelets:
:class:`~pitstop.kube.nodecommand.CommandNodeUpgrader` (your command per node, verified from
the node's status).

The Kubernetes API cannot upgrade a kubelet or add a machine: something outside it does (SSH
and the host's packages, a cloud provider's node group, Cluster API). A :class:`NodeUpgrader`
is that something. It is asked to ``begin`` an action and then to ``check`` it until it ends;
``check`` must work from the cluster and what ``begin`` returned alone (no memory of its own),
so that another process can poll an operation that this one started.

kwok (``sigs.k8s.io/kwok``) keeps a Node's ``status.nodeInfo`` as it is written and answers
for its kubelet. :class:`KwokNodeUpgrader` therefore upgrades a node by doing what a restarted
kubelet shows: the node reports NotReady (``KubeletNotReady``), then — after
``restart_seconds`` — Ready again with the new ``kubeletVersion`` / ``kubeProxyVersion`` /
``containerRuntimeVersion``. Seen on kwok v0.8.0 with kwokctl's default stages: kwok's
``node-initialize`` stage sets a NotReady node Ready again at once (before a read 0.3 s later),
keeping the ``nodeInfo`` it finds, so the NotReady window is that short; the version change
itself waits ``restart_seconds``, and the operation succeeds once the node is Ready at the new
version. ``AddNode`` creates a Node object (labels, taints and allocatable copied
from a node of the same pool) that kwok starts managing at once; ``RemoveNode`` deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pitstop.backend import AddNode, BackendError, OperationState, RemoveNode, UpgradeComponent
from pitstop.kube.connect import KubeApi
from pitstop.kube.parse import node_observation, runtime_of

__all__ = ["NODE_COMPONENTS", "RUNTIMES", "KwokNodeUpgrader", "NodeAction", "NodeUpgrader",
           "Refused", "UpgradeContext"]

RUNTIMES = frozenset({"containerd", "cri-o", "docker"})
NODE_COMPONENTS = RUNTIMES | {"kubelet", "kube-proxy"}
NodeAction = UpgradeComponent | AddNode | RemoveNode


class Refused(Exception):
    """The action cannot apply (unknown node, wrong runtime): the operation fails at once with
    this message — the fleet's answer, not a broken call. A request that could not be made
    raises :class:`~pitstop.backend.BackendError` instead."""


@dataclass(frozen=True, slots=True)
class UpgradeContext:
    api: KubeApi
    pool_label: str
    now: float
    cluster: str = ""  # the backend's name for the cluster


class NodeUpgrader(Protocol):
    """Carries out node actions for :class:`~pitstop.kube.KubeBackend`."""

    def begin(self, ctx: UpgradeContext, action: NodeAction) -> dict[str, Any]:
        """Start ``action``; return JSON data kept with the operation and handed to
        :meth:`check`. Raise :class:`Refused` when it cannot apply."""
        ...

    def check(self, ctx: UpgradeContext, action: NodeAction, started: float,
              data: dict[str, Any]) -> tuple[OperationState, str]:
        """Where the action is now: RUNNING, SUCCEEDED or FAILED (with a message)."""
        ...


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_path(name: str) -> str:
    return f"/api/v1/nodes/{name}"


@dataclass
class KwokNodeUpgrader:
    """Node actions on kwok-managed nodes (see the module docstring)."""

    restart_seconds: float = 2.0
    ready_timeout_s: float = 120.0
    taint_key: str = "kwok.x-k8s.io/node"

    # -- begin -----------------------------------------------------------------------------
    def begin(self, ctx: UpgradeContext, action: NodeAction) -> dict[str, Any]:
        if isinstance(action, AddNode):
            return self._begin_add(ctx, action)
        if isinstance(action, RemoveNode):
            answer = ctx.api.request("DELETE", _node_path(action.node))
            if answer.status not in (200, 202, 404):
                raise BackendError(f"deleting node {action.node}: HTTP {answer.status}: "
                              f"{answer.message}")
            return {}
        node = self._node(ctx, action.target)
        if node is None:
            raise Refused(f"node {action.target} not found")
        if action.component not in NODE_COMPONENTS:
            raise Refused(f"{action.component} is not a node component")
        info = (node.get("status") or {}).get("nodeInfo") or {}
        runtime, _ = runtime_of(str(info.get("containerRuntimeVersion") or ""))
        if action.component in RUNTIMES and runtime != action.component:
            raise Refused(f"node {action.target} runs {runtime or 'an unknown runtime'}, not "
                          f"{action.component}; changing the runtime in place is not supported: "
                          "replace the node")
        if action.component != "kube-proxy":  # kube-proxy restarts without the node going down
            self._status(ctx, action.target, ready=False, info=None,
                         why=f"pitstop: {action.component} restarting for {action.version}")
        return {}

    def _begin_add(self, ctx: UpgradeContext, action: AddNode) -> dict[str, Any]:
        if self._node(ctx, action.name) is not None:
            raise Refused(f"node {action.name} exists already")
        peers = ctx.api.list("/api/v1/nodes", label_selector=f"{ctx.pool_label}={action.pool}")
        template = min(peers, key=lambda n: str(n["metadata"]["name"]), default=None)
        labels: dict[str, str] = {
            "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "type": "kwok"}
        taints: list[dict[str, Any]] = [
            {"key": self.taint_key, "value": "fake", "effect": "NoSchedule"}]
        resources: dict[str, Any] = {"cpu": "32", "memory": "256Gi", "pods": "110"}
        if template is not None:
            labels = {k: v for k, v in (template["metadata"].get("labels") or {}).items()
                      if k != "kubernetes.io/hostname"}
            taints = [t for t in (template.get("spec") or {}).get("taints") or []
                      if not str(t.get("key", "")).startswith("node.kubernetes.io/")]
            status = template.get("status") or {}
            resources = status.get("allocatable") or status.get("capacity") or resources
        labels.update({ctx.pool_label: action.pool, "kubernetes.io/hostname": action.name})
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": action.name, "labels": labels, "annotations": {
                "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"taints": taints},
            "status": {
                "allocatable": resources, "capacity": resources, "phase": "Running",
                "nodeInfo": {
                    "architecture": "amd64", "operatingSystem": "linux",
                    "kubeletVersion": f"v{action.kubelet}",
                    "kubeProxyVersion": f"v{action.kubelet}",
                    "containerRuntimeVersion": f"{action.runtime}://{action.runtime_version}",
                    "kernelVersion": "kwok", "osImage": "kwok", "bootID": "", "machineID": "",
                    "systemUUID": ""}},
        }
        answer = ctx.api.request("POST", "/api/v1/nodes", body=body)
        if answer.status == 409:
            raise Refused(f"node {action.name} exists already")
        if not answer.ok:
            raise BackendError(f"creating node {action.name}: HTTP {answer.status}: "
                               f"{answer.message}")
        return {"uid": str(answer.body["metadata"]["uid"])}

    # -- check -----------------------------------------------------------------------------
    def check(self, ctx: UpgradeContext, action: NodeAction, started: float,
              data: dict[str, Any]) -> tuple[OperationState, str]:
        late = ctx.now - started > self.ready_timeout_s
        if isinstance(action, RemoveNode):
            if self._node(ctx, action.node) is None:
                return OperationState.SUCCEEDED, ""
            return ((OperationState.FAILED, f"node {action.node} still exists")
                    if late else (OperationState.RUNNING, ""))
        if isinstance(action, AddNode):
            node = self._node(ctx, action.name)
            if node is None or node["metadata"]["uid"] != data.get("uid"):
                return OperationState.FAILED, f"node {action.name} was removed while starting"
            obs = node_observation(node, ctx.pool_label)
            if obs.ready and obs.kubelet == action.kubelet:
                return OperationState.SUCCEEDED, ""
            return ((OperationState.FAILED, f"node {action.name} not Ready after "
                     f"{self.ready_timeout_s:.0f}s") if late else (OperationState.RUNNING, ""))
        node = self._node(ctx, action.target)
        if node is None:
            return OperationState.FAILED, f"node {action.target} was removed during the upgrade"
        if ctx.now - started < self.restart_seconds:
            return OperationState.RUNNING, ""
        obs = node_observation(node, ctx.pool_label)
        have = {"kubelet": obs.kubelet, "kube-proxy": obs.kube_proxy}.get(
            action.component, obs.runtime_version)
        if have != action.version:
            field = {"kubelet": "kubeletVersion", "kube-proxy": "kubeProxyVersion"}.get(
                action.component, "containerRuntimeVersion")
            value = (f"{action.component}://{action.version}" if action.component in RUNTIMES
                     else f"v{action.version}")
            self._status(ctx, action.target, ready=True, info={field: value},
                         why=f"kubelet is posting ready status (pitstop: {action.component} "
                             f"{action.version})")
            return OperationState.RUNNING, ""
        if obs.ready:
            return OperationState.SUCCEEDED, ""
        return ((OperationState.FAILED, f"node {action.target} not Ready after the upgrade")
                if late else (OperationState.RUNNING, ""))

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _node(ctx: UpgradeContext, name: str) -> dict[str, Any] | None:
        answer = ctx.api.request("GET", _node_path(name))
        if answer.status == 404:
            return None
        if not answer.ok:
            raise BackendError(f"reading node {name}: HTTP {answer.status}: {answer.message}")
        return answer.body

    @staticmethod
    def _status(ctx: UpgradeContext, name: str, *, ready: bool, info: dict[str, str] | None,
                why: str) -> None:
        now = _rfc3339(ctx.now)
        status: dict[str, Any] = {"conditions": [{
            "type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady", "message": why,
            "lastHeartbeatTime": now, "lastTransitionTime": now}]}
        if info:
            status["nodeInfo"] = info
        answer = ctx.api.request("PATCH", _node_path(name) + "/status", body={"status": status},
                                 content_type="application/strategic-merge-patch+json")
        if not answer.ok:
            raise BackendError(f"updating the status of node {name}: HTTP {answer.status}: "
                          f"{answer.message}")
