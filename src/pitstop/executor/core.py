"""The executor: carries a plan out against a backend, durably.

Order: waves in plan order (a wave starts after the previous one finished and soaked); the
clusters of a wave in plan order, up to the wave's ``maxParallelClusters`` of them at once
(:mod:`pitstop.executor.lanes`: one lane per cluster, taking turns on the backend's clock);
each cluster's steps in order. When one cluster stops (pause, abort, a failed gate), the
others stop at their next safe point — no new step, no new node; nodes in flight finish —
and only then is the wave rolled back, once, if a gate failed. Before a step: pause/abort
requests, approvals, the maintenance window. A step's work is journaled action by action; after
it, its gates are measured (interval × count, failure limit) and decide: proceed, pause
(Inconclusive) or roll the current wave back to its last known-good versions (Failed, or Error —
reported apart). Node steps run many nodes at once: as many as the step's batch allows *and*
the live disruption budgets and spare capacity allow (adaptive parallelism).

Every decision and action goes to the audit log with actor and reason. A run ends completed,
paused (with the reason and what to do), aborted, or rolled back — never half-done without an
explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pitstop.backend import (
    Backend,
    BackendError,
    ClusterObservation,
    EtcdRestore,
    EtcdSnapshot,
    Operation,
    OperationState,
    UpgradeComponent,
)
from pitstop.calendar import next_allowed_start
from pitstop.catalog import Catalog, load_catalog
from pitstop.drain import DrainOptions
from pitstop.executor.gating import GateOutcome, evaluate_gates
from pitstop.executor.lanes import Lanes
from pitstop.executor.nodes import JobState, NodeJob, ReplaceJob, ReplaceState
from pitstop.executor.run import RunDir
from pitstop.executor.skew import (
    CHECKED_ACTIONS,
    describe_apiservers,
    live_skew_problems,
    observed_versions,
    silent_apiservers,
)
from pitstop.gates import Decision
from pitstop.planner.plan import Change, Phase, Step
from pitstop.versions import version_key

__all__ = ["Executor", "RunResult", "admits"]


@dataclass
class RunResult:
    status: str  # completed | paused | aborted | rolled-back | failed
    reason: str
    steps_done: int
    steps_total: int
    rollbacks: list[str] = field(default_factory=list)


class _Stop(Exception):
    """Ends the run (or, in a lane, one cluster's work): ``status`` is the run's, or
    ``rollback-needed`` (a gate failed: roll the wave back once the wave has stopped) or
    ``halted`` (another cluster of the wave stopped)."""

    def __init__(self, status: str, reason: str, cluster: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cluster = cluster


@dataclass
class Executor:
    run: RunDir
    backend: Backend
    actor: str = "pitstop"
    poll_s: float = 5.0
    on_event: Callable[[str, dict[str, Any]], None] | None = None  # progress display hook
    rollbacks: list[str] = field(default_factory=list)
    # the rules of the live skew check (pass the catalog the plan was made with; default: the
    # shipped one)
    catalog: Catalog | None = None
    # clusters of the wave being worked on at once (None: one after another)
    _lanes: Lanes | None = None
    # why the other clusters of the wave must stop at their next safe point (None: go on)
    _halt: str | None = None

    # -- small helpers ---------------------------------------------------------------------
    @property
    def journal(self) -> Any:
        return self.run.journal

    def _now(self) -> float:
        return self.backend.clock.now()

    def audit(self, action: str, reason: str, subject: str, before: Any = None,
              after: Any = None, **extra: Any) -> None:
        self.run.audit.append(self.run.run_id, self.actor, action, reason, subject, before,
                              after, at=self._now(), **extra)
        if self.on_event is not None:
            self.on_event(action, {"subject": subject, "reason": reason, **extra})

    def _sleep(self, seconds: float) -> None:
        """Wait on the backend's clock — or, with clusters in lanes, give the others a turn."""
        if self._lanes is not None and self._lanes.in_lane():
            self._lanes.sleep(seconds)
        else:
            self.backend.clock.sleep(seconds)

    def _check_requests(self) -> None:
        if self._halt is not None:
            raise _Stop("halted", self._halt)
        req = self.journal.get("request")
        if req == "abort":
            raise _Stop("aborted", self.journal.get("request_reason") or "abort requested")
        if req == "pause":
            raise _Stop("paused", self.journal.get("request_reason") or "pause requested")

    # -- the run ---------------------------------------------------------------------------
    def execute(self) -> RunResult:
        status = self.journal.get("status")
        total = len(self.run.plan.steps)
        if status in ("completed", "aborted", "rolled-back"):
            return RunResult(status, self.journal.get("reason"), self._done_count(), total)
        if self.journal.get("request") == "pause":
            self.journal.set("request", "")  # resuming clears a pause
        self.journal.set("status", "running")
        self.audit("run-start" if status == "created" else "run-resume",
                   "executing the plan" if status == "created" else
                   f"resuming a run that was {status or 'interrupted'}",
                   self.run.run_id, before=status)
        try:
            for wave in self.run.plan.waves:
                self._run_wave(wave.name, wave.clusters, wave.soak.total_seconds(),
                               wave.max_parallel_clusters)
        except _Stop as stop:
            self.journal.set("status", stop.status)
            self.journal.set("reason", stop.reason)
            self.audit(f"run-{stop.status}", stop.reason, self.run.run_id)
            return RunResult(stop.status, stop.reason, self._done_count(), total,
                             list(self.rollbacks))
        self.journal.set("status", "completed")
        self.journal.set("reason", "every step done and every gate passed")
        self.audit("run-completed", "every step done and every gate passed", self.run.run_id)
        return RunResult("completed", "every step done and every gate passed",
                         self._done_count(), total, list(self.rollbacks))

    def _done_count(self) -> int:
        return sum(1 for s in self.journal.steps() if s.status == "done")

    def _run_wave(self, wave: str, clusters: tuple[str, ...], soak_s: float,
                  max_parallel: int = 0) -> None:
        steps = [s for s in self.run.plan.steps if s.wave == wave]
        soaked = soak_s <= 0 or self.journal.get(f"wave-soaked/{wave}") == "yes"
        if soaked and all(self.journal.step(s.id).status == "done" for s in steps):
            return

        def work(cluster: str) -> None:
            for step in (s for s in steps if s.cluster == cluster):
                if self.journal.step(step.id).status == "done":
                    continue
                self._check_requests()
                self._await_approval(step)
                self._await_window(step)
                self._check_live_skew(step)
                self._run_step(step, wave)

        pending = [c for c in clusters if any(self.journal.step(s.id).status != "done"
                                              for s in steps if s.cluster == c)]
        width = min(len(pending), max_parallel or len(pending))
        if width <= 1:
            try:
                for cluster in pending:
                    work(cluster)
            except _Stop as stop:
                self._stopped(wave, [(stop.cluster or "", stop)])
        else:
            self._halt = None
            self._lanes = Lanes(self.backend.clock, width)
            self.audit("wave-lanes", f"wave {wave}: {len(pending)} cluster(s), at most {width} "
                       "at once", wave, clusters=pending)
            try:
                errors = self._lanes.run(pending, work, self._on_lane_error)
            finally:
                self._lanes = None
                self._halt = None
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
            left = float(since) + soak_s - self._now()
            self.audit("wave-soak", f"wave {wave}: {max(0.0, left):.0f}s of its {soak_s:.0f}s "
                       "soak left before the next wave", wave)
        else:
            left = soak_s
            self.journal.set(since_key, repr(self._now()))
            self.audit("wave-soak", f"wave {wave} done: soaking {soak_s:.0f}s before the "
                       "next wave", wave)
        if left > 0:
            self._sleep_checked(left)
        self.journal.set(f"wave-soaked/{wave}", "yes")

    def _on_lane_error(self, cluster: str, exc: BaseException) -> None:
        """A cluster of the wave stopped: the others stop at their next safe point."""
        if isinstance(exc, _Stop) and exc.status == "halted":
            self.audit("cluster-halted", exc.reason, cluster)
            return
        if self._halt is None:
            what = exc.reason if isinstance(exc, _Stop) else f"{type(exc).__name__}: {exc}"
            self._halt = (f"cluster {cluster} of the wave stopped ({what}); the other "
                          "clusters stop at their next safe point")

    def _stopped(self, wave: str, errors: list[tuple[str, BaseException]]) -> None:
        """The wave ends early: re-raise what stopped it — after rolling the wave back, once,
        when a gate failed in any of its clusters."""
        for _, exc in errors:
            if not isinstance(exc, _Stop):
                raise exc
        stops = [exc for _, exc in errors if isinstance(exc, _Stop)]
        failed = [s for s in stops if s.status == "rollback-needed"]
        if failed:
            why = "; ".join(s.reason for s in failed)
            rolled = self.rollback_wave(wave, why)
            raise _Stop("rolled-back", f"{why}; wave {wave} rolled back: {rolled}")
        first = next((s for s in stops if s.status != "halted"), stops[0])
        if first.status == "halted":
            raise _Stop("paused", first.reason)
        others = [s.reason for s in stops if s is not first and s.status != "halted"]
        if others:
            raise _Stop(first.status, first.reason + "".join(f"; also: {r}" for r in others))
        raise first

    def _sleep_checked(self, seconds: float) -> None:
        end = self._now() + seconds
        while self._now() < end:
            self._check_requests()
            self._sleep(min(self.poll_s * 12, end - self._now()))

    def _await_approval(self, step: Step) -> None:
        if not step.requires_approval:
            return
        need = next((a for a in self.run.plan.approvals if a.cluster == step.cluster), None)
        required = need.required if need else 1
        allowed = set(need.approvers) if need and need.approvers else None
        got = [a for a in self.journal.approvers(step.id) if allowed is None or a in allowed]
        if len(got) < required:
            raise _Stop("paused", f"step {step.id} waits for {required} approval(s) "
                        f"(has {len(got)}): run `pitstop approve {self.run.path} --step "
                        f"{step.id} --as NAME`, then `pitstop resume {self.run.path}`")

    def _await_window(self, step: Step) -> None:
        labels = self.run.labels.get(step.cluster, {"name": step.cluster})
        now = datetime.fromtimestamp(self._now(), UTC)
        start = next_allowed_start(self.run.policy, labels, now)
        if start is None:
            raise _Stop("paused", f"no maintenance window opens for cluster {step.cluster} "
                        "within a year: check the policy's windows and blackouts")
        wait = (start - now).total_seconds()
        if wait > 0:
            self.audit("window-wait", f"outside the maintenance window: step {step.id} waits "
                       f"until {start.isoformat()}", step.id)
            self._sleep_checked(wait)

    # -- the live skew check ----------------------------------------------------------------
    def _check_live_skew(self, step: Step) -> None:
        """Observe the cluster and pause (never fail, never skip) when it, or any state the step
        would pass through, breaks a skew rule (:mod:`pitstop.executor.skew`). ``resume`` comes
        back here and checks again."""
        if self.catalog is None:
            self.catalog = load_catalog()
        if step.action not in CHECKED_ACTIONS:
            return
        try:
            obs = self.backend.observe(step.cluster)
            silent = silent_apiservers(obs, self.backend.health(step.cluster), step)
        except BackendError as exc:
            raise _Stop("paused", f"step {step.id}: cannot observe {step.cluster} for the live "
                        f"skew check: {exc}. Fix the connection or permissions, then "
                        f"`pitstop resume {self.run.path}`") from None
        at = datetime.fromtimestamp(self._now(), UTC)
        waivers = [w for w in self.run.policy.spec.waivers if w.active(at)]
        problems = live_skew_problems(obs, step, self.catalog, waivers)
        versions = {"apiservers": dict(obs.apiservers),
                    "kube-controller-manager": obs.controller_manager,
                    "kube-scheduler": obs.scheduler}
        seq = self.journal.intent(step.id, "skew-check", step.cluster, versions, self._now())
        if not problems and not silent:
            # "unjudged": the backend reports no apiserver version (hosts), so no rule applies
            self.journal.outcome(seq, "ok" if observed_versions(obs) is not None
                                 else "unjudged", None, self._now())
            return
        found = [f"{p.violation.rule} {p.when}: {p.violation.message}" for p in problems] + [
            f"kube-apiserver {n} does not answer, so its version is unknown (it may still be "
            "the old one)" for n in silent]
        self.journal.outcome(seq, "paused", {"violations": found}, self._now())
        apis = dict(obs.apiservers)
        oldest = min(apis.values(), key=version_key) if apis else ""
        behind = sorted(n for n, v in apis.items() if v == oldest)
        who = (f"; kube-apiserver {', '.join(behind)} still at {oldest}"
               if len(set(apis.values())) > 1 else "")
        why = (f"step {step.id} not started: the live cluster would break the skew policy — "
               + "; ".join(found) + f" (observed: {describe_apiservers(obs)}; "
               f"kube-controller-manager {obs.controller_manager or '?'}; kube-scheduler "
               f"{obs.scheduler or '?'}{who}). Bring the cluster back to the state the plan "
               f"expects (e.g. upgrade that instance again), then `pitstop resume "
               f"{self.run.path}`: the check runs again before the step")
        self.journal.set_step(step.id, "paused", self._now(), why)
        self.audit("skew-pause", why, step.id, cluster=step.cluster, violations=found,
                   observed=versions)
        raise _Stop("paused", why)

    # -- one step --------------------------------------------------------------------------
    def _run_step(self, step: Step, wave: str) -> None:
        rec = self.journal.step(step.id)
        self.journal.set_step(step.id, "running", self._now())
        self.audit("step-start" if rec.status == "pending" else "step-resume", step.reason,
                   step.id, before=step.from_version, after=step.to_version,
                   cluster=step.cluster)
        try:
            targets = self._do_step(step)
        except BackendError as exc:
            self.journal.set_step(step.id, "failed", self._now(), str(exc))
            raise _Stop("paused", f"step {step.id}: the backend could not act: {exc}. Fix the "
                        f"connection or permissions, then `pitstop resume {self.run.path}`") \
                from None
        if isinstance(targets, str):  # a failure message from the step itself
            self._gate_failed(step, wave, f"step {step.id} failed: {targets}")
            return
        outcome = self._gates(step, targets)
        if outcome.decision is Decision.PROCEED:
            if step.soak.total_seconds() > 0:
                self._sleep_checked(step.soak.total_seconds())
            self.journal.set_step(step.id, "done", self._now(), outcome.summary)
            self.audit("step-done", outcome.summary, step.id, cluster=step.cluster)
            return
        if outcome.decision is Decision.PAUSE:
            self.journal.set_step(step.id, "paused", self._now(), outcome.summary)
            raise _Stop("paused", f"step {step.id}: gate inconclusive — {outcome.summary}. "
                        f"Look, then `pitstop resume {self.run.path}` (gates run again) or "
                        f"`pitstop rollback {self.run.path}`")
        self._gate_failed(step, wave, f"step {step.id}: {outcome.summary}")

    def _gate_failed(self, step: Step, wave: str, why: str) -> None:
        """The wave is rolled back by :meth:`_stopped` once every cluster of it has stopped."""
        self.journal.set_step(step.id, "failed", self._now(), why)
        self.audit("gate-failed", why, step.id, cluster=step.cluster)
        raise _Stop("rollback-needed", why, cluster=step.cluster)

    def _do_step(self, step: Step) -> list[str] | str:
        """Carry out the step's work; the targets to gate on, or a failure message."""
        if step.action == "etcd-snapshot":
            op = self._run_op(step, f"{self.run.run_id}/{step.id}/snapshot",
                              EtcdSnapshot(name=step.id))
            return list(step.targets) if op.state is OperationState.SUCCEEDED else op.message
        if step.action in ("upgrade-apiserver", "upgrade-controller-manager",
                           "upgrade-scheduler", "upgrade-cloud-controller-manager",
                           "upgrade-etcd-member", "upgrade-addon",
                           "provider-upgrade-control-plane"):
            for target in step.targets:
                op = self._run_op(step, f"{self.run.run_id}/{step.id}/{target}",
                                  UpgradeComponent(target, step.component, step.to_version))
                if op.state is OperationState.FAILED:
                    return f"{step.component} on {target}: {op.message}"
            return list(step.targets)
        if step.action == "upgrade-nodes":
            return self._node_step(step, step.changes, list(step.targets))
        return f"unknown action {step.action}"

    def _run_op(self, step: Step, key: str, action: Any) -> Operation:
        finished = [a for a in self.journal.actions(step.id)
                    if a.kind == "operation-done" and a.target == key]
        if finished and finished[-1].outcome == str(OperationState.SUCCEEDED):
            return self.backend.poll(step.cluster, key)  # done before a restart: not again
        seq = self.journal.intent(step.id, "operation", key, {"action": repr(action)},
                                  self._now())
        op = self.backend.start(step.cluster, key, action)
        self.journal.outcome(seq, "started", {"state": str(op.state)}, self._now())
        while op.state is OperationState.RUNNING:
            self._sleep(self.poll_s)
            op = self.backend.poll(step.cluster, key)
        seq = self.journal.intent(step.id, "operation-done", key, {}, self._now())
        self.journal.outcome(seq, str(op.state), {"message": op.message}, self._now())
        self.audit("operation", f"{action!r}: {op.state}", key, cluster=step.cluster)
        return op

    # -- node steps: adaptive parallelism --------------------------------------------------
    def _drain_options(self, step: Step) -> DrainOptions:
        pp = self.run.policy.spec.pool_policy(step.pool)
        return DrainOptions(delete_empty_dir_data=pp.delete_empty_dir_data,
                            timeout_s=pp.drain_timeout.total_seconds())

    def _node_step(self, step: Step, changes: tuple[Change, ...], nodes: list[str],
                   *, step_id: str | None = None) -> list[str] | str:
        sid = step_id or step.id
        drain = step.strategy != "no-drain"
        opts = self._drain_options(step)
        replace = step.strategy == "replace" and step_id is None
        jobs: dict[str, NodeJob | ReplaceJob] = {}
        for n in nodes:
            job: NodeJob | ReplaceJob
            if replace:
                job = ReplaceJob(self.backend, self.journal, self.run.run_id, sid, step.cluster,
                                 n, step.pool, changes, opts)
            else:
                job = NodeJob(self.backend, self.journal, self.run.run_id, sid, step.cluster,
                              n, changes, opts, drain=drain,
                              force_after_timeout=self.run.policy.spec.pool_policy(
                                  step.pool).force_after_drain_timeout)
            job.recover()
            jobs[n] = job
        done_states = (JobState.DONE, ReplaceState.DONE)
        pending = [n for n in nodes if jobs[n].state not in done_states]
        active: list[str] = []
        # replace: at most maxSurge new nodes at once (at least one)
        limit = max(1, step.surge if replace and step.surge else step.batch_size)
        while pending or active:
            obs = self.backend.observe(step.cluster)
            # admit new nodes while the batch, budgets and capacity allow — any pending node
            # that fits, not only the next in line (no head-of-line blocking on one PDB)
            # pause/abort, or another cluster of the wave stopped: admit no new node
            stopping = bool(self.journal.get("request")) or self._halt is not None
            for n in list(pending):
                if len(active) >= limit or stopping:
                    break
                if not self._may_start(obs, n, active):
                    continue
                pending.remove(n)
                active.append(n)
                self.audit("node-start", f"{n}: " + ", ".join(
                    f"{c.component} → {c.to_version}" for c in changes)
                    + f" ({len(active)} of at most {limit} at once)", n, cluster=step.cluster)
            if not active and pending:
                if stopping:
                    self._check_requests()  # raises: the nodes in flight have finished
                active.append(pending.pop(0))  # always make progress: the drain waits on PDBs
            freed = False  # a node finished: its place goes to the next at once, not a poll later
            for n in list(active):
                st = jobs[n].advance(obs)
                if st in done_states:
                    active.remove(n)
                    freed = True
                    job_n = jobs[n]
                    self.audit("node-done", f"{n} replaced by {job_n.new_name}"
                               if isinstance(job_n, ReplaceJob) else
                               f"{n} upgraded and uncordoned", n, cluster=step.cluster)
                elif st in (JobState.BLOCKED, ReplaceState.BLOCKED):
                    self.journal.set_step(sid, "paused", self._now(), jobs[n].message)
                    raise _Stop("paused", f"{jobs[n].message}. The node stays cordoned "
                                f"(annotation pitstop.dev/cordoned says why). Fix the PDB(s) "
                                f"{', '.join(jobs[n].blocking_pdbs) or ''} or the pods, then "
                                f"`pitstop resume {self.run.path}`; pitstop does not "
                                "force-delete unless the policy allows it")
                elif st in (JobState.FAILED, ReplaceState.FAILED):
                    return jobs[n].message
            if (active or pending) and not (freed and pending):
                self._sleep(self.poll_s)
        return [j.new_name if isinstance(j, ReplaceJob) else n for n, j in jobs.items()]

    def _may_start(self, obs: ClusterObservation, node: str, active: list[str]) -> bool:
        return admits(obs, node, active)

    # -- gates -----------------------------------------------------------------------------
    def _gates(self, step: Step, targets: list[str]) -> GateOutcome:
        outcome = evaluate_gates(self.backend, step, targets, self.poll_s,
                                 self.run.policy.spec.gates, self.run.policy.spec.gate_timing,
                                 sleep=self._sleep)
        for r in outcome.results:
            self.journal.gate(step.id, r.name, str(r.phase), r.message, self._now())
        self.audit("gates", outcome.summary, step.id, decision=str(outcome.decision),
                   cluster=step.cluster)
        return outcome

    # -- rollback --------------------------------------------------------------------------
    def rollback_wave(self, wave: str, why: str, *, restore_etcd: bool = False) -> str:
        """Return the wave's nodes and add-ons to their last known-good versions, newest
        change first. Control-plane steps across minors stay (Kubernetes has no minor
        downgrade), and the result says so. etcd has no downgrade either: its way back is the
        verified snapshot the plan took before the hop, restored into a new cluster of the old
        version — which loses every write made since the snapshot, so it is done only when
        asked (``restore_etcd``, ``pitstop rollback --restore-etcd``); otherwise the result
        says which snapshot and how."""
        done: list[str] = []
        kept: list[str] = []
        etcd: dict[str, list[Step]] = {}
        steps = [s for s in self.run.plan.steps if s.wave == wave]
        touched = [s for s in steps if self.journal.step(s.id).status in ("done", "failed",
                                                                          "running")]
        for step in reversed(touched):
            if step.phase is Phase.NODES and step.changes:
                back = tuple(Change(c.component, c.to_version, c.from_version)
                             for c in reversed(step.changes))
                obs = self.backend.observe(step.cluster)
                replaced = {a.target: a.detail.get("replaced-by") for a in
                            self.journal.actions(step.id) if a.kind == "node-done"
                            and a.detail.get("replaced-by")}
                current = [str(replaced.get(n, n)) for n in step.targets]
                nodes = [n for n in current if (o := obs.node(n)) is not None and any(
                    o.version_of(c.component) != c.to_version for c in back)]
                if not nodes:
                    continue
                rb_id = f"{step.id}/rollback"
                self.audit("rollback-step", f"{why}: returning {len(nodes)} node(s) to "
                           + ", ".join(f"{c.component} {c.to_version}" for c in back), rb_id,
                           cluster=step.cluster)
                result = self._node_step(step, back, nodes, step_id=rb_id)
                if isinstance(result, str):
                    self.rollbacks.append(f"{step.id}: rollback incomplete: {result}")
                    raise _Stop("paused", f"{why}; rollback of {step.id} could not finish: "
                                f"{result}. Nodes left as observed; see `pitstop status "
                                f"{self.run.path}`")
                self.journal.set_step(step.id, "rolled-back", self._now(), why)
                done.append(f"{step.id} ({len(nodes)} node(s))")
            elif step.phase is Phase.ADDONS:
                op = self._run_op(step, f"{self.run.run_id}/{step.id}/rollback", UpgradeComponent(
                    step.targets[0], step.component, step.from_version))
                if op.state is OperationState.SUCCEEDED:
                    self.journal.set_step(step.id, "rolled-back", self._now(), why)
                    done.append(step.id)
            elif step.phase is Phase.ETCD:
                etcd.setdefault(step.cluster, []).insert(0, step)
            elif self.journal.step(step.id).status == "done":
                kept.append(step.id)
        notes = [self._etcd_way_back(cluster, cluster_steps, why, restore_etcd, done)
                 for cluster, cluster_steps in etcd.items()]
        summary = ("rolled back " + (", ".join(done) if done else "nothing (no node or add-on "
                                     "had changed)"))
        if kept:
            summary += (f"; kept {len(kept)} control-plane step(s) (no minor downgrade in "
                        "Kubernetes; the way back is restoring the etcd snapshot)")
        summary += "".join(f"; {n}" for n in notes if n)
        self.rollbacks.append(f"wave {wave}: {summary}")
        self.audit("rollback-wave", f"{why}: {summary}", wave)
        return summary

    def _etcd_way_back(self, cluster: str, steps: list[Step], why: str, restore: bool,
                       done: list[str]) -> str:
        """The etcd steps of one cluster in a wave being rolled back (plan order): restore the
        wave's first verified snapshot into a new cluster of the version it was taken on
        (``restore``), or say how. Returns a note for the summary ("" if etcd never moved)."""
        members = [s for s in steps if s.action == "upgrade-etcd-member"]
        snaps = [s for s in self.run.plan.steps if s.cluster == cluster and s.wave == steps[0].wave
                 and s.action == "etcd-snapshot"]
        snap = next((s for s in snaps if self.journal.step(s.id).status == "done"), None)
        if not members:
            return ""  # only a snapshot was taken: etcd is as it was
        if snap is None:
            return (f"etcd of cluster {cluster}: {len(members)} member step(s) started but no "
                    "verified snapshot of this wave exists; etcd is left as it is")
        version = snap.from_version
        taken = [a for a in self.journal.actions(snap.id) if a.kind == "operation-done"
                 and a.target.endswith("/snapshot") and a.outcome == str(OperationState.SUCCEEDED)]
        detail = (taken[-1].outcome_detail or {}).get("message", "") if taken else ""
        what = (f"the snapshot of step {snap.id}" + (f" ({detail})" if detail else ""))
        if not restore:
            return (f"etcd of cluster {cluster} kept: {len(members)} member step(s) toward "
                    f"{members[0].to_version} ({', '.join(m.id for m in members)}); etcd has no "
                    f"downgrade, the way back is {what} restored into a new etcd {version} "
                    "cluster — every write made since the snapshot is lost, and Kubernetes API "
                    "servers must be restarted after it. To do it: `pitstop rollback "
                    f"{self.run.path} --wave {snap.wave} --restore-etcd`")
        self.audit("rollback-step", f"{why}: restoring {what} into a new etcd {version} "
                   f"cluster (writes since the snapshot are lost)", f"{snap.id}/restore",
                   cluster=cluster)
        op = self._run_op(snap, f"{self.run.run_id}/{snap.id}/restore",
                          EtcdRestore(snapshot=snap.id, version=version))
        if op.state is not OperationState.SUCCEEDED:
            self.rollbacks.append(f"{snap.id}: etcd restore failed: {op.message}")
            raise _Stop("paused", f"{why}; the etcd restore of cluster {cluster} from {snap.id} "
                        f"failed: {op.message}. See `pitstop status {self.run.path}`")
        for s in steps:
            if self.journal.step(s.id).status in ("done", "failed", "running"):
                self.journal.set_step(s.id, "rolled-back", self._now(),
                                      f"{why}; etcd restored from {snap.id}")
        done.append(f"etcd of cluster {cluster} (restored {snap.id} into etcd {version}: "
                    f"{op.message})")
        return ""


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
