"""Gate providers: one per gate kind, in one registry.

A provider measures one gate once. It is given a :class:`GateContext` — what the backend
reported (the observation, the health signals: whatever the provider says it :attr:`reads
<GateProvider.reads>`), the step and its targets, the gate's parameters and a memo kept across
the gate's measurements — and returns a :class:`~pitstop.gates.analysis.Reading`: a value with
optional evidence text, or an error (the check broke). It does not judge: every gate, built-in
or custom, is judged by the same analysis (:func:`~pitstop.gates.analysis.judge_reading`, the
success and failure conditions, a :class:`~pitstop.gates.analysis.MetricRun` with its limits).

The built-in checks of :mod:`~pitstop.gates.checks` judge several signals at once, so their
providers read the number of problems a check found, with its message as evidence, under the
failure condition ``result > 0``; a check that could not tell is an error reading. The canary
provider reads the canary-to-baseline ratio under ``result > 2``. The ``canary-judge``
provider (:mod:`~pitstop.gates.judging`) reads the statistical judge's score under the policy's
thresholds (Successful at ``pass``, Failed below ``marginal``, Inconclusive between). A custom
``spec.gates`` entry is a ``threshold`` provider: it reads the named metric, and the gate's own
conditions judge it.

**A new provider goes in this file**: write its ``measure`` function and add one entry to
:data:`PROVIDERS`. The executor (``executor/gating.py``) dispatches through the registry only.
Providers stay pure: a provider that needs a new signal (a Prometheus query, samples for a
statistical judge) gets it through the backend, which the executor reads and passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from pitstop.backend.api import ClusterObservation, HealthSignals
from pitstop.backend.metrics import MetricQuery, MetricQueryError, MetricSource
from pitstop.gates.analysis import CheckResult, MetricSpec, Phase, Reading
from pitstop.gates.checks import (
    addon_rolled_out,
    apiserver_health,
    canary_vs_baseline,
    etcd_health,
    nodes_ready,
    pods_pending,
    track_pending,
    workloads_available,
)
from pitstop.gates.condition import Condition
from pitstop.gates.judging import CANARY_JUDGE, measure_judge, policy_from
from pitstop.gates.promql import (
    EMPTY_RESULTS,
    REDUCERS,
    TemplateError,
    fill,
    reduce_values,
    step_fills,
    template,
)
from pitstop.planner.plan import Step

__all__ = [
    "CANARY_MAX_RATIO",
    "MAX_APISERVER_LATENCY_MS",
    "MAX_PENDING_S",
    "PROMETHEUS",
    "PROVIDERS",
    "THRESHOLD",
    "CheckProvider",
    "GateContext",
    "GateDefaults",
    "GateProvider",
    "Read",
    "UnknownGateKind",
    "from_check",
    "provider_for",
]

MAX_APISERVER_LATENCY_MS = 1000.0
MAX_PENDING_S = 300.0
CANARY_MAX_RATIO = 2.0
THRESHOLD = "threshold"
"""The kind of a custom ``spec.gates`` entry: a metric judged by the gate's own conditions."""
PROMETHEUS = "prometheus"
"""The kind of a ``spec.gates`` entry with ``query`` or ``template``: PromQL asked of the
cluster's Prometheus (docs/prometheus-gates.md)."""

Read = Literal["observation", "health", "metrics"]
"""What a provider needs the executor to read from the backend before each measurement:
``observation`` (:meth:`Backend.observe`), ``health`` (:meth:`Backend.health`), or
``metrics``: the backend's :class:`~pitstop.backend.metrics.MetricSource`, which the provider
asks its queries (a provider with ``metrics`` in its reads and no source gets None, and must
return an Error reading naming what to configure)."""


@dataclass(frozen=True, slots=True)
class GateContext:
    """Everything one measurement of one gate may look at. ``observation`` and ``health`` are
    filled when the provider :attr:`reads <GateProvider.reads>` them (else None); ``params``
    are the gate's parameters (a custom gate's ``metric``); ``memo`` is the same dict at every
    measurement of this gate in this evaluation (what the previous measurement saw);
    ``metrics`` is the backend's metric source when the provider reads ``metrics`` (None when
    the backend has none)."""

    gate: str
    step: Step
    targets: tuple[str, ...]
    now: float
    observation: ClusterObservation | None = None
    health: HealthSignals | None = None
    metrics: MetricSource | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def observed(self) -> ClusterObservation:
        if self.observation is None:
            raise ValueError(f"gate {self.gate}: no observation was read for it")
        return self.observation

    @property
    def signals(self) -> HealthSignals:
        if self.health is None:
            raise ValueError(f"gate {self.gate}: no health signals were read for it")
        return self.health


