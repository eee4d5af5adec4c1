"""The executor: carries a plan out against a backend, durably.

Order: waves in plan order (a wave starts after the previous one finished and soaked); the
clusters of a wave in plan order, up to the wave's ``maxParallelClusters`` of them at once
(:mod:`pitstop.executor.lanes`: one lane per cluster, taking turns on the backend's clock);
each cluster's steps in order. When one cluster stops (pause, abort, a failed gate), the
others stop at their next safe point — no new step, no new node; nodes in flight finish —
and only then is the wave rolled back, once, if a gate failed.

The parts, by concern:

* before a step — approvals, the maintenance window, the live skew check
  (:mod:`~pitstop.executor.checks`), the policy's alert gates (:mod:`~pitstop.executor.alerts`,
  also before each node of a node step);
* a step's work — operations here, node steps with adaptive parallelism
  (:mod:`~pitstop.executor.nodestep`, node jobs in :mod:`~pitstop.executor.nodes`), every
  effect journaled by :mod:`~pitstop.executor.effects`;
* after it — gates (:mod:`~pitstop.executor.gating`): proceed, pause (Inconclusive) or roll
  the wave back (Failed, or Error — reported apart) (:mod:`~pitstop.executor.rollback`);
* after the last step — the observed fleet against where the plan ends
  (:func:`~pitstop.executor.checks.final_check`): a run that did not get there is not
  completed.

Every decision and action goes to the audit log with actor and reason. A run ends completed,
paused (with the reason and what to do), aborted, rolled back or failed — never half-done
without an explanation. A backend that cannot be reached pauses the run, saying what could not
be done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pitstop.backend import (
    Backend,
    BackendError,
    EtcdSnapshot,
    OperationState,
    UpgradeComponent,
)
from pitstop.catalog import Catalog
from pitstop.executor.alerts import await_alerts
from pitstop.executor.checks import await_approval, await_window, check_live_skew, final_check
from pitstop.executor.context import HALTED, ROLLBACK_NEEDED, RunContext, Stop
from pitstop.executor.gating import GateOutcome, evaluate_gates, judged
from pitstop.executor.judging import judged_soak, record_judgements
from pitstop.executor.lanes import Lanes
from pitstop.executor.nodestep import admits, run_node_step
from pitstop.executor.rollback import RollbackPlan, carry_out, plan_rollback
from pitstop.executor.run import RunDir
from pitstop.executor.vocabulary import Request, RunStatus, StepStatus
from pitstop.gates import Decision
from pitstop.observe.api import NO_TELEMETRY, Span, Telemetry
from pitstop.planner.plan import Step, StepAction

__all__ = ["Executor", "RunResult", "admits"]


@dataclass
class RunResult:
    status: RunStatus
    reason: str
    steps_done: int
    steps_total: int
    rollbacks: list[str] = field(default_factory=list)


@dataclass
class Executor:
    run: RunDir
    backend: Backend
    actor: str = "pitstop"
    poll_s: float = 5.0
    on_event: Callable[[str, dict[str, Any]], None] | None = None  # progress display hook
    # the rules of the live skew check (pass the catalog the plan was made with; default: the
    # shipped one)
    catalog: Catalog | None = None
    # spans and measurements (pitstop.observe.api; default: none)
    telemetry: Telemetry = NO_TELEMETRY
    ctx: RunContext = field(init=False)
    _failed_at: float | None = field(default=None, init=False)  # the wave's first failed gate

    def __post_init__(self) -> None:
        self.ctx = RunContext(self.run, self.backend, self.actor, self.poll_s, self._emit,
                              self.catalog, telemetry=self.telemetry)

    def _emit(self, action: str, info: dict[str, Any]) -> None:
        if self.on_event is not None:  # read at each event: a caller may set it late
            self.on_event(action, info)

    @property
    def rollbacks(self) -> list[str]:
        return self.ctx.rollbacks

    @property
    def journal(self) -> Any:
        return self.run.journal

    # -- the run ---------------------------------------------------------------------------
    def execute(self) -> RunResult:
        with self.telemetry.span("run", plan_steps=len(self.run.plan.steps)) as span:
            result = self._execute()
            span.set("pitstop.status", str(result.status))
            if result.status is not RunStatus.COMPLETED:
                span.fail(result.reason)
            return result

    def _execute(self) -> RunResult:
        status = self.journal.get("status")
        total = len(self.run.plan.steps)
        if status in (s.value for s in RunStatus if s.final):
            return RunResult(RunStatus(status), self.journal.get("reason"), self._done_count(),
                             total)
        if self.journal.get("request") == Request.PAUSE:
            self.journal.set("request", Request.NONE)  # resuming clears a pause
        self.journal.set("status", RunStatus.RUNNING)
        first = status == RunStatus.CREATED
        extra: dict[str, Any] = {"files": self.run.fingerprints()} if first else {}
        self.ctx.audit("run-start" if first else "run-resume",
                       "executing the plan" if first else
                       f"resuming a run that was {status or 'interrupted'}",
                       self.run.run_id, before=status, **extra)
        try:
            for wave in self.run.plan.waves:
                self._run_wave(wave.name, wave.clusters, wave.soak.total_seconds(),
                               wave.max_parallel_clusters)
            differences = final_check(self.ctx)
            if differences:
                raise Stop(RunStatus.FAILED, "every step is recorded done, but the fleet is not "
                           "where the plan ends: " + "; ".join(differences[:10])
                           + (f"; and {len(differences) - 10} more" if len(differences) > 10
                              else "") + ". Something outside this run changed the fleet or "
                           "its journal: look (`pitstop status`, `pitstop inventory`) and plan "
                           "again from the fleet as it is")
        except Stop as stop:
            return self._end(RunStatus(stop.status), stop.reason, total)
        except BackendError as exc:
            return self._end(RunStatus.PAUSED, f"the backend could not act: {exc}. Nothing "
                             "more was started; fix the connection or permissions, then "
                             f"`pitstop resume {self.run.path}`", total)
        return self._end(RunStatus.COMPLETED, "every step done and every gate passed; the "
                         "fleet is where the plan ends", total)

    def _end(self, status: RunStatus, reason: str, total: int) -> RunResult:
        self.journal.set("status", status)
        self.journal.set("reason", reason)
        self.ctx.audit(f"run-{status}", reason, self.run.run_id)
        return RunResult(status, reason, self._done_count(), total, list(self.rollbacks))

    def _done_count(self) -> int:
        return sum(1 for s in self.journal.steps() if s.status == StepStatus.DONE)

    def _run_wave(self, wave: str, clusters: tuple[str, ...], soak_s: float,
                  max_parallel: int = 0) -> None:
        steps = [s for s in self.run.plan.steps if s.wave == wave]
        soaked = soak_s <= 0 or self.journal.get(f"wave-soaked/{wave}") == "yes"
        if soaked and all(self.journal.step(s.id).status == StepStatus.DONE for s in steps):
            return
        with self.telemetry.span("wave", wave=wave, clusters=len(clusters)) as span:
            self._run_wave_in(span, wave, clusters, steps, soaked, soak_s, max_parallel)

    def _run_wave_in(self, wave_span: Span, wave: str, clusters: tuple[str, ...],
                     steps: list[Step], soaked: bool, soak_s: float, max_parallel: int) -> None:
        ctx = self.ctx

        def work(cluster: str) -> None:
            for step in (s for s in steps if s.cluster == cluster):
                if self.journal.step(step.id).status == StepStatus.DONE:
                    continue
                ctx.check_requests()
                await_approval(ctx, step)
                await_window(ctx, step)
                await_alerts(ctx, step)
                # the wave's span is handed over: a cluster's lane is a thread of its own
                with self.telemetry.span("step", wave_span, step=step.id, cluster=cluster,
                                         action=str(step.action)):
                    check_live_skew(ctx, step)
                    self._run_step(step)

        pending = [c for c in clusters if any(
            self.journal.step(s.id).status != StepStatus.DONE for s in steps if s.cluster == c)]
        width = min(len(pending), max_parallel or len(pending))
        if width <= 1:
            try:
                for cluster in pending:
                    work(cluster)
            except Stop as stop:
                self._stopped(wave, [(stop.cluster or "", stop)])
        else:
            ctx.halt = None
            ctx.lanes = Lanes(self.backend.clock, width)
            ctx.audit("wave-lanes", f"wave {wave}: {len(pending)} cluster(s), at most {width} "
                      "at once", wave, clusters=pending)
            try:
                errors = ctx.lanes.run(pending, work, self._on_lane_error)
            finally:
                ctx.lanes = None
                ctx.halt = None
            if errors:
                self._stopped(wave, errors)
        if not soaked:
            self._soak_wave(wave, soak_s)

    def _soak_wave(self, wave: str, soak_s: float) -> None:
        """The wave's soak before the next wave: its start is journaled, so a soak interrupted
        by a pause or a crash goes on for what is left of it after ``resume``."""
        since_key = f"wave-soak-since/{wave}"
        since = self.journal.get(since_key)
        if since:
            left = float(since) + soak_s - self.ctx.now()
            self.ctx.audit("wave-soak", f"wave {wave}: {max(0.0, left):.0f}s of its "
                           f"{soak_s:.0f}s soak left before the next wave", wave)
        else:
            left = soak_s
            self.journal.set(since_key, repr(self.ctx.now()))
            self.ctx.audit("wave-soak", f"wave {wave} done: soaking {soak_s:.0f}s before the "
                           "next wave", wave)
        if left > 0:
            self.ctx.sleep_checked(left)
        self.journal.set(f"wave-soaked/{wave}", "yes")

    def _on_lane_error(self, cluster: str, exc: BaseException) -> None:
        """A cluster of the wave stopped: the others stop at their next safe point."""
        if isinstance(exc, Stop) and exc.status == HALTED:
            self.ctx.audit("cluster-halted", exc.reason, cluster)
            return
        if self.ctx.halt is None:
            what = exc.reason if isinstance(exc, Stop) else f"{type(exc).__name__}: {exc}"
            self.ctx.halt = (f"cluster {cluster} of the wave stopped ({what}); the other "
                             "clusters stop at their next safe point")

    def _stopped(self, wave: str, errors: list[tuple[str, BaseException]]) -> None:
        """The wave ends early: re-raise what stopped it — after rolling the wave back, once,
        when a gate failed in any of its clusters."""
        for _, exc in errors:
            if not isinstance(exc, Stop):
                raise exc
        stops = [exc for _, exc in errors if isinstance(exc, Stop)]
        failed = [s for s in stops if s.status == ROLLBACK_NEEDED]
        if failed:
            why = "; ".join(s.reason for s in failed)
            rolled = self.rollback_wave(wave, why)
            self.telemetry.rolled_back(wave)
            if self._failed_at is not None:
                self.telemetry.restored(self.ctx.now() - self._failed_at)
                self._failed_at = None
            raise Stop(RunStatus.ROLLED_BACK, f"{why}; wave {wave} rolled back: {rolled}")
        first = next((s for s in stops if s.status != HALTED), stops[0])
        if first.status == HALTED:
            raise Stop(RunStatus.PAUSED, first.reason)
        others = [s.reason for s in stops if s is not first and s.status != HALTED]
        if others:
            raise Stop(first.status, first.reason + "".join(f"; also: {r}" for r in others))
        raise first

    # -- one step --------------------------------------------------------------------------
    def _run_step(self, step: Step) -> None:
        ctx = self.ctx
        rec = self.journal.step(step.id)
        self.journal.set_step(step.id, StepStatus.RUNNING, ctx.now())
        started = self.journal.step(step.id).started or ctx.now()  # the first start
        ctx.audit("step-start" if rec.status == StepStatus.PENDING else "step-resume",
                  step.reason, step.id, before=step.from_version, after=step.to_version,
                  cluster=step.cluster)
        try:
            targets = self._do_step(step)
        except BackendError as exc:
            self.journal.set_step(step.id, StepStatus.FAILED, ctx.now(), str(exc))
            raise Stop(RunStatus.PAUSED, f"step {step.id}: the backend could not act: {exc}. "
                       f"Fix the connection or permissions, then `pitstop resume "
                       f"{self.run.path}`") from None
        if isinstance(targets, str):  # a failure message from the step itself
            self._gate_failed(step, f"step {step.id} failed: {targets}")
            return
        outcome = self._gates(step, targets)
        if outcome.decision is Decision.PROCEED:
            judge = self.run.policy.spec.canary_judge
            if judge is not None and judge.soak is not None and judged(step, judge):
                decision, why = judged_soak(ctx, step, targets, judge)
                if decision is Decision.PAUSE:
                    self.journal.set_step(step.id, StepStatus.PAUSED, ctx.now(), why)
                    self.telemetry.step_finished(str(step.action), ctx.now() - started,
                                                 "paused")
                    raise Stop(RunStatus.PAUSED, f"step {step.id}: {why}. Look, then "
                               f"`pitstop resume {self.run.path}` (gates and the judged soak "
                               f"run again) or `pitstop rollback {self.run.path}`")
                if decision is not Decision.PROCEED:
                    self._gate_failed(step, f"step {step.id}: {why}")
                outcome.summary += f"; {why}"
            elif step.soak.total_seconds() > 0:
                ctx.sleep_checked(step.soak.total_seconds())
            # the audit record first: a process killed between the two writes leaves a step
            # the log calls done and the journal still running (resume runs its gates
            # again), never one the journal calls done that the log never saw finish —
            # which is what a forged journal looks like, and is refused
            ctx.audit("step-done", outcome.summary, step.id, cluster=step.cluster)
            self.journal.set_step(step.id, StepStatus.DONE, ctx.now(), outcome.summary)
            self.telemetry.step_finished(str(step.action), ctx.now() - started, "done")
            return
        if outcome.decision is Decision.PAUSE:
            self.journal.set_step(step.id, StepStatus.PAUSED, ctx.now(), outcome.summary)
            self.telemetry.step_finished(str(step.action), ctx.now() - started, "paused")
            raise Stop(RunStatus.PAUSED, f"step {step.id}: gate inconclusive — "
                       f"{outcome.summary}. Look, then `pitstop resume {self.run.path}` (gates "
                       f"run again) or `pitstop rollback {self.run.path}`")
        self._gate_failed(step, f"step {step.id}: {outcome.summary}")

    def _gate_failed(self, step: Step, why: str) -> None:
        """The wave is rolled back by :meth:`_stopped` once every cluster of it has stopped."""
        self.journal.set_step(step.id, StepStatus.FAILED, self.ctx.now(), why)
        rec = self.journal.step(step.id)
        if rec.started is not None:
            self.telemetry.step_finished(str(step.action), self.ctx.now() - rec.started,
                                         "failed")
        if self._failed_at is None:
            self._failed_at = self.ctx.now()
        self.ctx.audit("gate-failed", why, step.id, cluster=step.cluster)
        raise Stop(ROLLBACK_NEEDED, why, cluster=step.cluster)

    def _do_step(self, step: Step) -> list[str] | str:
        """Carry out the step's work; the targets to gate on, or a failure message."""
        ctx = self.ctx
        if step.action is StepAction.ETCD_SNAPSHOT:
            op = ctx.run_op(step, f"{self.run.run_id}/{step.id}/snapshot",
                            EtcdSnapshot(name=step.id))
            return list(step.targets) if op.state is OperationState.SUCCEEDED else op.message
        if step.action.one_operation_per_target:
            for target in step.targets:
                op = ctx.run_op(step, f"{self.run.run_id}/{step.id}/{target}",
                                UpgradeComponent(target, step.component, step.to_version))
                if op.state is OperationState.FAILED:
                    return f"{step.component} on {target}: {op.message}"
            return list(step.targets)
        return run_node_step(ctx, step, step.changes, list(step.targets))

    def _gates(self, step: Step, targets: list[str]) -> GateOutcome:
        ctx = self.ctx
        with self.telemetry.span("gates", step=step.id, targets=len(targets)) as span:
            outcome = evaluate_gates(self.backend, step, targets, self.poll_s,
                                     self.run.policy.spec.gates,
                                     self.run.policy.spec.gate_timing, sleep=ctx.sleep,
                                     judge=self.run.policy.spec.canary_judge)
            span.set("pitstop.decision", str(outcome.decision))
        record_judgements(ctx, step, outcome)
        for r in outcome.results:
            self.journal.gate(step.id, r.name, str(r.phase), r.message, ctx.now())
            self.telemetry.gate_verdict(r.name, str(r.phase))
        ctx.audit("gates", outcome.summary, step.id, decision=str(outcome.decision),
                  cluster=step.cluster)
        return outcome

    # -- rollback --------------------------------------------------------------------------
    def plan_rollback(self, wave: str, *, restore_etcd: bool = False) -> RollbackPlan:
        """What :meth:`rollback_wave` would undo now, without doing it."""
        return plan_rollback(self.ctx, wave, restore_etcd=restore_etcd)

    def rollback_wave(self, wave: str, why: str, *, restore_etcd: bool = False,
                      plan: RollbackPlan | None = None) -> str:
        """Return the wave's nodes and add-ons to their last known-good versions
        (:mod:`pitstop.executor.rollback`); the summary. ``plan``: what was shown to a person
        and agreed to (default: planned now)."""
        with self.telemetry.span("rollback", wave=wave):
            return carry_out(self.ctx, plan or plan_rollback(self.ctx, wave,
                                                             restore_etcd=restore_etcd), why)
