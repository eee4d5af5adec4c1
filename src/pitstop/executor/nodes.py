"""Node jobs: one node's cordon → drain → upgrade → Ready → uncordon (or, for the replace
strategy, add a new node → Ready → cordon and drain the old one → remove it), as state
machines the executor advances with fresh observations, many nodes at once.

A job reads the fleet through a :class:`~pitstop.executor.effects.FleetView` and changes it only
through :class:`~pitstop.executor.effects.Effects`, which journals every effect (intent before,
outcome after) — no job holds the backend itself. A job rebuilt after a crash reads the journal
and the fleet: an operation that was started is polled by its key (the backend returns the
existing operation — nothing is started twice); an eviction whose pod is still there and not
deleting was never accepted and is asked again; a pod that is deleting or gone is not touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pitstop.backend import (
    AddNode,
    ClusterObservation,
    NodeObservation,
    OperationState,
    PdbObservation,
    RemoveNode,
    UpgradeComponent,
)
from pitstop.drain import Drainer, DrainOptions, DrainState, pdbs_selecting
from pitstop.executor.effects import Effects
from pitstop.executor.vocabulary import Act
from pitstop.planner.plan import Change

__all__ = ["CORDON_ANNOTATION", "JobContext", "JobState", "NodeJob", "ReplaceJob"]

CORDON_ANNOTATION = "pitstop.dev/cordoned"


class JobState(StrEnum):
    ADD = "add"  # replace: the new node is being added
    WAIT_READY = "wait-ready"  # replace: until the new node is Ready
    CORDON = "cordon"
    DRAIN = "drain"
    UPGRADE = "upgrade"
    READY = "ready"
    UNCORDON = "uncordon"
    REMOVE = "remove"  # replace: the old node is being removed
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"  # drain timed out or refused: the node stays cordoned, annotated why

    @property
    def ended(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.BLOCKED)


@dataclass(frozen=True)
class JobContext:
    """What every job of one step shares."""

    effects: Effects
    run_id: str
    step_id: str
    cluster: str

    def now(self) -> float:
        return self.effects.clock.now()


def _version_of(node_component: str, obs_node: NodeObservation | None) -> str | None:
    return None if obs_node is None else obs_node.version_of(node_component)


@dataclass
class NodeJob:
    """``changes`` are applied in order on the drained node (``drain=False``: in place, for a
    runtime patch whose containers survive the restart)."""

    ctx: JobContext
    node: str
    changes: tuple[Change, ...]
    drain_options: DrainOptions
    drain: bool = True
    drain_only: bool = False  # stop once drained (the replace strategy removes the node)
    force_after_timeout: bool = False  # policy forceAfterDrainTimeout: delete what is left
    forced: bool = False
    ready_timeout_s: float = 900.0
    state: JobState = JobState.CORDON
    message: str = ""
    blocking_pdbs: list[str] = field(default_factory=list)
    _drainer: Drainer | None = None
    _change: int = 0
    _upgraded_at: float | None = None
    _open_evictions: dict[str, int] = field(default_factory=dict)  # pod uid -> journal seq
    _polling: set[str] = field(default_factory=set)  # operation keys started by this process
    _pdbs: tuple[PdbObservation, ...] = ()  # of the observation being acted on: names refusals

    @property
    def effects(self) -> Effects:
        return self.ctx.effects

    def op_key(self, i: int) -> str:
        c = self.changes[i]
        return f"{self.ctx.run_id}/{self.ctx.step_id}/{self.node}/{i}/{c.component}/{c.to_version}"

    # -- resume ------------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild progress from the journal after a restart."""
        done_ops = set()
        for a in self.effects.journal.actions(self.ctx.step_id):
            if a.target != self.node:
                continue
            if a.kind == Act.NODE_DONE and a.outcome == "ok":
                self.state = JobState.DONE
                return
            if a.kind == Act.UPGRADE_DONE and a.outcome == str(OperationState.SUCCEEDED):
                done_ops.add(a.detail.get("key"))
            if a.kind == Act.EVICT and a.outcome is None:
                self._open_evictions[str(a.detail.get("uid"))] = a.seq
        while self._change < len(self.changes) and self.op_key(self._change) in done_ops:
            self._change += 1
        if self._change > 0:
            self.state = JobState.UPGRADE

    def _new_drainer(self, options: DrainOptions) -> Drainer:
        evictions = self.effects.evictions(
            self.ctx.step_id, self.ctx.cluster, self.node,
            # which budgets said no: the report's drain stalls name them
            lambda pod: [b.key for b in pdbs_selecting(pod, self._pdbs)])
        return Drainer(evictions, self.node, options, started=self.ctx.now())

    # -- the machine -----------------------------------------------------------------------
    def advance(self, obs: ClusterObservation) -> JobState:
        self._pdbs = obs.pdbs
        node = obs.node(self.node)
        if node is None:
            self.state, self.message = JobState.FAILED, f"node {self.node} disappeared"
            return self.state
        if self.state is JobState.CORDON:
            if self.drain and not node.unschedulable:
                self.effects.cordon(self.ctx.step_id, self.ctx.cluster, self.node,
                                    f"pitstop {self.ctx.step_id}", (CORDON_ANNOTATION,
                                    f"run {self.ctx.run_id} step {self.ctx.step_id}: upgrading"))
            self.state = JobState.DRAIN if self.drain else JobState.UPGRADE
            self._drainer = self._new_drainer(self.drain_options)
        if self.state is JobState.DRAIN and not self._drain(obs):
            return self.state
        if self.state is JobState.UPGRADE and not self._upgrade(node):
            return self.state
        if self.state is JobState.READY:
            want = {c.component: c.to_version for c in self.changes}
            at_version = all(_version_of(comp, node) == ver for comp, ver in want.items())
            if not (node.ready and at_version):
                if self._upgraded_at is None:
                    self._upgraded_at = self.ctx.now()
                if self.ctx.now() - self._upgraded_at > self.ready_timeout_s:
                    self.state = JobState.FAILED
                    self.message = (f"{self.node} did not become Ready at the new versions "
                                    f"within {self.ready_timeout_s:.0f}s")
                return self.state
            self.state = JobState.UNCORDON
        if self.state is JobState.UNCORDON:
            if node.unschedulable and self.drain:
                self.effects.uncordon(self.ctx.step_id, self.ctx.cluster, self.node,
                                      CORDON_ANNOTATION)
            self.effects.record(self.ctx.step_id, Act.NODE_DONE, self.node, "ok",
                                {"changes": [c.to_dict() for c in self.changes]})
            self.state = JobState.DONE
        return self.state

    def _drain(self, obs: ClusterObservation) -> bool:
        """Advance the drain; True once the node is empty and the job moves on."""
        self._settle_open_evictions(obs)
        if self._drainer is None:
            self._drainer = self._new_drainer(self.drain_options)
        status = self._drainer.advance(obs)
        if status.state is DrainState.DONE:
            self.state = JobState.DONE if self.drain_only else JobState.UPGRADE
            return not self.drain_only
        if status.state not in (DrainState.TIMED_OUT, DrainState.FAILED):
            return False
        if self.force_after_timeout and not self.forced:
            # the policy allows forcing, but only once the drain timeout has passed
            if self.ctx.now() - self._drainer.started < self.drain_options.timeout_s:
                self._drainer.status.state = DrainState.RUNNING  # keep waiting
                return False
            self.effects.record(self.ctx.step_id, Act.FORCE, self.node, "forced",
                                {"reason": status.message, "pods": status.remaining},
                                {"pods": status.remaining})
            self.forced = True
            self._drainer = self._new_drainer(
                replace(self.drain_options, force=True, disable_eviction=True))
            return False
        self.state = JobState.BLOCKED
        self.message = status.message
        self.blocking_pdbs = status.blocking_pdbs
        self.effects.annotate(self.ctx.step_id, self.ctx.cluster, self.node, CORDON_ANNOTATION,
                              f"run {self.ctx.run_id} step {self.ctx.step_id}: paused — "
                              f"{status.message}")
        return False

    def _upgrade(self, node: NodeObservation) -> bool:
        """Start or poll the next change; True once every change succeeded."""
        while self._change < len(self.changes):
            key = self.op_key(self._change)
            c = self.changes[self._change]
            if key not in self._polling and _version_of(c.component, node) == c.to_version:
                # already there (a rollback of a node whose upgrade failed part-way, or a
                # component that never moved): nothing to do
                self._change += 1
                continue
            if key in self._polling:
                op = self.effects.view.poll(self.ctx.cluster, key)
            else:
                op = self.effects.start(
                    self.ctx.step_id, self.ctx.cluster, Act.UPGRADE, self.node, key,
                    UpgradeComponent(self.node, c.component, c.to_version),
                    {"component": c.component, "from": c.from_version, "to": c.to_version})
                self._polling.add(key)
            if op.state is OperationState.RUNNING:
                return False
            if op.state is OperationState.FAILED:
                self.effects.record(self.ctx.step_id, Act.UPGRADE_DONE, self.node, "failed",
                                    {"key": key}, {"message": op.message})
                self.state = JobState.FAILED
                self.message = (f"{c.component} {c.from_version} → {c.to_version} failed on "
                                f"{self.node}: {op.message}")
                return False
            self.effects.record(self.ctx.step_id, Act.UPGRADE_DONE, self.node,
                                str(OperationState.SUCCEEDED), {"key": key}, {"key": key})
            self._change += 1
        self.state = JobState.READY
        self._upgraded_at = self.ctx.now()
        return True

    # -- evictions journaled before a restart ----------------------------------------------
    def _settle_open_evictions(self, obs: ClusterObservation) -> None:
        """An eviction journaled before a crash without an answer: if the pod is gone or
        deleting, it was accepted; if it is there and not deleting, it was not (the drain will
        ask again — not a repeat of anything that happened)."""
        if not self._open_evictions:
            return
        by_uid = {p.uid: p for p in obs.pods}
        for uid, seq in list(self._open_evictions.items()):
            pod = by_uid.get(uid)
            gone = pod is None or pod.deleting
            self.effects.settle_eviction(seq, gone, "gone" if pod is None else
                                         "deleting" if gone else "present")
            del self._open_evictions[uid]