@dataclass(frozen=True, slots=True)
class GateDefaults:
    """How a gate of this kind measures and judges unless the policy says otherwise:
    ``count`` measurements ``interval_s`` apart, Failed beyond ``failure_limit`` failures,
    Error after more than ``consecutive_error_limit`` Errors in a row, judged by ``success``
    and ``failure`` (see :func:`~pitstop.gates.analysis.assess`)."""

    interval_s: float
    count: int
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    success: Condition | None = None
    failure: Condition | None = None

    def spec(self, name: str, **overrides: Any) -> MetricSpec:
        """The metric spec of a gate called ``name``: these defaults, with ``overrides``
        (MetricSpec field → value; None keeps the default)."""
        values: dict[str, Any] = {
            "interval_s": self.interval_s, "count": self.count,
            "failure_limit": self.failure_limit, "inconclusive_limit": self.inconclusive_limit,
            "consecutive_error_limit": self.consecutive_error_limit,
            "success": self.success, "failure": self.failure}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return MetricSpec(name=name, **values)


class GateProvider(Protocol):
    """Measures gates of one kind (see the module docstring)."""

    @property
    def kind(self) -> str: ...

    @property
    def reads(self) -> frozenset[Read]: ...

    @property
    def defaults(self) -> GateDefaults: ...

    def measure(self, ctx: GateContext) -> Reading: ...


@dataclass(frozen=True, slots=True)
class CheckProvider:
    """A provider made of a function of the context."""

    kind: str
    reads: frozenset[Read]
    defaults: GateDefaults
    read: Callable[[GateContext], Reading]

    def measure(self, ctx: GateContext) -> Reading:
        return self.read(ctx)


class UnknownGateKind(LookupError):
    """No provider is registered for a gate kind. ``known``: the kinds there are (by default
    those of :data:`PROVIDERS`)."""

    def __init__(self, kind: str, known: Iterable[str] | None = None) -> None:
        self.kind = kind
        kinds = sorted(PROVIDERS if known is None else known)
        super().__init__(f"no gate provider for kind {kind!r} (known kinds: "
                         f"{', '.join(kinds)})")


def provider_for(kind: str) -> GateProvider:
    """The registered provider of ``kind``; :class:`UnknownGateKind` names it otherwise."""
    try:
        return PROVIDERS[kind]
    except KeyError:
        raise UnknownGateKind(kind) from None


def from_check(result: CheckResult) -> Reading:
    """A built-in check's result as a reading: Error → an error (the check could not tell);
    otherwise the number of problems it found, its message as evidence."""
    if result.phase is Phase.ERROR:
        return Reading.broken(result.message)
    problems = max(result.problems, 1) if result.phase is Phase.FAILED else result.problems
    return Reading(float(problems), result.message)


# -- the built-in providers --------------------------------------------------------------------

_PROBLEMS = Condition.parse("result > 0")
"""The failure condition of the built-in checks: any problem found fails the measurement."""


def _apiserver(ctx: GateContext) -> Reading:
    return from_check(apiserver_health(ctx.signals, MAX_APISERVER_LATENCY_MS))


def _etcd(ctx: GateContext) -> Reading:
    signals = ctx.signals
    result = etcd_health(signals, ctx.memo.get("raft"))
    ctx.memo["raft"] = max((m.raft_index for m in signals.etcd), default=None)
    return from_check(result)


def _final_versions(step: Step) -> dict[str, str]:
    return {c.component: c.to_version for c in step.changes}


def _nodes(ctx: GateContext) -> Reading:
    return from_check(nodes_ready(ctx.observed, ctx.targets, _final_versions(ctx.step)))


def _workloads(ctx: GateContext) -> Reading:
    obs = ctx.observed
    ctx.memo["pending"] = track_pending(obs, ctx.memo.get("pending", {}))
    first = workloads_available(obs)
    if first.phase is not Phase.SUCCESSFUL:
        return from_check(first)
    return from_check(pods_pending(obs, MAX_PENDING_S, since=ctx.memo["pending"]))


def _canary(ctx: GateContext) -> Reading:
    result = canary_vs_baseline(ctx.signals, "error_rate", CANARY_MAX_RATIO)
    if result.phase is Phase.ERROR:
        return Reading.broken(result.message)
    return Reading(result.value, result.message)


def _addon(ctx: GateContext) -> Reading:
    return from_check(addon_rolled_out(ctx.observed, ctx.step.targets[0], ctx.step.to_version))


def _snapshot(ctx: GateContext) -> Reading:
    # the step's operation succeeded, or the step would have failed before its gates
    return Reading(0.0, "snapshot taken and verified by the backend")


def _threshold(ctx: GateContext) -> Reading:
    metric = ctx.params.get("metric", "")
    if not metric:
        return Reading.broken("cannot tell: the gate names no metric")
    value = ctx.signals.metrics.get(metric)
    if value is None or math.isnan(value):
        return Reading.broken(f"cannot tell: no {metric} reported")
    return Reading(value, label=metric)


