"""The metrics of runs that go wrong, read from pitstop's registry after the real executor ran
on the twin in-process: a failed runtime upgrade (gate verdict, rollback, time to restore) and
a drain held by a PodDisruptionBudget (refused evictions, stall seconds — against the run
result's own account of the stalls)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pitstop.cli.runs import drain_stalls
from pitstop.executor.core import Executor
from pitstop.executor.run import create_run
from pitstop.model import FaultScenario, Fleet, UpgradePolicy, UpgradeTarget
from pitstop.observe.backend import TracedBackend
from pitstop.observe.session import Session, TelemetryOptions
from pitstop.planner import make_plan
from pitstop.twin import Twin
from tests.executor.test_executor import CAT, START, TARGET, fleet_doc


def _run(tmp: Path, fleet_d: dict[str, Any], faults: list[dict[str, Any]] | None,
         policy: dict[str, Any] | None = None) -> tuple[Any, Session, Any]:
    fleet = Fleet.model_validate(fleet_d)
    pol = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": policy or {}})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}), pol,
                     CAT, now=START)
    run = create_run(tmp, plan, pol, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    fs = FaultScenario.model_validate({"metadata": {"name": "f"},
                                       "spec": {"faults": faults}}) if faults else None
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite", faults=fs,
                       start=START.timestamp())
    session = Session(run.run_id, TelemetryOptions(), stream=io.StringIO()).open()
    try:
        result = Executor(run, TracedBackend(twin, session), on_event=session.on_event,
                          telemetry=session).execute()
    finally:
        session.close()
    return result, session, run


def _value(session: Session, name: str, **labels: str) -> float:
    got = session.metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_a_failed_upgrade_counts_its_verdict_rollback_and_time_to_restore(
        tmp_path: Path) -> None:
    result, s, run = _run(tmp_path, fleet_doc(),
                          [{"type": "runtimeUpgradeFails", "nodes": ["n1"]}])
    assert result.status == "rolled-back", result.reason
    assert _value(s, "pitstop_runs", status="rolled-back") == 1
    assert _value(s, "pitstop_runs", status="running") == 0
    assert _value(s, "pitstop_rollbacks_total") == 1
    assert _value(s, "pitstop_restore_duration_seconds_count") == 1
    assert _value(s, "pitstop_restore_duration_seconds_sum") > 0
    assert _value(s, "pitstop_node_job_duration_seconds_count", outcome="failed") == 1
    # the step that failed, and every step done before it (their journal rows, not ours:
    # the failed step and the wave's done ones are rolled-back now)
    assert _steps(s, "failed") == 1
    assert _steps(s, "done") + 1 == sum(1 for r in run.journal.steps()
                                        if r.status in ("done", "rolled-back"))
    assert _steps(s, "done") > 0


def _steps(session: Session, outcome: str) -> float:
    return sum(v.value for m in session.metrics.registry.collect()
               if m.name == "pitstop_step_duration_seconds"
               for v in m.samples if v.name.endswith("_count")
               and v.labels.get("outcome") == outcome)


def test_a_drain_held_by_a_pdb_counts_refusals_and_stall_seconds(tmp_path: Path) -> None:
    pdbs = [{"name": "web", "namespace": "a", "maxUnavailable": 0,
             "selector": {"matchLabels": {"app": "web"}}}]
    result, s, run = _run(tmp_path, fleet_doc(pdbs=pdbs), None)
    assert result.status == "paused", result.reason
    assert _value(s, "pitstop_runs", status="paused") == 1
    assert _value(s, "pitstop_evictions_total", answer="budget-exhausted") > 0
    assert _value(s, "pitstop_node_job_duration_seconds_count", outcome="blocked") == 1
    stalls = drain_stalls(run.journal.actions(), {st.id: st.cluster for st in run.plan.steps})
    assert stalls and stalls[0]["seconds"] > 0
    assert abs(_value(s, "pitstop_drain_stall_seconds_total")
               - sum(x["seconds"] for x in stalls)) < 1e-6
