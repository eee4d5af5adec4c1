"""Control-plane actions of the Kubernetes backend: the pluggable :class:`ControlPlaneUpgrader`,
and :class:`CommandControlPlaneUpgrader`, which runs a command per component instance and then
checks the result through the API.

The Kubernetes API cannot replace the binary an apiserver runs: something on its machine does
(a package upgrade and a systemd restart, ``kubeadm upgrade node``, a static-pod manifest
swapped). A :class:`ControlPlaneUpgrader` is that something. Like a
:class:`~pitstop.kube.upgrade.NodeUpgrader`, it is asked to ``begin`` an
:class:`~pitstop.backend.UpgradeComponent` for ``kube-apiserver``,
``kube-controller-manager`` or ``kube-scheduler`` and then to ``check`` it until it ends, from
the cluster and what ``begin`` returned alone, so that a process started after a crash polls
what an earlier one began.

:class:`CommandControlPlaneUpgrader` — the command hook:

* **begin** formats the command template (placeholders ``{instance}``, ``{component}``,
  ``{version}``, ``{cluster}``) and starts it **detached**: in its own session, its output in
  ``<state_dir>/<operation>/output.log``, its exit status written to ``.../status`` when it
  ends (:mod:`pitstop.kube.command`, shared with the node command). pitstop records the
  process id and its start time (``/proc/<pid>/stat``), so a pitstop that died and came back
  finds the command still running, or its status. The command is never run twice for one
  operation: the backend's operation store keys it.
* **check**, once the command exited 0, verifies the upgrade *independently of the command*:

  - ``kube-apiserver``: **that instance's own** ``/version`` reports the target and its
    ``/readyz`` answers ok. The instance is reached at
    ``addresses["kube-apiserver/<instance>"]`` when given, else at the
    ``kubernetes.io/peer-advertise-address`` of its identity Lease in ``kube-system``
    (label ``apiserver.kubernetes.io/identity=kube-apiserver``, found by its
    ``kubernetes.io/hostname`` label or its name), else — when the cluster had one apiserver
    when the upgrade began and has one now — at the configured server. In an HA control plane
    an instance whose Lease is gone (a restarting apiserver may delete it) is not verified until
    it announces itself again: the load balancer might answer from another instance.
  - ``kube-controller-manager`` / ``kube-scheduler``: their leader-election Lease
    (``kube-system/<component>``) is held and renewed after the command ended; when the holder
    at the start was this instance (an identity ``<instance>_<uuid>``), a new identity holds it
    — the old process is gone. With ``addresses["<component>/<instance>"]``, its ``/healthz``
    must answer ok as well. (These components publish no version through the API.)

  A non-zero exit fails the operation with the last lines of its output. A target version that
  does not show within ``verify_timeout_s`` after the command ended fails it with what the
  instance reports; a command still running after ``command_timeout_s`` fails it too (the
  command is left running: look at it before retrying).

Addresses are asked with the kubeconfig's credentials and CA, so their serving certificates
must be signed by the cluster CA (kubeadm's apiserver certificates are; give the
controller-manager and scheduler ``--tls-cert-file`` from that CA, or leave their addresses
out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pitstop.backend import BackendError, OperationState, UpgradeComponent
from pitstop.errors import PitstopError
from pitstop.kube.command import (
    CLOCK_SKEW_S,
    COMMAND_TIMEOUT_S,
    VERIFY_TIMEOUT_S,
    command_status,
    is_argv,
    launch,
    template_problems,
)
from pitstop.kube.connect import KubeApi
from pitstop.kube.parse import parse_time, short_version
from pitstop.kube.redact import redact_url
from pitstop.kube.upgrade import Refused, UpgradeContext

__all__ = ["CONTROL_PLANE_COMPONENTS", "IDENTITY_LABEL", "LEASES", "PEER_ANNOTATION",
           "PLACEHOLDERS", "CommandControlPlaneUpgrader", "ControlPlaneHookError",
           "ControlPlaneUpgrader", "apiserver_endpoints", "identity_leases"]

CONTROL_PLANE_COMPONENTS = frozenset({"kube-apiserver", "kube-controller-manager",
                                      "kube-scheduler"})
IDENTITY_LABEL = "apiserver.kubernetes.io/identity=kube-apiserver"
PEER_ANNOTATION = "kubernetes.io/peer-advertise-address"
LEASES = {"kube-controller-manager": "kube-controller-manager",
          "kube-scheduler": "kube-scheduler"}
PLACEHOLDERS = ("instance", "component", "version", "cluster")
_LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


class ControlPlaneHookError(PitstopError):
    """The control-plane upgrade command is configured wrongly."""

    exit_code = 2


class ControlPlaneUpgrader(Protocol):
    """Carries out control-plane actions for :class:`~pitstop.kube.KubeBackend`."""

    def begin(self, ctx: UpgradeContext, action: UpgradeComponent) -> dict[str, Any]:
        """Start ``action``; return JSON data kept with the operation and handed to
        :meth:`check`. Raise :class:`~pitstop.kube.upgrade.Refused` when it cannot apply."""
        ...

    def check(self, ctx: UpgradeContext, action: UpgradeComponent, started: float,
              data: dict[str, Any]) -> tuple[OperationState, str]:
        """Where the action is now: RUNNING, SUCCEEDED or FAILED (with a message)."""
        ...


def apiserver_endpoints(api: KubeApi) -> dict[str, KubeApi]:
    """Every kube-apiserver instance by name, each with a connection to that instance: the
    identity Leases in ``kube-system`` name them (their ``kubernetes.io/hostname`` label, else
    the Lease name) and give their ``kubernetes.io/peer-advertise-address``. With one Lease or
    none, the one instance is ``api`` itself. Connections other than ``api`` are the caller's
    to close."""
    leases = api.list(_LEASE_PATH.format(ns="kube-system"), label_selector=IDENTITY_LABEL)
    if len(leases) <= 1:
        meta = leases[0]["metadata"] if leases else {}
        name = (meta.get("labels") or {}).get("kubernetes.io/hostname") or "kube-apiserver"
        return {str(name): api}
    out: dict[str, KubeApi] = {}
    for lease in leases:
        meta = lease["metadata"]
        host = (meta.get("labels") or {}).get("kubernetes.io/hostname")
        name = str(host or meta["name"])
        if name in out:
            name = str(meta["name"])
        addr = (meta.get("annotations") or {}).get(PEER_ANNOTATION)
        out[name] = api.with_host(f"https://{addr}") if addr else api
    return out


def identity_leases(api: KubeApi) -> list[tuple[str, str]]:
    """(instance name, peer address or "") of every kube-apiserver identity Lease: the name is
    the Lease's ``kubernetes.io/hostname`` label, else the Lease's name."""
    out: list[tuple[str, str]] = []
    for lease in api.list(_LEASE_PATH.format(ns="kube-system"), label_selector=IDENTITY_LABEL):
        meta = lease["metadata"]
        name = str((meta.get("labels") or {}).get("kubernetes.io/hostname") or meta["name"])
        out.append((name, str((meta.get("annotations") or {}).get(PEER_ANNOTATION) or "")))
    return out


@dataclass
class CommandControlPlaneUpgrader:
    """Runs ``command`` (a template; see the module docstring) once per control-plane
    instance, detached, and verifies the result through the API.

    ``state_dir`` keeps each operation's output and exit status (put it in the run directory).
    ``addresses`` maps ``<component>/<instance>`` to ``https://host:port``: an apiserver
    instance's own address (else its identity Lease's), or a controller-manager's or
    scheduler's secure port for ``/healthz``. ``leases`` names the leader-election Lease of
    each component in ``lease_namespace``."""

    command: Sequence[str]
    state_dir: Path | str
    addresses: Mapping[str, str] = field(default_factory=dict)
    command_timeout_s: float = COMMAND_TIMEOUT_S
    verify_timeout_s: float = VERIFY_TIMEOUT_S
    leases: Mapping[str, str] = field(default_factory=lambda: dict(LEASES))
    lease_namespace: str = "kube-system"

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ControlPlaneHookError("control-plane upgrade command: " + "; ".join(problems))
        self.command = tuple(self.command)
        self.state_dir = Path(self.state_dir)

    def _problems(self) -> list[str]:
        out = template_problems(
            self.command, PLACEHOLDERS, "[\"ssh\", \"{instance}\", \"sudo\", "
            "\"/usr/local/bin/upgrade-cp\", \"{component}\", \"{version}\"]")
        if not is_argv(self.command):
            return out
        for key, addr in self.addresses.items():
            comp, _, inst = str(key).partition("/")
            if comp not in CONTROL_PLANE_COMPONENTS or not inst:
                out.append(f"address key {key!r} is not COMPONENT/INSTANCE. Fix: e.g. "
                           "\"kube-apiserver/cp-1\" or \"kube-scheduler/cp-1\"")
            if not re.match(r"^https?://[^/\s]+$", str(addr)):
                out.append(f"address of {key!r} is {redact_url(str(addr))!r}. Fix: write it as "
                           "https://HOST:PORT (no path)")
        for name, value in (("command_timeout_s", self.command_timeout_s),
                            ("verify_timeout_s", self.verify_timeout_s)):
            if not value > 0:
                out.append(f"{name} is {value!r}. Fix: a positive number of seconds")
        return out

    # -- begin -----------------------------------------------------------------------------
    def argv(self, ctx: UpgradeContext, action: UpgradeComponent) -> list[str]:
        values = {"instance": action.target, "component": action.component,
                  "version": action.version, "cluster": ctx.cluster}
        return [arg.format(**values) for arg in self.command]

    def begin(self, ctx: UpgradeContext, action: UpgradeComponent) -> dict[str, Any]:
        if action.component not in CONTROL_PLANE_COMPONENTS:
            raise Refused(f"{action.component} is not a control-plane component this hook "
                          f"upgrades ({', '.join(sorted(CONTROL_PLANE_COMPONENTS))})")
        data: dict[str, Any] = {}
        if action.component == "kube-apiserver":  # how many instances announced themselves
            data["identities"] = sorted(n for n, _ in identity_leases(ctx.api))
        if action.component in self.leases:
            lease = self._lease(ctx, action.component)
            spec = (lease or {}).get("spec") or {}
            data["lease_before"] = {"holder": spec.get("holderIdentity") or "",
                                    "renew": spec.get("renewTime") or ""}
        assert isinstance(self.state_dir, Path)
        data.update(launch(self.state_dir, f"{action.component}-{action.target}-"
                           f"{action.version}", self.argv(ctx, action), ctx.now,
                           "the control-plane upgrade command"))
        return data

    # -- check -----------------------------------------------------------------------------
    def check(self, ctx: UpgradeContext, action: UpgradeComponent, started: float,
              data: dict[str, Any]) -> tuple[OperationState, str]:
        what = f"{action.component} {action.target}"
        run = command_status(data, ctx.now, started, self.command_timeout_s)
        if run.state == "running":
            return OperationState.RUNNING, ""
        if not run.succeeded:
            return OperationState.FAILED, run.failure(what)
        ended = run.ended
        late = ctx.now - ended > self.verify_timeout_s
        if action.component == "kube-apiserver":
            ok, seen = self._apiserver(ctx, action, data)
        else:
            ok, seen = self._controller(ctx, action, ended, data)
        if ok:
            return OperationState.SUCCEEDED, f"{what}: {seen}"
        if late:
            return (OperationState.FAILED,
                    f"{what} did not show {action.version} within {self.verify_timeout_s:.0f}s "
                    f"after the upgrade command ended: {seen}")
        return OperationState.RUNNING, ""

    def _apiserver(self, ctx: UpgradeContext, action: UpgradeComponent,
                   data: dict[str, Any]) -> tuple[bool, str]:
        inst = action.target
        address = self.addresses.get(f"{action.component}/{inst}")
        if address:
            peer = ctx.api.with_host(str(address))
        else:
            try:
                leases = identity_leases(ctx.api)
            except BackendError as exc:
                return False, f"the identity Leases could not be read: {exc}"
            mine = [addr for name, addr in leases if name == inst]
            if mine and mine[0]:
                peer = ctx.api.with_host(f"https://{mine[0]}")
            elif (mine and len(leases) == 1) or (
                    len(leases) <= 1 and len(data.get("identities") or []) <= 1):
                # a single apiserver (then and now): the configured server is that instance
                peer = ctx.api
            elif mine:
                return False, (f"its identity Lease has no {PEER_ANNOTATION} annotation: "
                               f"configure its address (kube-apiserver/{inst})")
            else:  # an HA control plane whose instance has not announced itself (again) yet
                return False, (f"no identity Lease names it yet (instances seen: "
                               f"{', '.join(sorted(n for n, _ in leases)) or 'none'})")
        try:
            try:
                version = peer.request("GET", "/version", timeout=5.0)
                ready = peer.request("GET", "/readyz", timeout=5.0)
            except BackendError as exc:
                return False, f"it does not answer at {peer.server}: {exc}"
            have = short_version(str(version.body.get("gitVersion") or "")) or "no version"
            if have == action.version and ready.ok:
                return True, f"reports {have} and /readyz ok at {peer.server}"
            return False, (f"it reports {have} at {peer.server}, /readyz "
                           f"{'ok' if ready.ok else f'HTTP {ready.status}'}")
        finally:
            if peer is not ctx.api:
                peer.close()

    def _controller(self, ctx: UpgradeContext, action: UpgradeComponent, ended: float,
                    data: dict[str, Any]) -> tuple[bool, str]:
        inst, name = action.target, self.leases.get(action.component, action.component)
        lease = self._lease(ctx, action.component)
        if lease is None:
            return False, (f"there is no leader-election Lease {self.lease_namespace}/{name} "
                           "(is --leader-elect on?)")
        spec = lease.get("spec") or {}
        holder, renew = str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or "")
        before = data.get("lease_before") or {}
        was_mine = str(before.get("holder") or "").split("_", 1)[0] == inst
        try:
            renewed_at = parse_time(renew) if renew else 0.0
        except ValueError:
            renewed_at = 0.0
        if not holder or renewed_at < ended - CLOCK_SKEW_S or renew == before.get("renew"):
            return False, (f"Lease {self.lease_namespace}/{name} not renewed since the command "
                           f"ended (holder {holder or 'none'}, renewed {renew or 'never'})")
        if was_mine and holder == before.get("holder"):
            return False, (f"Lease {self.lease_namespace}/{name} is still held by {holder}, "
                           "the identity of the process the command should have replaced")
        seen = f"Lease {self.lease_namespace}/{name} held by {holder}, renewed {renew}"
        address = self.addresses.get(f"{action.component}/{inst}")
        if address:
            peer = ctx.api.with_host(str(address))
            try:
                health = peer.request("GET", "/healthz", timeout=5.0)
            except BackendError as exc:
                return False, f"{seen}; /healthz does not answer: {exc}"
            finally:
                peer.close()
            if not health.ok:
                return False, f"{seen}; /healthz answers HTTP {health.status}"
            seen += f"; /healthz ok at {redact_url(str(address))}"
        return True, seen

    def _lease(self, ctx: UpgradeContext, component: str) -> dict[str, Any] | None:
        name = self.leases.get(component, component)
        path = _LEASE_PATH.format(ns=self.lease_namespace) + f"/{name}"
        answer = ctx.api.request("GET", path)
        if answer.status == 404:
            return None
        if not answer.ok:
            raise BackendError(f"GET {path}: HTTP {answer.status}: {answer.message}")
        return answer.body

