"""The canary judge (pitstop.gates.canary_judge) and ``pitstop judge``.

scipy is the independent oracle of the statistics: U and the two-sided p of
``scipy.stats.mannwhitneyu(canary, baseline, use_continuity=True, method=M)`` where M is the
method the judge's documented rule picks (exact without ties up to EXACT_MAX_PAIRS pairs, else
"asymptotic"), on 1,200 generated sample pairs; numpy checks the Hodges-Lehmann estimate and
the IQR fences. The four canaries of the issue run through the command line.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pitstop.gates.canary_judge import (
    EXACT_MAX_PAIRS,
    Classification,
    Direction,
    JudgeSettings,
    MetricRule,
    PMethod,
    Verdict,
    hodges_lehmann,
    judge_canary,
    mann_whitney,
    remove_outliers,
    u_distribution,
)

PAIRS = 1200


def _generated_pairs() -> list[tuple[list[float], list[float]]]:
    """Seeded samples of many shapes: tiny and large, shifted and not, with and without ties
    (rounded values, constant runs), some with a sample of one value."""
    rng = random.Random(20260514)
    out: list[tuple[list[float], list[float]]] = []
    for i in range(PAIRS):
        m = rng.choice([1, 2, 3, 5, 8, 9, 13, 20, 31, 50, 51, 80, 120])
        n = rng.choice([1, 2, 4, 7, 8, 10, 20, 40, 49, 60, 150])
        shift = rng.choice([0.0, 0.0, 0.1, 0.5, 2.0, -1.0])
        canary = [rng.gauss(shift, 1.0) for _ in range(m)]
        baseline = [rng.gauss(0.0, 1.0) for _ in range(n)]
        kind = i % 4
        if kind == 1:  # coarse values: many ties within and across the samples
            canary = [round(v, 1) for v in canary]
            baseline = [round(v, 1) for v in baseline]
        elif kind == 2:  # heavy ties: a few distinct values
            canary = [float(rng.randint(0, 3)) for _ in range(m)]
            baseline = [float(rng.randint(0, 3)) for _ in range(n)]
        out.append((canary, baseline))
    return out


def test_u_and_p_agree_with_scipy_on_generated_pairs() -> None:
    worst_u = worst_p = 0.0
    methods = {PMethod.EXACT: 0, PMethod.NORMAL: 0}
    for canary, baseline in _generated_pairs():
        ours = mann_whitney(canary, baseline)
        tied = len(set(canary) | set(baseline)) < len(canary) + len(baseline)
        expected_method = (PMethod.EXACT if not tied and len(canary) * len(baseline)
                           <= EXACT_MAX_PAIRS else PMethod.NORMAL)
        assert ours.method is expected_method
        methods[ours.method] += 1
        ref = stats.mannwhitneyu(canary, baseline, use_continuity=True, alternative="two-sided",
                                 method="exact" if ours.method is PMethod.EXACT
                                 else "asymptotic")
        worst_u = max(worst_u, abs(ours.u - float(ref.statistic)))
        worst_p = max(worst_p, abs(ours.p - float(ref.pvalue)))
        assert ours.u == pytest.approx(float(ref.statistic), abs=1e-9), (canary, baseline)
        assert ours.p == pytest.approx(float(ref.pvalue), abs=1e-9), (canary, baseline)
    assert methods[PMethod.EXACT] > 200 and methods[PMethod.NORMAL] > 200, methods
    print(f"\n{PAIRS} pairs ({methods[PMethod.EXACT]} exact, {methods[PMethod.NORMAL]} normal): "
          f"max |dU| {worst_u:.3g}, max |dp| {worst_p:.3g}")


def test_the_u_distribution_counts_every_ordering() -> None:
    for m, n in [(1, 1), (3, 5), (7, 9), (12, 4), (50, 50)]:
        counts = u_distribution(m, n)
        assert len(counts) == m * n + 1
        assert sum(counts) == math.comb(m + n, m)
        assert counts == counts[::-1]  # symmetric about m·n/2
        assert min(counts) >= 1


def test_hodges_lehmann_is_the_median_of_the_differences() -> None:
    rng = random.Random(5)
    for _ in range(100):
        canary = [rng.gauss(1.0, 2.0) for _ in range(rng.randint(1, 40))]
        baseline = [rng.gauss(0.0, 2.0) for _ in range(rng.randint(1, 40))]
        diffs = np.subtract.outer(np.array(canary), np.array(baseline)).ravel()
        assert hodges_lehmann(canary, baseline).effect == pytest.approx(
            float(np.median(diffs)), abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.98])
def test_the_exact_interval_has_at_least_the_confidence_and_is_the_narrowest(
        confidence: float) -> None:
    """The interval [D_(k), D_(mn+1-k)] misses the true shift with probability 2·P(U <= k-1):
    k is the largest with that at most 1 - confidence (scipy's exact distribution of U)."""
    rng = random.Random(11)
    for m, n in [(5, 5), (6, 9), (10, 10), (20, 20), (8, 30)]:
        canary = [rng.gauss(0.3, 1.0) for _ in range(m)]
        baseline = [rng.gauss(0.0, 1.0) for _ in range(n)]
        shift = hodges_lehmann(canary, baseline, confidence)
        assert shift.lower is not None and shift.upper is not None
        diffs = sorted(c - b for c in canary for b in baseline)
        k = diffs.index(shift.lower) + 1
        assert diffs[m * n - k] == shift.upper
        dist = stats._mannwhitneyu._MWU(m, n)  # scipy's exact null distribution of U
        miss = 2 * float(dist.cdf(k - 1))
        assert miss <= 1 - confidence + 1e-12
        assert 2 * float(dist.cdf(k)) > 1 - confidence


def test_too_few_samples_for_the_confidence_give_no_interval_and_fail() -> None:
    assert hodges_lehmann([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 0.98).lower is None
    result = judge_canary({"m": [1.0, 2.0, 3.0]}, {"m": [4.0, 5.0, 6.0]})
    assert result.metrics[0].classification is Classification.NODATA_FAIL
    assert "too few samples" in result.metrics[0].reason
    assert result.verdict is Verdict.FAIL


def test_outliers_are_removed_outside_the_widened_fences() -> None:
    values = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.01, 50.0, -40.0]
    q1, q3 = np.percentile(values, [25, 75])
    p1, p99 = np.percentile(values, [1, 99])
    low, high = min(p1, q1 - 3 * (q3 - q1)), max(p99, q3 + 3 * (q3 - q1))
    kept = remove_outliers(values, 3.0)
    assert kept == tuple(v for v in values if low <= v <= high)
    assert 50.0 not in kept and -40.0 not in kept and len(kept) == 8


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=25),
       st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=25))
