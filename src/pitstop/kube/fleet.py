"""Several live clusters behind one :class:`~pitstop.backend.Backend`, for ``pitstop apply
--backend kube`` and ``pitstop resume``.

A plan names clusters; kubeconfig files name contexts. :func:`pair_contexts` pairs them (the
same rules as ``pitstop drift``): a declared cluster's ``pitstop.dev/context`` label (which
``pitstop inventory`` writes), else a context whose name makes the cluster's name, else — one
context for a one-cluster fleet — that context. :class:`KubeFleet` holds one
:class:`~pitstop.kube.backend.KubeBackend` per cluster and hands each call to the one its
``cluster`` argument names; a cluster it was not given is refused, never guessed.

What a run needs to reopen the backend after a crash — the kubeconfig path, the
cluster→context pairs, the pool label, the node upgrader (and its command and timeouts), the
control-plane command — is the dictionary
:meth:`KubeFleet.run_record` returns (``run.json``'s ``backend``); no credential is in it:
the kubeconfig is read again from its path, and exec plugins are run again.

:func:`stale_versions` compares the fleet a plan was made from with the live clusters before
anything is changed: a plan made from versions that no longer run would act on a picture of
the cluster that is not true (for example a node upgraded by hand since), so ``apply``
refuses it and says to take the inventory again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitstop.backend import (
    Action,
    BackendError,
    Clock,
    ClusterObservation,
    EvictionResult,
    HealthSignals,
    Operation,
)
from pitstop.errors import ConfigError, ConfigProblem
from pitstop.kube.backend import KubeBackend, RealClock, pod_readiness_metrics
from pitstop.kube.command import COMMAND_TIMEOUT_S, VERIFY_TIMEOUT_S
from pitstop.kube.controlplane import CONTROL_PLANE_COMPONENTS, CommandControlPlaneUpgrader
from pitstop.kube.drift import Difference, fleet_drift
from pitstop.kube.inventory import CONTEXT_LABEL, cluster_name_for
from pitstop.kube.nodecommand import CommandNodeUpgrader
from pitstop.kube.parse import DEFAULT_POOL_LABELS
from pitstop.kube.upgrade import NODE_COMPONENTS, KwokNodeUpgrader, NodeUpgrader
from pitstop.model import Cluster, Fleet
from pitstop.planner import Plan
from pitstop.planner.plan import StepAction, Strategy

__all__ = ["KWOK_ANNOTATION", "NODE_UPGRADERS", "KubeFleet", "KubeFleetSpec", "make_node_upgrader",
           "not_kwok_nodes", "pair_contexts", "plan_problems", "stale_versions",
           "upgrader_problems"]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
NODE_UPGRADERS = ("kwok", "command")
# what must match between the fleet a plan was made from and the live cluster
VERSION_DIFFERENCES = frozenset({"kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                 "etcd", "kubelet", "kube-proxy", "container-runtime", "node",
                                 "cluster"})


def pair_contexts(clusters: Sequence[Cluster], contexts: Sequence[str],
                  option: str = "--context") -> list[tuple[str, str]]:
    """(declared cluster name, kubeconfig context) pairs: each cluster's context label, else
    its own name, when no context is given; else each given context with the cluster it
    names (a context given as ``CLUSTER=CONTEXT`` names it outright)."""
    if not contexts:
        return [(c.name, c.labels.get(CONTEXT_LABEL) or c.name) for c in clusters]
    if len(contexts) == 1 and len(clusters) == 1 and "=" not in contexts[0]:
        return [(clusters[0].name, contexts[0])]
    names = {c.name for c in clusters}
    out: list[tuple[str, str]] = []
    for given in contexts:
        if "=" in given:
            cluster, _, ctx = given.partition("=")
            if cluster not in names:
                raise ConfigError([ConfigProblem(
                    option, None, given, f"the fleet has no cluster {cluster!r}.",
                    f"use one of: {', '.join(sorted(names))}.")])
            out.append((cluster, ctx))
            continue
        match = [c.name for c in clusters
                 if c.labels.get(CONTEXT_LABEL) == given or c.name == cluster_name_for(given)]
        if not match:
            raise ConfigError([ConfigProblem(
                option, None, given, f"no declared cluster for context {given!r}.",
                f"label its cluster `{CONTEXT_LABEL}: {given}`, name it "
                f"{cluster_name_for(given)!r}, or pass {option} CLUSTER={given}.")])
        out.append((match[0], given))
    seen: dict[str, str] = {}
    for cluster, ctx in out:
        if cluster in seen:
            raise ConfigError([ConfigProblem(
                option, None, ctx, f"cluster {cluster!r} is paired with two contexts "
                f"({seen[cluster]!r} and {ctx!r}).", "give one context per cluster.")])
        seen[cluster] = ctx
    return out


def stale_versions(declared: Fleet, live: Fleet,
                   pairs: Sequence[tuple[str, str]]) -> list[Difference]:
    """The version and node-set differences between the declared fleet and the live one
    (``pairs``: declared name, live name) that make a plan of the declared fleet untrue."""
    return [d for d in fleet_drift(declared, live, pairs) if d.what in VERSION_DIFFERENCES]


def not_kwok_nodes(backend: KubeBackend, cluster: str, nodes: Sequence[str]) -> list[str]:
    """Those of ``nodes`` that kwok does not simulate (no ``kwok.x-k8s.io/node`` annotation):
    the kwok node upgrader only rewrites what a simulated kubelet reports, which a real kubelet
    would overwrite at once."""
    wanted = set(nodes)
    out: list[str] = []
    for raw in backend.api.list("/api/v1/nodes"):
        meta = raw.get("metadata") or {}
        if meta.get("name") in wanted and KWOK_ANNOTATION not in (meta.get("annotations") or {}):
            out.append(str(meta["name"]))
    return sorted(out)


CONTROL_PLANE_ACTIONS = frozenset({StepAction.UPGRADE_APISERVER,
                                   StepAction.UPGRADE_CONTROLLER_MANAGER,
                                   StepAction.UPGRADE_SCHEDULER})


def plan_problems(plan: Plan, clusters: Sequence[str], *,
                  control_plane_hook: bool = False) -> list[str]:
    """Why the Kubernetes backend cannot carry ``plan`` out (empty: it can); checked before a
    run is created. ``clusters``: those paired with a context; ``control_plane_hook``: a
    control-plane upgrade command is configured."""
    out: list[str] = []
    for s in plan.steps:
        if s.cluster not in clusters:
            out.append(f"{s.id}: cluster {s.cluster} is paired with no kubeconfig context "
                       f"(pass --context {s.cluster}=CONTEXT)")
        elif s.action is StepAction.UPGRADE_NODES:
            other = sorted({c.component for c in s.changes} - NODE_COMPONENTS)
            if other:
                out.append(f"{s.id}: {', '.join(other)} is not a node component")
        elif s.action in CONTROL_PLANE_ACTIONS and s.component in CONTROL_PLANE_COMPONENTS:
            if not control_plane_hook:
                out.append(f"{s.id}: {s.component} is upgraded by your control-plane tooling, "
                           "which pitstop runs through a command hook: pass "
                           "--control-plane-command (docs/operations.md)")
        else:
            out.append(f"{s.id}: {s.action} ({s.component}) is not something the Kubernetes "
                       "API can do: control-plane, etcd and add-on changes need a host or "
                       "provider backend (`--backend hosts` upgrades etcd members)")
    return out


def upgrader_problems(plan: Plan, node_upgrader: str) -> list[str]:
    """Why ``node_upgrader`` cannot carry ``plan``'s node steps out (empty: it can): the
    command upgrader upgrades nodes in place and cannot add or remove machines, so a
    ``replace`` step is refused before a run is created."""
    if node_upgrader != "command":
        return []
    return [f"{s.id}: pool {s.pool or '?'} uses strategy replace, which adds and removes "
            "machines: --node-upgrader command upgrades existing nodes in place only. Fix: "
            "set strategy: in-place for that pool in the UpgradePolicy, or replace its nodes "
            "with your provider's tooling" for s in plan.steps
            if s.action is StepAction.UPGRADE_NODES and s.strategy is Strategy.REPLACE]


def make_node_upgrader(kind: str, *, command: Sequence[str] = (),
                       state_dir: Path | None = None,
                       verify_timeout_s: float = VERIFY_TIMEOUT_S,
                       command_timeout_s: float = COMMAND_TIMEOUT_S) -> NodeUpgrader:
    """The node upgrader ``kind`` names (``--node-upgrader``). ``command``: the node command's
    template, needed by ``command`` and refused with any other (a ConfigError or a
    NodeCommandError, exit 2); ``state_dir`` keeps its commands' output and status."""
    if kind not in NODE_UPGRADERS:
        raise ConfigError([ConfigProblem(
            "--node-upgrader", None, kind, f"unknown node upgrader {kind!r}.",
            f"use one of: {', '.join(NODE_UPGRADERS)}.")])
    if kind == "kwok":
        if command:
            raise ConfigError([ConfigProblem(
                "--node-command", None, " ".join(command),
                "a node command is run only by --node-upgrader command.",
                "pass --node-upgrader command, or leave --node-command out.")])
        return KwokNodeUpgrader()
    if not command:
        raise ConfigError([ConfigProblem(
            "--node-upgrader", None, kind, "--node-upgrader command needs the command.",
            "pass --node-command TEMPLATE, e.g. --node-command 'ssh {node} sudo "
            "/usr/local/sbin/upgrade-kubelet {version}' (docs/operations.md).")])
    return CommandNodeUpgrader(command, state_dir if state_dir is not None else Path("."),
                               command_timeout_s=command_timeout_s,
                               verify_timeout_s=verify_timeout_s)


