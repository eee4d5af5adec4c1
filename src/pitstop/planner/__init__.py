"""The planner: fleet + target + policy + catalog → an ordered, explained, skew-safe plan.

Pure: no I/O, no clock (``now`` is an argument), no randomness. Every step carries the reason it
exists and the gates that follow it; every intermediate state of every cluster is checked with
:func:`pitstop.catalog.rules.check_cluster`, and a cluster for which no safe order exists is
refused with the rule that would break.
"""

from __future__ import annotations

from datetime import datetime

from pitstop.planner.apis import check_api_usage
from pitstop.planner.cluster import plan_cluster
from pitstop.planner.plan import Approval, Change, Gate, Phase, Plan, Step, WavePlan
from pitstop.planner.targets import TargetVersions, check_target
from pitstop.planner.waves import assign_waves

__all__ = [
    "Approval",
    "Change",
    "Gate",
    "Phase",
    "Plan",
    "Step",
    "TargetVersions",
    "WavePlan",
    "make_plan",
]

from typing import TYPE_CHECKING

from pitstop.preflight import run_preflight
from pitstop.preflight.findings import Finding, Severity

if TYPE_CHECKING:
    from pitstop.catalog import Catalog
    from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget


def make_plan(
    fleet: Fleet,
    target: UpgradeTarget,
    policy: UpgradePolicy,
    catalog: Catalog,
    *,
    now: datetime,
    preflight: bool = True,
) -> Plan:
    """Plan the upgrade of every cluster ``target`` selects. Never raises for a fleet it cannot
    upgrade: the plan comes back with ``reachable == False`` and blocking findings that say why."""
    clusters = [c for c in fleet.spec.clusters if target.spec.clusters.matches(c.full_labels)]
    tv, findings = check_target(target, clusters, policy, catalog, now)
    plan = Plan(target=dict(target.spec.versions), fleet=fleet.metadata.name,
                policy=policy.metadata.name)
    waves, wave_findings = assign_waves(clusters, policy)
    findings.extend(wave_findings)
    plan.waves = waves
    by_name = {c.name: c for c in clusters}
    approvals = {a.environment: a for a in policy.spec.approvals}
    if tv is not None:
        for wave in waves:
            for name in wave.clusters:
                cluster = by_name[name]
                approval = approvals.get(cluster.environment)
                steps, cluster_findings = plan_cluster(
                    cluster, wave.name, tv, policy, catalog,
                    requires_approval=approval is not None, now=now,
                )
                if tv.kubernetes is not None:
                    findings.extend(check_api_usage(cluster, tv.kubernetes.line, catalog, policy,
                                                    now))
                plan.steps.extend(steps)
                findings.extend(cluster_findings)
                if approval is not None and steps:
                    plan.approvals.append(Approval(cluster.name, cluster.environment,
                                                   approval.required, tuple(approval.approvers)))
    if preflight:
        findings.extend(run_preflight(fleet, policy, catalog, now))
    plan.findings = _dedupe_sorted(findings)
    return plan


def _dedupe_sorted(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, tuple[str, ...], str]] = set()
    out: list[Finding] = []
    for f in findings:
        key = (f.code, f.cluster, f.objects, f.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
    rank = {Severity.BLOCKING: 0, Severity.WARNING: 1, Severity.INFO: 2}
    return sorted(out, key=lambda f: (rank[f.severity], f.cluster, f.code, f.objects))
