""":class:`CommandNodeUpgrader`: upgrades a node's kubelet, container runtime or kube-proxy
by running **your command** for it (``pitstop apply --backend kube --node-upgrader command
--node-command TEMPLATE``), then checks the result through the API, not through the command.

* **begin** (for an :class:`~pitstop.backend.UpgradeComponent` of a node component; the
  executor has already cordoned and drained the node) formats the template — placeholders
  ``{node}``, ``{component}``, ``{version}`` (the target, such as ``1.36.3``), ``{cluster}`` —
  and starts it detached, with its output and exit status kept under ``state_dir``, as the
  control-plane hook does (:mod:`pitstop.kube.command`): a pitstop that died and came back
  finds the command still running, or its status; the command is never run twice for one
  operation. Refused before anything runs: a node that does not exist; a runtime upgrade on a
  node that runs another runtime (changing the runtime in place is a replacement).
* **check**: a command still running after ``command_timeout_s`` fails; one that exited
  non-zero, or vanished without an exit status, fails with the last lines of its output. Once
  it exited 0, the node must show, in its own status as its kubelet writes it:

  - the target: ``status.nodeInfo.kubeletVersion`` for ``kubelet``;
    ``containerRuntimeVersion`` ``<runtime>://<version>`` for ``containerd``, ``cri-o`` and
    ``docker``; for ``kube-proxy``, see below;
  - ``Ready``, and
  - (kubelet and runtimes) a **fresh report**: the Ready condition's ``lastHeartbeatTime``
    after the command ended (less :data:`~pitstop.kube.command.CLOCK_SKEW_S` for the clocks of
    this machine and the node), so what is read is the restarted kubelet's report and not one
    from before. A kubelet posts its status when it starts and whenever the status changes (a
    new runtime version included), so an upgrade shows at once.

  Not all of that within ``verify_timeout_s`` after the command ended: FAILED, naming the node,
  what it reports and the command's output.

**kube-proxy.** Nothing in the API reports the version of a kube-proxy that runs outside pods.
``nodeInfo.kubeProxyVersion`` is what the kubelet writes there — its own version, which is why
the field is deprecated; recent kubelets leave it empty (feature gate
``DisableNodeKubeProxyVersion``). So: where the field is filled, it must show the target;
where it is empty, the version is not verifiable and pitstop checks what it can — the command
exited 0 and the node is Ready — and says so in the operation's message. No fresh heartbeat
is required for kube-proxy: restarting it does not change the node's status, and a kubelet
with nothing new posts its status only every ``nodeStatusReportFrequency`` (5 minutes by
default). The command is run with ``{component}`` = ``kube-proxy``; where kube-proxy runs as a
DaemonSet (kubeadm), it is an add-on, and the command should do nothing for it.

**Adding and removing nodes** needs a provider (a cloud node group, Cluster API): refused. The
``replace`` strategy is therefore not available with this upgrader, and ``pitstop apply``
refuses such a plan before anything is read or made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.backend import AddNode, BackendError, OperationState, RemoveNode, UpgradeComponent
from pitstop.errors import PitstopError
from pitstop.kube.command import (
    CLOCK_SKEW_S,
    COMMAND_TIMEOUT_S,
    VERIFY_TIMEOUT_S,
    command_status,
    expand,
    is_argv,
    launch,
    shown,
    template_problems,
)
from pitstop.kube.parse import parse_time, runtime_of, short_version
from pitstop.kube.upgrade import NODE_COMPONENTS, RUNTIMES, NodeAction, Refused, UpgradeContext

__all__ = ["NODE_PLACEHOLDERS", "CommandNodeUpgrader", "NodeCommandError", "node_report"]

NODE_PLACEHOLDERS = ("node", "component", "version", "cluster")
_EXAMPLE = ("[\"ssh\", \"{node}\", \"sudo\", \"/usr/local/sbin/upgrade-kubelet\", "
            "\"{version}\"]")


class NodeCommandError(PitstopError):
    """The node upgrade command is configured wrongly."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What a node's own status says, for one component."""

    exists: bool
    field: str  # the nodeInfo field read
    value: str  # as the node reports it ("" when empty)
    version: str  # the component's version in it ("" when none)
    runtime: str  # the runtime named in containerRuntimeVersion
    ready: str  # the Ready condition's status: "True", "False", "Unknown", or "missing"
    heartbeat: float | None  # the Ready condition's lastHeartbeatTime

    def text(self) -> str:
        beat = (datetime.fromtimestamp(self.heartbeat, UTC).strftime("%H:%M:%SZ")
                if self.heartbeat is not None else "never")
        return (f"{self.field} {self.value or '(empty)'}, Ready {self.ready}, last heartbeat "
                f"{beat}")


_FIELDS = {"kubelet": "kubeletVersion", "kube-proxy": "kubeProxyVersion"}


def node_report(node: dict[str, Any] | None, component: str) -> NodeReport:
    """Read ``component``'s version, readiness and the last heartbeat from a Node object."""
    field = _FIELDS.get(component, "containerRuntimeVersion")
    if node is None:
        return NodeReport(False, field, "", "", "", "missing", None)
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    value = str(info.get(field) or "")
    runtime, version = runtime_of(value) if field == "containerRuntimeVersion" else (
        "", short_version(value) if value else "")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    heartbeat: float | None = None
    if ready is not None and ready.get("lastHeartbeatTime"):
        try:
            heartbeat = parse_time(str(ready["lastHeartbeatTime"]))
        except ValueError:
            heartbeat = None
    return NodeReport(True, field, value, version, runtime,
                      str(ready.get("status") or "Unknown") if ready is not None else "missing",
                      heartbeat)


