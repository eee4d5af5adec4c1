"""Node jobs: one node's cordon → drain → upgrade → Ready → uncordon, as a state machine the
executor advances with fresh observations, many nodes at once.

Every mutation is journaled as an intent before it is made and an outcome after. A job rebuilt
after a crash reads the journal and the fleet: a step whose operation was started is polled by
its key (the backend returns the existing operation — nothing is started twice); an eviction
whose pod is still there and not deleting was never accepted and is sent again; a pod that is
deleting or gone is not touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from pitstop.backend import (
    AddNode,
    Backend,
    ClusterObservation,
    EvictionResult,
    NodeObservation,
    OperationState,
    PdbObservation,
    PodObservation,
    RemoveNode,
    UpgradeComponent,
)
from pitstop.drain import Drainer, DrainOptions, DrainState, pdbs_selecting
from pitstop.planner.plan import Change

if TYPE_CHECKING:
    from pitstop.executor.journal import Journal

__all__ = ["CORDON_ANNOTATION", "JobState", "NodeJob", "ReplaceJob", "ReplaceState"]

CORDON_ANNOTATION = "pitstop.dev/cordoned"


class JobState(StrEnum):
    CORDON = "cordon"
    DRAIN = "drain"
    UPGRADE = "upgrade"
    READY = "ready"
    UNCORDON = "uncordon"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"  # drain timed out or refused: the node stays cordoned, annotated why


def _version_of(node_component: str, obs_node: NodeObservation | None) -> str | None:
    return None if obs_node is None else obs_node.version_of(node_component)


@dataclass
class NodeJob:
    """``changes`` are applied in order on the drained node (``drain=False``: in place, for a
    runtime patch whose containers survive the restart)."""

    backend: Backend
    journal: Journal
    run_id: str
    step_id: str
    cluster: str
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
    _ready_since: float | None = None
    _upgraded_at: float | None = None
    _open_evictions: dict[str, int] = field(default_factory=dict)  # pod uid -> journal seq
    _polling: set[str] = field(default_factory=set)  # operation keys started by this process
    _pdbs: tuple[PdbObservation, ...] = ()  # of the observation being acted on: names refusals

    # -- helpers -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.backend.clock.now()

    def _act(self, kind: str, detail: dict[str, object]) -> int:
        return self.journal.intent(self.step_id, kind, self.node, detail, self._now())

    def _done(self, seq: int, outcome: str, detail: dict[str, object] | None = None) -> None:
        self.journal.outcome(seq, outcome, detail, self._now())

    def op_key(self, i: int) -> str:
        c = self.changes[i]
        return f"{self.run_id}/{self.step_id}/{self.node}/{i}/{c.component}/{c.to_version}"

    # -- resume ------------------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuild progress from the journal after a restart."""
        done_ops = set()
        for a in self.journal.actions(self.step_id):
            if a.target != self.node:
                continue
            if a.kind == "node-done" and a.outcome == "ok":
                self.state = JobState.DONE
                return
            if a.kind == "upgrade-done" and a.outcome == "succeeded":
                done_ops.add(a.detail.get("key"))
            if a.kind == "evict" and a.outcome is None:
                self._open_evictions[str(a.detail.get("uid"))] = a.seq
        while self._change < len(self.changes) and self.op_key(self._change) in done_ops:
            self._change += 1
        if self._change > 0:
            self.state = JobState.UPGRADE

    # -- the machine -----------------------------------------------------------------------
    def advance(self, obs: ClusterObservation) -> JobState:
        self._pdbs = obs.pdbs
        node = obs.node(self.node)
        if node is None:
            self.state, self.message = JobState.FAILED, f"node {self.node} disappeared"
            return self.state
        if self.state is JobState.CORDON:
            if self.drain and not node.unschedulable:
                seq = self._act("cordon", {})
                self.backend.cordon(self.cluster, self.node, f"pitstop {self.step_id}")
                self.backend.annotate(self.cluster, self.node, CORDON_ANNOTATION,
                                      f"run {self.run_id} step {self.step_id}: upgrading")
                self._done(seq, "ok")
            self.state = JobState.DRAIN if self.drain else JobState.UPGRADE
            self._drainer = Drainer(self.backend, self.cluster, self.node, self.drain_options,
                                    started=self._now(), on_evict=self._on_evict,
                                    on_evicted=self._on_evicted)
        if self.state is JobState.DRAIN:
            self._settle_open_evictions(obs)
            if self._drainer is None:
                self._drainer = Drainer(self.backend, self.cluster, self.node,
                                        self.drain_options, started=self._now(),
                                        on_evict=self._on_evict, on_evicted=self._on_evicted)
            status = self._drainer.advance(obs)
            if status.state is DrainState.DONE:
                self.state = JobState.DONE if self.drain_only else JobState.UPGRADE
                if self.drain_only:
                    return self.state
            elif status.state in (DrainState.TIMED_OUT, DrainState.FAILED) and (
                    self.force_after_timeout and not self.forced):
                # the policy allows forcing, but only once the drain timeout has passed
                started = self._drainer.started
                if self._now() - started < self.drain_options.timeout_s:
                    self._drainer.status.state = DrainState.RUNNING  # keep waiting
                    return self.state
                seq = self._act("force", {"reason": status.message,
                                          "pods": status.remaining})
                self.forced = True
                self._drainer = Drainer(
                    self.backend, self.cluster, self.node,
                    replace(self.drain_options, force=True, disable_eviction=True),
                    started=self._now(), on_evict=self._on_evict, on_evicted=self._on_evicted)
                self._done(seq, "forced", {"pods": status.remaining})
                return self.state
            elif status.state in (DrainState.TIMED_OUT, DrainState.FAILED):
                self.state = JobState.BLOCKED
                self.message = status.message
                self.blocking_pdbs = status.blocking_pdbs
                self.backend.annotate(self.cluster, self.node, CORDON_ANNOTATION,
                                      f"run {self.run_id} step {self.step_id}: paused — "
                                      f"{status.message}")
                return self.state
            else:
                return self.state
        if self.state is JobState.UPGRADE:
            while self._change < len(self.changes):
                key = self.op_key(self._change)
                c = self.changes[self._change]
                if key not in self._polling and _version_of(c.component, node) == c.to_version:
                    # already there (a rollback of a node whose upgrade failed part-way, or a
                    # component that never moved): nothing to do
                    self._change += 1
                    continue
                if key in self._polling:
                    op = self.backend.poll(self.cluster, key)
                else:
                    # start is idempotent by key: after a crash this returns the operation
                    # already running (or finished) instead of starting it again
                    seq = self._act("upgrade", {"key": key, "component": c.component,
                                                "from": c.from_version, "to": c.to_version})
                    op = self.backend.start(self.cluster, key, UpgradeComponent(
                        self.node, c.component, c.to_version))
                    self._done(seq, "started", {"key": key, "state": str(op.state)})
                    self._polling.add(key)
                if op.state is OperationState.RUNNING:
                    return self.state
                seq = self._act("upgrade-done", {"key": key})
                if op.state is OperationState.FAILED:
                    self._done(seq, "failed", {"message": op.message})
                    self.state = JobState.FAILED
                    self.message = (f"{c.component} {c.from_version} → {c.to_version} failed on "
                                    f"{self.node}: {op.message}")
                    return self.state
                self._done(seq, "succeeded", {"key": key})
                self._change += 1
            self.state = JobState.READY
            self._upgraded_at = self._now()
        if self.state is JobState.READY:
            want = {c.component: c.to_version for c in self.changes}
            at_version = all(_version_of(comp, node) == ver for comp, ver in want.items())
            if node.ready and at_version:
                self.state = JobState.UNCORDON
            else:
                since = self._upgraded_at if self._upgraded_at is not None else self._now()
                if self._upgraded_at is None:
                    self._upgraded_at = since
                if self._now() - since > self.ready_timeout_s:
                    self.state = JobState.FAILED
                    self.message = (f"{self.node} did not become Ready at the new versions within "
                                    f"{self.ready_timeout_s:.0f}s")
                return self.state
        if self.state is JobState.UNCORDON:
            if node.unschedulable and self.drain:
                seq = self._act("uncordon", {})
                self.backend.uncordon(self.cluster, self.node)
                self.backend.annotate(self.cluster, self.node, CORDON_ANNOTATION, None)
                self._done(seq, "ok")
            seq = self._act("node-done", {"changes": [c.to_dict() for c in self.changes]})
            self._done(seq, "ok")
            self.state = JobState.DONE
        return self.state

    # -- evictions, journaled --------------------------------------------------------------
    def _on_evict(self, pod: PodObservation, how: str) -> None:
        self._open_evictions[pod.uid] = self._act(
            "evict", {"pod": pod.key, "uid": pod.uid, "how": how})

    def _on_evicted(self, pod: PodObservation, answer: EvictionResult) -> None:
        seq = self._open_evictions.pop(pod.uid, None)
        if seq is not None:
            detail: dict[str, object] = {"pod": pod.key}
            if answer in (EvictionResult.BUDGET_EXHAUSTED, EvictionResult.MULTIPLE_PDBS):
                # which budgets said no: the report's drain stalls name them
                detail["pdbs"] = [b.key for b in pdbs_selecting(pod, self._pdbs)]
            self._done(seq, str(answer), detail)

    def _settle_open_evictions(self, obs: ClusterObservation) -> None:
        """An eviction journaled before a crash without an answer: if the pod is gone or
        deleting, it was accepted; if it is there and not deleting, it was not (the drain will
        ask again — not a repeat of anything that happened)."""
        if not self._open_evictions:
            return
        by_uid = {p.uid: p for p in obs.pods}
        for uid, seq in list(self._open_evictions.items()):
            pod = by_uid.get(uid)
            if pod is None or pod.deleting:
                self._done(seq, "settled-accepted", {"observed": "gone" if pod is None
                                                     else "deleting"})
            else:
                self._done(seq, "settled-not-accepted", {"observed": "present"})
            del self._open_evictions[uid]


