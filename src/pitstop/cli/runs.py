"""Runs from the command line: rehearse / apply on the twin, apply on hosts, resume, status,
control requests, and assembling the report of a run."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pitstop.backend import Backend
from pitstop.catalog import Catalog
from pitstop.config import LoadedConfig
from pitstop.errors import ConfigError, ConfigProblem, RunRefused
from pitstop.executor.core import Executor, RunResult
from pitstop.executor.journal import ActionRecord
from pitstop.executor.run import RunDir, create_run, open_run
from pitstop.hosts.backend import (
    HostsBackend,
    credential_problems,
    etcd_access_problems,
    plan_problems,
)
from pitstop.model import Fleet, UpgradePolicy
from pitstop.model.common import Metadata
from pitstop.model.faults import FaultScenario
from pitstop.planner import Plan, make_plan
from pitstop.planner.plan import Step
from pitstop.twin import Twin

__all__ = ["Rehearsal", "open_backend", "report_data", "start_hosts_kube_run", "start_hosts_run",
           "start_kube_run", "start_run"]


@dataclass
class Rehearsal:
    run: RunDir
    twin: Twin
    result: RunResult


def plan_for(cfg: LoadedConfig, catalog: Catalog, now: datetime) -> tuple[Plan, UpgradePolicy]:
    if cfg.fleet is None or cfg.target is None:
        raise ConfigError([ConfigProblem("-f", None, "", "a Fleet and a target are needed.",
                                         "pass -f fleet.yaml and --target ….")])
    policy = cfg.policy or UpgradePolicy(metadata=Metadata(name="default"))
    return make_plan(cfg.fleet, cfg.target, policy, catalog, now=now), policy


def start_run(fleet: Fleet, plan: Plan, policy: UpgradePolicy, runs_dir: Path, *, seed: int,
              start: datetime, faults: FaultScenario | None, mode: str,
              run_id: str | None = None) -> tuple[RunDir, Twin]:
    """A new run directory with a fresh twin of ``fleet`` in it."""
    _refuse_empty(plan)
    labels = {c.name: c.full_labels for c in fleet.spec.clusters}
    run = create_run(runs_dir, plan, policy, labels,
                     {"kind": "twin", "state": "twin.sqlite", "seed": seed, "mode": mode},
                     run_id=run_id)
    twin = Twin.create(fleet, seed=seed, state_path=run.path / "twin.sqlite", faults=faults,
                       start=start.timestamp())
    return run, twin


def _refuse_empty(plan: Plan) -> None:
    if not plan.steps:
        raise RunRefused("the plan has no steps to run: "
                         + ("; ".join(f.message for f in plan.blocking) or "nothing to do"))


def start_hosts_run(cfg: LoadedConfig, plan: Plan, policy: UpgradePolicy, runs_dir: Path, *,
                    run_id: str | None = None) -> tuple[RunDir, Backend]:
    """A new run directory for the hosts of ``cfg.hosts`` (the HostInventory), refused before
    anything is created when the inventory does not cover what the plan changes."""
    _refuse_empty(plan)
    if cfg.hosts is None:
        raise ConfigError([ConfigProblem(
            "-f", None, "", "--backend hosts needs a HostInventory.",
            "pass -f hosts.yaml holding `kind: HostInventory` (docs/runtime-upgrades.md).")])
    problems = plan_problems(cfg.hosts, plan)
    if problems:
        raise RunRefused("the hosts backend cannot carry this plan out:\n  - "
                         + "\n  - ".join(problems))
    source = cfg.sources.get(f"HostInventory/{cfg.hosts.metadata.name}", "-f")
    access = etcd_access_problems(cfg.hosts, plan, source) + credential_problems(cfg.hosts,
                                                                                 source)
    if access:  # e.g. a wrong etcd CA, a malformed SSH key: named by file and field, before
        raise ConfigError(access)  # anything is created
    assert cfg.fleet is not None
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    run = create_run(runs_dir, plan, policy, labels,
                     {**HostsBackend.run_record(), "mode": "apply"}, run_id=run_id)
    return run, HostsBackend.create(run.path, cfg.hosts, cfg.fleet)


def start_kube_run(cfg: LoadedConfig, plan: Plan, policy: UpgradePolicy, runs_dir: Path, *,
                   kubeconfig: str | None, contexts: tuple[str, ...], pool_label: str,
                   node_upgrader: str, control_plane_command: str | None = None,
                   control_plane_addresses: tuple[str, ...] = (),
                   node_command: str | None = None, node_verify_timeout_s: float,
                   run_id: str | None = None) -> tuple[RunDir, Backend]:
    """A new run directory for live clusters reached through kubeconfig contexts. Before
    anything is created or changed: every cluster with steps is paired with a context and
    reachable, every step is something the Kubernetes API can do (and the node upgrader: no
    replace step with the command upgrader), the live versions and node sets are those the
    plan was made from, and (kwok upgrader) every node is a kwok node."""
    from pitstop.kube.fleet import KubeFleet
    from pitstop.kube.fleet import plan_problems as kube_problems

    spec = _prepare_kube(
        cfg, plan, runs_dir, kubeconfig=kubeconfig, contexts=contexts, pool_label=pool_label,
        node_upgrader=node_upgrader, control_plane_command=control_plane_command,
        control_plane_addresses=control_plane_addresses, node_command=node_command,
        node_verify_timeout_s=node_verify_timeout_s, what="the Kubernetes backend",
        problems=lambda clusters, hook: kube_problems(plan, clusters, control_plane_hook=hook),
        upgrades_node=lambda step: step.action == "upgrade-nodes")
    assert cfg.fleet is not None
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    run = create_run(runs_dir, plan, policy, labels, {**spec.to_record(), "mode": "apply"},
                     run_id=run_id)
    return run, KubeFleet(spec, run.path)


def start_hosts_kube_run(cfg: LoadedConfig, plan: Plan, policy: UpgradePolicy, runs_dir: Path,
                         *, kubeconfig: str | None, contexts: tuple[str, ...], pool_label: str,
                         node_upgrader: str, control_plane_command: str | None = None,
                         control_plane_addresses: tuple[str, ...] = (),
                         node_command: str | None = None, node_verify_timeout_s: float,
                         run_id: str | None = None) -> tuple[RunDir, Backend]:
    """A new run directory for hosts that are nodes of live clusters (pitstop.compose): the
    runtime and etcd on the hosts, cordon and drain through the API. Refused before anything
    is made as for the hosts and the Kubernetes backends, each for its part."""
    from pitstop.compose import HOST_COMPONENTS, HostsOnNodes
    from pitstop.compose import plan_problems as both_problems
    from pitstop.kube.fleet import KubeFleet

    if cfg.hosts is None:
        raise ConfigError([ConfigProblem(
            "-f", None, "", "--backend hosts+kube needs a HostInventory.",
            "pass -f hosts.yaml holding `kind: HostInventory` (docs/runtime-upgrades.md).")])
    inventory = cfg.hosts
    hosts = {n.name for c in inventory.spec.clusters for n in c.nodes}
    spec = _prepare_kube(
        cfg, plan, runs_dir, kubeconfig=kubeconfig, contexts=contexts, pool_label=pool_label,
        node_upgrader=node_upgrader, control_plane_command=control_plane_command,
        control_plane_addresses=control_plane_addresses, node_command=node_command,
        node_verify_timeout_s=node_verify_timeout_s, what="hosts+kube",
        problems=lambda clusters, hook: both_problems(inventory, plan, clusters,
                                                      control_plane_hook=hook),
        upgrades_node=lambda step: step.action == "upgrade-nodes" and any(
            c.component not in HOST_COMPONENTS for c in step.changes),
        runtime_on_hosts=hosts)
    assert cfg.fleet is not None
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    run = create_run(runs_dir, plan, policy, labels, {
        **HostsOnNodes.record(HostsBackend.run_record(), spec.to_record()), "mode": "apply"},
        run_id=run_id)
    return run, HostsOnNodes(KubeFleet(spec, run.path),
                             HostsBackend.create(run.path, inventory, cfg.fleet))


def _prepare_kube(cfg: LoadedConfig, plan: Plan, runs_dir: Path, *, kubeconfig: str | None,
                  contexts: tuple[str, ...], pool_label: str, node_upgrader: str,
                  control_plane_command: str | None, control_plane_addresses: tuple[str, ...],
                  node_command: str | None, node_verify_timeout_s: float,
                  what: str, problems: Callable[[list[str], bool], list[str]],
                  upgrades_node: Callable[[Step], bool],
                  runtime_on_hosts: set[str] | None = None) -> Any:
    """The checks before a run on live clusters; the KubeFleetSpec to make it with."""
    from pitstop.backend import BackendError
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
    from pitstop.kube.inventory import InventoryError, take_inventory

    _refuse_empty(plan)
    assert cfg.fleet is not None
    node_cmd = _split_command(node_command, "--node-command")
    # an unknown upgrader or a bad node command is refused (exit 2) before anything else
    make_node_upgrader(node_upgrader, command=node_cmd, state_dir=runs_dir,
                       verify_timeout_s=node_verify_timeout_s)
    command = _split_command(control_plane_command)
    addresses = _addresses(control_plane_addresses)
    if command:  # a bad template is refused (exit 2) before anything is read or made
        CommandControlPlaneUpgrader(command, runs_dir, addresses=addresses)
    wanted = {s.cluster for s in plan.steps}
    pairs = pair_contexts([c for c in cfg.fleet.spec.clusters if c.name in wanted], contexts)
    found_problems = problems([c for c, _ in pairs], bool(command)) + upgrader_problems(
        plan, node_upgrader)
    if found_problems:
        raise RunRefused(f"{what} cannot carry this plan out:\n  - "
                         + "\n  - ".join(found_problems))
    try:
        live = take_inventory([ctx for _, ctx in pairs], kubeconfig,
                              pool_labels=(pool_label,))
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
    found = kubeconfig or os.environ.get("KUBECONFIG") or None
    if found and os.pathsep not in found:
        found = str(Path(found).resolve())
    spec = KubeFleetSpec(kubeconfig=found, contexts=dict(pairs), pool_label=pool_label,
                         node_upgrader=node_upgrader, control_plane_command=command,
                         control_plane_addresses=addresses, node_command=node_cmd,
                         node_verify_timeout_s=node_verify_timeout_s)
    try:
        probe = KubeFleet(spec, None)
    except BackendError as exc:
        raise RunRefused(f"cannot connect: {exc}") from None
    try:
        if node_upgrader == "kwok":
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


def _split_command(text: str | None,
                   option: str = "--control-plane-command") -> tuple[str, ...]:
    import shlex

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


def open_backend(run: RunDir) -> Backend:
    """The backend of an existing run, from what its directory holds."""
    kind = run.backend.get("kind")
    if kind == "twin":
        return Twin.open(run.path / str(run.backend["state"]))
    if kind == "hosts":
        return HostsBackend.open(run.path)
    if kind in ("kube", "hosts+kube"):
        from pitstop.backend import BackendError
        from pitstop.compose import HostsOnNodes
        from pitstop.kube.fleet import KubeFleet, KubeFleetSpec

        try:
            if kind == "kube":
                return KubeFleet(KubeFleetSpec.from_record(run.backend), run.path)
            return HostsOnNodes(KubeFleet(KubeFleetSpec.from_record(run.backend["kube"]),
                                          run.path), HostsBackend.open(run.path))
        except (BackendError, KeyError, TypeError) as exc:
            raise RunRefused(f"run {run.run_id}: cannot reconnect to its clusters: {exc}"
                             ) from None
    raise RunRefused(f"run {run.run_id} uses backend {kind!r}, which this build cannot drive "
                     "(it drives the twin, hosts and kube)")


def execute(run: RunDir, backend: Backend, on_event: Callable[[str, dict[str, Any]], None]
            | None = None, *, poll_s: float = 5.0, catalog: Catalog | None = None) -> RunResult:
    return Executor(run, backend, on_event=on_event, poll_s=poll_s, catalog=catalog).execute()


def report_data(run: RunDir, backend: Backend, result: RunResult | None, *, title: str,
                stories: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report contract of pitstop.report.html, from the journal, audit and backend (the
    twin adds availability samples and PDB floors; real backends have none to give)."""
    j = run.journal
    steps_by_id = {s.id: s for s in run.plan.steps}
    steps: list[dict[str, Any]] = []
    for rec in j.steps():
        s = steps_by_id.get(rec.step_id)
        if s is None:
            continue
        steps.append({"id": s.id, "wave": s.wave, "cluster": s.cluster, "phase": str(s.phase),
                      "component": s.component, "from": s.from_version, "to": s.to_version,
                      "status": rec.status, "start": rec.started, "end": rec.finished,
                      "reason": rec.message or s.reason})
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    evictions = refusals = 0
    actions = j.actions()
    for a in actions:
        cluster = steps_by_id[a.step_id.removesuffix("/rollback")].cluster \
            if a.step_id.removesuffix("/rollback") in steps_by_id else ""
        if a.kind in ("cordon", "upgrade", "evict") and (a.step_id, a.target) not in nodes:
            nodes[(a.step_id, a.target)] = {
                "cluster": cluster, "node": a.target, "step": a.step_id, "start": a.intent_at,
                "end": None, "outcome": "rollback" if a.step_id.endswith("/rollback")
                else "running"}
        if a.kind == "node-done":
            bar = nodes.get((a.step_id, a.target))
            if bar is not None:
                bar["end"] = a.outcome_at
                bar["outcome"] = "rollback" if a.step_id.endswith("/rollback") else "done"
        if a.kind == "evict":
            if a.outcome in ("evicted", "settled-accepted"):
                evictions += 1
            elif a.outcome == "budget-exhausted":
                refusals += 1
    for bar in nodes.values():
        if bar["end"] is None:
            bar["outcome"] = "failed" if result and result.status != "completed" else "running"
    twin = backend if isinstance(backend, Twin) else None
    availability = twin.availability() if twin is not None else {}
    floors = twin.pdb_floors() if twin is not None else {}
    min_av: dict[str, float] = {}
    for w, samples in availability.items():
        ratios = [r / d for _, r, d in samples if d]
        min_av[w] = min(ratios) if ratios else 1.0
    starts: list[float] = [s["start"] for s in steps if s["start"] is not None]
    ends: list[float] = [s["end"] for s in steps if s["end"] is not None]
    started = min(starts) if starts else backend.clock.now()
    finished = max(ends) if ends else None
    return {
        "title": title, "runId": run.run_id,
        "status": result.status if result else j.get("status"),
        "reason": result.reason if result else j.get("reason"),
        "backend": backend.name, "started": started, "finished": finished,
        "target": run.plan.target, "steps": steps, "nodes": list(nodes.values()),
        "availability": {w: [list(x) for x in v] for w, v in availability.items()},
        "pdbFloors": floors,
        "gates": [{"step": g[0], "gate": g[1], "phase": g[2], "message": g[3], "at": g[4]}
                  for g in j.gates()],
        "rollbacks": result.rollbacks if result else [],
        "stalls": drain_stalls(actions, {k: v.cluster for k, v in steps_by_id.items()}),
        "stories": stories or [],
        "summary": {"makespanSeconds": (finished - started) if finished else 0.0,
                    "minAvailability": min_av, "evictions": evictions,
                    "refusals429": refusals},
    }


