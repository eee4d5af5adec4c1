"""Measuring a step's gates through the backend and deciding with analysis semantics.

Every gate — a step's built-in gates (``Gate.kind``) and the policy's custom gates for the
step's phase (kind ``threshold``) — is measured by its provider from the registry
(:data:`pitstop.gates.PROVIDERS`): ``count`` times ``interval`` seconds apart, each reading
judged by the same analysis (success and failure conditions) into a metric run with its
failure, inconclusive and consecutive-error limits. The step's verdict is the worst of its
gates. Successful → proceed; Inconclusive → pause; Failed or Error → roll back (an Error means
the check itself broke, and is reported as such, apart from Failed).

This module reads what a provider asks for from the backend and passes it in; it knows no gate
kind by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pitstop.backend import Backend
from pitstop.backend.metrics import metric_source
from pitstop.gates import (
    PROMETHEUS,
    PROVIDERS,
    THRESHOLD,
    CheckResult,
    Condition,
    ConditionError,
    Decision,
    GateContext,
    GateProvider,
    MetricRun,
    MetricSpec,
    Phase,
    Reading,
    UnknownGateKind,
    decide,
    run_verdict,
)
from pitstop.gates.judging import CANARY_JUDGE, JUDGEMENT, judge_conditions, judge_params
from pitstop.gates.promql import TemplateError, template
from pitstop.model import CanaryJudgePolicy, CustomGate, GateTiming
from pitstop.planner.plan import Phase as StepPhase
from pitstop.planner.plan import Step

__all__ = ["GATE_SPECS", "GateOutcome", "GateStatus", "evaluate_gates", "gate_spec",
           "gate_summary", "judged"]

GATE_SPECS: Mapping[str, tuple[float, int, int]] = {
    kind: (p.defaults.interval_s, p.defaults.count, p.defaults.failure_limit)
    for kind, p in PROVIDERS.items()}
"""(interval seconds, count, failure limit) per gate kind, as the registry's providers say."""


@dataclass(frozen=True, slots=True)
class GateStatus:
    """Where one gate of a step ended: its metric run's status, and the message of the
    measurement that decided it (the last one that had that phase)."""

    name: str
    kind: str
    status: Phase
    message: str
    spec: MetricSpec
    measurements: int
    failed: int = 0
    inconclusive: int = 0
    consecutive_errors: int = 0
    evidence: Any = None  # what the provider kept beside its readings (the judge's result)


@dataclass
class GateOutcome:
    decision: Decision
    results: list[CheckResult]
    summary: str
    verdict: Phase = Phase.SUCCESSFUL
    gates: list[GateStatus] = field(default_factory=list)


def gate_spec(kind: str, poll_s: float,
              timing: Mapping[Any, GateTiming] | None = None) -> tuple[float, int, int]:
    """(interval seconds, count, failure limit) of a built-in gate kind: the policy's
    ``gateTiming`` where it says, else the provider's defaults (``poll_s``, 1, 0 for a kind
    with no provider)."""
    spec = _builtin_spec(kind, kind, poll_s, timing, PROVIDERS)
    return spec.interval_s, spec.count, spec.failure_limit


def _once(name: str, poll_s: float) -> MetricSpec:
    """The spec of a gate that cannot be measured: its first Error decides."""
    return MetricSpec(name=name, interval_s=poll_s, count=1, consecutive_error_limit=0)


def _builtin_spec(name: str, kind: str, poll_s: float, timing: Mapping[Any, GateTiming] | None,
                  registry: Mapping[str, GateProvider]) -> MetricSpec:
    p = registry.get(kind)
    if p is None:
        return _once(name, poll_s)
    t = (timing or {}).get(kind)
    if t is None:
        return p.defaults.spec(name)
    return p.defaults.spec(
        name, interval_s=t.interval.total_seconds() if t.interval is not None else None,
        count=t.count, failure_limit=t.failure_limit,
        consecutive_error_limit=t.consecutive_error_limit)


def _builtin(name: str, kind: str, poll_s: float, timing: Mapping[Any, GateTiming] | None,
             registry: Mapping[str, GateProvider]) -> _Gate:
    run = MetricRun(_builtin_spec(name, kind, poll_s, timing, registry))
    if kind not in registry:  # measuring again cannot help
        return _Gate(name, kind, run, broken=f"cannot tell: {UnknownGateKind(kind, registry)}")
    return _Gate(name, kind, run)


