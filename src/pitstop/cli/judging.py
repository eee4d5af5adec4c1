"""``pitstop judge``: the canary judge (pitstop.gates.canary_judge) on samples given as files.

The files are read by :mod:`pitstop.config.samples` and :func:`pitstop.config.load_judge_config`;
this module turns the JudgeConfig into the judge's settings, checks that the samples name only
metrics the config knows, and writes the result: the ``-o json`` document (its contract:
docs/judge.md, "The -o json contract") or a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pitstop.errors import ConfigError, ConfigProblem
from pitstop.gates.canary_judge import (
    Direction,
    JudgeResult,
    JudgeSettings,
    MetricRule,
    MetricVerdict,
    judge_canary,
)

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.model import JudgeConfig

__all__ = ["FORMAT", "judge_document", "print_judgement", "run_judge", "settings_for"]

FORMAT = "pitstop.dev/v1alpha1/CanaryJudgement"


def settings_for(config: JudgeConfig | None) -> JudgeSettings:
    if config is None:
        return JudgeSettings()
    spec = config.spec
    rules = {
        name: MetricRule(
            direction=Direction(m.direction), critical=m.critical, weight=m.weight,
            group=m.group, allowed_increase=m.effect_size.allowed_increase,
            allowed_decrease=m.effect_size.allowed_decrease,
            remove_outliers=spec.remove_outliers if m.remove_outliers is None
            else m.remove_outliers)
        for name, m in spec.metrics.items()}
    return JudgeSettings(
        confidence=spec.confidence, tolerance=spec.tolerance, pass_score=spec.thresholds.pass_,
        marginal_score=spec.thresholds.marginal, outlier_factor=spec.outlier_factor,
        rules=rules, default_rule=MetricRule(remove_outliers=spec.remove_outliers),
        group_weights=dict(spec.groups))


def run_judge(canary_file: str, baseline_file: str, config_file: str | None) -> JudgeResult:
    from pitstop.config import load_judge_config
    from pitstop.config.samples import Samples, load_samples

    problems: list[ConfigProblem] = []
    config = None
    samples: dict[str, Samples] = {}
    for option, path in (("--canary", canary_file), ("--baseline", baseline_file)):
        try:
            samples[option] = load_samples(path, option)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if config_file is not None:
        try:
            config = load_judge_config(config_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    if config is not None and config.spec.metrics:
        for option, path in (("--canary", canary_file), ("--baseline", baseline_file)):
            for metric in samples[option]:
                if metric not in config.spec.metrics:
                    problems.append(ConfigProblem(
                        path, None, metric, f"the metric {metric!r} is not in {config_file}'s "
                        "spec.metrics.", f"add `{metric}:` under spec.metrics in {config_file}, "
                        "or remove its samples."))
        if problems:
            raise ConfigError(problems)
    return judge_canary(samples["--canary"], samples["--baseline"], settings_for(config))


def _metric_document(v: MetricVerdict, confidence: float) -> dict[str, Any]:
    interval = None if v.lower is None or v.upper is None else {
        "lower": v.lower, "upper": v.upper, "confidence": confidence}
    return {
        "metric": v.metric, "classification": str(v.classification), "reason": v.reason,
        "group": v.rule.group, "weight": v.rule.weight, "critical": v.rule.critical,
        "direction": str(v.rule.direction), "allowedIncrease": v.rule.allowed_increase,
        "allowedDecrease": v.rule.allowed_decrease,
        "canaryCount": v.canary_n, "baselineCount": v.baseline_n,
        "canaryMissing": v.canary_missing, "baselineMissing": v.baseline_missing,
        "canaryOutliers": v.canary_outliers, "baselineOutliers": v.baseline_outliers,
        "u": v.u, "p": v.p, "pMethod": None if v.p_method is None else str(v.p_method),
        "effect": v.effect, "interval": interval, "relativeChange": v.relative_change,
    }


def judge_document(result: JudgeResult) -> dict[str, Any]:
    s = result.settings
    return {
        "format": FORMAT, "verdict": str(result.verdict), "decision": str(result.decision),
        "score": result.score, "reason": result.reason,
        "confidence": s.confidence, "tolerance": s.tolerance,
        "thresholds": {"pass": s.pass_score, "marginal": s.marginal_score},
        "groups": [{"name": g.name, "weight": g.weight, "score": round(g.score, 2),
                    "metrics": g.metrics} for g in result.groups],
        "metrics": [_metric_document(v, s.confidence) for v in result.metrics],
    }


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_judgement(console: Console, result: JudgeResult) -> None:
    from pitstop.render import print_table
    from pitstop.render.safe import visible

    rows = [[v.metric, str(v.canary_n), str(v.baseline_n), _g(v.u), _g(v.p), _g(v.effect),
             "-" if v.lower is None else f"{_g(v.lower)}..{_g(v.upper)}",
             str(v.classification)] for v in result.metrics]
    print_table(console, ["metric", "canaryN", "baselineN", "U", "p", "effect",
                          f"{result.settings.confidence * 100:g}% interval", "classification"],
                rows, no_wrap=["metric"])
    for v in result.metrics:
        console.out(visible(v.reason), highlight=False)
    console.out(visible(f"verdict {result.verdict} ({result.decision}): {result.reason}"),
                highlight=False)
