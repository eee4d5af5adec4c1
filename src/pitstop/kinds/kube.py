"""Live clusters as a backend kind: the Kubernetes API through kubeconfig contexts (cordon,
drain by eviction under the live PDBs, a node upgrader, a control-plane command hook)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.backend import Backend, BackendError
from pitstop.errors import ConfigError, ConfigProblem, RunRefused
from pitstop.kinds.api import Prepared, RunOptions
from pitstop.kube.controlplane import CommandControlPlaneUpgrader
from pitstop.kube.fleet import (
    KubeFleet,
    KubeFleetSpec,
    make_node_upgrader,
    not_kwok_nodes,
    pair_contexts,
    stale_versions,
    upgrader_problems,
)
from pitstop.kube.fleet import plan_problems as kube_problems
from pitstop.kube.inventory import InventoryError, take_inventory
from pitstop.planner.plan import Step, StepAction

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.planner import Plan

__all__ = ["KubeKind", "describe_contexts", "prepare_kube", "split_command"]


def split_command(text: str | None, option: str = "--control-plane-command") -> tuple[str, ...]:
    if not text:
        return ()
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError([ConfigProblem(option, None, text,
                                         f"cannot split it into arguments: {exc}.",
                                         "balance the quotes.")]) from None


def _addresses(given: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in given:
        key, sep, url = item.partition("=")
        if not sep or "/" not in key or not url.startswith("https://"):
            raise ConfigError([ConfigProblem(
                "--control-plane-address", None, item, "not COMPONENT/INSTANCE=https://….",
                "write e.g. kube-apiserver/cp-1=https://10.0.0.11:6443.")])
        out[key] = url
    return out


def describe_contexts(record: dict[str, Any]) -> str:
    contexts = dict(record.get("contexts") or {})
    pairs = ", ".join(f"{c}={ctx}" for c, ctx in sorted(contexts.items()))
    where = record.get("kubeconfig") or "the default kubeconfig"
    return (f"{len(contexts)} live cluster(s) through {where}: {pairs} (node upgrader "
            f"{record.get('nodeUpgrader', 'kwok')})")


def prepare_kube(cfg: LoadedConfig, plan: Plan, options: RunOptions, *, what: str,
                 problems: Callable[[list[str], bool], list[str]],
                 upgrades_node: Callable[[Step], bool],
                 runtime_on_hosts: set[str] | None = None) -> KubeFleetSpec:
    """Every check before a run on live clusters (nothing is made or changed): each cluster with
    steps paired with a reachable context, every step something the API (and the node
    upgrader) can do, the live versions and node sets those the plan was made from, and (kwok
    upgrader) every node a kwok node. The KubeFleetSpec to make the run with."""
    assert cfg.fleet is not None
    node_cmd = split_command(options.node_command, "--node-command")
    # an unknown upgrader or a bad node command is refused (exit 2) before anything else
    make_node_upgrader(options.node_upgrader, command=node_cmd, state_dir=options.runs_dir,
                       verify_timeout_s=options.node_verify_timeout_s)
    command = split_command(options.control_plane_command)
    addresses = _addresses(options.control_plane_addresses)
    if command:  # a bad template is refused (exit 2) before anything is read or made
        CommandControlPlaneUpgrader(command, options.runs_dir, addresses=addresses)
    wanted = {s.cluster for s in plan.steps}
    pairs = pair_contexts([c for c in cfg.fleet.spec.clusters if c.name in wanted],
                          options.contexts)
    found_problems = problems([c for c, _ in pairs], bool(command)) + upgrader_problems(
        plan, options.node_upgrader)
    if found_problems:
        raise RunRefused(f"{what} cannot carry this plan out:\n  - "
                         + "\n  - ".join(found_problems))
    try:
        live = take_inventory([ctx for _, ctx in pairs], options.kubeconfig,
                              pool_labels=(options.pool_label,))
    except InventoryError as exc:
        raise RunRefused(f"cannot read the live cluster(s): {exc}") from None
    stale = [d for d in stale_versions(cfg.fleet, live.fleet, [
        (d, ci.cluster.name) for (d, _), ci in zip(pairs, live.clusters, strict=True)])
        # a host's runtime is read on the host itself, by the hosts backend's checks
        if not (d.what == "container-runtime" and d.subject in (runtime_on_hosts or set()))]
    if stale:
        shown = [d.text() for d in stale[:20]]
        more = f"\n  … and {len(stale) - 20} more" if len(stale) > 20 else ""
        raise RunRefused("the live cluster(s) differ from the fleet this plan was made from:\n"
                         "  - " + "\n  - ".join(shown) + more + "\nA plan of a fleet that no "
                         "longer runs acts on an untrue picture: read it again (`pitstop "
                         "inventory --out fleet.yaml`) and plan from that.")
    # recorded as given or found now, so that `pitstop resume` reads the same file
    found = options.kubeconfig or os.environ.get("KUBECONFIG") or None
    if found and os.pathsep not in found:
        found = str(Path(found).resolve())
    spec = KubeFleetSpec(kubeconfig=found, contexts=dict(pairs), pool_label=options.pool_label,
                         node_upgrader=options.node_upgrader, control_plane_command=command,
                         control_plane_addresses=addresses, node_command=node_cmd,
                         node_verify_timeout_s=options.node_verify_timeout_s)
    try:
        probe = KubeFleet(spec, None)
    except BackendError as exc:
        raise RunRefused(f"cannot connect: {exc}") from None
    try:
        if options.node_upgrader == "kwok":
            fake = [f"{c}/{n}" for c, b in probe.backends.items()
                    for n in not_kwok_nodes(b, c, [t for s in plan.steps if s.cluster == c
                                                   and upgrades_node(s) for t in s.targets])]
            if fake:
                raise RunRefused(
                    "--node-upgrader kwok only upgrades nodes kwok simulates; these are not "
                    f"kwok nodes (no kwok.x-k8s.io/node annotation): {', '.join(fake[:10])}")
    finally:
        probe.close()
    return spec


def reopen_kube(record: dict[str, Any], run_dir: Path) -> KubeFleet:
    try:
        return KubeFleet(KubeFleetSpec.from_record(record), run_dir)
    except (BackendError, KeyError, TypeError) as exc:
        raise RunRefused(f"{run_dir.name}: cannot reconnect to its clusters: {exc}") from None


class KubeKind:
    name = "kube"
    help = ("live clusters through kubeconfig contexts (node steps: cordon, drain by eviction, "
            "node upgrade, uncordon)")

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
        spec = prepare_kube(
            cfg, plan, options, what="the Kubernetes backend",
            problems=lambda clusters, hook: kube_problems(plan, clusters,
                                                          control_plane_hook=hook),
            upgrades_node=lambda step: step.action == StepAction.UPGRADE_NODES)
        record = {**spec.to_record(), "mode": options.mode}
        return Prepared(record, lambda run_dir: KubeFleet(spec, run_dir),
                        self.describe(record))

    def reopen(self, run: RunDir) -> Backend:
        return reopen_kube(run.backend, run.path)

    def describe(self, record: dict[str, Any]) -> str:
        return describe_contexts(record)