@dataclass(frozen=True, slots=True)
class KubeFleetSpec:
    """What :class:`KubeFleet` is made from; kept in the run directory."""

    kubeconfig: str | None
    contexts: dict[str, str]  # cluster -> context
    pool_label: str = DEFAULT_POOL_LABELS[0]
    node_upgrader: str = "kwok"
    control_plane_command: tuple[str, ...] = ()  # a template; empty: no control-plane steps
    control_plane_addresses: dict[str, str] | None = None  # "<component>/<instance>" -> URL
    node_command: tuple[str, ...] = ()  # a template; node_upgrader "command" only
    node_verify_timeout_s: float = VERIFY_TIMEOUT_S
    node_command_timeout_s: float = COMMAND_TIMEOUT_S

    def to_record(self) -> dict[str, Any]:
        return {"kind": "kube", "kubeconfig": self.kubeconfig, "contexts": dict(self.contexts),
                "poolLabel": self.pool_label, "nodeUpgrader": self.node_upgrader,
                "controlPlaneCommand": list(self.control_plane_command),
                "controlPlaneAddresses": dict(self.control_plane_addresses or {}),
                "nodeCommand": list(self.node_command),
                "nodeVerifyTimeout": self.node_verify_timeout_s,
                "nodeCommandTimeout": self.node_command_timeout_s}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> KubeFleetSpec:
        try:
            contexts = {str(k): str(v) for k, v in dict(rec["contexts"]).items()}
            return cls(kubeconfig=rec.get("kubeconfig"), contexts=contexts,
                       pool_label=str(rec.get("poolLabel") or DEFAULT_POOL_LABELS[0]),
                       node_upgrader=str(rec.get("nodeUpgrader") or "kwok"),
                       control_plane_command=tuple(
                           str(a) for a in rec.get("controlPlaneCommand") or ()),
                       control_plane_addresses={
                           str(k): str(v)
                           for k, v in dict(rec.get("controlPlaneAddresses") or {}).items()},
                       node_command=tuple(str(a) for a in rec.get("nodeCommand") or ()),
                       node_verify_timeout_s=float(rec.get("nodeVerifyTimeout")
                                                   or VERIFY_TIMEOUT_S),
                       node_command_timeout_s=float(rec.get("nodeCommandTimeout")
                                                    or COMMAND_TIMEOUT_S))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"run.json: the kube backend record is damaged ({exc!r}): "
                               "it needs `contexts` (cluster -> context)") from None