@dataclass
class CommandNodeUpgrader:
    """Runs ``command`` (a template; see the module docstring) once per node component
    upgrade, detached, and verifies the result through the node's status. ``state_dir`` keeps
    each operation's output and exit status (put it in the run directory)."""

    command: Sequence[str]
    state_dir: Path | str
    command_timeout_s: float = COMMAND_TIMEOUT_S
    verify_timeout_s: float = VERIFY_TIMEOUT_S

    def __post_init__(self) -> None:
        problems = template_problems(self.command, NODE_PLACEHOLDERS, _EXAMPLE)
        if is_argv(self.command):
            for name, value in (("command_timeout_s", self.command_timeout_s),
                                ("verify_timeout_s", self.verify_timeout_s)):
                if not value > 0:
                    problems.append(f"{name} is {value!r}. Fix: a positive number of seconds")
        if problems:
            raise NodeCommandError("node upgrade command: " + "; ".join(problems))
        self.command = tuple(self.command)
        self.state_dir = Path(self.state_dir)

    def _values(self, ctx: UpgradeContext, action: UpgradeComponent) -> dict[str, str]:
        return {"node": action.target, "component": action.component,
                "version": action.version, "cluster": ctx.cluster}

    def argv(self, ctx: UpgradeContext, action: UpgradeComponent) -> list[str]:
        return expand(self.command, self._values(ctx, action))

    # -- begin -----------------------------------------------------------------------------
    def begin(self, ctx: UpgradeContext, action: NodeAction) -> dict[str, Any]:
        if isinstance(action, AddNode | RemoveNode):
            verb = ("adding node " + action.name if isinstance(action, AddNode)
                    else "removing node " + action.node)
            raise Refused(f"{verb}: --node-upgrader command upgrades existing nodes in place "
                          "and cannot add or remove machines, which needs a provider (a cloud "
                          "node group, Cluster API). Fix: use strategy: in-place for this "
                          "pool, or replace its nodes with your provider's tooling")
        if action.component not in NODE_COMPONENTS:
            raise Refused(f"{action.component} is not a node component")
        node = self._node(ctx, action.target)
        if node is None:
            raise Refused(f"node {action.target} not found")
        report = node_report(node, action.component)
        if action.component in RUNTIMES and report.runtime != action.component:
            raise Refused(f"node {action.target} runs {report.runtime or 'an unknown runtime'}"
                          f", not {action.component}; changing the runtime in place is not "
                          "supported: replace the node")
        return launch(Path(self.state_dir), f"{action.component}-{action.target}-"
                      f"{action.version}", self.argv(ctx, action), ctx.now,
                      "the node upgrade command", shown(self.command, self._values(ctx, action)))

    # -- check -----------------------------------------------------------------------------
    def check(self, ctx: UpgradeContext, action: NodeAction, started: float,
              data: dict[str, Any]) -> tuple[OperationState, str]:
        if not isinstance(action, UpgradeComponent):  # begin refused it: never polled
            return OperationState.FAILED, f"{action!r}: not something this upgrader does"
        what = f"{action.component} on node {action.target}"
        run = command_status(data, ctx.now, started, self.command_timeout_s)
        if run.state == "running":
            return OperationState.RUNNING, ""
        if not run.succeeded:
            return OperationState.FAILED, run.failure(what)
        report = node_report(self._node(ctx, action.target), action.component)
        if not report.exists:
            return (OperationState.FAILED,
                    f"node {action.target} was removed during the {action.component} upgrade")
        proxy = action.component == "kube-proxy"
        unseen = proxy and not report.value  # kube-proxy's version is not reported
        at_target = unseen or (report.version == action.version and (
            action.component not in RUNTIMES or report.runtime == action.component))
        fresh = proxy or (report.heartbeat is not None
                          and report.heartbeat >= run.ended - CLOCK_SKEW_S)
        if at_target and report.ready == "True" and fresh:
            if unseen:
                return OperationState.SUCCEEDED, (
                    f"node {action.target} is Ready after the kube-proxy command exited 0; its "
                    "kubelet does not report kube-proxy's version (kubeProxyVersion is empty), "
                    "so the version itself is not verified")
            return OperationState.SUCCEEDED, f"node {action.target} reports {report.text()}"
        if ctx.now - run.ended <= self.verify_timeout_s:
            return OperationState.RUNNING, ""
        missing = [m for ok, m in (
            (at_target, f"{action.component} {action.version}"), (report.ready == "True",
                                                                 "Ready"),
            (fresh, "a fresh heartbeat")) if not ok]
        ended = datetime.fromtimestamp(run.ended, UTC).strftime("%H:%M:%SZ")
        return (OperationState.FAILED,
                f"node {action.target} did not report {' and '.join(missing)} within "
                f"{self.verify_timeout_s:.0f}s after the upgrade command ended ({ended}): it "
                f"reports {report.text()}; the command `{run.command}` exited 0, its output: "
                f"{run.tail()} ({run.log})")

    @staticmethod
    def _node(ctx: UpgradeContext, name: str) -> dict[str, Any] | None:
        answer = ctx.api.request("GET", f"/api/v1/nodes/{name}")
        if answer.status == 404:
            return None
        if not answer.ok:
            raise BackendError(f"reading node {name}: HTTP {answer.status}: {answer.message}")
        return answer.body
