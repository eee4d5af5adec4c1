"""Runs from the command line: rehearse / apply on the twin, apply on hosts, resume, status,
control requests, and assembling the report of a run."""

from __future__ import annotations

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
from pitstop.executor.integrity import acting
from pitstop.executor.judging import latest_judgements
from pitstop.executor.run import RunDir, create_run, open_run, private_umask
from pitstop.executor.vocabulary import RunStatus
from pitstop.kinds import Prepared, RunOptions, kind
from pitstop.model import Fleet, UpgradePolicy
from pitstop.model.common import Metadata
from pitstop.model.faults import FaultScenario
from pitstop.observe.api import NO_TELEMETRY, Telemetry
from pitstop.planner import Plan, make_plan
from pitstop.store import ActionRecord
from pitstop.twin import Twin

__all__ = ["Rehearsal", "begin_run", "describe_backend", "open_backend", "prepare", "report_data",
           "start_run"]


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


def begin_run(kind_name: str, cfg: LoadedConfig, plan: Plan, policy: UpgradePolicy,
              options: RunOptions, run_id: str | None = None, *,
              prepared: Prepared | None = None) -> tuple[RunDir, Backend]:
    """A new run of ``plan`` on the backend kind ``kind_name`` (:mod:`pitstop.kinds`): every
    check the kind makes comes first (or was made: ``prepared``), and only then is the run
    directory created."""
    _refuse_empty(plan)
    prepared = prepared or kind(kind_name).prepare(cfg, plan, options)
    assert cfg.fleet is not None
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    private_umask()
    run = create_run(options.runs_dir, plan, policy, labels, prepared.record, run_id=run_id,
                     fleet=cfg.fleet)
    return run, prepared.make(run.path)


def prepare(kind_name: str, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
    """Every check a run on ``kind_name`` needs, nothing created; what it would act on
    (``acts_on``) is what the confirmation prompt names."""
    _refuse_empty(plan)
    return kind(kind_name).prepare(cfg, plan, options)


def start_run(fleet: Fleet, plan: Plan, policy: UpgradePolicy, runs_dir: Path, *, seed: int,
              start: datetime, faults: FaultScenario | None, mode: str,
              run_id: str | None = None) -> tuple[RunDir, Twin]:
    """A new run directory with a fresh twin of ``fleet`` in it."""
    from pitstop.kinds.twin import TwinKind

    run, backend = begin_run(TwinKind.name, LoadedConfig(fleet=fleet), plan, policy,
                             RunOptions(runs_dir, mode=mode, now=start, seed=seed, faults=faults),
                             run_id)
    assert isinstance(backend, Twin)
    return run, backend


def _refuse_empty(plan: Plan) -> None:
    if not plan.steps:
        raise RunRefused("the plan has no steps to run: "
                         + ("; ".join(f.message for f in plan.blocking) or "nothing to do"))


def open_backend(run: RunDir) -> Backend:
    """The backend of an existing run, from what its directory holds."""
    return kind(run.backend.get("kind")).reopen(run)


def describe_backend(run: RunDir) -> str:
    """What the run acts on, in words (for prompts and summaries)."""
    try:
        return kind(run.backend.get("kind")).describe(run.backend)
    except RunRefused as exc:
        return str(exc)


def execute(run: RunDir, backend: Backend, on_event: Callable[[str, dict[str, Any]], None]
            | None = None, *, poll_s: float = 5.0, catalog: Catalog | None = None,
            telemetry: Telemetry = NO_TELEMETRY) -> RunResult:
    """Carry the run out, holding it (one process at a time; its files checked first)."""
    with acting(run, "apply"):
        return Executor(run, backend, on_event=on_event, poll_s=poll_s,
                        catalog=catalog, telemetry=telemetry).execute()


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
            bar["outcome"] = ("failed" if result and result.status is not RunStatus.COMPLETED
                              else "running")
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
        "gates": [{"step": g.step_id, "gate": g.gate, "phase": g.phase, "message": g.message,
                   "at": g.at} for g in j.gates()],
        "judgements": latest_judgements(j),
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