def drain_stalls(actions: Sequence[ActionRecord],
                 cluster_of: Mapping[str, str]) -> list[dict[str, Any]]:
    """The drains that waited on a PodDisruptionBudget, from the journal, longest first: per
    node job (step, node), from its first refused eviction until the last refused pod's
    eviction was accepted (or the job ended, or the last answer if it never did); the pods
    refused and the budgets that refused them."""
    jobs: dict[tuple[str, str], dict[str, Any]] = {}
    ended: dict[tuple[str, str], float] = {}
    for a in actions:
        key = (a.step_id, a.target)
        if a.kind == "node-done" and a.outcome_at is not None:
            ended[key] = a.outcome_at
        if a.kind != "evict" or a.outcome is None:
            continue
        pod = str(a.detail.get("pod", ""))
        out = a.outcome_detail or {}
        job = jobs.get(key)
        if a.outcome in ("budget-exhausted", "multiple-pdbs"):
            if job is None:
                job = jobs[key] = {"at": a.intent_at, "last": a.intent_at, "pods": {},
                                   "pdbs": set()}
            job["pods"].setdefault(pod, None)
            job["pdbs"].update(str(b) for b in out.get("pdbs", ()))
            job["last"] = a.outcome_at or a.intent_at
        elif job is not None and pod in job["pods"] and a.outcome in ("evicted", "gone",
                                                                      "settled-accepted"):
            job["pods"][pod] = a.outcome_at or a.intent_at
    stalls: list[dict[str, Any]] = []
    for (step, node), job in jobs.items():
        accepted = list(job["pods"].values())
        end = (max(accepted) if all(t is not None for t in accepted)
               else ended.get((step, node), job["last"]))
        stalls.append({"cluster": cluster_of.get(step.removesuffix("/rollback"), ""),
                       "step": step, "node": node, "at": job["at"],
                       "seconds": max(0.0, end - job["at"]), "pods": sorted(job["pods"]),
                       "pdbs": sorted(job["pdbs"])})
    return sorted(stalls, key=lambda s: (-s["seconds"], s["at"], s["node"]))


def describe_stalls(stalls: Sequence[Mapping[str, Any]]) -> str:
    """One line on :func:`drain_stalls`: how many, and the longest with who held it."""
    if not stalls:
        return "no drain waited on a PodDisruptionBudget"
    top = stalls[0]
    return (f"{len(stalls)} drain(s) waited on a PodDisruptionBudget; the longest "
            f"{top['seconds']:.0f} s on {top['node']} ({', '.join(top['pods'][:3])}"
            + (", …" if len(top["pods"]) > 3 else "")
            + (f"; held by {', '.join(top['pdbs'])}" if top["pdbs"] else "") + ")")


def load_run(path: str) -> RunDir:
    return open_run(Path(path))