def test_property_u_and_p_match_scipy(canary: list[float], baseline: list[float]) -> None:
    ours = mann_whitney(canary, baseline)
    ref = stats.mannwhitneyu(canary, baseline, use_continuity=True,
                             method="exact" if ours.method is PMethod.EXACT else "asymptotic")
    assert ours.u == pytest.approx(float(ref.statistic), abs=1e-9)
    assert ours.p == pytest.approx(float(ref.pvalue), abs=1e-9)
    assert ours.u + mann_whitney(baseline, canary).u == len(canary) * len(baseline)


def test_direction_and_allowed_effect_decide_high_and_low() -> None:
    rng = random.Random(3)
    base = [100 + rng.gauss(0, 2) for _ in range(30)]
    down = [80 + rng.gauss(0, 2) for _ in range(30)]
    def one(rule: MetricRule) -> Classification:
        return judge_canary({"x": down}, {"x": base},
                            JudgeSettings(rules={"x": rule})).metrics[0].classification
    assert one(MetricRule()) is Classification.LOW
    assert one(MetricRule(direction=Direction.DECREASE)) is Classification.LOW
    assert one(MetricRule(direction=Direction.INCREASE)) is Classification.PASS  # only up fails
    assert one(MetricRule(allowed_decrease=0.25)) is Classification.PASS  # -20 % is allowed
    assert one(MetricRule(allowed_decrease=0.10)) is Classification.LOW


