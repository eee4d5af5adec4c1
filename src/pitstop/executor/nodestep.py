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
from pitstop.executor.context import RunContext, Stop
from pitstop.executor.nodes import JobContext, JobState, NodeJob, ReplaceJob
from pitstop.executor.vocabulary import Act, RunStatus, StepStatus
from pitstop.observe.api import Span
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
    tel = ctx.telemetry
    spans: dict[str, tuple[Span, float]] = {}  # a node job's span and when it was admitted

    def admitted(n: str) -> None:
        spans[n] = (tel.start_span("node job", node=n, step=sid, cluster=step.cluster),
                    ctx.now())

    def finished(n: str, outcome: str, why: str = "") -> None:
        span, since = spans.pop(n)
        span.set("pitstop.outcome", outcome)
        if why:
            span.fail(why)
        span.end()
        tel.node_job_finished(ctx.now() - since, outcome)
        tel.drain_stalled(_stall_seconds(ctx, sid, n))

    try:
        while pending or active:
            obs = ctx.backend.observe(step.cluster)
            # admit new nodes while the batch, budgets and capacity allow — any pending node
            # that fits, not only the next in line (no head-of-line blocking on one PDB)
            stopping = ctx.stopping()  # pause/abort, or another cluster stopped: admit no node
            for n in list(pending):
                if len(active) >= limit or stopping:
                    break
                if not admits(obs, n, active):
                    continue
                pending.remove(n)
                active.append(n)
                admitted(n)
                ctx.audit("node-start", f"{n}: " + ", ".join(
                    f"{c.component} → {c.to_version}" for c in changes)
                    + f" ({len(active)} of at most {limit} at once)", n, cluster=step.cluster)
            if not active and pending:
                if stopping:
                    ctx.check_requests()  # raises: the nodes in flight have finished
                active.append(pending.pop(0))  # always make progress: the drain waits on PDBs
                admitted(active[-1])
            freed = False  # a node finished: its place goes to the next at once, not a poll later
            for n in list(active):
                job = jobs[n]
                with tel.within(spans[n][0]):  # the job's backend calls are its children
                    st = job.advance(obs)
                if st is JobState.DONE:
                    active.remove(n)
                    freed = True
                    finished(n, "done")
                    ctx.audit("node-done", f"{n} replaced by {job.new_name}"
                              if isinstance(job, ReplaceJob) else f"{n} upgraded and uncordoned",
                              n, cluster=step.cluster)
                elif st is JobState.BLOCKED:
                    ctx.journal.set_step(sid, StepStatus.PAUSED, ctx.now(), job.message)
                    finished(n, "blocked", job.message)
                    pdbs = ", ".join(job.blocking_pdbs)
                    raise Stop(RunStatus.PAUSED, f"{job.message}. The node stays cordoned "
                               "(annotation pitstop.dev/cordoned says why). Fix "
                               + (f"the PDB(s) {pdbs} or " if pdbs else "")
                               + f"the pods, then `pitstop resume {ctx.run.path}`; pitstop does "
                               "not force-delete unless the policy allows it")
                elif st is JobState.FAILED:
                    finished(n, "failed", job.message)
                    return job.message
            if (active or pending) and not (freed and pending):
                ctx.sleep(ctx.poll_s)
        return [j.new_name if isinstance(j, ReplaceJob) else n for n, j in jobs.items()]
    finally:
        for n in list(spans):
            finished(n, "interrupted", "the step stopped before this node job ended")


def _stall_seconds(ctx: RunContext, sid: str, node: str) -> float:
    """How long this node job's drain waited on a PodDisruptionBudget, from the journal: from
    its first refused eviction until every refused pod's eviction was accepted (else its last
    refusal), as the run's result counts them (``cli.runs.drain_stalls``)."""
    first: float | None = None
    last = 0.0
    refused: dict[str, float | None] = {}
    for a in ctx.journal.actions(sid, kind=Act.EVICT):
        if a.target != node or a.outcome is None:
            continue
        pod = str(a.detail.get("pod", ""))
        if a.outcome in ("budget-exhausted", "multiple-pdbs"):
            first = a.intent_at if first is None else first
            last = a.outcome_at or a.intent_at
            refused.setdefault(pod, None)
        elif pod in refused and a.outcome in ("evicted", "gone", "settled-accepted"):
            refused[pod] = a.outcome_at or a.intent_at
    if first is None:
        return 0.0
    ends = list(refused.values())
    end = max(t for t in ends if t is not None) if all(t is not None for t in ends) \
        else last
    return max(0.0, end - first)


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
