"""Removed and deprecated APIs still in use, judged against the target Kubernetes minor."""

from __future__ import annotations

from datetime import datetime

from pitstop.catalog import Catalog
from pitstop.model import Cluster, UpgradePolicy
from pitstop.planner.targets import find_waiver
from pitstop.preflight.findings import Finding, Severity
from pitstop.versions import Minor

__all__ = ["check_api_usage"]


def _uses(cluster: Cluster) -> dict[tuple[str, str], list[str]]:
    """(apiVersion, kind) → objects using it, from workloads and recorded API usage."""
    out: dict[tuple[str, str], list[str]] = {}
    for w in cluster.workloads:
        out.setdefault((w.effective_api_version, w.kind), []).append(
            f"{w.namespace}/{w.name}")
    for ref in cluster.api_usage:
        name = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        if ref.source:
            name += f" ({ref.source})"
        out.setdefault((ref.api_version, ref.kind), []).append(name)
    return out


def check_api_usage(cluster: Cluster, target: Minor, catalog: Catalog, policy: UpgradePolicy,
                    now: datetime) -> list[Finding]:
    """Blocking for every API the target minor no longer serves; a warning for deprecated
    ones. A ``removed-api`` waiver (component ``<apiVersion>/<kind>``) turns the block into a
    warning, for objects known to be migrated before the step."""
    removed = catalog.removed_by(target)
    deprecated = catalog.deprecated_at(target)
    findings: list[Finding] = []
    for (api_version, kind), objects in sorted(_uses(cluster).items()):
        key = (api_version, kind)
        objs = tuple(f"{kind} {o}" for o in objects)
        if key in removed:
            a = removed[key]
            fix = (f"migrate to {a.replacement} (served since {a.replacement_available_in}) "
                   "before the upgrade" if a.replacement else "remove these objects: the API "
                   "has no replacement")
            waiver, _ = find_waiver(policy, "removed-api", "kubernetes", None, now)
            comp_waiver, _ = find_waiver(policy, "removed-api", f"{api_version}/{kind}", None,
                                         now)
            w = comp_waiver or waiver
            findings.append(Finding(
                "removed-api-in-use", Severity.WARNING if w else Severity.BLOCKING,
                f"{api_version} {kind} is removed in Kubernetes {a.removed_in} and still used by "
                f"{len(objects)} object(s); they stop working after the upgrade to {target}."
                + (f" Waived by {w.approved_by}: {w.reason}" if w else ""),
                fix, cluster.name, objs, "planner"))
        elif key in deprecated:
            a = deprecated[key]
            findings.append(Finding(
                "deprecated-api-in-use", Severity.WARNING,
                f"{api_version} {kind} is deprecated since {a.deprecated_in}"
                + (f" and removed in {a.removed_in}" if a.removed_in else "") + ".",
                f"migrate to {a.replacement}." if a.replacement else "plan its removal.",
                cluster.name, objs, "planner"))
    return findings