def _custom_params(gate: CustomGate) -> tuple[str, dict[str, str]]:
    """The provider kind of a custom gate and its parameters: ``threshold`` (a named metric)
    or ``prometheus`` (``query`` or ``template``, a range's window and step in seconds,
    ``reduce`` and ``emptyResult`` when given)."""
    if gate.metric is not None:
        return THRESHOLD, {"metric": gate.metric}
    params = {k: v for k, v in (("query", gate.query), ("template", gate.template),
                                ("reduce", gate.reduce), ("empty", gate.empty_result))
              if v is not None}
    if gate.range is not None:
        params["window"] = f"{gate.range.window.total_seconds():g}"
        params["step"] = f"{gate.range.step.total_seconds():g}"
    return PROMETHEUS, params


def _custom(gate: CustomGate, poll_s: float, registry: Mapping[str, GateProvider]) -> _Gate:
    """A custom gate: a ``threshold`` metric or a ``prometheus`` query. A condition that does
    not parse or an unknown template (a policy that did not come through the command line's
    checks) makes it Error at once, naming it."""
    kind, params = _custom_params(gate)
    try:
        spec = _custom_spec(gate)
    except (ConditionError, TemplateError) as exc:
        return _Gate(gate.name, kind, MetricRun(_once(gate.name, poll_s)), params,
                     broken=f"cannot tell: {exc}")
    if kind not in registry:
        return _Gate(gate.name, kind, MetricRun(_once(gate.name, poll_s)), params,
                     broken=f"cannot tell: {UnknownGateKind(kind, registry)}")
    return _Gate(gate.name, kind, MetricRun(spec), params)


def _custom_spec(gate: CustomGate) -> MetricSpec:
    """A custom gate's metric spec: everything comes from the policy; a template's gate
    keeps the template's success or failure condition where the gate gives none."""
    success, failure = gate.success, gate.failure_condition
    if gate.template is not None:
        t = template(gate.template)
        success = success if success is not None else t.success
        failure = failure if failure is not None else t.failure
    return MetricSpec(
        name=gate.name, interval_s=gate.interval.total_seconds(), count=gate.count,
        failure_limit=gate.failure_limit, inconclusive_limit=gate.inconclusive_limit,
        consecutive_error_limit=gate.consecutive_error_limit,
        success=Condition.parse(success) if success is not None else None,
        failure=Condition.parse(failure) if failure is not None else None)


def judged(step: Step, judge: CanaryJudgePolicy | None) -> bool:
    """Whether the policy's canary judge gates ``step``: a canary node step."""
    return judge is not None and step.canary and str(step.phase) == str(StepPhase.NODES)


def _judge_gate(judge: CanaryJudgePolicy, poll_s: float,
                registry: Mapping[str, GateProvider]) -> _Gate:
    """The canary judge after a canary node step: timing from ``spec.canaryJudge``, the
    score judged by its thresholds."""
    success, failure = judge_conditions(judge.judge)
    spec = MetricSpec(name=CANARY_JUDGE, interval_s=judge.interval.total_seconds(),
                      count=judge.count, success=success, failure=failure)
    if CANARY_JUDGE not in registry:
        return _Gate(CANARY_JUDGE, CANARY_JUDGE, MetricRun(_once(CANARY_JUDGE, poll_s)),
                     broken=f"cannot tell: {UnknownGateKind(CANARY_JUDGE, registry)}")
    return _Gate(CANARY_JUDGE, CANARY_JUDGE, MetricRun(spec), judge_params(judge))


@dataclass
class _Gate:
    name: str
    kind: str
    run: MetricRun
    params: Mapping[str, str] = field(default_factory=dict)
    broken: str | None = None  # why it cannot be measured at all: Error at once
    memo: dict[str, Any] = field(default_factory=dict)
    taken: int = 0
    due: float = 0.0

    @property
    def budget(self) -> int:
        """Measurements at most: twice the count plus the error limit, plus one."""
        return 2 * self.run.spec.count + self.run.spec.consecutive_error_limit + 1


def _read(backend: Backend, step: Step, gate: _Gate, provider: GateProvider,
          targets: Sequence[str]) -> Reading:
    ctx = GateContext(
        gate=gate.name, step=step, targets=tuple(targets), now=backend.clock.now(),
        observation=backend.observe(step.cluster) if "observation" in provider.reads else None,
        health=backend.health(step.cluster) if "health" in provider.reads else None,
        metrics=metric_source(backend) if "metrics" in provider.reads else None,
        params=gate.params, memo=gate.memo)
    return provider.measure(ctx)


