"""Runs from the command line: rehearse / apply on the twin, apply on hosts, resume, status,
control requests, and assembling the report of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pitstop.backend import Backend
from pitstop.catalog import Catalog
from pitstop.config import LoadedConfig
from pitstop.errors import ConfigError, ConfigProblem, PitstopError
from pitstop.executor.core import Executor, RunResult
from pitstop.executor.run import RunDir, create_run, open_run
from pitstop.hosts.backend import HostsBackend, plan_problems
from pitstop.model import Fleet, UpgradePolicy
from pitstop.model.common import Metadata
from pitstop.model.faults import FaultScenario
from pitstop.planner import Plan, make_plan
from pitstop.twin import Twin

__all__ = ["Rehearsal", "open_backend", "report_data", "start_hosts_run", "start_run"]


class RunRefused(PitstopError):
    exit_code = 1


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
    assert cfg.fleet is not None
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    run = create_run(runs_dir, plan, policy, labels,
                     {**HostsBackend.run_record(), "mode": "apply"}, run_id=run_id)
    return run, HostsBackend.create(run.path, cfg.hosts, cfg.fleet)


def open_backend(run: RunDir) -> Backend:
    """The backend of an existing run, from what its directory holds."""
    kind = run.backend.get("kind")
    if kind == "twin":
        return Twin.open(run.path / str(run.backend["state"]))
    if kind == "hosts":
        return HostsBackend.open(run.path)
    raise RunRefused(f"run {run.run_id} uses backend {kind!r}, which this build cannot drive "
                     "(it drives the twin and hosts)")


def execute(run: RunDir, backend: Backend, on_event: Callable[[str, dict[str, Any]], None]
            | None = None) -> RunResult:
    return Executor(run, backend, on_event=on_event).execute()


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
    for a in j.actions():
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
        "stalls": [],
        "stories": stories or [],
        "summary": {"makespanSeconds": (finished - started) if finished else 0.0,
                    "minAvailability": min_av, "evictions": evictions,
                    "refusals429": refusals},
    }


def load_run(path: str) -> RunDir:
    return open_run(Path(path))
