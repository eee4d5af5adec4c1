"""Grouping clusters into waves: canary waves first, in the policy's order."""

from __future__ import annotations

from datetime import timedelta

from pitstop.model import Cluster, UpgradePolicy
from pitstop.planner.plan import WavePlan
from pitstop.preflight.findings import Finding, Severity

__all__ = ["assign_waves"]

_ENV_ORDER = {"development": 0, "test": 1, "staging": 2, "production": 3}


def _selector_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "every cluster"


def assign_waves(clusters: list[Cluster], policy: UpgradePolicy) -> tuple[list[WavePlan],
                                                                           list[Finding]]:
    """Each cluster goes to the first wave whose selector matches it. Canary waves run before
    the others (keeping their written order); clusters no wave selects form a last wave
    ``unassigned``, reported so the omission is seen."""
    findings: list[Finding] = []
    if not policy.spec.waves:
        ordered = sorted(clusters, key=lambda c: (_ENV_ORDER[c.environment], c.name))
        by_env: dict[str, list[str]] = {}
        for c in ordered:
            by_env.setdefault(c.environment, []).append(c.name)
        waves = [
            WavePlan(env, tuple(names), canary=False, soak=timedelta(0),
                     max_parallel_clusters=policy.spec.max_parallel_clusters,
                     reason=f"no waves in the policy: one wave per environment, {env} after the "
                     "less critical environments")
            for env, names in by_env.items()
        ]
        return waves, findings
    members: dict[str, list[str]] = {w.name: [] for w in policy.spec.waves}
    unassigned: list[str] = []
    for c in sorted(clusters, key=lambda c: c.name):
        for w in policy.spec.waves:
            if w.clusters.matches(c.full_labels):
                members[w.name].append(c.name)
                break
        else:
            unassigned.append(c.name)
    ordered_waves = [w for w in policy.spec.waves if w.canary] + [
        w for w in policy.spec.waves if not w.canary]
    out: list[WavePlan] = []
    for w in ordered_waves:
        if not members[w.name]:
            findings.append(Finding(
                "wave-empty", Severity.INFO, f"wave {w.name!r} selects no cluster of the target.",
                "check its clusters selector.", objects=(w.name,), source="planner"))
            continue
        reason = f"clusters matching {_selector_text(w.clusters.match_labels)}"
        if w.canary:
            reason += "; a canary wave: it runs first and its health gates the later waves"
        out.append(WavePlan(w.name, tuple(members[w.name]), w.canary, w.soak,
                            w.max_parallel_clusters or policy.spec.max_parallel_clusters, reason))
    if unassigned:
        findings.append(Finding(
            "cluster-not-in-wave", Severity.WARNING,
            f"{len(unassigned)} cluster(s) match no wave and run last, in wave 'unassigned'.",
            "add them to a wave's selector.", objects=tuple(unassigned), source="planner"))
        out.append(WavePlan("unassigned", tuple(unassigned), False, timedelta(0),
                            policy.spec.max_parallel_clusters,
                            "clusters no wave of the policy selects"))
    return out, findings
