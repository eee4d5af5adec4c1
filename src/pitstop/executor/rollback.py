"""Rolling a wave back to its last known-good versions: first what it would undo
(:func:`plan_rollback`, which changes nothing — the command line shows it and asks), then
doing exactly that (:func:`carry_out`).

Newest change first. Node steps are undone by running their changes in reverse through the
same node jobs (cordon, drain within the budgets, uncordon), touching only nodes that moved; a
node a stalled drain left cordoned (no upgrade was started on it) is uncordoned, while one
whose upgrade was tried and failed stays cordoned, its annotation saying why, for a person to
look at. Add-ons go back to their previous version.
Control-plane steps across minors stay (Kubernetes has no minor downgrade), and the summary
says so. etcd has no downgrade either: its way back is the verified snapshot the plan took
before the hop, restored into a new cluster of the old version — which loses every write made
since the snapshot, so it is done only when asked (``restore_etcd``); otherwise the summary says
which snapshot and how.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pitstop.backend import EtcdRestore, OperationState, UpgradeComponent
from pitstop.executor.context import RunContext, Stop
from pitstop.executor.nodes import CORDON_ANNOTATION
from pitstop.executor.nodestep import run_node_step
from pitstop.executor.vocabulary import Act, RunStatus, StepStatus
from pitstop.planner.plan import Change, Phase, Step, StepAction

__all__ = ["NodeUndo", "RollbackPlan", "carry_out", "plan_rollback"]


@dataclass(frozen=True)
class NodeUndo:
    step: Step
    back: tuple[Change, ...]  # the step's changes reversed, each to its starting version
    nodes: tuple[str, ...]  # nodes not at the old versions: they go back
    uncordon: tuple[str, ...]  # cordoned by the step, drain stalled, never upgraded: uncordoned


@dataclass(frozen=True)
class EtcdUndo:
    cluster: str
    steps: tuple[Step, ...]  # the cluster's etcd steps in the wave that started (plan order)
    members: tuple[Step, ...]  # of which member upgrades
    snapshot: Step | None  # the wave's first verified snapshot
    snapshot_detail: str


@dataclass
class RollbackPlan:
    wave: str
    restore_etcd: bool
    nodes: list[NodeUndo] = field(default_factory=list)
    addons: list[Step] = field(default_factory=list)
    kept: list[Step] = field(default_factory=list)  # control-plane steps: no minor downgrade
    etcd: list[EtcdUndo] = field(default_factory=list)
    # the command that restores etcd, exactly as it must be typed for this run (a completed
    # run needs --undo-completed too)
    restore_command: str = ""

    @property
    def empty(self) -> bool:
        return not (self.nodes or self.addons or (self.restore_etcd and any(
            e.members and e.snapshot for e in self.etcd)))

    def describe(self) -> list[str]:
        """What will be undone and what will be kept, one line each."""
        out: list[str] = []
        for u in self.nodes:
            back = ", ".join(f"{c.component} {c.to_version}" for c in u.back)
            if u.nodes:
                out.append(f"undo {u.step.id}: {len(u.nodes)} node(s) back to {back} "
                           f"({', '.join(u.nodes)}) — cordon, drain within the PDBs, "
                           "downgrade, uncordon")
            if u.uncordon:
                out.append(f"uncordon {', '.join(u.uncordon)} (cordoned by {u.step.id}, "
                           "never upgraded)")
        for s in self.addons:
            out.append(f"undo {s.id}: add-on {s.component} {s.to_version} → {s.from_version}")
        for e in self.etcd:
            if not e.members:
                continue
            if e.snapshot is None:
                out.append(f"keep etcd of cluster {e.cluster}: {len(e.members)} member step(s) "
                           "started but no verified snapshot of this wave exists")
            elif self.restore_etcd:
                out.append(f"RESTORE etcd of cluster {e.cluster} from the snapshot of "
                           f"{e.snapshot.id}{_paren(e.snapshot_detail)} into a new etcd "
                           f"{e.snapshot.from_version} cluster: EVERY WRITE SINCE THE SNAPSHOT "
                           "IS LOST; the API servers must be restarted after it")
            else:
                out.append(f"keep etcd of cluster {e.cluster} at {e.members[0].to_version} "
                           f"({len(e.members)} member step(s)); the way back is the snapshot of "
                           f"{e.snapshot.id} restored into a new etcd {e.snapshot.from_version} "
                           "cluster, losing every write made since the snapshot: "
                           f"`{self.restore_command}`")
        if self.kept:
            out.append(f"keep {len(self.kept)} control-plane step(s) "
                       f"({', '.join(s.id for s in self.kept)}): Kubernetes has no minor "
                       "downgrade")
        return out or [f"nothing to undo in wave {self.wave}: no node or add-on changed"]


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


def plan_rollback(ctx: RunContext, wave: str, *, restore_etcd: bool = False) -> RollbackPlan:
    """What rolling ``wave`` back would do, from the journal and a fresh observation; changes
    nothing."""
    completed = ctx.journal.get("status") == RunStatus.COMPLETED
    plan = RollbackPlan(wave, restore_etcd, restore_command=(
        f"pitstop rollback {ctx.run.path} --wave {wave} --restore-etcd"
        + (" --undo-completed" if completed else "")))
    steps = [s for s in ctx.run.plan.steps if s.wave == wave]
    touched = [s for s in steps
               if StepStatus(ctx.journal.step(s.id).status).touched
               or ctx.journal.step(s.id).status == StepStatus.PAUSED]
    etcd: dict[str, list[Step]] = {}
    for step in reversed(touched):
        if step.phase is Phase.NODES and step.changes:
            back = tuple(Change(c.component, c.to_version, c.from_version)
                         for c in reversed(step.changes))
            obs = ctx.backend.observe(step.cluster)
            replaced = {a.target: a.detail.get("replaced-by") for a in
                        ctx.journal.actions(step.id, kind=Act.NODE_DONE)
                        if a.detail.get("replaced-by")}
            current = [str(replaced.get(n, n)) for n in step.targets]
            # where the step started, per component (its first change's from): a node that is
            # anywhere else moved; comparing with every hop's version would count an untouched
            # node of a multi-hop step as moved (its containerd 2.1.5 is not the 2.2.9 between)
            start = {c.component: c.to_version for c in back}  # the last hop back wins
            moved = tuple(n for n in current if (o := obs.node(n)) is not None and any(
                o.version_of(comp) != v for comp, v in start.items()))
            ours = f"step {step.id}:"
            # a node whose drain stalled: cordoned by this step, no upgrade ever started on it.
            # One whose upgrade was tried and failed stays cordoned for a person to look at.
            tried = {a.target for a in ctx.journal.actions(step.id, kind=Act.UPGRADE)}
            stalled = tuple(n for n in current if n not in moved and n not in tried
                            and (o := obs.node(n)) is not None and o.unschedulable
                            and ours in o.annotations.get(CORDON_ANNOTATION, ""))
            if moved or stalled:
                plan.nodes.append(NodeUndo(step, back, moved, stalled))
        elif step.phase is Phase.ADDONS:
            if ctx.journal.step(step.id).status != StepStatus.PAUSED:
                plan.addons.append(step)
        elif step.phase is Phase.ETCD:
            etcd.setdefault(step.cluster, []).insert(0, step)
        elif ctx.journal.step(step.id).status == StepStatus.DONE:
            plan.kept.append(step)
    for cluster, cluster_steps in etcd.items():
        members = tuple(s for s in cluster_steps if s.action == StepAction.UPGRADE_ETCD_MEMBER)
        snap = next((s for s in ctx.run.plan.steps if s.cluster == cluster and s.wave == wave
                     and s.action == StepAction.ETCD_SNAPSHOT
                     and ctx.journal.step(s.id).status == StepStatus.DONE), None)
        detail = ""
        if snap is not None:
            taken = [a for a in ctx.journal.actions(snap.id, kind=Act.OPERATION_DONE)
                     if a.target.endswith("/snapshot")
                     and a.outcome == str(OperationState.SUCCEEDED)]
            detail = str((taken[-1].outcome_detail or {}).get("message", "")) if taken else ""
        plan.etcd.append(EtcdUndo(cluster, tuple(cluster_steps), members, snap, detail))
    return plan


def carry_out(ctx: RunContext, plan: RollbackPlan, why: str) -> str:
    """Do what ``plan`` says (:func:`plan_rollback`); the summary. Raises :class:`Stop`
    (paused) when a node or the etcd restore cannot be rolled back, nodes left as observed."""
    done: list[str] = []
    for u in plan.nodes:
        step = u.step
        rb_id = f"{step.id}/rollback"
        if u.nodes:
            ctx.audit("rollback-step", f"{why}: returning {len(u.nodes)} node(s) to "
                      + ", ".join(f"{c.component} {c.to_version}" for c in u.back), rb_id,
                      cluster=step.cluster)
            result = run_node_step(ctx, step, u.back, list(u.nodes), step_id=rb_id)
            if isinstance(result, str):
                ctx.rollbacks.append(f"{step.id}: rollback incomplete: {result}")
                raise Stop(RunStatus.PAUSED, f"{why}; rollback of {step.id} could not finish: "
                           f"{result}. Nodes left as observed; see `pitstop status "
                           f"{ctx.run.path}`")
        for n in u.uncordon:
            ctx.effects.uncordon(rb_id, step.cluster, n, CORDON_ANNOTATION)
        ctx.journal.set_step(step.id, StepStatus.ROLLED_BACK, ctx.now(), why)
        done.append(f"{step.id} ({len(u.nodes)} node(s)"
                    + (f", {len(u.uncordon)} uncordoned" if u.uncordon else "") + ")")
    for step in plan.addons:
        op = ctx.run_op(step, f"{ctx.run.run_id}/{step.id}/rollback", UpgradeComponent(
            step.targets[0], step.component, step.from_version))
        if op.state is OperationState.SUCCEEDED:
            ctx.journal.set_step(step.id, StepStatus.ROLLED_BACK, ctx.now(), why)
            done.append(step.id)
        else:
            ctx.rollbacks.append(f"{step.id}: add-on rollback failed: {op.message}")
    notes = [_etcd_way_back(ctx, e, why, plan, done) for e in plan.etcd]
    summary = ("rolled back " + (", ".join(done) if done else "nothing (no node or add-on "
                                 "had changed)"))
    if plan.kept:
        summary += (f"; kept {len(plan.kept)} control-plane step(s) (no minor downgrade in "
                    "Kubernetes; the way back is restoring the etcd snapshot)")
    summary += "".join(f"; {n}" for n in notes if n)
    ctx.rollbacks.append(f"wave {plan.wave}: {summary}")
    ctx.audit("rollback-wave", f"{why}: {summary}", plan.wave)
    return summary


def _etcd_way_back(ctx: RunContext, e: EtcdUndo, why: str, plan: RollbackPlan,
                   done: list[str]) -> str:
    """Restore the wave's first verified snapshot of one cluster into a new cluster of the
    version it was taken on (``plan.restore_etcd``), or say how. A note for the summary ("" if etcd
    never moved)."""
    if not e.members:
        return ""  # only a snapshot was taken: etcd is as it was
    snap = e.snapshot
    if snap is None:
        return (f"etcd of cluster {e.cluster}: {len(e.members)} member step(s) started but no "
                "verified snapshot of this wave exists; etcd is left as it is")
    version = snap.from_version
    what = f"the snapshot of step {snap.id}{_paren(e.snapshot_detail)}"
    if not plan.restore_etcd:
        return (f"etcd of cluster {e.cluster} kept: {len(e.members)} member step(s) toward "
                f"{e.members[0].to_version} ({', '.join(m.id for m in e.members)}); etcd has no "
                f"downgrade, the way back is {what} restored into a new etcd {version} "
                "cluster — every write made since the snapshot is lost, and Kubernetes API "
                f"servers must be restarted after it. To do it: `{plan.restore_command}`")
    ctx.audit("rollback-step", f"{why}: restoring {what} into a new etcd {version} "
              f"cluster (writes since the snapshot are lost)", f"{snap.id}/restore",
              cluster=e.cluster)
    op = ctx.run_op(snap, f"{ctx.run.run_id}/{snap.id}/restore",
                    EtcdRestore(snapshot=snap.id, version=version))
    if op.state is not OperationState.SUCCEEDED:
        ctx.rollbacks.append(f"{snap.id}: etcd restore failed: {op.message}")
        raise Stop(RunStatus.PAUSED, f"{why}; the etcd restore of cluster {e.cluster} from "
                   f"{snap.id} failed: {op.message or 'no reason given'}. See `pitstop status "
                   f"{ctx.run.path}`")
    for s in e.steps:
        if StepStatus(ctx.journal.step(s.id).status).touched:
            ctx.journal.set_step(s.id, StepStatus.ROLLED_BACK, ctx.now(),
                                 f"{why}; etcd restored from {snap.id}")
    done.append(f"etcd of cluster {e.cluster} (restored {snap.id} into etcd {version}"
                f"{': ' + op.message if op.message else ''})")
    return ""
