"""Gates measured through the registry on the twin: a custom gate that is Inconclusive pauses
the run, one whose metric is missing is an Error (not Failed), a gate kind without a provider
is an Error naming it, and the step's gate summary says which gate decided and the state of
each."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pitstop.executor.core import Executor
from pitstop.executor.gating import GateStatus, evaluate_gates, gate_summary
from pitstop.gates import (
    PROVIDERS,
    CheckProvider,
    Decision,
    GateContext,
    GateDefaults,
    MetricSpec,
    Phase,
    Reading,
)
from pitstop.model import CustomGate, Fleet, GateTiming, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.planner.plan import Gate, Step
from pitstop.twin import Twin

from .test_executor import CAT, START, TARGET, fleet_doc, run_on_twin


def _twin_and_steps(tmp: Path) -> tuple[Twin, list[Step]]:
    fleet = Fleet.model_validate(fleet_doc())
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    twin = Twin.create(fleet, seed=1, state_path=tmp / "twin.sqlite", start=START.timestamp())
    return twin, list(plan.steps)


def _first_cp_step(steps: list[Step]) -> Step:
    return next(s for s in steps if str(s.phase) == "control-plane")


def _gate(**kw: Any) -> CustomGate:
    return CustomGate.model_validate({"name": "error-budget", "metric": "error_rate",
                                      "phases": ["control-plane"], "interval": "30s", **kw})


# -- through the executor ----------------------------------------------------------------------


def test_a_custom_gate_meeting_neither_condition_is_inconclusive_and_pauses(
        tmp_path: Path) -> None:
    gate = {"name": "error-budget", "metric": "error_rate", "successCondition": "result <= 0.01",
            "failureCondition": "result > 0.1", "phases": ["nodes"], "count": 2}
    result, twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"gates": [gate], "pools": [{"canaryNodes": 0}]},
        faults=[{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.05}])
    assert result.status == "paused", result.reason
    step = next(s for s in run.plan.steps if str(s.phase) == "nodes")
    assert run.journal.step(step.id).status == "paused"
    assert result.reason.startswith(
        f"step {step.id}: gate inconclusive — error-budget Inconclusive (error_rate = 0.05: "
        "neither 'result <= 0.01' nor 'result > 0.1' holds); nodes-ready Successful; "
        "workloads-available Successful."), result.reason
    assert ("error-budget", "Inconclusive") in {(g[1], g[2]) for g in run.journal.gates()}
    # nothing was rolled back: the upgraded nodes stay upgraded, waiting for a person
    upgraded = [n for n in twin.observe("c1").nodes if n.kubelet == "1.36.5"]
    assert upgraded and all(not n.unschedulable for n in upgraded)
    # resume measures the gates again (the step's work is not redone) and pauses again
    upgrades = [a for a in run.journal.actions(step.id) if a.kind == "upgrade"]
    again = Executor(run, twin).execute()
    assert again.status == "paused" and "error-budget Inconclusive" in again.reason
    assert [a for a in run.journal.actions(step.id) if a.kind == "upgrade"] == upgrades


def test_a_custom_gate_on_a_missing_metric_is_an_error_not_a_failure(tmp_path: Path) -> None:
    gate = {"name": "p99", "metric": "latency_p99_ms", "failureCondition": "result > 500",
            "phases": ["control-plane"], "count": 1}
    result, _, run = run_on_twin(tmp_path, fleet_doc(), policy_spec={"gates": [gate]})
    assert result.status == "rolled-back", result.reason
    first = run.plan.steps[0].id
    assert result.reason.startswith(
        f"step {first}: p99 Error (5 errors in a row; last: cannot tell: no latency_p99_ms "
        "reported); apiserver-ready Successful;"), result.reason
    phases = [g[2] for g in run.journal.gates() if g[1] == "p99"]
    assert phases == ["Error"] * 5  # consecutiveErrorLimit 4: the fifth in a row decides
    assert "Failed" not in result.reason


def test_the_gate_summary_says_which_gate_decided_and_the_state_of_each(
        tmp_path: Path) -> None:
    result, _, run = run_on_twin(
        tmp_path, fleet_doc(),
        faults=[{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.25}])
    assert result.status == "rolled-back", result.reason
    canary = next(s for s in run.plan.steps if s.canary)
    assert [g.name for g in canary.gates] == ["nodes-ready", "workloads-available",
                                              "canary-analysis"]
    assert result.reason.startswith(
        f"step {canary.id}: canary-analysis Failed (error_rate 0.25 vs error_rate_baseline "
        "0.002: ratio 125, limit 2); nodes-ready Successful; workloads-available Successful; "
        "wave staging rolled back"), result.reason


# -- evaluate_gates on the twin ----------------------------------------------------------------


def test_a_gate_kind_without_a_provider_is_an_error_naming_it(tmp_path: Path) -> None:
    twin, steps = _twin_and_steps(tmp_path)
    step = dataclasses.replace(_first_cp_step(steps),
                               gates=(Gate("lease-held", "controller-leases", "leases"),))
    outcome = evaluate_gates(twin, step, list(step.targets), 10.0)
    assert (outcome.verdict, outcome.decision) == (Phase.ERROR, Decision.ROLLBACK)
    assert len(outcome.results) == 1  # decided at once: measuring again cannot help
    assert outcome.summary.startswith(
        "lease-held Error (cannot tell: no gate provider for kind 'controller-leases' "
        "(known kinds: addon-health, apiserver-health, canary,"), outcome.summary


def test_a_provider_that_raises_is_an_error_and_gate_timing_sets_its_error_limit(
        tmp_path: Path) -> None:
    twin, steps = _twin_and_steps(tmp_path)
    step = dataclasses.replace(_first_cp_step(steps),
                               gates=(Gate("canary-analysis", "canary", "ratio"),))

    def broken(ctx: GateContext) -> Reading:
        raise RuntimeError(f"prometheus at {ctx.step.cluster}: 503")

    registry = dict(PROVIDERS)
    registry["canary"] = CheckProvider("canary", frozenset({"health"}),
                                       GateDefaults(5.0, 3), broken)
    outcome = evaluate_gates(twin, step, list(step.targets), 10.0,
                             timing={"canary": GateTiming(consecutive_error_limit=1)},
                             providers=registry)
    assert outcome.verdict is Phase.ERROR
    assert [r.phase for r in outcome.results] == [Phase.ERROR, Phase.ERROR]
    assert outcome.summary == ("canary-analysis Error (2 errors in a row; last: check could "
                               "not run: prometheus at c1: 503)")


@pytest.mark.parametrize(("kw", "verdict", "measured"), [
    # the twin's error_rate is its baseline, 0.002: between the two conditions
    ({"successCondition": "result <= 0.001", "failureCondition": "result > 0.01",
      "count": 3}, Phase.INCONCLUSIVE, 1),
    ({"successCondition": "result <= 0.001", "failureCondition": "result > 0.01",
      "count": 3, "inconclusiveLimit": 3}, Phase.SUCCESSFUL, 3),  # Argo: they count
    ({"successCondition": "result <= 0.001", "failureCondition": "result > 0.01",
      "count": 3, "inconclusiveLimit": 1}, Phase.INCONCLUSIVE, 2),
    ({"condition": "result <= 0.001", "count": 3}, Phase.FAILED, 1),  # the older name
    ({"failureCondition": "result > 0.001", "count": 2, "failureLimit": 1}, Phase.FAILED, 2),
    ({"failureCondition": "result > 0.01", "count": 2}, Phase.SUCCESSFUL, 2),
])
def test_custom_gates_are_judged_by_the_analysis(tmp_path: Path, kw: dict[str, Any],
                                                  verdict: Phase, measured: int) -> None:
    twin, steps = _twin_and_steps(tmp_path)
    step = dataclasses.replace(_first_cp_step(steps), gates=())
    outcome = evaluate_gates(twin, step, list(step.targets), 10.0, custom=[_gate(**kw)])
    assert outcome.verdict is verdict, outcome.summary
    assert len(outcome.results) == measured
    assert {r.value for r in outcome.results} == {0.002}


def test_a_custom_gate_whose_condition_does_not_parse_is_an_error_at_once(
        tmp_path: Path) -> None:
    # a policy built in code skips the command line's load-time check of the conditions
    twin, steps = _twin_and_steps(tmp_path)
    step = dataclasses.replace(_first_cp_step(steps), gates=())
    outcome = evaluate_gates(twin, step, list(step.targets), 10.0,
                             custom=[_gate(failureCondition="result >> 1")])
    assert (outcome.verdict, len(outcome.results)) == (Phase.ERROR, 1)
    assert outcome.summary == ("error-budget Error (cannot tell: condition 'result >> 1': "
                               "expected 'result' or a number, found '>' at column 9)")


def test_custom_gates_of_other_phases_are_not_measured(tmp_path: Path) -> None:
    twin, steps = _twin_and_steps(tmp_path)
    step = dataclasses.replace(_first_cp_step(steps), gates=())
    gate = CustomGate.model_validate({"name": "g", "metric": "error_rate",
                                      "failureCondition": "result > 0", "phases": ["nodes"]})
    outcome = evaluate_gates(twin, step, list(step.targets), 10.0, custom=[gate])
    assert (outcome.verdict, outcome.results, outcome.summary) == (
        Phase.SUCCESSFUL, [], "no gates")


# -- the summary -------------------------------------------------------------------------------


def _status(name: str, status: Phase, message: str = "", **kw: Any) -> GateStatus:
    spec = MetricSpec(name, interval_s=10, count=3, failure_limit=kw.pop("failure_limit", 0))
    return GateStatus(name, "k", status, message, spec, kw.pop("measurements", 1), **kw)


def test_gate_summary_orders_the_deciding_gates_first() -> None:
    gates = [_status("nodes-ready", Phase.SUCCESSFUL, "fine"),
             _status("etcd-healthy", Phase.ERROR, "cannot tell: no quota"),
             _status("canary-analysis", Phase.FAILED, "ratio 3, limit 2", failed=2,
                     failure_limit=1),
             _status("addon", Phase.FAILED, "coredns reports 1.11")]
    assert gate_summary(gates, Phase.FAILED) == (
        "canary-analysis Failed (2 failed, limit 1; last: ratio 3, limit 2); addon Failed "
        "(coredns reports 1.11); etcd-healthy Error (cannot tell: no quota); nodes-ready "
        "Successful")
    assert gate_summary(gates[:1], Phase.SUCCESSFUL) == "nodes-ready Successful"
    undecided = [_status("p99", Phase.RUNNING, "cannot tell: no p99", measurements=7)]
    assert gate_summary(undecided, Phase.RUNNING) == (
        "p99 undecided after 7 measurement(s) (cannot tell: no p99)")
    assert gate_summary([], Phase.SUCCESSFUL) == "no gates"
