"""Rendering plans, findings, schedules and the catalog for people (Rich tables, Markdown) and
for programs (JSON, YAML). No decisions are made here."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from pitstop.model.common import format_duration

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.calendar import Schedule
    from pitstop.catalog import Catalog
    from pitstop.planner import Plan
    from pitstop.preflight.findings import Finding

__all__ = [
    "catalog_dict",
    "plan_document",
    "render_catalog",
    "render_explain",
    "render_plan",
]

_SEV_STYLE = {"blocking": "bold red", "warning": "yellow", "info": "dim"}


def plan_document(plan: Plan, schedule: Schedule | None) -> dict[str, Any]:
    doc = plan.to_dict()
    doc["schedule"] = schedule.to_dict() if schedule is not None else None
    return doc


def _targets_text(targets: tuple[str, ...], limit: int = 3) -> str:
    if len(targets) <= limit:
        return ", ".join(targets)
    return f"{', '.join(targets[:limit])} +{len(targets) - limit}"


def _changes_text(plan_step: Any, *, compact: bool = False) -> str:
    if plan_step.changes:
        changes = plan_step.changes
        if compact:  # kube-proxy follows the kubelet; say so only when it differs
            kube = {(c.from_version, c.to_version) for c in changes if c.component == "kubelet"}
            changes = [c for c in changes if c.component != "kube-proxy"
                       or (c.from_version, c.to_version) not in kube]
        return ", ".join(f"{c.component} {c.from_version}→{c.to_version}" for c in changes)
    if plan_step.from_version == plan_step.to_version:
        return f"{plan_step.component} {plan_step.to_version}"
    return f"{plan_step.component} {plan_step.from_version}→{plan_step.to_version}"


def _findings_markdown(findings: list[Finding]) -> list[str]:
    lines = ["| severity | code | cluster | objects | message | fix |", "|---|---|---|---|---|---|"]
    for f in findings:
        objs = _targets_text(f.objects, 4).replace("|", "\\|")
        lines.append(f"| {f.severity} | `{f.code}` | {f.cluster or '—'} | {objs} | "
                     f"{f.message.replace('|', '/')} | {f.fix.replace('|', '/')} |")
    return lines


def plan_markdown(plan: Plan, schedule: Schedule | None) -> str:
    target = ", ".join(f"{k}={v}" for k, v in plan.target.items())
    out = [f"# Upgrade plan — {target}", ""]
    out.append(f"- Fleet: `{plan.fleet}`, policy: `{plan.policy}`")
    out.append(f"- Reachable: **{'yes' if plan.reachable else 'no'}** — {len(plan.steps)} steps, "
               f"{len(plan.blocking)} blocking finding(s)")
    if schedule is not None and schedule.finish is not None:
        out.append(f"- Expected finish: {schedule.finish.isoformat()}")
    out.append("")
    if plan.findings:
        out += ["## Findings", "", *_findings_markdown(plan.findings), ""]
    if schedule is not None and schedule.waves:
        out += ["## Calendar", "", "| wave | clusters | start | end | windows |",
                "|---|---|---|---|---|"]
        for w in schedule.waves:
            out.append(f"| {w.name} | {len(w.clusters)} | {w.start.isoformat()} | "
                       f"{w.end.isoformat()} | {w.windows_used} |")
        out.append("")
    out += ["## Steps", "", "| # | wave | cluster | phase | changes | targets | strategy | gates |",
            "|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(plan.steps, 1):
        out.append(f"| {i} | {s.wave} | {s.cluster} | {s.phase} | {_changes_text(s)} | "
                   f"{_targets_text(s.targets)} | {s.strategy or '—'} | "
                   f"{', '.join(g.name for g in s.gates)} |")
    return "\n".join(out) + "\n"


def render_plan(plan: Plan, schedule: Schedule | None, fmt: str, console: Console,
                *, max_steps: int = 200) -> None:
    if fmt == "json":
        console.file.write(json.dumps(plan_document(plan, schedule), indent=2) + "\n")
        return
    if fmt == "yaml":
        console.file.write(yaml.safe_dump(plan_document(plan, schedule), sort_keys=False))
        return
    if fmt == "markdown":
        console.file.write(plan_markdown(plan, schedule))
        return
    from rich.table import Table

    target = ", ".join(f"{k}={v}" for k, v in plan.target.items())
    verdict = "[green]ready[/]" if plan.reachable else "[bold red]blocked[/]"
    console.print(f"[bold]Plan[/] for fleet [cyan]{plan.fleet}[/] → {target}: {verdict}, "
                  f"{len(plan.steps)} steps in {len(plan.waves)} wave(s)")
    if plan.findings:
        console.print()
        console.print("[bold]Findings[/]")
        for f in plan.findings:
            where = f" [cyan]{f.cluster}[/]" if f.cluster else ""
            console.print(f"[{_SEV_STYLE[str(f.severity)]}]{str(f.severity).upper():8}[/] "
                          f"[bold]{f.code}[/]{where}  {_targets_text(f.objects, 4)}")
            console.print(f"         {f.message}")
            if f.fix:
                console.print(f"         [green]fix:[/] {f.fix}")
        console.print()
    if plan.steps:
        t = Table(title="Steps", expand=False)
        for col in ("#", "wave", "cluster", "change", "on", "how"):
            t.add_column(col, overflow="fold")
        for i, s in enumerate(plan.steps[:max_steps], 1):
            how = s.strategy or "—"
            if len(s.targets) > 1:
                how += f", {s.batch_size} at a time"
            if s.canary:
                how = "[magenta]canary[/] " + how
            if s.requires_approval:
                how += " [yellow]+approval[/]"
            t.add_row(str(i), s.wave, s.cluster, _changes_text(s, compact=True),
                      _targets_text(s.targets), how)
        console.print(t)
        if len(plan.steps) > max_steps:
            console.print(f"… {len(plan.steps) - max_steps} more steps (use -o json for all)")
    if schedule is not None:
        t = Table(title="Calendar", expand=False)
        for col in ("wave", "clusters", "starts", "ends", "windows"):
            t.add_column(col)
        for w in schedule.waves:
            t.add_row(w.name, str(len(w.clusters)), w.start.strftime("%Y-%m-%d %H:%M %Z"),
                      w.end.strftime("%Y-%m-%d %H:%M %Z"), str(w.windows_used))
        console.print(t)
        if schedule.finish is not None:
            console.print(f"Expected finish: [bold]{schedule.finish.isoformat()}[/]")
        for p in schedule.problems:
            console.print(f"[yellow]calendar:[/] {p}")
        for step_id, over in schedule.overruns[:10]:
            console.print(f"[yellow]calendar:[/] {step_id} may overrun its window by "
                          f"{format_duration(over)}")


def render_explain(plan: Plan, console: Console, step_filter: str | None = None) -> None:
    shown = 0
    for i, s in enumerate(plan.steps, 1):
        if step_filter and step_filter not in s.id and step_filter != str(i):
            continue
        shown += 1
        console.print(f"[bold]{i}. {s.id}[/]  ({s.wave} · {s.phase} · {s.action})")
        console.print(f"   changes: {_changes_text(s)}")
        console.print(f"   targets: {_targets_text(s.targets, 6)}"
                      + (f" · at most {s.batch_size} at once" if len(s.targets) > 1 else "")
                      + (f" · surge {s.surge}" if s.surge else ""))
        console.print(f"   why:     {s.reason}")
        for g in s.gates:
            console.print(f"   gate:    {g.name} — {g.description}")
        if s.soak:
            console.print(f"   soak:    {format_duration(s.soak)}")
        if s.requires_approval:
            console.print("   waits for `pitstop approve` before it starts")
    if shown == 0:
        console.print("no step matches" if step_filter else "the plan has no steps")
    for f in plan.blocking:
        console.print(f"[bold red]blocked[/] {f.code}: {f.message} Fix: {f.fix}")


def catalog_dict(catalog: Catalog) -> dict[str, Any]:
    return {
        "kubernetes": [
            {"minor": str(r.minor), "released": r.released.isoformat(),
             "endOfLife": r.end_of_life.isoformat(), "eolEstimated": r.eol_estimated,
             "latestPatch": str(r.latest)}
            for r in catalog.kubernetes.values()
        ],
        "skewPolicy": {
            "apiserverMaxSpread": catalog.skew.apiserver_max_spread,
            "kubeletMaxOlder": catalog.skew.kubelet_max_older,
            "kubeProxyMaxOlder": catalog.skew.kube_proxy_max_older,
            "controllersMaxOlder": catalog.skew.controllers_max_older,
        },
        "containerd": [
            {"line": str(ln.line), "latestPatch": str(ln.latest),
             "endOfLife": ln.end_of_life.isoformat() if ln.end_of_life else None,
             "supports": {str(k): str(v) for k, v in sorted(ln.supports.items())}}
            for ln in catalog.runtimes.get("containerd", ())
        ],
        "etcd": {
            "lines": {str(k): str(v) for k, v in catalog.etcd_lines.items()},
            "kubernetes": {str(k): {"kubeadm": str(v.kubeadm),
                                    "supportedLines": [str(x) for x in v.supported_lines]}
                           for k, v in sorted(catalog.etcd_for_kubernetes.items())},
        },
        "knownBad": [
            {"component": kb.component, "versions": kb.describe_versions(), "reason": kb.reason,
             "condition": kb.condition or None, "links": list(kb.links)}
            for kb in catalog.known_bad
        ],
        "apis": [
            {"apiVersion": a.api_version, "kind": a.kind,
             "deprecatedIn": str(a.deprecated_in) if a.deprecated_in else None,
             "removedIn": str(a.removed_in) if a.removed_in else None,
             "replacement": a.replacement}
            for a in catalog.apis
        ],
        "sources": catalog.sources,
    }


def render_catalog(catalog: Catalog, fmt: str, console: Console, section: str | None) -> None:
    doc = catalog_dict(catalog)
    if section:
        doc = {section: doc[section]}
    if fmt == "json":
        console.file.write(json.dumps(doc, indent=2) + "\n")
        return
    if fmt == "yaml":
        console.file.write(yaml.safe_dump(doc, sort_keys=False))
        return
    from rich.table import Table

    for name, rows in doc.items():
        if not isinstance(rows, list) or not rows:
            if isinstance(rows, dict) and name != "sources":
                console.print(f"[bold]{name}[/]: {json.dumps(rows)}")
            continue
        t = Table(title=name, expand=False)
        cols = list(rows[0].keys())
        for c in cols:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*[_cell(r[c]) for c in cols])
        console.print(t)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}≥{v}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