class KubeFleet:
    """One :class:`KubeBackend` per cluster, behind the one Backend interface."""

    def __init__(self, spec: KubeFleetSpec, state_dir: Path | None, *,
                 clock: Clock | None = None) -> None:
        self.spec = spec
        self._clock: Clock = clock if clock is not None else RealClock()
        self.backends: dict[str, KubeBackend] = {}
        try:
            for cluster, ctx in spec.contexts.items():
                state = state_dir / f"kube-{cluster}.sqlite" if state_dir is not None else None
                upgrader = make_node_upgrader(
                    spec.node_upgrader, command=spec.node_command,
                    state_dir=(state_dir if state_dir is not None else Path(".")) / "nodes"
                    / cluster, verify_timeout_s=spec.node_verify_timeout_s,
                    command_timeout_s=spec.node_command_timeout_s)
                hook = None
                if spec.control_plane_command:
                    hook = CommandControlPlaneUpgrader(
                        spec.control_plane_command,
                        (state_dir if state_dir is not None else Path(".")) / "control-plane"
                        / cluster, addresses=dict(spec.control_plane_addresses or {}))
                self.backends[cluster] = KubeBackend(
                    spec.kubeconfig, ctx, upgrader, spec.pool_label, cluster=cluster,
                    state_file=state, metrics=pod_readiness_metrics, clock=self._clock,
                    control_plane_upgrader=hook)
        except BaseException:
            self.close()
            raise

    def run_record(self) -> dict[str, Any]:
        return self.spec.to_record()

    @property
    def concurrent_calls(self) -> int:
        return min((b.concurrent_calls for b in self.backends.values()), default=1)

    def close(self) -> None:
        for b in self.backends.values():
            b.close()

    def _b(self, cluster: str) -> KubeBackend:
        try:
            return self.backends[cluster]
        except KeyError:
            raise BackendError(f"no kubeconfig context is paired with cluster {cluster!r} "
                               f"(paired: {', '.join(sorted(self.backends)) or 'none'})"
                               ) from None

    # -- the Backend interface --------------------------------------------------------------
    @property
    def name(self) -> str:
        return "kube"

    @property
    def clock(self) -> Clock:
        return self._clock

    def observe(self, cluster: str) -> ClusterObservation:
        return self._b(cluster).observe(cluster)

    def health(self, cluster: str) -> HealthSignals:
        return self._b(cluster).health(cluster)

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        self._b(cluster).cordon(cluster, node, reason)

    def uncordon(self, cluster: str, node: str) -> None:
        self._b(cluster).uncordon(cluster, node)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        self._b(cluster).annotate(cluster, node, key, value)

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        return self._b(cluster).evict(cluster, namespace, pod, uid)

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        self._b(cluster).delete_pod(cluster, namespace, pod, uid)

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        return self._b(cluster).start(cluster, key, action)

    def poll(self, cluster: str, key: str) -> Operation:
        return self._b(cluster).poll(cluster, key)