def evaluate_gates(backend: Backend, step: Step, targets: list[str], poll_s: float,
                   custom: Sequence[CustomGate] = (),
                   timing: Mapping[Any, GateTiming] | None = None,
                   sleep: Callable[[float], None] | None = None, *,
                   providers: Mapping[str, GateProvider] | None = None,
                   judge: CanaryJudgePolicy | None = None) -> GateOutcome:
    """Measure every gate of ``step`` and the policy's custom gates for its phase
    (interval × count; built-in gates as ``timing`` — the policy's ``gateTiming`` — says)
    and decide. ``sleep`` waits between measurements (default: the backend's clock; the
    executor passes its own when clusters share the clock). ``providers`` replaces the
    registry (tests). ``judge`` (the policy's ``spec.canaryJudge``) adds the canary judge to
    a canary node step."""
    registry = PROVIDERS if providers is None else providers
    wait_for = sleep if sleep is not None else backend.clock.sleep
    gates = [_builtin(g.name, g.kind, poll_s, timing, registry) for g in step.gates]
    gates += [_custom(c, poll_s, registry) for c in custom if str(step.phase) in c.phases]
    if judge is not None and judged(step, judge):
        gates.append(_judge_gate(judge, poll_s, registry))
    results: list[CheckResult] = []
    # Each metric is measured every ``interval`` seconds (its own, as in Argo Rollouts) until
    # it decides: ``count`` measurements, or too many consecutive Errors (Errors do not count).
    # At most ``budget`` times; still running then → pause.
    start = backend.clock.now()
    for g in gates:
        g.due = start
    while True:
        live = [g for g in gates
                if decide(g.run.status()) is Decision.WAIT and g.taken < g.budget]
        if not live:
            break
        wait = min(g.due for g in live) - backend.clock.now()
        if wait > 0:
            wait_for(wait)
        now = backend.clock.now()
        for g in live:
            if g.due > now:
                continue
            provider = registry.get(g.kind)
            if g.broken is not None or provider is None:
                reading = Reading.broken(g.broken or f"cannot tell: no provider for {g.kind}")
            else:
                try:
                    reading = _read(backend, step, g, provider, targets)
                except Exception as exc:  # the check broke: Error, never Failed
                    reading = Reading.broken(f"check could not run: {exc}")
            m = g.run.take(reading, backend.clock.now())
            results.append(CheckResult(g.name, m.phase, m.value, m.message))
            g.taken += 1
            g.due = now + g.run.spec.interval_s
    statuses = [_status(g) for g in gates]
    verdict = run_verdict(s.status for s in statuses)
    decision = decide(verdict)
    if decision is Decision.WAIT:
        decision = Decision.PAUSE
    return GateOutcome(decision, results, gate_summary(statuses, verdict), verdict, statuses)


def _status(g: _Gate) -> GateStatus:
    run = g.run
    status = run.status()
    ms = run.measurements
    # the measurement that decided: the last one with the run's phase (any, while undecided)
    deciding = next((m for m in reversed(ms) if m.phase is status), ms[-1] if ms else None)
    return GateStatus(g.name, g.kind, status, deciding.message if deciding else "", run.spec,
                      len(ms), run.failed, run.inconclusive, run.consecutive_errors,
                      g.memo.get(JUDGEMENT))


def _describe(g: GateStatus) -> str:
    if g.status is Phase.SUCCESSFUL:
        return f"{g.name} Successful"
    detail = g.message
    if g.status is Phase.FAILED and g.failed > 1:
        detail = f"{g.failed} failed, limit {g.spec.failure_limit}; last: {detail}"
    elif g.status is Phase.INCONCLUSIVE and g.inconclusive > 1:
        detail = (f"{g.inconclusive} inconclusive, limit {g.spec.inconclusive_limit}; "
                  f"last: {detail}")
    elif g.status is Phase.ERROR and g.consecutive_errors > 1:
        detail = f"{g.consecutive_errors} errors in a row; last: {detail}"
    if not g.status.concluded:
        what = (f"undecided after {g.measurements} measurement(s)" if g.measurements
                else "not measured")
        return f"{g.name} {what}" + (f" ({detail})" if detail else "")
    return f"{g.name} {g.status}" + (f" ({detail})" if detail else "")


def gate_summary(gates: Sequence[GateStatus], verdict: Phase) -> str:
    """Which gate decided and the state of each, the deciding ones first: e.g.
    ``canary-analysis Failed (error_rate 0.25 vs error_rate_baseline 0.002: ratio 125,
    limit 2); nodes-ready Successful``. ``no gates`` for a step without any."""
    if not gates:
        return "no gates"
    deciding = verdict is not Phase.SUCCESSFUL
    first = [g for g in gates if deciding and g.status is verdict]
    rest = sorted((g for g in gates if not (deciding and g.status is verdict)),
                  key=lambda g: -g.status.severity)
    return "; ".join(_describe(g) for g in first + rest)
