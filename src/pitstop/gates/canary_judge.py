"""The statistical judge for infrastructure canaries (docs/judge.md).

Per metric, the samples of the *canary* set (upgraded nodes, pools or clusters) are compared with
those of the *baseline* set (not yet upgraded). The rules follow the facts of Kayenta's Netflix
judge (confidence 0.98, tolerance 0.25 × |effect|, Mann-Whitney U with a Hodges-Lehmann shift
and its confidence interval, critical metrics, no-data, IQR outliers, weighted groups, pass and
marginal thresholds), in our own code and with the differences docs/judge.md names.

Pure: no I/O, no clock, no randomness; plain Python (``math``, ``statistics``), no numpy.

* :func:`mann_whitney` — U of the canary against the baseline (pairs canary > baseline, plus
  half the ties) and the two-sided p-value. The **method rule**: the exact distribution of U
  when there are no ties and ``m·n <= EXACT_MAX_PAIRS``; otherwise the normal approximation
  with the tie correction of the variance and a continuity correction of 1/2. (This is
  ``scipy.stats.mannwhitneyu(canary, baseline, use_continuity=True, method=...)`` with the
  method this rule picks; tests/gates/test_judge.py holds the two to 1e-9.)
* :func:`hodges_lehmann` — the shift estimate (the median of all canary − baseline
  differences) and its distribution-free confidence interval: order statistics of those
  differences, the k-th from each end, k from the same distribution of U as the p-value.
* :func:`remove_outliers` — Tukey's fences at ``factor`` × IQR, widened to the 1st and 99th
  percentiles (as Kayenta's "reduced sensitivity").
* :func:`classify_metric` — Pass, High, Low or NodataFail, with a reason.
* :func:`judge_canary` — every metric, the group scores, the score, the verdict (pass →
  proceed, marginal → pause for a person, fail → roll back).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from statistics import NormalDist

from pitstop.gates.analysis import Decision
from pitstop.model.limits import MAX_JUDGE_SAMPLES

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_GROUP",
    "DEFAULT_MARGINAL",
    "DEFAULT_OUTLIER_FACTOR",
    "DEFAULT_PASS",
    "DEFAULT_TOLERANCE",
    "EXACT_MAX_PAIRS",
    "MAX_SAMPLES",
    "Classification",
    "Direction",
    "GroupScore",
    "JudgeResult",
    "JudgeSettings",
    "MannWhitney",
    "MetricRule",
    "MetricVerdict",
    "PMethod",
    "Shift",
    "Verdict",
    "classify_metric",
    "hodges_lehmann",
    "judge_canary",
    "mann_whitney",
    "remove_outliers",
    "u_distribution",
]

DEFAULT_CONFIDENCE = 0.98  # Kayenta's Netflix judge
DEFAULT_TOLERANCE = 0.25  # Kayenta's Netflix judge: the bounds are ± 0.25 × |HL effect|
DEFAULT_PASS = 95.0  # the thresholds of Kayenta's sample canary configurations
DEFAULT_MARGINAL = 75.0
DEFAULT_OUTLIER_FACTOR = 3.0  # Kayenta's default outlierFactor
DEFAULT_GROUP = "default"
EXACT_MAX_PAIRS = 2500
"""The exact distribution of U is used up to this many canary × baseline pairs (e.g. 50 × 50)
when no value is tied; beyond it, or with ties, the normal approximation."""
MAX_SAMPLES = MAX_JUDGE_SAMPLES
"""Samples of one metric on one side: the interval sorts every canary × baseline difference
(at most a million)."""
NODATA_SHARE = 0.5  # this share of the metrics or more without data → fail


class Direction(StrEnum):
    """Which change of the canary is a failure."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class Classification(StrEnum):
    PASS = "Pass"
    HIGH = "High"  # the canary is higher than the baseline by more than is allowed
    LOW = "Low"
    NODATA_FAIL = "NodataFail"  # no data (or too few samples) to judge: counts as a failure


