"""The ``JudgeConfig`` object: how ``pitstop judge`` compares a canary with its baseline
(docs/judge.md). Read through :func:`pitstop.config.load_judge_config`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from pitstop.model.common import API_VERSION, Duration, Metadata, SpecModel
from pitstop.model.limits import MAX_GATE_COUNT, MAX_JUDGE_METRICS

__all__ = [
    "CanaryJudgePolicy",
    "JudgeConfig",
    "JudgeEffectSize",
    "JudgeMetric",
    "JudgeSoak",
    "JudgeSpec",
    "JudgeThresholds",
    "MetricName",
    "metric_name_problem",
]

_METRIC_RE = re.compile(r"^[A-Za-z_:][-A-Za-z0-9_:.]{0,199}$")


def metric_name_problem(name: str) -> str | None:
    """Why ``name`` is not a metric name, or None: a Prometheus-style name (letters, digits,
    ``_`` and ``:``; ``-`` and ``.`` are allowed too), at most 200 characters."""
    if _METRIC_RE.match(name):
        return None
    shown = name if len(name) <= 40 else name[:37] + "..."
    return (f"{shown!r} is not a metric name (a letter, '_' or ':' first, then letters, digits, "
            "'_', ':', '-' or '.'; at most 200 characters)")


def _metric_name(name: str) -> str:
    problem = metric_name_problem(name)
    if problem is not None:
        raise ValueError(problem + ". Fix: write e.g. apiserver_request_p99_seconds")
    return name


MetricName = Annotated[str, AfterValidator(_metric_name)]


class JudgeEffectSize(SpecModel):
    """Relative changes of the canary's mean against the baseline's that are tolerated even when
    the test finds them significant: 0.10 = 10 %."""

    allowed_increase: float = Field(0.0, ge=0.0, le=100.0)
    allowed_decrease: float = Field(0.0, ge=0.0, le=1.0)


class JudgeMetric(SpecModel):
    direction: Literal["increase", "decrease", "either"] = Field(
        "either", description="which change fails: increase (latency, errors), decrease "
        "(throughput), either")
    critical: bool = Field(False, description="a critical metric that does not pass makes the "
                           "score 0")
    weight: float = Field(1.0, gt=0.0, le=1_000_000.0, description="within its group")
    group: MetricName = "default"
    effect_size: JudgeEffectSize = Field(default_factory=JudgeEffectSize)
    remove_outliers: bool | None = Field(None, description="IQR outlier removal; default: "
                                         "spec.removeOutliers")


class JudgeThresholds(SpecModel):
    pass_: float = Field(95.0, alias="pass", ge=0.0, le=100.0)
    marginal: float = Field(75.0, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _ordered(self) -> JudgeThresholds:
        if self.marginal > self.pass_:
            raise ValueError(f"marginal ({self.marginal:g}) is above pass ({self.pass_:g}). "
                             "Fix: make marginal at most pass")
        return self


class JudgeSpec(SpecModel):
    confidence: float = Field(0.98, ge=0.5, le=0.9999, description="of the shift's interval")
    tolerance: float = Field(0.25, ge=0.0, le=10.0, description="bounds = ± tolerance × "
                             "|Hodges-Lehmann effect|")
    thresholds: JudgeThresholds = Field(default_factory=JudgeThresholds)
    remove_outliers: bool = False
    outlier_factor: float = Field(3.0, gt=0.0, le=100.0)
    groups: dict[MetricName, Annotated[float, Field(gt=0.0, le=1_000_000.0)]] = Field(
        default_factory=dict, description="group weights; none: every group weighs the same")
    metrics: dict[MetricName, JudgeMetric] = Field(default_factory=dict,
                                                   max_length=MAX_JUDGE_METRICS)

    @model_validator(mode="after")
    def _groups(self) -> JudgeSpec:
        used = {m.group for m in self.metrics.values()}
        if self.groups:
            unweighted = sorted(used - set(self.groups))
            if unweighted:
                raise ValueError(f"group {unweighted[0]!r} has metrics but no weight in "
                                 "spec.groups. Fix: give every group a weight, or none")
            unused = sorted(set(self.groups) - used)
            if unused:
                raise ValueError(f"group {unused[0]!r} has a weight but no metric. Fix: set "
                                 "`group:` on its metrics, or remove the weight")
        return self


class JudgeConfig(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["JudgeConfig"] = "JudgeConfig"
    metadata: Metadata = Field(default_factory=lambda: Metadata(name="judge"))
    spec: JudgeSpec = Field(default_factory=JudgeSpec)


class JudgeSoak(SpecModel):
    """A judged soak: at least ``min``, at most ``max``; the judge decides in between."""

    min: Duration = Field(description="the soak never ends before this, even on a pass")
    max: Duration = Field(description="a marginal verdict extends the soak up to this, then "
                          "the run pauses")

    @model_validator(mode="after")
    def _ordered(self) -> JudgeSoak:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min}). Fix: make max at "
                             "least min")
        return self


class CanaryJudgePolicy(SpecModel):
    """``spec.canaryJudge`` of an UpgradePolicy: the canary judge as a gate after every canary
    node step (its nodes against the not yet upgraded nodes of the pool, else of the cluster),
    measured ``count`` times ``interval`` apart over the last ``lookback`` of each node's
    series; pass → Successful, marginal → Inconclusive (the run pauses), fail → Failed (the
    wave rolls back). With ``soak``, the canary step's soak is judged too (docs/judge.md)."""

    lookback: Duration = Field(default=timedelta(minutes=5),
                               description="the window of samples judged at each measurement")
    step: Duration = Field(default=timedelta(seconds=30),
                           description="the resolution of the series (query step)")
    interval: Duration = Field(default=timedelta(seconds=60))
    count: int = Field(default=3, ge=1, le=MAX_GATE_COUNT)
    soak: JudgeSoak | None = Field(default=None, description="judge the canary soak: end it "
                                   "early on a pass after min, extend it while marginal up to "
                                   "max")
    judge: JudgeSpec = Field(description="the judge's settings and metrics, as a JudgeConfig's "
                             "spec (docs/judge.md)")

    @model_validator(mode="after")
    def _metrics(self) -> CanaryJudgePolicy:
        if not self.judge.metrics:
            raise ValueError("judge.metrics is empty: the judge has nothing to compare. Fix: "
                             "name the signals to judge, e.g. `pod-startup-p99: {direction: "
                             "increase}`")
        if self.step > self.lookback:
            raise ValueError("step is longer than lookback: every window would hold one "
                             "sample at most. Fix: make step shorter than lookback")
        if self.lookback.total_seconds() / max(self.step.total_seconds(), 1e-3) > 10_000:
            raise ValueError("lookback / step is above 10000 samples per node. Fix: a longer "
                             "step or a shorter lookback")
        return self
