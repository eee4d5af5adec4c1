"""A node step: its nodes' jobs, admitted adaptively.

The step's batch size is an upper bound. On every round, with a fresh observation, any waiting
node — not only the next in line — is admitted when every PDB covering its pods can absorb
them on top of the nodes already draining, and the schedulable nodes have room for its pods
(:func:`admits`). When nothing is in flight one node always starts (its drain waits on the
budget), and when a node finishes the next round starts at once, not a poll later.
"""

from __future__ import annotations

from collections.abc import Sequence

from pitstop.backend import ClusterObservation
from pitstop.drain import DrainOptions
from pitstop.executor.alerts import alerts_hold, await_alerts
from pitstop.executor.context import RunContext, Stop
from pitstop.executor.nodes import JobContext, JobState, NodeJob, ReplaceJob
from pitstop.executor.vocabulary import RunStatus, StepStatus
from pitstop.planner.plan import Change, Step, Strategy

__all__ = ["admits", "run_node_step"]


def _drain_options(ctx: RunContext, step: Step) -> DrainOptions:
    pp = ctx.run.policy.spec.pool_policy(step.pool)
    return DrainOptions(delete_empty_dir_data=pp.delete_empty_dir_data,
                        timeout_s=pp.drain_timeout.total_seconds())


def run_node_step(ctx: RunContext, step: Step, changes: tuple[Change, ...], nodes: list[str],
                  *, step_id: str | None = None) -> list[str] | str:
    """Carry ``changes`` out on ``nodes`` (``step_id``: a rollback's own id, in place); the
    nodes to gate on (replacements for replaced ones), or a failure message. A drain that
    stalls pauses the run (:class:`Stop`), naming the pods and PDBs."""
    sid = step_id or step.id
    drain = step.strategy is not Strategy.NO_DRAIN
    opts = _drain_options(ctx, step)
    replace = step.strategy is Strategy.REPLACE and step_id is None
    jctx = JobContext(ctx.effects, ctx.run.run_id, sid, step.cluster)
    force = ctx.run.policy.spec.pool_policy(step.pool).force_after_drain_timeout
    jobs: dict[str, NodeJob | ReplaceJob] = {}
    for n in nodes:
        job: NodeJob | ReplaceJob = (
            ReplaceJob(jctx, n, step.pool, changes, opts) if replace else
            NodeJob(jctx, n, changes, opts, drain=drain, force_after_timeout=force))
        job.recover()
        jobs[n] = job
    pending = [n for n in nodes if jobs[n].state is not JobState.DONE]
    active: list[str] = []
    # replace: at most maxSurge new nodes at once (at least one)
    limit = max(1, step.surge if replace and step.surge else step.batch_size)
    while pending or active:
        obs = ctx.backend.observe(step.cluster)
        # admit new nodes while the batch, budgets and capacity allow — any pending node
        # that fits, not only the next in line (no head-of-line blocking on one PDB)
        stopping = ctx.stopping()  # pause/abort, or another cluster stopped: admit no node
        # firing alerts the policy's alertGates match: admit no node; with none in flight,
        # wait for them to clear or pause (executor/alerts.py)
        held = (step_id is None and bool(pending) and len(active) < limit and not stopping
                and alerts_hold(ctx, step) is not None)  # a rollback is never held
        if held and not active:
            await_alerts(ctx, step, f"the next node of step {sid} ({pending[0]})")
            held = False
        for n in list(pending):
            if len(active) >= limit or stopping or held:
                break
            if not admits(obs, n, active):
                continue
            pending.remove(n)
            active.append(n)
            ctx.audit("node-start", f"{n}: " + ", ".join(
                f"{c.component} → {c.to_version}" for c in changes)
                + f" ({len(active)} of at most {limit} at once)", n, cluster=step.cluster)
        if not active and pending:
            if stopping:
                ctx.check_requests()  # raises: the nodes in flight have finished
            active.append(pending.pop(0))  # always make progress: the drain waits on PDBs
        freed = False  # a node finished: its place goes to the next at once, not a poll later
        for n in list(active):
            job = jobs[n]
            st = job.advance(obs)
            if st is JobState.DONE:
                active.remove(n)
                freed = True
                ctx.audit("node-done", f"{n} replaced by {job.new_name}"
                          if isinstance(job, ReplaceJob) else f"{n} upgraded and uncordoned",
                          n, cluster=step.cluster)
            elif st is JobState.BLOCKED:
                ctx.journal.set_step(sid, StepStatus.PAUSED, ctx.now(), job.message)
                pdbs = ", ".join(job.blocking_pdbs)
                raise Stop(RunStatus.PAUSED, f"{job.message}. The node stays cordoned "
                           "(annotation pitstop.dev/cordoned says why). Fix "
                           + (f"the PDB(s) {pdbs} or " if pdbs else "")
                           + f"the pods, then `pitstop resume {ctx.run.path}`; pitstop does "
                           "not force-delete unless the policy allows it")
            elif st is JobState.FAILED:
                return job.message
        if (active or pending) and not (freed and pending):
            ctx.sleep(ctx.poll_s)
    return [j.new_name if isinstance(j, ReplaceJob) else n for n, j in jobs.items()]


def admits(obs: ClusterObservation, node: str, active: Sequence[str]) -> bool:
    """Adaptive parallelism: another node may start draining only if every PDB covering
    its pods can absorb them on top of the nodes already draining, and the schedulable
    nodes have room for its pods."""
    if not active:
        return True
    busy = {*active, node}
    moving = [p for p in obs.pods if p.node in busy
              and p.owner_kind not in ("DaemonSet",) and not p.mirror]
    for pdb in obs.pdbs:
        on_candidate = sum(1 for p in moving
                           if p.node == node and pdb.selects(p.namespace, p.labels))
        if on_candidate and pdb.disruptions_allowed < on_candidate:
            return False
    used: dict[str, int] = {}  # one pass over the pods (not one per node)
    for p in obs.pods:
        if p.node is not None:
            used[p.node] = used.get(p.node, 0) + p.millicpu
    free_cpu = sum(max(0, n.allocatable_millicpu - used.get(n.name, 0)) for n in obs.nodes
                   if n.ready and not n.unschedulable and n.name not in busy)
    need_cpu = sum(p.millicpu for p in moving)
    known = any(n.allocatable_millicpu for n in obs.nodes)
    return not known or need_cpu <= free_cpu
