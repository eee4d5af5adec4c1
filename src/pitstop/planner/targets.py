"""Checking the target against the catalog and the policy's waivers, before any cluster is
planned: unknown, unstable, known-bad or end-of-life versions, and components nobody runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pitstop.catalog import Catalog
from pitstop.model import Cluster, UpgradePolicy, UpgradeTarget, Waiver
from pitstop.preflight.findings import Finding, Severity
from pitstop.versions import Version, parse_version

__all__ = ["TargetVersions", "check_target", "find_waiver"]

CORE = ("kubernetes", "containerd", "cri-o", "etcd")


@dataclass(frozen=True)
class TargetVersions:
    kubernetes: Version | None = None
    containerd: Version | None = None
    crio: Version | None = None
    etcd: Version | None = None
    addons: dict[str, Version] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()  # active waivers, for rules checked per cluster

    def runtime(self, name: str) -> Version | None:
        return {"containerd": self.containerd, "cri-o": self.crio}.get(name)


def find_waiver(policy: UpgradePolicy, rule: str, component: str, version: Version | None,
                now: datetime) -> tuple[Waiver | None, Waiver | None]:
    """(active waiver, expired waiver) for this rule, component and version."""
    active = expired = None
    for w in policy.spec.waivers:
        if w.rule != rule or w.component != component:
            continue
        if w.version is not None and (version is None or parse_version(w.version) != version):
            continue
        if w.active(now):
            active = active or w
        else:
            expired = expired or w
    return active, expired


def _finding(code: str, msg: str, fix: str, severity: Severity = Severity.BLOCKING,
             objects: tuple[str, ...] = ()) -> Finding:
    return Finding(code=code, severity=severity, message=msg, fix=fix, objects=objects,
                   source="planner")


def check_known_bad(component: str, version: Version, policy: UpgradePolicy, catalog: Catalog,
                    now: datetime, *, cluster: str = "", why: str = "the target") -> list[Finding]:
    out: list[Finding] = []
    for kb in catalog.known_bad_for(component, version):
        links = " ".join(kb.links)
        if kb.condition:
            out.append(Finding(
                "known-bad-conditional", Severity.WARNING,
                f"{component} {version} ({why}) is known to break when {kb.condition}: "
                f"{kb.reason} {links}".strip(),
                f"make sure your configuration avoids it ({kb.condition}), or pick another "
                "version.", cluster, (f"{component}={version}",), "planner"))
            continue
        active, expired = find_waiver(policy, "known-bad", component, version, now)
        if active is not None:
            out.append(Finding(
                "known-bad-waived", Severity.WARNING,
                f"{component} {version} ({why}) is known-bad ({kb.reason}); allowed by a waiver "
                f"of {active.approved_by} until {active.expires.isoformat()}: {active.reason}",
                "move to a fixed version before the waiver expires.", cluster,
                (f"{component}={version}",), "planner"))
            continue
        extra = (f" A waiver for it expired on {expired.expires.isoformat()}."
                 if expired is not None else "")
        out.append(Finding(
            "target-known-bad", Severity.BLOCKING,
            f"{component} {version} ({why}) is known-bad: {kb.reason} {links}".strip() + extra,
            f"choose a version outside {kb.describe_versions()}, or add a waiver "
            f"(rule: known-bad, component: {component}, version: {version}) with a reason and an "
            "expiry to the UpgradePolicy.", cluster, (f"{component}={version}",), "planner"))
    return out


def check_target(target: UpgradeTarget, clusters: list[Cluster], policy: UpgradePolicy,
                 catalog: Catalog, now: datetime) -> tuple[TargetVersions | None, list[Finding]]:
    findings: list[Finding] = []
    versions = {k: parse_version(v) for k, v in target.spec.versions.items()}
    if not clusters:
        findings.append(_finding(
            "target-selects-nothing", "the target selects no cluster of the fleet.",
            "check spec.clusters of the UpgradeTarget against the clusters' labels."))
    addon_names = {a.name for c in clusters for a in c.addons}
    for name, v in versions.items():
        if name not in CORE and name not in addon_names:
            findings.append(_finding(
                "target-unknown-component",
                f"target names {name!r}, which is neither a core component (kubernetes, "
                "containerd, cri-o, etcd) nor an add-on of a selected cluster.",
                "fix the component name, or add the add-on to the clusters in the Fleet.",
                objects=(name,)))
        if v.is_prerelease:
            findings.append(_finding(
                "target-unstable", f"{name} {v} is a pre-release; pitstop plans stable releases "
                "only.", "choose a released version.", objects=(f"{name}={v}",)))

    k = versions.get("kubernetes")
    if k is not None:
        rel = catalog.release(k.line)
        if rel is None or not catalog.knows_kubernetes(k):
            known = f"{min(catalog.kubernetes)}–{catalog.newest_minor()}"
            findings.append(_finding(
                "target-not-in-catalog",
                f"Kubernetes {k} is not in the catalog (it knows {known}"
                + (f", latest {rel.latest} for {k.line}" if rel else "") + ").",
                "choose a version the catalog knows (`pitstop catalog`), or point --catalog at a "
                "directory with a newer kubernetes.yaml.", objects=(f"kubernetes={k}",)))
        elif rel.end_of_life < now.date():
            active, _ = find_waiver(policy, "end-of-life", "kubernetes", k, now)
            if active is None:
                findings.append(_finding(
                    "target-end-of-life",
                    f"Kubernetes {k.line} reached end of life on {rel.end_of_life}: it gets no "
                    "more security fixes.",
                    f"target a supported minor (newest known: {catalog.newest_minor()}), or plan "
                    "the next upgrade soon.", Severity.WARNING, (f"kubernetes={k}",)))
        findings.extend(check_known_bad("kubernetes", k, policy, catalog, now))
    for comp in ("containerd", "etcd", "cri-o"):
        cv = versions.get(comp)
        if cv is None:
            continue
        if comp == "containerd" and catalog.runtime_line("containerd", cv) is None:
            findings.append(_finding(
                "target-not-in-catalog",
                f"containerd {cv.line} is not a release line the catalog knows "
                f"({', '.join(str(x.line) for x in catalog.runtimes.get('containerd', ()))}).",
                "choose a known containerd version, or update the catalog.",
                objects=(f"containerd={cv}",)))
        if comp == "etcd" and cv.line not in catalog.etcd_lines:
            findings.append(_finding(
                "target-not-in-catalog",
                f"etcd {cv.line} is not a release line the catalog knows "
                f"({', '.join(str(x) for x in catalog.etcd_lines)}).",
                "choose a known etcd version, or update the catalog.", objects=(f"etcd={cv}",)))
        if comp == "cri-o" and k is not None and cv.line != k.line:
            findings.append(_finding(
                "target-unsupported-runtime",
                f"CRI-O {cv} serves Kubernetes {cv.line} only; the target is Kubernetes {k}.",
                f"choose cri-o={k.line}.x.", objects=(f"cri-o={cv}",)))
        findings.extend(check_known_bad(comp, cv, policy, catalog, now))
    if k is not None and "containerd" in versions:
        c = versions["containerd"]
        if catalog.runtime_supports("containerd", c, k.line) is False:
            active, expired = find_waiver(policy, "unsupported-runtime", "containerd", c, now)
            if active is None:
                findings.append(_finding(
                    "target-unsupported-runtime",
                    f"containerd {c} does not support Kubernetes {k.line} (catalog: "
                    "runtimes.yaml)." + (f" A waiver expired on {expired.expires.date()}."
                                         if expired else ""),
                    _containerd_hint(catalog, k), objects=(f"containerd={c}",)))
    if any(f.blocking for f in findings):
        return None, findings
    active_waivers = tuple(w for w in policy.spec.waivers if w.active(now))
    return TargetVersions(
        kubernetes=k,
        containerd=versions.get("containerd"),
        crio=versions.get("cri-o"),
        etcd=versions.get("etcd"),
        addons={n: v for n, v in versions.items() if n not in CORE},
        waivers=active_waivers,
    ), findings


def _containerd_hint(catalog: Catalog, k: Version) -> str:
    ok = [str(max(line.latest, line.supports[k.line])) for line in catalog.runtimes.get(
        "containerd", ()) if k.line in line.supports]
    if not ok:
        return f"the catalog knows no containerd that supports Kubernetes {k.line}."
    return f"choose one of: {', '.join(ok)} (or newer patches of those lines)."
