"""``pitstop demo``: the example fleet's upgrade, told as a story, with zero configuration.

1. Plan the example fleet's upgrade: one PodDisruptionBudget blocks every drain of a
   production cluster; pitstop names it before anything starts.
2. Rehearse on the twin with an injected fault: the canary node's error rate breaches the
   canary analysis, and the wave rolls back to its last known-good versions by itself.
3. Apply the fix the finding suggests, re-plan, and rehearse cleanly: every wave completes,
   no workload drops below its PDB minimum.
4. Write one HTML report (timeline, availability, gates, rollbacks) that opens offline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from pitstop.catalog import load_catalog
from pitstop.cli.runs import describe_stalls, execute, report_data, start_run
from pitstop.config import load_documents
from pitstop.executor.approvals import approve_step
from pitstop.executor.vocabulary import RunStatus
from pitstop.model import FaultScenario, Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.render.runs import split_rollbacks
from pitstop.render.safe import markup
from pitstop.report.html import write_report

__all__ = ["run_demo"]

START = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # a Monday morning, inside staging's window


def _example(name: str) -> str:
    return (resources.files("pitstop") / "examples" / name).read_text(encoding="utf-8")


def _load() -> tuple[Fleet, UpgradePolicy, UpgradeTarget]:
    objs = [*load_documents(_example("fleet.yaml"), "examples/fleet.yaml"),
            *load_documents(_example("policy.yaml"), "examples/policy.yaml"),
            *load_documents(_example("target.yaml"), "examples/target.yaml")]
    fleet = next(o for o in objs if isinstance(o, Fleet))
    policy = next(o for o in objs if isinstance(o, UpgradePolicy))
    target = next(o for o in objs if isinstance(o, UpgradeTarget))
    return fleet, policy, target


def _fixed(fleet: Fleet) -> Fleet:
    """The fix the pdb-blocks-drain finding suggests: let the ledger PDB allow one disruption."""
    doc = fleet.model_dump(by_alias=True, mode="json", exclude_none=True)
    for c in doc["spec"]["clusters"]:
        for pdb in c.get("podDisruptionBudgets", []):
            if pdb.get("maxUnavailable") == 0:
                pdb["maxUnavailable"] = 1
    return Fleet.model_validate(doc)


def run_demo(runs_dir: Path, say: Callable[[str], None], seed: int = 7) -> tuple[Path, bool]:
    """Tell the story; return the report's path and whether every chapter ended as expected."""
    catalog = load_catalog()
    fleet, policy, target = _load()
    now = START
    stories: list[dict[str, Any]] = []
    ok = True

    say("[bold]1. Plan[/] — example fleet acme: staging-eu, prod-eu-1, prod-us-1 → "
        + markup(", ".join(f"{k}={v}" for k, v in target.spec.versions.items())))
    plan = make_plan(fleet, target, policy, catalog, now=now)
    lines = [f"{len(plan.steps)} steps in {len(plan.waves)} waves "
             f"({', '.join(w.name for w in plan.waves)})"]
    for f in plan.blocking:
        lines.append(f"BLOCKING {f.code} in {f.cluster}: {f.message} Fix: {f.fix}")
    for line in lines:
        say("   " + markup(line))
    stories.append({"title": "1. Plan: a PodDisruptionBudget that would stall every drain",
                    "lines": lines})
    ok &= [f.code for f in plan.blocking] == ["pdb-blocks-drain"]

    say("\n[bold]2. Rehearsal with a fault[/] — the canary node's error rate rises after its "
        "upgrade (injected into the twin)")
    faults = FaultScenario.model_validate({
        "metadata": {"name": "canary-breach"},
        "spec": {"faults": [{"type": "canaryErrorRate", "cluster": "staging-eu",
                             "pool": "general", "errorRate": 0.25}]}})
    fixed = _fixed(fleet)
    plan_ok = make_plan(fixed, target, policy, catalog, now=now)
    run1, twin1 = start_run(fixed, plan_ok, policy, runs_dir, seed=seed, start=now,
                            faults=faults, mode="rehearse")
    r1 = execute(run1, twin1)
    reason, rollbacks = split_rollbacks(r1.reason, r1.rollbacks)  # each said once
    lines = [f"result: {r1.status} — {reason}", *[f"rollback: {x}" for x in rollbacks]]
    for line in lines:
        say("   " + markup(line))
    stories.append({"title": "2. Rehearsal with an injected canary failure: automatic rollback",
                    "lines": lines})
    ok &= r1.status is RunStatus.ROLLED_BACK
    write_report(run1.path / "report.html", report_data(run1, twin1, r1,
                                                        title="pitstop demo — canary failure"))

    say("\n[bold]3. Fix and rehearse cleanly[/] — payments/ledger PDB set to maxUnavailable: 1 "
        "(what the finding suggested); re-planned: "
        + ("ready" if plan_ok.reachable else "still blocked"))
    run2, twin2 = start_run(fixed, plan_ok, policy, runs_dir, seed=seed, start=now,
                            faults=None, mode="rehearse")
    violations: list[Any] = []  # PDB minimums, checked at every simulated event
    twin2.subscribe(lambda: violations.extend(twin2.check_invariants()))
    r2 = execute(run2, twin2)
    approvals: list[str] = []
    while r2.status is RunStatus.PAUSED and "approval" in r2.reason:
        # production waits for its approvers; the demo plays the change board
        waiting = next(st for st in run2.journal.steps() if st.status == "pending"
                       and any(p.id == st.step_id and p.requires_approval
                               for p in plan_ok.steps))
        need = next(a for a in plan_ok.approvals
                    if waiting.step_id.startswith(a.cluster + "/"))
        for who in need.approvers[:need.required]:
            approve_step(run2, waiting.step_id, who, at=twin2.clock.now())
        approvals.append(f"{need.cluster}: approved by {', '.join(need.approvers)}")
        say("   " + markup(f"paused for approval of {need.cluster}; approved by "
                           f"{', '.join(need.approvers[:need.required])}; resuming"))
        r2 = execute(run2, twin2)
    data = report_data(run2, twin2, r2, title="pitstop demo — example fleet upgrade",
                       stories=stories)
    s = data["summary"]
    lines = [*approvals, f"result: {r2.status} — {r2.reason}",
             f"{r2.steps_done}/{r2.steps_total} steps; virtual makespan "
             f"{s['makespanSeconds'] / 3600:.1f} h (maintenance windows included); "
             f"{s['evictions']} evictions, {s['refusals429']} refused by a PDB and retried",
             describe_stalls(data["stalls"])]
    worst = sorted(s["minAvailability"].items(), key=lambda kv: kv[1])[:3]
    lines += [f"lowest availability of {w}: {r:.0%}" for w, r in worst]
    lines.append("no workload dropped below its PDB minimum at any simulated event"
                 if not violations
                 else f"PDB VIOLATIONS: {violations}")
    for line in lines:
        say("   " + markup(line))
    stories.append({"title": "3. Clean rehearsal after the fix", "lines": lines})
    ok &= r2.status is RunStatus.COMPLETED and not violations
    data["stories"] = stories
    report = write_report(run2.path / "report.html", data)
    say(f"\n[bold]4. Report[/] — {markup(report)}  (the fault run's report: "
        f"{markup(run1.path / 'report.html')})")
    say("   audit logs: " + markup(f"`pitstop audit verify {run2.path}`"))
    return report, ok