@dataclass
class ReplaceJob:
    """The ``replace`` strategy for one node: a new node at the new versions joins the pool
    (surge), becomes Ready, then the old node is cordoned, drained and removed. Each operation
    is started once (journaled), then polled: an AddNode that fails after it started fails the
    job at once, not after the Ready timeout."""

    ctx: JobContext
    node: str
    pool: str
    changes: tuple[Change, ...]
    drain_options: DrainOptions
    ready_timeout_s: float = 900.0
    state: JobState = JobState.ADD
    message: str = ""
    blocking_pdbs: list[str] = field(default_factory=list)
    _drain: NodeJob | None = None
    _since: float | None = None
    _removing: bool = False  # the RemoveNode was started by this process: poll it

    @property
    def effects(self) -> Effects:
        return self.ctx.effects

    @property
    def new_name(self) -> str:
        digest = hashlib.blake2b(f"{self.ctx.run_id}/{self.ctx.step_id}".encode(), digest_size=3)
        return f"{self.node}-r{digest.hexdigest()}"

    def _key(self, what: str) -> str:
        return f"{self.ctx.run_id}/{self.ctx.step_id}/{self.node}/{what}"

    def recover(self) -> None:
        kinds = {(a.kind, a.outcome) for a in self.effects.journal.actions(self.ctx.step_id)
                 if a.target == self.node}
        if (Act.NODE_DONE, "ok") in kinds:
            self.state = JobState.DONE
        elif (Act.REPLACE_READY, "ok") in kinds:
            self.state = JobState.CORDON
        # otherwise from ADD: a start journaled before the restart is not journaled again, and
        # the backend returns the operation it already runs (idempotent by key)

    def _start(self, what: str, kind: Act, action: AddNode | RemoveNode) -> OperationState:
        op = self.effects.start(self.ctx.step_id, self.ctx.cluster, kind, self.node,
                                self._key(what), action, {"new": self.new_name})
        return self._judge(what, op.state, op.message)

    def _poll(self, what: str) -> OperationState:
        op = self.effects.view.poll(self.ctx.cluster, self._key(what))
        return self._judge(what, op.state, op.message)

    def _judge(self, what: str, state: OperationState, message: str) -> OperationState:
        if state is OperationState.FAILED:
            self.state = JobState.FAILED
            self.message = f"{what} for {self.node} failed: {message}"
        return state

    def advance(self, obs: ClusterObservation) -> JobState:
        old = obs.node(self.node)
        if self.state is JobState.ADD:
            if old is None:
                self.state, self.message = JobState.FAILED, f"node {self.node} is gone"
                return self.state
            final = {c.component: c.to_version for c in self.changes}
            if self._start("add", Act.REPLACE_ADD, AddNode(
                    pool=self.pool, name=self.new_name,
                    kubelet=final.get("kubelet", old.kubelet), runtime=old.runtime,
                    runtime_version=final.get(old.runtime, old.runtime_version))
                    ) is OperationState.FAILED:
                return self.state
            self.state = JobState.WAIT_READY
            self._since = self.ctx.now()
        if self.state is JobState.WAIT_READY:
            new = obs.node(self.new_name)
            if new is not None and new.ready:
                self.effects.record(self.ctx.step_id, Act.REPLACE_READY, self.node, "ok",
                                    {"new": self.new_name})
                self.state = JobState.CORDON
            else:
                if self._poll("add") is OperationState.FAILED:
                    return self.state
                if self._since is None:
                    self._since = self.ctx.now()
                if self.ctx.now() - self._since > self.ready_timeout_s:
                    self.state = JobState.FAILED
                    self.message = (f"replacement {self.new_name} for {self.node} did not "
                                    f"become Ready within {self.ready_timeout_s:.0f}s")
                return self.state
        if self.state in (JobState.CORDON, JobState.DRAIN):
            if old is None:  # removed before a restart: nothing left to drain
                self.state = JobState.REMOVE
            else:
                if self._drain is None:
                    # cordon + drain of the old node, no component change
                    self._drain = NodeJob(self.ctx, self.node, (), self.drain_options,
                                          drain_only=True)
                    self._drain.recover()
                st = self._drain.advance(obs)
                if st in (JobState.BLOCKED, JobState.FAILED):
                    self.state, self.message = st, self._drain.message
                    self.blocking_pdbs = self._drain.blocking_pdbs
                    return self.state
                if self._drain.state in (JobState.DRAIN, JobState.CORDON):
                    self.state = JobState.DRAIN
                    return self.state
                self.state = JobState.REMOVE
        if self.state is JobState.REMOVE:
            if old is not None:
                removed = (self._poll("remove") if self._removing else
                           self._start("remove", Act.REPLACE_REMOVE, RemoveNode(self.node)))
                self._removing = True
                if removed is not OperationState.SUCCEEDED:
                    return self.state  # FAILED (state set) or still running
            self.effects.record(self.ctx.step_id, Act.NODE_DONE, self.node, "ok",
                                {"replaced-by": self.new_name})
            self.state = JobState.DONE
        return self.state
