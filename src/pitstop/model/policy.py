"""The ``UpgradePolicy`` object: how an upgrade may proceed.

Waves and canaries, per-pool strategy and disruption limits, soak times, maintenance windows and
blackouts, approvals per environment, and waivers that allow something the catalog would refuse.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from pitstop.model.common import (
    API_VERSION,
    Duration,
    IntOrPercent,
    LabelSelector,
    Metadata,
    SpecModel,
    VersionStr,
    resolve_int_or_percent,
)
from pitstop.model.judge import CanaryJudgePolicy
from pitstop.model.limits import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_COUNT,
    MAX_GATE_COUNT,
    check_time,
)
from pitstop.model.names import ComponentName, PlainName, PoolName

__all__ = [
    "AlertGate",
    "Approval",
    "Blackout",
    "CustomGate",
    "MaintenanceWindow",
    "PoolPolicy",
    "StepEstimates",
    "UpgradePolicy",
    "UpgradePolicySpec",
    "Waiver",
    "Wave",
]

Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Wave(SpecModel):
    """A group of clusters upgraded together. Waves run in the order written; the next starts
    only after the previous one finished and soaked."""

    name: PlainName
    clusters: LabelSelector = Field(
        default_factory=LabelSelector,
        description="clusters by label; `environment` and `name` are labels too",
    )
    canary: bool = Field(default=False, description="a canary wave: its result gates the rest")
    soak: Duration = Field(default=timedelta(0), description="wait after the wave before the next")
    max_parallel_clusters: int = Field(default=0, ge=0, le=MAX_COUNT,
                                       description="0 = all clusters of the wave")


class PoolPolicy(SpecModel):
    """How to roll the nodes of the pools it matches."""

    pools: list[Literal["*"] | PoolName] = Field(default_factory=lambda: ["*"],
                                                 description="pool names; * = any")
    strategy: Literal["in-place", "replace"] = "in-place"
    max_surge: IntOrPercent = Field(default=0, description="extra nodes at once (replace)")
    max_unavailable: IntOrPercent = Field(default=1, description="nodes down at once")
    canary_nodes: IntOrPercent = Field(default=1, description="nodes upgraded first, alone")
    soak: Duration = Field(default=timedelta(minutes=5),
                           description="wait after the pool's nodes are done, before the next step")
    canary_soak: Duration = Field(default=timedelta(minutes=15), description="wait after canary")
    drain_timeout: Duration = Field(default=timedelta(minutes=15))
    force_after_drain_timeout: bool = Field(
        default=False,
        description="delete pods that PDBs protect once the drain timed out (causes downtime)",
    )
    delete_empty_dir_data: bool = Field(default=False, description="kubectl's flag of that name")
    runtime_patch_without_drain: bool = Field(
        default=False,
        description="restart the runtime in place for a patch release (containers survive)",
    )

    @model_validator(mode="after")
    def _surge_or_unavailable(self) -> PoolPolicy:
        if self.strategy == "replace" and self.max_surge in (0, "0%") and self.max_unavailable in (
            0,
            "0%",
        ):
            raise ValueError("replace strategy needs maxSurge or maxUnavailable above 0")
        if self.strategy == "in-place" and self.max_unavailable in (0, "0%"):
            raise ValueError("in-place strategy needs maxUnavailable of at least 1")
        return self

    def applies_to(self, pool: str) -> bool:
        return "*" in self.pools or pool in self.pools

    def disruption(self, size: int) -> tuple[int, int, int]:
        """(nodes drained at once, surge nodes, canary nodes) for a pool of ``size`` nodes.
        Kubernetes rounding: maxUnavailable rounds down (at least 1), maxSurge and canaryNodes
        round up. Canary nodes are drained one at a time. The planner and preflight both use
        this, so the batch preflight checks for capacity is the batch the plan drains."""
        batch = max(1, resolve_int_or_percent(self.max_unavailable, size, round_up=False))
        surge = (resolve_int_or_percent(self.max_surge, size, round_up=True)
                 if self.strategy == "replace" else 0)
        canary = resolve_int_or_percent(self.canary_nodes, size, round_up=True)
        return min(batch, size), surge, min(canary, size)


_ZONE_NAME_RE = re.compile(r"^[A-Za-z][-+_A-Za-z0-9]*(/[-+_A-Za-z0-9]+)*$")


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _is_zone(name: str) -> bool:
    """An IANA zone the zoneinfo database knows: not a directory (``Europe``), not
    ``localtime`` or ``posixrules`` (files some systems keep beside the zones)."""
    if len(name) > 64 or _ZONE_NAME_RE.match(name) is None:
        return False
    if name in ("localtime", "posixrules", "Factory") or name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _check_date(value: date) -> date:
    if not EARLIEST_TIME.date() <= value < LATEST_TIME.date():
        raise ValueError(f"{value.isoformat()} is outside the dates pitstop accepts (from "
                         f"{EARLIEST_TIME.date()} to {(LATEST_TIME - timedelta(days=1)).date()}"
                         "). Fix: write a date within them")
    return value


def _quoted_time(value: object) -> object:
    # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320: refuse it rather than
    # start a window at 00:22.
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{value!r} was read as a number; quote times in YAML. Fix: write "
                         "e.g. \"22:00\"")
    return value


class MaintenanceWindow(SpecModel):
    """A recurring window: on these days, from ``start`` for ``duration``, in ``timeZone``.
    No new step starts outside a window; a running step may finish."""

    name: PlainName
    clusters: LabelSelector = Field(default_factory=LabelSelector)
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: Annotated[time, BeforeValidator(_quoted_time)]
    duration: Duration
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not _is_zone(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(
                f"unknown time zone {shown!r}: a zone of the tz database is needed, not a "
                "region such as Europe, nor localtime (which would make the schedule depend on "
                "the machine). Fix: use an IANA name such as Europe/Berlin or UTC"
            )
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=7):
            raise ValueError("duration must be above 0 and at most 7d")
        return value


class Blackout(SpecModel):
    """Dates when nothing may start (freezes, peak sales, holidays). ``end`` is inclusive."""

    name: PlainName
    start: Annotated[date, AfterValidator(_check_date)]
    end: Annotated[date, AfterValidator(_check_date)]
    reason: str = ""
    clusters: LabelSelector = Field(default_factory=LabelSelector)

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Approval(SpecModel):
    environment: Literal["development", "test", "staging", "production"]
    required: int = Field(default=1, ge=1, le=MAX_COUNT, description="distinct approvers needed")
    approvers: list[str] = Field(default_factory=list, description="who may approve; any if empty")


class Waiver(SpecModel):
    """Permission to do what a catalog rule forbids, for a reason, until a date."""

    rule: Literal["known-bad", "unsupported-runtime", "end-of-life", "removed-api"]
    component: ComponentName = Field(description="etcd, containerd, kubernetes, …")
    version: VersionStr | None = None
    reason: str = Field(min_length=10)
    expires: Annotated[datetime, AfterValidator(check_time)]
    approved_by: str = Field(min_length=1)

    def active(self, now: datetime) -> bool:
        expires = self.expires
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=now.tzinfo)
        return now < expires


class StepEstimates(SpecModel):
    """Typical durations used to place the plan into windows. Measured values from earlier runs
    should replace these defaults."""

    apiserver: Duration = timedelta(minutes=6)
    controller: Duration = timedelta(minutes=3)
    etcd_snapshot: Duration = timedelta(minutes=4)
    etcd_member: Duration = timedelta(minutes=5)
    node_in_place: Duration = timedelta(minutes=8)
    node_replace: Duration = timedelta(minutes=10)
    runtime_in_place: Duration = timedelta(minutes=2)
    addon: Duration = timedelta(minutes=3)


MAX_PROMQL = 8192
"""The longest PromQL a gate may ask (Prometheus itself takes more; a gate needs less)."""


class PromRange(SpecModel):
    """A range query: the ``window`` before the measurement, a point every ``step``."""

    window: Duration
    step: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _sane(self) -> PromRange:
        if not timedelta(0) < self.window <= timedelta(days=7):
            raise ValueError("range.window must be above 0 and at most 7d")
        if not timedelta(0) < self.step <= self.window:
            raise ValueError("range.step must be above 0 and at most the window")
        if self.window / self.step > 11000:  # Prometheus refuses more points per series
            raise ValueError("range.window / range.step gives more than 11,000 points, which "
                             "Prometheus refuses. Fix: a longer step")
        return self


GatePhase = Literal["etcd", "control-plane", "nodes", "addons"]
GATE_PHASES: tuple[GatePhase, ...] = ("etcd", "control-plane", "nodes", "addons")


class CustomGate(SpecModel):
    """A metric the backend reports by name (``metric``: the twin reports ``error_rate``,
    ``error_rate_baseline``, ``nodes_not_ready`` and ``pods_pending``), or PromQL asked of the
    cluster's Prometheus (``query``, optionally over a ``range``; or a built-in ``template``,
    whose conditions apply unless the gate gives its own; ``reduce`` and ``emptyResult`` say
    how the answer becomes one value — docs/prometheus-gates.md), measured after every
    step of the given phases with analysis semantics, as Argo Rollouts measures a metric:
    ``count`` measurements ``interval`` apart, each Successful (``successCondition`` holds),
    Failed (``failureCondition`` holds; it wins when both do), Inconclusive (neither holds,
    when both are given) or Error (the metric could not be read: the check broke). With only a
    success condition a value that misses it is Failed; with only a failure condition a value
    that does not meet it is Successful. The gate is Failed beyond ``failureLimit`` failures
    (the wave rolls back), Inconclusive beyond ``inconclusiveLimit`` (the run pauses), Error
    after more than ``consecutiveErrorLimit`` Errors in a row (the wave rolls back).
    ``condition`` is the older name of ``successCondition``. The conditions' syntax is checked
    when the files are loaded (``pitstop.gates.Condition``)."""

    name: PlainName
    metric: str | None = Field(default=None, min_length=1, max_length=253,
                               description="a metric the backend reports by name")
    query: str | None = Field(default=None, min_length=1, max_length=MAX_PROMQL,
                              description="PromQL asked of the cluster's Prometheus")
    template: str | None = Field(default=None, min_length=1, max_length=63,
                                 description="a built-in PromQL template by name")
    range: PromRange | None = Field(default=None,
                                    description="ask `query` as a range query over a window")
    reduce: Literal["max", "min", "avg", "sum", "last"] | None = Field(
        default=None, description="how the answer's values become one (default max)")
    empty_result: Literal["error", "zero", "fail"] | None = Field(
        default=None, description="what an empty answer is (default error)")
    condition: str | None = Field(
        default=None, min_length=1,
        description="the older name of successCondition: when the value is good")
    success_condition: str | None = Field(
        default=None, min_length=1,
        description="when the value is good, e.g. 'result <= 0.01' (&&, || allowed)")
    failure_condition: str | None = Field(
        default=None, min_length=1, description="when the value is bad, e.g. 'result > 0.05'")
    phases: list[GatePhase] = Field(default_factory=lambda: list(GATE_PHASES))
    interval: Duration = timedelta(seconds=30)
    count: int = Field(default=3, ge=1, le=MAX_GATE_COUNT)
    failure_limit: int = Field(default=0, ge=0, le=MAX_GATE_COUNT)
    inconclusive_limit: int = Field(default=0, ge=0, le=MAX_GATE_COUNT)
    consecutive_error_limit: int = Field(default=4, ge=0, le=MAX_GATE_COUNT)

    @model_validator(mode="after")
    def _conditions(self) -> CustomGate:
        given = [k for k, v in (("metric", self.metric), ("query", self.query),
                                ("template", self.template)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"gate {self.name}: give exactly one of metric, query (PromQL) "
                             f"and template (a built-in one); got {', '.join(given) or 'none'}")
        if self.range is not None and self.query is None:
            raise ValueError(f"gate {self.name}: range goes with query (a template says its "
                             "own window). Fix: remove range, or write the PromQL in query")
        if self.metric is not None and (self.reduce is not None
                                        or self.empty_result is not None):
            raise ValueError(f"gate {self.name}: reduce and emptyResult go with query or "
                             "template, not metric")
        if self.template is not None:  # its own conditions, unless the gate overrides them
            if self.condition is not None and self.success_condition is not None:
                raise ValueError(f"gate {self.name}: keep one of condition and "
                                 "successCondition (successCondition)")
            return self
        if self.condition is not None and self.success_condition is not None:
            raise ValueError(f"gate {self.name}: condition is the older name of "
                             "successCondition; keep one of the two (successCondition)")
        if self.success is None and self.failure_condition is None:
            raise ValueError(f"gate {self.name}: give successCondition, failureCondition or "
                             "both (e.g. successCondition: 'result <= 0.01')")
        return self

    @property
    def success(self) -> str | None:
        """The success condition: ``successCondition``, or ``condition`` (its older name)."""
        return self.success_condition if self.success_condition is not None else self.condition

    def conditions(self) -> dict[str, str]:
        """The conditions given, by their field name as written in the file."""
        return {key: text for key, text in (
            ("condition", self.condition), ("successCondition", self.success_condition),
            ("failureCondition", self.failure_condition)) if text is not None}


class AlertGate(SpecModel):
    """Firing alerts that hold the run, as kured holds reboots: before each step of the given
    phases and before each node of a node step, the cluster's Prometheus is asked for its
    firing alerts; one that this gate matches (its name among ``alertNames`` — any name when
    empty — every ``matchLabels`` label equal, every ``matchRegex`` label fully matching) pauses
    the run, naming the alerts. With ``resumeWhenClear`` the run waits instead, asking again
    every ``interval``, and goes on once they cleared; still firing after ``maxWait`` → pause.
    An alert query that breaks pauses the run too (it cannot tell), never rolls back."""

    name: PlainName
    alert_names: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=100, description="alertname values; any when empty")
    match_labels: dict[str, str] = Field(default_factory=dict, max_length=50)
    match_regex: dict[str, str] = Field(default_factory=dict, max_length=50)
    phases: list[GatePhase] = Field(default_factory=lambda: list(GATE_PHASES))
    resume_when_clear: bool = Field(default=False,
                                    description="wait for the alerts to clear instead of "
                                                "pausing at once")
    interval: Duration = timedelta(seconds=30)
    max_wait: Duration = timedelta(minutes=30)

    @field_validator("match_regex")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            try:
                re.compile(text)
            except re.error as exc:
                raise ValueError(f"matchRegex.{key}: {text[:60]!r} is not a regex ({exc}). "
                                 "Fix: write e.g. 'critical|warning'") from None
        return value

    @model_validator(mode="after")
    def _timing(self) -> AlertGate:
        if self.interval <= timedelta(0) or self.interval > timedelta(hours=1):
            raise ValueError(f"alert gate {self.name}: interval must be above 0 and at most 1h")
        if self.max_wait < timedelta(0) or self.max_wait > timedelta(days=1):
            raise ValueError(f"alert gate {self.name}: maxWait must be 0 to 1d")
        return self


BuiltinGateKind = Literal["apiserver-health", "control-plane-health", "etcd-health",
                         "node-health", "workload-availability", "canary", "addon-health"]


class GateTiming(SpecModel):
    """How a built-in gate measures: ``count`` measurements ``interval`` apart, Failed beyond
    ``failureLimit`` failures, Error after more than ``consecutiveErrorLimit`` Errors in a row.
    Unset fields keep the built-in values (docs/configuration.md)."""

    interval: Duration | None = None
    count: int | None = Field(default=None, ge=1, le=MAX_GATE_COUNT)
    failure_limit: int | None = Field(default=None, ge=0, le=MAX_GATE_COUNT)
    consecutive_error_limit: int | None = Field(default=None, ge=0, le=MAX_GATE_COUNT)


class UpgradePolicySpec(SpecModel):
    waves: list[Wave] = Field(default_factory=list)
    pools: list[PoolPolicy] = Field(
        default_factory=lambda: [PoolPolicy()],
        description="first matching entry wins for each pool",
    )
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    blackouts: list[Blackout] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)
    estimates: StepEstimates = Field(default_factory=StepEstimates)
    gates: list[CustomGate] = Field(default_factory=list, description="custom metric gates")
    alert_gates: list[AlertGate] = Field(
        default_factory=list, description="firing alerts that hold the run (Prometheus)")
    gate_timing: dict[BuiltinGateKind, GateTiming] = Field(
        default_factory=dict, description="interval/count/failureLimit of built-in gates")
    max_parallel_clusters: int = Field(default=0, ge=0, le=MAX_COUNT,
                                       description="across a wave; 0 = no limit")
    canary_judge: CanaryJudgePolicy | None = Field(
        default=None, description="the statistical canary judge after canary node steps "
        "(docs/judge.md)")

    @model_validator(mode="after")
    def _unique_waves(self) -> UpgradePolicySpec:
        names = [w.name for w in self.waves]
        if len(set(names)) != len(names):
            raise ValueError(f"wave names repeat: {names}")
        return self

    def pool_policy(self, pool: str) -> PoolPolicy:
        for p in self.pools:
            if p.applies_to(pool):
                return p
        return PoolPolicy()


class UpgradePolicy(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["UpgradePolicy"] = "UpgradePolicy"
    metadata: Metadata
    spec: UpgradePolicySpec = Field(default_factory=UpgradePolicySpec)