def test_critical_failure_scores_zero_and_weights_make_the_score() -> None:
    rng = random.Random(4)
    base = [10 + rng.gauss(0, 0.5) for _ in range(25)]
    same = [10 + rng.gauss(0, 0.5) for _ in range(25)]
    high = [15 + rng.gauss(0, 0.5) for _ in range(25)]
    canary = {"a": same, "b": high, "c": same}
    baseline = {"a": base, "b": base, "c": base}
    weighted = JudgeSettings(rules={"a": MetricRule(weight=3.0), "b": MetricRule(weight=1.0),
                                    "c": MetricRule(group="other")},
                             group_weights={"default": 3.0, "other": 1.0})
    result = judge_canary(canary, baseline, weighted)
    # default group: 3 of 4 weight passed = 75; other: 100; (3·75 + 1·100) / 4 = 81.25
    assert result.score == 81.25 and result.verdict is Verdict.MARGINAL
    assert str(result.decision) == "pause"
    critical = JudgeSettings(rules={"b": MetricRule(critical=True)})
    result = judge_canary(canary, baseline, critical)
    assert result.score == 0.0 and result.verdict is Verdict.FAIL
    assert "critical metric b is High" in result.reason
    assert str(result.decision) == "rollback"


def test_half_the_metrics_without_data_fail_the_canary() -> None:
    data = [1.0 + i / 10 for i in range(10)]
    result = judge_canary({"a": data, "b": [math.nan] * 10}, {"a": data, "b": data})
    assert [m.classification for m in result.metrics] == [Classification.PASS,
                                                          Classification.NODATA_FAIL]
    assert result.score == 0.0 and result.verdict is Verdict.FAIL
    assert "1 of 2 metrics have no data" in result.reason
    three = judge_canary({"a": data, "b": [None], "c": data}, {"a": data, "b": data, "c": data},
                         JudgeSettings(pass_score=60, marginal_score=50))
    assert three.score == pytest.approx(66.67) and three.verdict is Verdict.PASS


# -- the command line -------------------------------------------------------------------------


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", "judge", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def _csv(path: Path, series: dict[str, list[float | None]]) -> str:
    lines = ["metric,value"]
    for metric, values in series.items():
        lines += [f"{metric},{'' if v is None else repr(v)}" for v in values]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


CONFIG = """\
apiVersion: pitstop.dev/v1alpha1
kind: JudgeConfig
metadata: {name: latency}
spec:
  metrics:
    apiserver_p99_seconds:
      direction: increase
      effectSize: {allowedIncrease: 0.10}
"""


def _latency(shift: float, seed: int) -> list[float | None]:
    rng = random.Random(seed)
    return [round(0.100 * (1 + shift) * (1 + rng.gauss(0, 0.05)), 6) for _ in range(20)]


@pytest.mark.parametrize(("shift", "verdict", "code", "classification"), [
    (0.30, "fail", 1, "High"),
    (0.02, "pass", 0, "Pass"),
])
def test_a_latency_shift_over_20_samples(tmp_path: Path, shift: float, verdict: str, code: int,
                                         classification: str) -> None:
    (tmp_path / "judge.yaml").write_text(CONFIG, encoding="utf-8")
    canary = _csv(tmp_path / "canary.csv", {"apiserver_p99_seconds": _latency(shift, 1)})
    baseline = _csv(tmp_path / "baseline.csv", {"apiserver_p99_seconds": _latency(0.0, 2)})
    proc = _run(tmp_path, "--canary", canary, "--baseline", baseline, "--config", "judge.yaml",
                "-o", "json")
    assert proc.returncode == code, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == verdict
    metric = doc["metrics"][0]
    assert metric["classification"] == classification
    assert metric["canaryCount"] == metric["baselineCount"] == 20
    ref = stats.mannwhitneyu([v for v in _latency(shift, 1) if v is not None],
                             [v for v in _latency(0.0, 2) if v is not None], method="exact")
    assert metric["u"] == pytest.approx(float(ref.statistic), abs=1e-9)
    assert metric["p"] == pytest.approx(float(ref.pvalue), abs=1e-9)
    assert metric["interval"]["lower"] <= metric["effect"] <= metric["interval"]["upper"]
    assert "allowed increase 10 %" in metric["reason"]
    assert metric["reason"].endswith(f": {classification}")


