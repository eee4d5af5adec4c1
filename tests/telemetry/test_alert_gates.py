"""Alert gates through the executor on the twin, the alerts from a real Prometheus (its rule
fires while the test sets ``pitstop_test_alert_trigger`` above 0): a firing alert pauses the
run before the step or before the next node, naming it; with ``resumeWhenClear`` the run waits
and goes on once it cleared, or pauses when ``maxWait`` runs out. The waits are on the twin's
clock; each test makes the real alert fire or clear at the n-th time the executor asks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.prometheus import ALERT, Prometheus, wait_for

from pitstop.backend.metrics import FiringAlert
from pitstop.executor.core import Executor, RunResult
from pitstop.executor.run import create_run
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.telemetry import PrometheusEndpoint, PrometheusSource
from pitstop.twin import Twin
from tests.executor.test_executor import CAT, START, TARGET, fleet_doc
from tests.telemetry.backends import WithoutMetrics

WAIT_S = 30.0


def set_alert(prom: Prometheus, firing: bool) -> None:
    """Make the real alert fire (or clear) and wait, bounded, until Prometheus says so."""
    prom.metrics.set("pitstop_test_alert_trigger", 1.0 if firing else 0.0)
    wait_for(lambda: (ALERT in prom.firing()) == firing, WAIT_S,
             f"{ALERT} {'fires' if firing else 'clears'}")


class ScriptedAlerts:
    """The real Prometheus source; before the n-th ``alerts`` call (1-based) the real alert is
    made to fire or clear as ``script[n]`` says."""

    def __init__(self, prom: Prometheus, script: dict[int, bool]) -> None:
        self.prom = prom
        self.inner = PrometheusSource({"c1": PrometheusEndpoint(prom.url)})
        self.script = script
        self.calls = 0
        self.name = self.inner.name
        self.instant = self.inner.instant
        self.range = self.inner.range

    def alerts(self, cluster: str) -> tuple[FiringAlert, ...]:
        self.calls += 1
        if self.calls in self.script:
            set_alert(self.prom, self.script[self.calls])
        return self.inner.alerts(cluster)


class WithMetrics:
    def __init__(self, twin: Twin, metrics: Any) -> None:
        self._twin = twin
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin, name)


def run_with_alerts(tmp: Path, prom: Prometheus, script: dict[int, bool],
                    **gate: Any) -> tuple[RunResult, Twin, Any, ScriptedAlerts]:
    set_alert(prom, False)
    fleet = Fleet.model_validate(fleet_doc(nodes=3))
    spec = {"pools": [{"canaryNodes": 0}], "alertGates": [{
        "name": "hold-on-critical", "alertNames": [ALERT],
        "matchLabels": {"severity": "critical"}, "phases": ["nodes"], **gate}]}
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    run = create_run(tmp, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    source = ScriptedAlerts(prom, script)
    try:
        result = Executor(run, WithMetrics(twin, source)).execute()  # type: ignore[arg-type]
    finally:
        set_alert(prom, False)
    return result, twin, run, source


def audit_actions(run: Any) -> list[str]:
    lines = (run.path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line)["action"] for line in lines]


def upgraded(twin: Twin) -> list[str]:
    return sorted(n.name for n in twin.observe("c1").nodes if n.kubelet == "1.36.5")


def test_a_firing_alert_pauses_before_the_first_node_step(
        tmp_path: Path, prometheus: Prometheus) -> None:
    result, twin, run, source = run_with_alerts(tmp_path, prometheus, {1: True})
    assert result.status == "paused", result.reason
    assert ALERT in result.reason and "gate hold-on-critical" in result.reason
    assert "not started" in result.reason and "pitstop resume" in result.reason
    assert upgraded(twin) == [] and source.calls == 1
    assert "alert-pause" in audit_actions(run)


def test_an_alert_that_fires_during_a_node_step_holds_its_next_node(
        tmp_path: Path, prometheus: Prometheus) -> None:
    # call 1: before the step (quiet); call 2: before its first node (quiet); call 3: the
    # next admission round — by then the first node is upgraded or in flight
    result, twin, _run, source = run_with_alerts(tmp_path, prometheus, {3: True})
    assert result.status == "paused", result.reason
    assert "the next node of step" in result.reason and ALERT in result.reason
    done = upgraded(twin)
    assert 1 <= len(done) < 3, done  # some nodes, not all
    assert source.calls >= 3


def test_resume_when_clear_waits_and_goes_on_once_cleared(
        tmp_path: Path, prometheus: Prometheus) -> None:
    result, twin, run, _source = run_with_alerts(
        tmp_path, prometheus, {1: True, 3: False}, resumeWhenClear=True, interval="30s",
        maxWait="10m")
    assert result.status == "completed", result.reason
    actions = audit_actions(run)
    assert "alert-wait" in actions and "alerts-cleared" in actions
    assert "alert-pause" not in actions
    assert upgraded(twin) == ["n0", "n1", "n2"]


def test_resume_when_clear_pauses_when_max_wait_runs_out(
        tmp_path: Path, prometheus: Prometheus) -> None:
    result, twin, _run, source = run_with_alerts(
        tmp_path, prometheus, {1: True}, resumeWhenClear=True, interval="30s", maxWait="1m")
    assert result.status == "paused", result.reason
    assert "after waiting 60s" in result.reason and ALERT in result.reason
    assert source.calls == 3  # at 0s, 30s, 60s
    assert upgraded(twin) == []


def test_without_a_metric_source_alert_gates_pause_naming_what_to_configure(
        tmp_path: Path) -> None:
    fleet = Fleet.model_validate(fleet_doc(nodes=3))
    spec = {"alertGates": [{"name": "any", "phases": ["nodes"]}]}
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": spec})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    run = create_run(tmp_path, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    result = Executor(run, WithoutMetrics(twin)).execute()  # type: ignore[arg-type]
    assert result.status == "paused"
    assert "telemetry.prometheus.url" in result.reason
