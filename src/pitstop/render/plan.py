"""A plan for people: the header, the findings grouped by code, the steps with their ids and
one version chain per component, the calendar; the same as Markdown; and ``explain``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pitstop.model.common import format_duration
from pitstop.planner.plan import StepAction
from pitstop.render.safe import markup, visible
from pitstop.render.table import Cell, print_table

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.calendar import Schedule
    from pitstop.planner import Plan
    from pitstop.planner.plan import Step
    from pitstop.preflight.findings import Finding

__all__ = ["FindingGroup", "change_chains", "explain_document", "group_findings", "how_text",
           "plan_document", "plan_markdown", "print_explain", "print_plan", "targets_text"]

_SEV_STYLE = {"blocking": "bold red", "warning": "yellow", "info": "dim"}
_SEV_ORDER = {"blocking": 0, "warning": 1, "info": 2}
ARROW = " → "


def plan_document(plan: Plan, schedule: Schedule | None) -> dict[str, Any]:
    doc = plan.to_dict()
    doc["schedule"] = schedule.to_dict() if schedule is not None else None
    return doc


def targets_text(targets: Sequence[str], limit: int = 3) -> str:
    if len(targets) <= limit:
        return ", ".join(targets)
    return f"{', '.join(targets[:limit])} +{len(targets) - limit}"


def change_chains(step: Step) -> list[str]:
    """What a step changes, one version chain per component in the order the components first
    move: ``containerd 1.7.30 → 1.7.36 → 2.0.14 → 2.1.9 → 2.2.9 → 2.3.7``. Components that
    move through the same versions share a chain (``kubelet, kube-proxy 1.34.12 → 1.36.5``);
    every component is named. The interleaving (which hop comes when) is in ``explain``."""
    if not step.changes:
        if step.action is StepAction.ETCD_SNAPSHOT:
            return [f"snapshot of {step.component} {step.to_version}"]
        if step.from_version == step.to_version:
            return [f"{step.component} {step.to_version}"]
        return [f"{step.component} {step.from_version}{ARROW}{step.to_version}"]
    chains: dict[str, list[str]] = {}
    for c in step.changes:
        chain = chains.setdefault(c.component, [c.from_version])
        if chain[-1] != c.from_version:  # not expected: say so rather than hide it
            chain.append(f"({c.from_version})")
        chain.append(c.to_version)
    shared: dict[tuple[str, ...], list[str]] = {}
    for component, chain in chains.items():
        shared.setdefault(tuple(chain), []).append(component)
    return [f"{', '.join(components)} {ARROW.join(chain)}"
            for chain, components in shared.items()]


def change_order(step: Step) -> str:
    """The changes of a node step in the order they are made: ``containerd 1.7.30 → 1.7.36 →
    2.0.14 → 2.1.9, then kubelet, kube-proxy 1.34.12 → 1.35.8, then …``."""
    runs: list[tuple[list[str], list[str]]] = []  # (components, versions) of consecutive hops
    for c in step.changes:
        if runs and c.from_version == runs[-1][1][0] and len(runs[-1][1]) == 2 \
                and c.to_version == runs[-1][1][1] and c.component not in runs[-1][0]:
            runs[-1][0].append(c.component)  # kube-proxy with the kubelet, same hop
            continue
        if runs and runs[-1][0] == [c.component] and runs[-1][1][-1] == c.from_version:
            runs[-1][1].append(c.to_version)
            continue
        runs.append(([c.component], [c.from_version, c.to_version]))
    return ", then ".join(f"{', '.join(comps)} {ARROW.join(vs)}" for comps, vs in runs)


def how_text(step: Step, required: dict[str, int]) -> str:
    """The strategy, batch size, surge, canary and approval of a step, in a few words."""
    how = step.strategy or ("snapshot" if step.action is StepAction.ETCD_SNAPSHOT else "—")
    if len(step.targets) > 1:
        how += f", {step.batch_size} at a time"
    if step.surge:
        how += f", surge {step.surge}"
    if step.canary:
        how = "canary " + how
    if step.requires_approval:
        n = required.get(step.cluster, 1)
        how += f"; waits for {n} approval{'s' if n != 1 else ''}"
    return how


# -- findings -------------------------------------------------------------------------------

@dataclass
class FixBlock:
    """Findings of one code that share a fix: each distinct message, with the clusters and
    objects it was found for."""

    fix: str
    messages: list[tuple[str, list[tuple[str, tuple[str, ...]]]]] = field(default_factory=list)


@dataclass
class FindingGroup:
    severity: str
    code: str
    count: int = 0
    blocks: list[FixBlock] = field(default_factory=list)


def group_findings(findings: Sequence[Finding]) -> list[FindingGroup]:
    """Findings by (severity, code), blocking first; within a code, by fix, then by message,
    so that a warning found in every cluster is said once, with the objects listed under it."""
    groups: dict[tuple[str, str], FindingGroup] = {}
    for f in findings:
        g = groups.setdefault((str(f.severity), f.code), FindingGroup(str(f.severity), f.code))
        g.count += 1
        block = next((b for b in g.blocks if b.fix == f.fix), None)
        if block is None:
            block = FixBlock(f.fix)
            g.blocks.append(block)
        entry = next((m for m in block.messages if m[0] == f.message), None)
        if entry is None:
            entry = (f.message, [])
            block.messages.append(entry)
        entry[1].append((f.cluster, tuple(f.objects)))
    return sorted(groups.values(), key=lambda g: (_SEV_ORDER.get(g.severity, 9), g.code))


def _finding_counts(findings: Sequence[Finding]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.severity)] = counts.get(str(f.severity), 0) + 1
    words = {"blocking": ("blocking", "blocking"), "warning": ("warning", "warnings"),
             "info": ("info", "info")}
    return ", ".join(f"{n} {words.get(s, (s, s))[n != 1]}"
                     for s, n in sorted(counts.items(), key=lambda kv: _SEV_ORDER.get(kv[0], 9)))


def _print_findings(findings: Sequence[Finding], console: Console) -> None:
    from rich.padding import Padding
    from rich.text import Text

    term = console.is_terminal

    def line(indent: int, text: str, style: str = "") -> None:
        if term:  # wrapped lines keep their indent
            console.print(Padding(Text(visible(text), style=style), (0, 0, 0, indent),
                                  expand=False))
        else:
            console.out(" " * indent + visible(text), highlight=False)

    if term:
        console.print(f"[bold]Findings[/]: {_finding_counts(findings)}")
    else:
        console.out(f"Findings: {_finding_counts(findings)}", highlight=False)
    for g in group_findings(findings):
        sev = g.severity.upper()
        count = f" ({g.count})" if g.count > 1 else ""
        if term:
            console.print(f"[{_SEV_STYLE.get(g.severity, '')}]{markup(f'{sev:8}')}[/] "
                          f"[bold]{markup(g.code)}[/]{count}")
        else:
            console.out(f"{visible(sev):8} {visible(g.code)}{count}", highlight=False)
        for block in g.blocks:
            for message, where in block.messages:
                line(2, message)
                for cluster, objects in where:
                    line(4, f"{cluster or 'fleet'}: {targets_text(objects, 6) or '—'}", "cyan")
            if block.fix:
                line(2, f"fix: {block.fix}", "green")


# -- the plan -------------------------------------------------------------------------------

def print_plan(plan: Plan, schedule: Schedule | None, console: Console, *,
               max_steps: int = 500) -> None:
    term = console.is_terminal
    target = ", ".join(f"{k}={v}" for k, v in plan.target.items())
    verdict = "ready" if plan.reachable else "blocked"
    if term:
        colour = "green" if plan.reachable else "bold red"
        console.print(f"[bold]Plan[/] for fleet [cyan]{markup(plan.fleet)}[/] → "
                      f"{markup(target)}: [{colour}]{verdict}[/], {len(plan.steps)} steps in "
                      f"{len(plan.waves)} wave(s)")
    else:
        console.out(f"Plan for fleet {visible(plan.fleet)} → {visible(target)}: {verdict}, "
                    f"{len(plan.steps)} steps in {len(plan.waves)} wave(s)", highlight=False)
    if plan.findings:
        console.out("")
        _print_findings(plan.findings, console)
    if plan.steps:
        console.out("")
        required = {a.cluster: a.required for a in plan.approvals}
        rows: list[list[str | Cell]] = []
        sections = []
        for i, s in enumerate(plan.steps[:max_steps]):
            new_wave = not i or s.wave != plan.steps[i - 1].wave
            how = Cell((how_text(s, required),),
                       "magenta" if s.canary else "yellow" if s.requires_approval else "")
            cells: list[str | Cell] = [s.id, Cell(tuple(change_chains(s))),
                                       targets_text(s.targets), how]
            if term:  # the wave as a heading row, not a column: the width goes to the change
                if new_wave:
                    sections.append(len(rows))
                    rows.append([Cell((f"wave {s.wave}",), "bold"), "", "", ""])
                rows.append(cells)
            else:  # one row per step, the wave in a column (for grep and awk)
                rows.append([cells[0], s.wave, *cells[1:]])
        columns = ("step", "change", "on", "how") if term else ("step", "wave", "change", "on",
                                                                 "how")
        # on a terminal the change gets the larger share of the width; ids never fold
        print_table(console, columns, rows, title="Steps", sections=sections,
                    no_wrap=("step",), ratio={"change": 5, "on": 3, "how": 3} if term else None)
        if len(plan.steps) > max_steps:
            console.out(f"… {len(plan.steps) - max_steps} more steps (-o json lists all)",
                        highlight=False)
    if schedule is not None:
        console.out("")
        rows = [[w.name, str(len(w.clusters)), w.start.strftime("%Y-%m-%d %H:%M %Z"),
                 w.end.strftime("%Y-%m-%d %H:%M %Z"), str(w.windows_used)]
                for w in schedule.waves]
        print_table(console, ("wave", "clusters", "starts", "ends", "windows"), rows,
                    title="Calendar")
        notes = []
        if schedule.finish is not None:
            notes.append(f"Expected finish: {schedule.finish.isoformat()}")
        notes += [f"calendar: {p}" for p in schedule.problems]
        notes += [f"calendar: {step_id} may overrun its window by {format_duration(over)}"
                  for step_id, over in schedule.overruns[:10]]
        for n in notes:
            console.out(visible(n), highlight=False)


def plan_markdown(plan: Plan, schedule: Schedule | None) -> str:
    def md(text: str) -> str:
        return visible(text).replace("|", "\\|")

    target = ", ".join(f"{k}={v}" for k, v in plan.target.items())
    out = [f"# Upgrade plan — {md(target)}", ""]
    out.append(f"- Fleet: `{md(plan.fleet)}`, policy: `{md(plan.policy)}`")
    out.append(f"- Reachable: **{'yes' if plan.reachable else 'no'}** — {len(plan.steps)} steps, "
               f"{len(plan.blocking)} blocking finding(s)")
    if schedule is not None and schedule.finish is not None:
        out.append(f"- Expected finish: {schedule.finish.isoformat()}")
    out.append("")
    if plan.findings:
        out += ["## Findings", "", "| severity | code | cluster | objects | message | fix |",
                "|---|---|---|---|---|---|"]
        for f in plan.findings:
            out.append(f"| {f.severity} | `{md(f.code)}` | {md(f.cluster) or '—'} | "
                       f"{md(targets_text(f.objects, 4))} | {md(f.message)} | {md(f.fix)} |")
        out.append("")
    if schedule is not None and schedule.waves:
        out += ["## Calendar", "", "| wave | clusters | start | end | windows |",
                "|---|---|---|---|---|"]
        for w in schedule.waves:
            out.append(f"| {md(w.name)} | {len(w.clusters)} | {w.start.isoformat()} | "
                       f"{w.end.isoformat()} | {w.windows_used} |")
        out.append("")
    required = {a.cluster: a.required for a in plan.approvals}
    out += ["## Steps", "", "| # | step | wave | phase | changes | targets | how | gates |",
            "|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(plan.steps, 1):
        out.append(f"| {i} | `{md(s.id)}` | {md(s.wave)} | {s.phase} | "
                   f"{'<br>'.join(md(c) for c in change_chains(s))} | "
                   f"{md(targets_text(s.targets))} | {md(how_text(s, required))} | "
                   f"{md(', '.join(g.name for g in s.gates))} |")
    return "\n".join(out) + "\n"


# -- explain --------------------------------------------------------------------------------

def _matches(step: Step, number: int, step_filter: str | None) -> bool:
    return not step_filter or step_filter in step.id or step_filter == str(number)


def explain_document(plan: Plan, step_filter: str | None = None) -> dict[str, Any]:
    """``explain -o json|yaml``: the steps that match, each as in the plan's ``-o json`` with
    its position in the plan (``number``), and the blocking findings."""
    return {"format": "pitstop.dev/v1alpha1/Explain", "fleet": plan.fleet,
            "target": dict(plan.target), "reachable": plan.reachable,
            "steps": [{"number": i, **s.to_dict()} for i, s in enumerate(plan.steps, 1)
                      if _matches(s, i, step_filter)],
            "blocking": [f.to_dict() for f in plan.blocking]}


def print_explain(plan: Plan, console: Console, step_filter: str | None = None) -> None:
    required = {a.cluster: a.required for a in plan.approvals}
    shown = 0
    for i, s in enumerate(plan.steps, 1):
        if not _matches(s, i, step_filter):
            continue
        shown += 1
        console.print(f"[bold]{i}. {markup(s.id)}[/]  ({markup(s.wave)} · {s.phase} · "
                      f"{markup(s.action)})")
        console.print(f"   changes: {markup('; '.join(change_chains(s)))}")
        if len(s.changes) > len(change_chains(s)):
            console.print(f"   order:   {markup(change_order(s))}")
        console.print(f"   targets: {markup(targets_text(s.targets, 6))}"
                      + (f" · at most {s.batch_size} at once" if len(s.targets) > 1 else "")
                      + (f" · surge {s.surge}" if s.surge else ""))
        console.print(f"   why:     {markup(s.reason)}")
        for g in s.gates:
            console.print(f"   gate:    {markup(g.name)} — {markup(g.description)}")
        if s.soak:
            console.print(f"   soak:    {format_duration(s.soak)}")
        if s.requires_approval:
            n = required.get(s.cluster, 1)
            console.print(f"   waits for {n} approval(s) (`pitstop approve RUN --step "
                          f"{markup(s.id)} --as NAME`) before it starts")
    if shown == 0:
        console.print("no step matches" if step_filter else "the plan has no steps")
    for f in plan.blocking:
        console.print(f"[bold red]blocked[/] {markup(f.code)}: {markup(f.message)} "
                      f"Fix: {markup(f.fix)}")