class Verdict(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"

    @property
    def decision(self) -> Decision:
        """pass → proceed; marginal → pause for a person; fail → roll back."""
        return _DECISION[self]


_DECISION = {Verdict.PASS: Decision.PROCEED, Verdict.MARGINAL: Decision.PAUSE,
             Verdict.FAIL: Decision.ROLLBACK}


class PMethod(StrEnum):
    EXACT = "exact"  # the exact distribution of U (no ties, few pairs)
    NORMAL = "normal"  # normal approximation, tie and continuity corrected ("asymptotic")


@dataclass(frozen=True)
class MetricRule:
    """What a metric's change may be. ``allowed_increase`` / ``allowed_decrease`` are relative
    changes of the mean (0.10 = 10 %) that are tolerated even when significant."""

    direction: Direction = Direction.EITHER
    critical: bool = False
    weight: float = 1.0
    group: str = DEFAULT_GROUP
    allowed_increase: float = 0.0
    allowed_decrease: float = 0.0
    remove_outliers: bool = False


@dataclass(frozen=True)
class JudgeSettings:
    confidence: float = DEFAULT_CONFIDENCE
    tolerance: float = DEFAULT_TOLERANCE
    pass_score: float = DEFAULT_PASS
    marginal_score: float = DEFAULT_MARGINAL
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR
    rules: Mapping[str, MetricRule] = field(default_factory=dict)
    default_rule: MetricRule = MetricRule()
    group_weights: Mapping[str, float] = field(default_factory=dict)  # empty: all weigh 1

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence {self.confidence} is not between 0 and 1")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0.0):
            raise ValueError(f"tolerance {self.tolerance} is not a number >= 0")
        if not 0.0 <= self.marginal_score <= self.pass_score <= 100.0:
            raise ValueError("thresholds must satisfy 0 <= marginal <= pass <= 100")
        if not (math.isfinite(self.outlier_factor) and self.outlier_factor > 0.0):
            raise ValueError(f"outlier factor {self.outlier_factor} is not a number > 0")

    def rule(self, metric: str) -> MetricRule:
        return self.rules.get(metric, self.default_rule)


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of the canary against the baseline: pairs canary > baseline + ½ ties
    p: float  # two-sided
    method: PMethod
    canary_n: int
    baseline_n: int


@dataclass(frozen=True)
class Shift:
    """The Hodges-Lehmann estimate of canary − baseline and its confidence interval; the
    interval is None when the samples are too few for the confidence asked."""

    effect: float
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    classification: Classification
    reason: str
    rule: MetricRule
    canary_n: int  # samples judged (after missing values and outliers are removed)
    baseline_n: int
    canary_missing: int
    baseline_missing: int
    canary_outliers: int
    baseline_outliers: int
    u: float | None = None
    p: float | None = None
    p_method: PMethod | None = None
    effect: float | None = None
    lower: float | None = None
    upper: float | None = None
    relative_change: float | None = None  # of the mean: canary / baseline − 1

    @property
    def nodata(self) -> bool:
        return self.classification is Classification.NODATA_FAIL

    @property
    def critical_failure(self) -> bool:
        return self.rule.critical and self.classification is not Classification.PASS


@dataclass(frozen=True)
class GroupScore:
    name: str
    weight: float
    score: float  # 0..100: weighted share of the group's metrics that passed
    metrics: int


@dataclass(frozen=True)
class JudgeResult:
    verdict: Verdict
    score: float  # 0..100, two decimals
    reason: str
    metrics: tuple[MetricVerdict, ...]
    groups: tuple[GroupScore, ...]
    settings: JudgeSettings

    @property
    def decision(self) -> Decision:
        return self.verdict.decision


# -- the statistics --------------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of the groups of tied values."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j + 2) / 2.0  # ranks i+1 .. j+1
        for k in range(i, j + 1):
            ranks[order[k]] = average
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


@functools.lru_cache(maxsize=256)
def u_distribution(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings of two samples of sizes ``m`` and ``n`` without ties
    give U = 0, 1, ..., m·n: the coefficients of the Gaussian binomial coefficient
    ``[m+n choose m]_q`` = ∏_{i=1..m} (1 − q^{n+i}) / (1 − q^i), computed as power series cut
    after q^{m·n} (exact integers)."""
    m, n = min(m, n), max(m, n)
    top = m * n
    coef = [0] * (top + 1)
    coef[0] = 1
    for i in range(1, m + 1):
        step = n + i
        for k in range(top, step - 1, -1):  # × (1 − q^step)
            coef[k] -= coef[k - step]
        for k in range(i, top + 1):  # ÷ (1 − q^i) = × (1 + q^i + q^2i + ...)
            coef[k] += coef[k - i]
    return tuple(coef)


def _tie_sigma(m: int, n: int, ties: Sequence[int]) -> float:
    total = m + n
    tie_term = sum(t * t * t - t for t in ties)
    return math.sqrt(m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1))))


def mann_whitney(canary: Sequence[float], baseline: Sequence[float]) -> MannWhitney:
    """The Mann-Whitney U of ``canary`` against ``baseline`` and its two-sided p-value (by the
    module's method rule). Both samples must be non-empty and hold no NaN."""
    m, n = len(canary), len(baseline)
    if m == 0 or n == 0:
        raise ValueError("both samples need at least one value")
    ranks, ties = _ranks([*canary, *baseline])
    u = math.fsum(ranks[:m]) - m * (m + 1) / 2.0
    big = max(u, m * n - u)
    tied = any(t > 1 for t in ties)
    if not tied and m * n <= EXACT_MAX_PAIRS:
        counts = u_distribution(m, n)
        tail = sum(counts[int(big):])
        p = min(1.0, 2 * tail / math.comb(m + n, m))
        return MannWhitney(u, p, PMethod.EXACT, m, n)
    sigma = _tie_sigma(m, n, ties)
    excess = big - m * n / 2.0 - 0.5
    if sigma == 0.0 or excess <= 0.0:
        p = 1.0
    else:
        p = min(1.0, math.erfc(excess / sigma / math.sqrt(2.0)))
    return MannWhitney(u, p, PMethod.NORMAL, m, n)


def _interval_rank(m: int, n: int, ties: Sequence[int], confidence: float) -> int:
    """k of the interval [D_(k), D_(mn+1−k)] of the sorted differences: the largest k with
    P(U <= k − 1) <= (1 − confidence) / 2 under no shift; 0 when none exists."""
    half_alpha = (1.0 - confidence) / 2.0
    if not any(t > 1 for t in ties) and m * n <= EXACT_MAX_PAIRS:
        counts = u_distribution(m, n)
        allowed = half_alpha * math.comb(m + n, m)
        k, below = 0, 0
        while k < len(counts) and below + counts[k] <= allowed:
            below += counts[k]
            k += 1
        return min(k, (m * n + 1) // 2)
    sigma = _tie_sigma(m, n, ties)
    z = NormalDist().inv_cdf(half_alpha)  # negative
    k = math.floor(m * n / 2.0 + 0.5 + z * sigma)
    return max(0, min(k, (m * n + 1) // 2))


def hodges_lehmann(canary: Sequence[float], baseline: Sequence[float],
                   confidence: float = DEFAULT_CONFIDENCE) -> Shift:
    """The Hodges-Lehmann shift of the canary against the baseline (the median of every
    canary − baseline difference) and its distribution-free confidence interval."""
    m, n = len(canary), len(baseline)
    if m == 0 or n == 0:
        raise ValueError("both samples need at least one value")
    diffs = sorted(c - b for c in canary for b in baseline)
    total = len(diffs)
    mid = total // 2
    effect = diffs[mid] if total % 2 else (diffs[mid - 1] + diffs[mid]) / 2.0
    _, ties = _ranks([*canary, *baseline])
    k = _interval_rank(m, n, ties, confidence)
    if k < 1:
        return Shift(effect, None, None)
    return Shift(effect, diffs[k - 1], diffs[total - k])


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def remove_outliers(values: Sequence[float], factor: float = DEFAULT_OUTLIER_FACTOR
                    ) -> tuple[float, ...]:
    """``values`` without those outside the fences: below min(P1, Q1 − factor·IQR) or above
    max(P99, Q3 + factor·IQR). Order is kept."""
    if len(values) < 2:
        return tuple(values)
    ordered = sorted(values)
    q1, q3 = _percentile(ordered, 25), _percentile(ordered, 75)
    iqr = q3 - q1
    low = min(_percentile(ordered, 1), q1 - factor * iqr)
    high = max(_percentile(ordered, 99), q3 + factor * iqr)
    return tuple(v for v in values if low <= v <= high)


# -- one metric ------------------------------------------------------------------------------


def _present(values: Sequence[float | None], side: str, metric: str) -> list[float]:
    out: list[float] = []
    for v in values:
        if v is None or math.isnan(v):
            continue
        if math.isinf(v):
            raise ValueError(f"{metric}: the {side} holds an infinite value")
        out.append(float(v))
    return out


def _num(value: float) -> str:
    return f"{value:.4g}"


def _percent(value: float) -> str:
    return f"{value * 100:+.1f} %"


def classify_metric(metric: str, canary: Sequence[float | None],
                    baseline: Sequence[float | None], rule: MetricRule,
                    settings: JudgeSettings) -> MetricVerdict:
    """Judge one metric: missing values (None, NaN) are dropped, outliers too if the rule says
    so; then Pass, High, Low or NodataFail with the figures and a reason."""
    if len(canary) > MAX_SAMPLES or len(baseline) > MAX_SAMPLES:
        raise ValueError(f"{metric}: more than {MAX_SAMPLES} samples on one side")
    c = _present(canary, "canary", metric)
    b = _present(baseline, "baseline", metric)
    missing = (len(canary) - len(c), len(baseline) - len(b))
    kept_c, kept_b = c, b
    if rule.remove_outliers:
        kept_c = list(remove_outliers(c, settings.outlier_factor))
        kept_b = list(remove_outliers(b, settings.outlier_factor))
    base = MetricVerdict(metric, Classification.NODATA_FAIL, "", rule, len(kept_c), len(kept_b),
                         missing[0], missing[1], len(c) - len(kept_c), len(b) - len(kept_b))
    if not kept_c or not kept_b:
        empty = " and ".join(s for s, v in (("canary", kept_c), ("baseline", kept_b)) if not v)
        return replace(base, reason=f"{metric}: no {empty} data ({missing[0]} canary and "
                       f"{missing[1]} baseline samples missing): NodataFail")
    test = mann_whitney(kept_c, kept_b)
    shift = hodges_lehmann(kept_c, kept_b, settings.confidence)
    mean_c, mean_b = math.fsum(kept_c) / len(kept_c), math.fsum(kept_b) / len(kept_b)
    change = (mean_c - mean_b) / abs(mean_b) if mean_b != 0.0 else None
    base = replace(base, u=test.u, p=test.p, p_method=test.method, effect=shift.effect,
                   lower=shift.lower, upper=shift.upper, relative_change=change)
    conf = f"{settings.confidence * 100:g} %"
    stats = (f"U {_num(test.u)}, p {test.p:.3g}, n {len(kept_c)}/{len(kept_b)}")
    mean_text = f"mean {_percent(change)}" if change is not None else "mean of baseline 0"

    def verdict(label: Classification, why: str) -> MetricVerdict:
        return replace(base, classification=label, reason=f"{metric}: {why}: {label}")

    if sorted(kept_c) == sorted(kept_b):
        return verdict(Classification.PASS, f"canary and baseline samples are identical "
                       f"({stats})")
    if len(set(kept_c) | set(kept_b)) == 1:
        return verdict(Classification.PASS, f"every sample has the same value ({stats})")
    if shift.lower is None or shift.upper is None:
        return verdict(Classification.NODATA_FAIL, f"too few samples ({len(kept_c)} canary, "
                       f"{len(kept_b)} baseline) for a {conf} interval of the shift; "
                       "collect more")
    interval = (f"HL effect {_num(shift.effect)}, {conf} CI {_num(shift.lower)}.."
                f"{_num(shift.upper)}; {stats}")
    bound = settings.tolerance * abs(shift.effect)
    increase_ok = change is None or change > rule.allowed_increase
    decrease_ok = change is None or change < -rule.allowed_decrease
    if rule.direction in (Direction.INCREASE, Direction.EITHER) and shift.lower > bound \
            and increase_ok:
        return verdict(Classification.HIGH, f"canary {mean_text} ({interval}), allowed "
                       f"increase {rule.allowed_increase * 100:g} %")
    if rule.direction in (Direction.DECREASE, Direction.EITHER) and shift.upper < -bound \
            and decrease_ok:
        return verdict(Classification.LOW, f"canary {mean_text} ({interval}), allowed "
                       f"decrease {rule.allowed_decrease * 100:g} %")
    allowed = {Direction.INCREASE: f"allowed increase {rule.allowed_increase * 100:g} %",
               Direction.DECREASE: f"allowed decrease {rule.allowed_decrease * 100:g} %",
               Direction.EITHER: f"allowed change +{rule.allowed_increase * 100:g} %/"
               f"-{rule.allowed_decrease * 100:g} %"}[rule.direction]
    return verdict(Classification.PASS, f"canary {mean_text} ({interval}), {allowed}, "
                   f"watching {rule.direction}")


# -- every metric ----------------------------------------------------------------------------


def _group_scores(verdicts: Sequence[MetricVerdict], weights: Mapping[str, float]
                  ) -> tuple[GroupScore, ...]:
    members: dict[str, list[MetricVerdict]] = {}
    for v in verdicts:
        members.setdefault(v.rule.group, []).append(v)
    out: list[GroupScore] = []
    for name, group in members.items():
        if weights and name not in weights:
            raise ValueError(f"group {name!r} has no weight (give every group one, or none)")
        total = math.fsum(v.rule.weight for v in group)
        passed = math.fsum(v.rule.weight for v in group
                           if v.classification is Classification.PASS)
        out.append(GroupScore(name, weights.get(name, 1.0), 100.0 * passed / total, len(group)))
    return tuple(out)


def judge_canary(canary: Mapping[str, Sequence[float | None]],
                 baseline: Mapping[str, Sequence[float | None]],
                 settings: JudgeSettings | None = None) -> JudgeResult:
    """Judge every metric named by the settings' rules or found in either sample set (in that
    order), score them and give the verdict.

    The score is the weighted mean of the group scores (each the weighted share of its
    metrics that passed), 0..100 with two decimals; it is 0 when a critical metric did not
    pass, or when at least half of the metrics had no data. score >= pass → pass,
    >= marginal → marginal, else fail."""
    settings = settings or JudgeSettings()
    names = list(dict.fromkeys([*settings.rules, *canary, *baseline]))
    verdicts = tuple(classify_metric(name, canary.get(name, ()), baseline.get(name, ()),
                                     settings.rule(name), settings) for name in names)
    groups = _group_scores(verdicts, settings.group_weights)
    critical = [v for v in verdicts if v.critical_failure]
    nodata = [v for v in verdicts if v.nodata]
    forced = True  # a failure whatever the thresholds say
    if not verdicts:
        score, reason = 0.0, "no metric to judge"
    elif critical:
        score = 0.0
        reason = (f"critical metric {critical[0].metric} is {critical[0].classification}"
                  + (f" (and {len(critical) - 1} more)" if len(critical) > 1 else ""))
    elif len(nodata) >= NODATA_SHARE * len(verdicts):
        score = 0.0
        reason = (f"{len(nodata)} of {len(verdicts)} metrics have no data (at least "
                  f"{NODATA_SHARE * 100:g} % fails the canary)")
    else:
        forced = False
        weight = math.fsum(g.weight for g in groups)
        score = round(math.fsum(g.weight * g.score for g in groups) / weight, 2)
        failed = [v for v in verdicts if v.classification is not Classification.PASS]
        reason = (f"{len(verdicts) - len(failed)} of {len(verdicts)} metrics passed"
                  + (": not " + ", ".join(f"{v.metric} ({v.classification})" for v in failed)
                     if failed else ""))
    if forced:
        verdict = Verdict.FAIL
    elif score >= settings.pass_score:
        verdict = Verdict.PASS
    elif score >= settings.marginal_score:
        verdict = Verdict.MARGINAL
    else:
        verdict = Verdict.FAIL
    thresholds = (f"score {score:g} (pass >= {settings.pass_score:g}, marginal >= "
                  f"{settings.marginal_score:g})")
    return JudgeResult(verdict, score, f"{thresholds}; {reason}", verdicts, groups, settings)