def test_identical_series_pass(tmp_path: Path) -> None:
    series = {"apiserver_p99_seconds": _latency(0.0, 3), "etcd_fsync_seconds": [0.004] * 20}
    canary = _csv(tmp_path / "c.csv", series)
    baseline = tmp_path / "b.json"
    baseline.write_text(json.dumps(series), encoding="utf-8")
    proc = _run(tmp_path, "--canary", canary, "--baseline", str(baseline), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["verdict"], doc["score"]) == ("pass", 100.0)
    assert [m["classification"] for m in doc["metrics"]] == ["Pass", "Pass"]
    assert doc["metrics"][0]["u"] == 200.0 and doc["metrics"][0]["p"] == 1.0


def test_all_missing_data_fails_as_no_data(tmp_path: Path) -> None:
    canary = tmp_path / "c.csv"
    canary.write_text("metric,value\napiserver_p99_seconds,\napiserver_p99_seconds,NaN\n"
                      "error_ratio,nan\n", encoding="utf-8")
    baseline = tmp_path / "b.json"
    baseline.write_text('{"apiserver_p99_seconds": [null, NaN], "error_ratio": [null]}',
                        encoding="utf-8")
    proc = _run(tmp_path, "--canary", str(canary), "--baseline", str(baseline), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["verdict"], doc["score"]) == ("fail", 0.0)
    assert [m["classification"] for m in doc["metrics"]] == ["NodataFail", "NodataFail"]
    assert doc["metrics"][0]["canaryMissing"] == 2 and doc["metrics"][0]["u"] is None
    assert "2 of 2 metrics have no data" in doc["reason"]
    table = _run(tmp_path, "--canary", str(canary), "--baseline", str(baseline))
    assert table.returncode == 1
    assert "NodataFail" in table.stdout and "verdict fail (rollback)" in table.stdout


@pytest.mark.parametrize(("canary_text", "config_text", "expected"), [
    ("value,metric\nm,1\n", None, ["c.csv:1:", "metric,value"]),
    ("metric,value\nm,1\nm,fast\n", None, ["c.csv:3: value:", "'fast' is not a number"]),
    ("metric,value\nm,inf\n", None, ["c.csv:2: value:", "infinite"]),
    ('{"m": [1, "x"]}', None, ["c.csv", "m[1]", "not a number"]),
    ("metric,value\nother,1\n", CONFIG, ["c.csv", "other", "spec.metrics", "judge.yaml"]),
    ("metric,value\nm,1\n", CONFIG.replace("direction: increase", "direction: up"),
     ["judge.yaml:7: spec.metrics.apiserver_p99_seconds.direction",
      "'increase', 'decrease' or 'either'"]),
    ("metric,value\nm,1\n", CONFIG.replace("direction:", "dirction:"),
     ["judge.yaml", "dirction", "did you mean `direction`"]),
    ("metric,value\nm,1\n", "apiVersion: pitstop.dev/v1alpha1\nkind: UpgradeTarget\n"
     "spec:\n  versions: {kubernetes: '1.34.2'}\n",
     ["judge.yaml: kind:", "UpgradeTarget object", "--config takes one JudgeConfig"]),
])
def test_bad_input_names_file_and_field_and_exits_2(tmp_path: Path, canary_text: str,
                                                   config_text: str | None,
                                                   expected: list[str]) -> None:
    (tmp_path / "c.csv").write_text(canary_text, encoding="utf-8")
    _csv(tmp_path / "b.csv", {"m": [1.0, 2.0]})
    args = ["--canary", "c.csv", "--baseline", "b.csv"]
    if config_text is not None:
        (tmp_path / "judge.yaml").write_text(config_text, encoding="utf-8")
        args += ["--config", "judge.yaml"]
    proc = _run(tmp_path, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)


def test_a_missing_sample_file_is_bad_input(tmp_path: Path) -> None:
    _csv(tmp_path / "b.csv", {"m": [1.0]})
    proc = _run(tmp_path, "--canary", "nope.csv", "--baseline", "b.csv")
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "--canary" in proc.stderr
    assert "Traceback" not in proc.stderr
