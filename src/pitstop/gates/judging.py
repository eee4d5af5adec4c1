"""The canary judge in a run: the ``canary-judge`` gate provider and what a run keeps of it.

After a canary node step, for each metric of the policy's ``spec.canaryJudge.judge``, one range
query per metric over the last ``lookback`` of every canary and baseline node's series (the
query's ``template`` is the metric's name, filled with ``cluster`` and ``nodes``); the canary's
samples are the points of the step's nodes, the baseline's those of the nodes of the same pool
not yet upgraded (none left: of the cluster). :func:`~pitstop.gates.canary_judge.judge_canary`
judges them; the reading's value is the score, judged by the conditions :func:`judge_conditions`
makes from the thresholds — ``result >= pass`` Successful, ``result < marginal`` Failed,
in between Inconclusive — so pass → proceed, marginal → pause, fail → roll back, exactly as the
verdict says. A query that breaks, or no baseline to compare with, is an Error reading.

The whole :class:`~pitstop.gates.canary_judge.JudgeResult` is kept in the gate's memo under
:data:`JUDGEMENT` (the executor journals it as :func:`judge_document` for the report and
``-o json``).

Pure: the metric source is handed in through the gate's context.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.backend.api import ClusterObservation, NodeObservation
from pitstop.backend.metrics import MetricQuery, MetricSource
from pitstop.gates.analysis import Reading
from pitstop.gates.canary_judge import (
    Direction,
    JudgeResult,
    JudgeSettings,
    MetricRule,
    MetricVerdict,
    judge_canary,
)
from pitstop.gates.checks import _same_version
from pitstop.gates.condition import Condition
from pitstop.model import CanaryJudgePolicy, JudgeSpec
from pitstop.planner.plan import Step

__all__ = ["CANARY_JUDGE", "FORMAT", "JUDGEMENT", "baseline_nodes", "judge_conditions",
           "judge_document", "judge_nodes", "judge_params", "measure_judge", "policy_from",
           "settings_for"]

CANARY_JUDGE = "canary-judge"
"""The gate kind (and gate name) of the judge after a canary node step."""
JUDGEMENT = "judgement"
"""The key of the last :class:`JudgeResult` in the gate's memo."""
FORMAT = "pitstop.dev/v1alpha1/CanaryJudgement"


def settings_for(spec: JudgeSpec | None) -> JudgeSettings:
    """The judge's settings from a JudgeConfig's (or ``canaryJudge.judge``'s) spec."""
    if spec is None:
        return JudgeSettings()
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


def judge_conditions(spec: JudgeSpec) -> tuple[Condition, Condition]:
    """(success, failure) conditions on the score: the verdict's thresholds."""
    t = spec.thresholds
    return (Condition.parse(f"result >= {t.pass_!r}"), Condition.parse(f"result < {t.marginal!r}"))


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
    """The judgement as a document (docs/judge.md, "The -o json contract")."""
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


def judge_params(policy: CanaryJudgePolicy) -> dict[str, str]:
    """The gate parameters that carry the policy's judge to the provider."""
    return {"judge": policy.model_dump_json(by_alias=True)}


def _upgraded(node: NodeObservation, step: Step) -> bool:
    """At one of the step's new versions already (upgraded by this run or before)."""
    for c in step.changes:
        version = node.version_of(c.component)
        if version is not None and _same_version(version, c.to_version):
            return True
    return False


def baseline_nodes(obs: ClusterObservation, step: Step, canary: Sequence[str]) -> list[str]:
    """The nodes to compare the canary with: of the step's pool, not the canary, not yet at
    the step's versions; when the pool has none, those of the whole cluster."""
    chosen = set(canary)
    others = [n for n in obs.nodes if n.name not in chosen and not _upgraded(n, step)]
    pool = {n.pool for n in obs.nodes if n.name in chosen} | ({step.pool} if step.pool else set())
    same = [n.name for n in others if n.pool in pool]
    return sorted(same or [n.name for n in others])


def _alternation(names: Sequence[str]) -> str:
    return "|".join(re.escape(n) for n in names)


def judge_nodes(source: MetricSource, cluster: str, policy: CanaryJudgePolicy,
                canary: Sequence[str], baseline: Sequence[str], now: float) -> JudgeResult:
    """Query every metric of the policy's judge over ``[now - lookback, now]`` for the canary
    and baseline nodes, and judge. MetricQueryError propagates (the gate reports Error)."""
    start = now - policy.lookback.total_seconds()
    step_s = policy.step.total_seconds()
    nodes = sorted({*canary, *baseline})
    canary_set, baseline_set = set(canary), set(baseline)
    samples_c: dict[str, list[float | None]] = {}
    samples_b: dict[str, list[float | None]] = {}
    for metric in policy.judge.metrics:
        query = MetricQuery(promql=metric, template=metric,
                            fills={"cluster": cluster, "nodes": _alternation(nodes)})
        c: list[float | None] = []
        b: list[float | None] = []
        for series in source.range(cluster, query, start, now, step_s):
            node = series.labels.get("node", "")
            side = c if node in canary_set else b if node in baseline_set else None
            if side is not None:
                side.extend(v for _, v in series.points)
        samples_c[metric], samples_b[metric] = c, b
    return judge_canary(samples_c, samples_b, settings_for(policy.judge))


def measure_judge(policy: CanaryJudgePolicy, source: MetricSource | None,
                  obs: ClusterObservation, step: Step, canary: Sequence[str], now: float,
                  memo: dict[str, Any]) -> Reading:
    """One measurement of the judge: a reading of the score, the result kept in ``memo``."""
    if source is None:
        return Reading.broken("cannot judge: the backend has no metric source (configure "
                              "the clusters' Prometheus endpoints, or rehearse on the twin)")
    if not canary:
        return Reading.broken(f"cannot judge: step {step.id} names no canary node")
    baseline = baseline_nodes(obs, step, canary)
    if not baseline:
        return Reading.broken(f"cannot judge: no node of cluster {step.cluster} is left at "
                              "the old version to compare the canary with")
    result = judge_nodes(source, step.cluster, policy, canary, baseline, now)
    memo[JUDGEMENT] = result
    shown = ", ".join(f"{v.metric} {v.classification}" for v in result.metrics)
    return Reading(result.score, f"judge {result.verdict} ({result.decision}): "
                   f"{result.reason} [{shown}]; canary {', '.join(canary)} vs baseline "
                   f"{len(baseline)} node(s)", label="canary-judge score")


def policy_from(params: Mapping[str, str], memo: dict[str, Any]) -> CanaryJudgePolicy:
    """The policy a gate's parameters carry (parsed once per gate, kept in its memo)."""
    cached = memo.get("policy")
    if isinstance(cached, CanaryJudgePolicy):
        return cached
    policy = CanaryJudgePolicy.model_validate_json(params["judge"])
    memo["policy"] = policy
    return policy