class ReplaceState(StrEnum):
    ADD = "add"
    WAIT_READY = "wait-ready"
    CORDON = "cordon"
    DRAIN = "drain"
    REMOVE = "remove"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass
class ReplaceJob:
    """The ``replace`` strategy for one node: a new node at the new versions joins the pool
    (surge), becomes Ready, then the old node is cordoned, drained and removed. Same journal
    discipline as :class:`NodeJob`; operations are idempotent by key."""

    backend: Backend
    journal: Journal
    run_id: str
    step_id: str
    cluster: str
    node: str
    pool: str
    changes: tuple[Change, ...]
    drain_options: DrainOptions
    ready_timeout_s: float = 900.0
    state: ReplaceState = ReplaceState.ADD
    message: str = ""
    blocking_pdbs: list[str] = field(default_factory=list)
    _drain: NodeJob | None = None
    _since: float | None = None

    @property
    def new_name(self) -> str:
        digest = hashlib.blake2b(f"{self.run_id}/{self.step_id}".encode(), digest_size=3)
        return f"{self.node}-r{digest.hexdigest()}"

    def _key(self, what: str) -> str:
        return f"{self.run_id}/{self.step_id}/{self.node}/{what}"

    def recover(self) -> None:
        kinds = {(a.kind, a.outcome) for a in self.journal.actions(self.step_id)
                 if a.target == self.node}
        if ("node-done", "ok") in kinds:
            self.state = ReplaceState.DONE
        elif ("replace-ready", "ok") in kinds:
            self.state = ReplaceState.CORDON

    def _op(self, what: str, action: AddNode | RemoveNode) -> OperationState:
        key = self._key(what)
        seq = self.journal.intent(self.step_id, f"replace-{what}", self.node,
                                  {"key": key, "new": self.new_name}, self.backend.clock.now())
        op = self.backend.start(self.cluster, key, action)  # idempotent by key
        self.journal.outcome(seq, str(op.state), {"message": op.message},
                             self.backend.clock.now())
        if op.state is OperationState.FAILED:
            self.message = f"{what} for {self.node} failed: {op.message}"
        return op.state

    def advance(self, obs: ClusterObservation) -> ReplaceState:
        old = obs.node(self.node)
        if self.state is ReplaceState.ADD:
            if old is None:
                self.state, self.message = ReplaceState.FAILED, f"node {self.node} is gone"
                return self.state
            final = {c.component: c.to_version for c in self.changes}
            state = self._op("add", AddNode(
                pool=self.pool, name=self.new_name,
                kubelet=final.get("kubelet", old.kubelet), runtime=old.runtime,
                runtime_version=final.get(old.runtime, old.runtime_version)))
            if state is OperationState.FAILED:
                self.state = ReplaceState.FAILED
                return self.state
            self.state = ReplaceState.WAIT_READY
            self._since = self.backend.clock.now()
        if self.state is ReplaceState.WAIT_READY:
            new = obs.node(self.new_name)
            if new is not None and new.ready:
                seq = self.journal.intent(self.step_id, "replace-ready", self.node,
                                          {"new": self.new_name}, self.backend.clock.now())
                self.journal.outcome(seq, "ok", None, self.backend.clock.now())
                self.state = ReplaceState.CORDON
            else:
                if self._since is None:
                    self._since = self.backend.clock.now()
                if self.backend.clock.now() - self._since > self.ready_timeout_s:
                    self.state = ReplaceState.FAILED
                    self.message = (f"replacement {self.new_name} for {self.node} did not "
                                    f"become Ready within {self.ready_timeout_s:.0f}s")
                return self.state
        if self.state in (ReplaceState.CORDON, ReplaceState.DRAIN):
            if old is None:  # removed before a restart: nothing left to drain
                self.state = ReplaceState.REMOVE
            else:
                if self._drain is None:
                    # cordon + drain of the old node, no component change
                    self._drain = NodeJob(self.backend, self.journal, self.run_id,
                                          self.step_id, self.cluster, self.node, (),
                                          self.drain_options, drain_only=True)
                    self._drain.recover()
                st = self._drain.advance(obs)
                if st is JobState.BLOCKED:
                    self.state, self.message = ReplaceState.BLOCKED, self._drain.message
                    self.blocking_pdbs = self._drain.blocking_pdbs
                    return self.state
                if st is JobState.FAILED:
                    self.state, self.message = ReplaceState.FAILED, self._drain.message
                    return self.state
                if self._drain.state in (JobState.DRAIN, JobState.CORDON):
                    self.state = ReplaceState.DRAIN
                    return self.state
                self.state = ReplaceState.REMOVE
        if self.state is ReplaceState.REMOVE:
            if old is not None:
                state = self._op("remove", RemoveNode(self.node))
                if state is OperationState.FAILED:
                    self.state = ReplaceState.FAILED
                    return self.state
                if state is OperationState.RUNNING:
                    return self.state
            seq = self.journal.intent(self.step_id, "node-done", self.node,
                                      {"replaced-by": self.new_name}, self.backend.clock.now())
            self.journal.outcome(seq, "ok", None, self.backend.clock.now())
            self.state = ReplaceState.DONE
        return self.state