def _answer_values(ctx: GateContext, source: MetricSource, query: MetricQuery,
                   reduce: str) -> list[float]:
    window = float(ctx.params.get("window", "0") or 0)
    if window <= 0:
        return [s.value for s in source.instant(ctx.step.cluster, query, ctx.now)]
    series = source.range(ctx.step.cluster, query, ctx.now - window, ctx.now,
                          float(ctx.params.get("step", "30") or 30))
    points = sorted((t, v) for s in series for t, v in s.points)
    if reduce == "last" and points:  # the newest point (ties: the largest value)
        return [max(v for t, v in points if t == points[-1][0])]
    return [v for _, v in points]


def _prometheus(ctx: GateContext) -> Reading:
    """A PromQL gate: the policy's ``query`` or a built-in ``template``, filled for the step,
    asked of the backend's metric source, its answer reduced to one value."""
    source = ctx.metrics
    if source is None:
        return Reading.broken(
            "cannot tell: this backend has no metric source. Fix: set spec.clusters[].telemetry"
            ".prometheus.url in the fleet for cluster " + ctx.step.cluster)
    p = ctx.params
    name = p.get("template") or None
    try:
        t = template(name) if name is not None else None
    except TemplateError as exc:
        return Reading.broken(f"cannot tell: {exc}")
    promql = t.promql if t is not None else p.get("query", "")
    if not promql:
        return Reading.broken("cannot tell: the gate has no query")
    reduce = p.get("reduce") or (t.reduce if t is not None else "max")
    empty = p.get("empty") or (t.empty_result if t is not None else "error")
    if reduce not in REDUCERS or empty not in EMPTY_RESULTS:
        return Reading.broken(f"cannot tell: reduce {reduce!r} / emptyResult {empty!r}")
    fills = step_fills(ctx.step, ctx.targets, ctx.observation)
    query = MetricQuery(fill(promql, fills), name, fills)
    label = name or ctx.gate
    try:
        values = _answer_values(ctx, source, query, reduce)
    except MetricQueryError as exc:  # the check broke: Error, never Failed
        return Reading.broken(f"{label}: query failed: {exc}")
    if not values:
        if empty == "zero":
            return Reading(0.0, label=f"{label} (empty answer, counted as 0)")
        why = f"{label}: the query's answer is empty (emptyResult: {empty})"
        return Reading(failed=why) if empty == "fail" else Reading.broken(why)
    return Reading(reduce_values(values, reduce), label=label)
def _canary_judge(ctx: GateContext) -> Reading:
    policy = policy_from(ctx.params, ctx.memo)
    try:
        return measure_judge(policy, ctx.metrics, ctx.observed, ctx.step, ctx.targets, ctx.now,
                             ctx.memo)
    except MetricQueryError as exc:
        return Reading.broken(f"cannot judge: a query failed: {exc}")


def _check(kind: str, reads: Read, read: Callable[[GateContext], Reading], interval_s: float,
           count: int) -> CheckProvider:
    return CheckProvider(kind, frozenset({reads}),
                         GateDefaults(interval_s, count, failure=_PROBLEMS), read)


_HEALTH: Read = "health"
_OBSERVATION: Read = "observation"
_METRICS: Read = "metrics"

PROVIDERS: Mapping[str, GateProvider] = MappingProxyType({p.kind: p for p in (
    _check("apiserver-health", _HEALTH, _apiserver, 10.0, 3),
    _check("control-plane-health", _HEALTH, _apiserver, 10.0, 2),
    _check("etcd-health", _HEALTH, _etcd, 10.0, 3),
    _check("node-health", _OBSERVATION, _nodes, 10.0, 2),
    _check("workload-availability", _OBSERVATION, _workloads, 15.0, 2),
    CheckProvider("canary", frozenset({_HEALTH}), GateDefaults(
        60.0, 3, failure=Condition.parse(f"result > {CANARY_MAX_RATIO:g}")), _canary),
    _check("addon-health", _OBSERVATION, _addon, 10.0, 2),
    CheckProvider("etcd-snapshot", frozenset(), GateDefaults(10.0, 1, failure=_PROBLEMS),
                  _snapshot),
    # spec.canaryJudge after canary node steps: the score, judged by the policy's thresholds
    CheckProvider(CANARY_JUDGE, frozenset({_OBSERVATION, _METRICS}), GateDefaults(
        60.0, 3, success=Condition.parse("result >= 95"),
        failure=Condition.parse("result < 75")), _canary_judge),
    # a custom spec.gates entry: its conditions and timing come from the policy
    CheckProvider(THRESHOLD, frozenset({_HEALTH}), GateDefaults(30.0, 3), _threshold),
    # a spec.gates entry with query or template: PromQL, judged by the gate's conditions
    CheckProvider(PROMETHEUS, frozenset({_OBSERVATION, "metrics"}), GateDefaults(30.0, 3),
                  _prometheus),
)})
"""Every gate kind pitstop can measure, by kind. The one place a gate kind is registered."""
