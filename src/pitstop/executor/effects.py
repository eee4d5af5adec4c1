"""The one way the executor changes the fleet: every effect journaled by construction.

:class:`Effects` wraps a backend and a run's journal. Each method that changes something —
cordon, uncordon, annotate, evict, start an operation — writes the *intent* to the journal
(committed) before the backend call and the *outcome* after it. Node jobs, the drain and the
step runner receive an :class:`Effects` and a read-only :class:`FleetView`, never the backend
itself, so an effect that skips the journal cannot be written.

When a backend call raises (:class:`~pitstop.errors.BackendError`), the intent stays open: the
outcome is unknown, and ``resume`` settles it by looking at the fleet (a cordon or an
annotation is simply made again; an eviction is settled by whether the pod is still there; an
operation is idempotent by key).

Starting an operation is idempotent in the journal too: a start whose key already has an
intent of the same kind reuses that row (after a crash, the resumed process polls what the
first one began and the journal keeps one row per operation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pitstop.backend import (
    Action,
    Backend,
    Clock,
    ClusterObservation,
    EvictionResult,
    HealthSignals,
    Operation,
    PodObservation,
)
from pitstop.drain import Answer, Evictions, call_all
from pitstop.executor.vocabulary import Act
from pitstop.store import RunStore

__all__ = ["Effects", "FleetView"]


class FleetView(Protocol):
    """What node jobs and gates may read from the backend: nothing here changes the fleet."""

    @property
    def clock(self) -> Clock: ...

    def observe(self, cluster: str) -> ClusterObservation: ...

    def health(self, cluster: str) -> HealthSignals: ...

    def poll(self, cluster: str, key: str) -> Operation: ...


@dataclass
class _JournaledEvictions:
    effects: Effects
    step_id: str
    cluster: str
    node: str
    refused_by: Callable[[PodObservation], Sequence[str]] | None

    @property
    def clock(self) -> Clock:
        return self.effects.clock

    def evict_all(self, pods: Sequence[PodObservation], *, delete: bool) -> list[Answer]:
        return self.effects.evict_all(self.step_id, self.cluster, self.node, pods,
                                      delete=delete, refused_by=self.refused_by)


@dataclass
class Effects:
    """See the module docstring."""

    backend: Backend
    journal: RunStore

    @property
    def view(self) -> FleetView:
        return self.backend

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    def _now(self) -> float:
        return self.backend.clock.now()

    def _intent(self, step_id: str, kind: Act, target: str, detail: dict[str, Any]) -> int:
        return self.journal.intent(step_id, kind, target, detail, self._now())

    def _outcome(self, seq: int, outcome: str, detail: dict[str, Any] | None = None) -> None:
        self.journal.outcome(seq, outcome, detail, self._now())

    # -- nodes ------------------------------------------------------------------------------
    def cordon(self, step_id: str, cluster: str, node: str, reason: str,
               annotation: tuple[str, str] | None = None) -> None:
        """Cordon ``node`` and (optionally) set an annotation saying why, as one journaled
        action."""
        seq = self._intent(step_id, Act.CORDON, node, {"reason": reason} | (
            {"annotation": list(annotation)} if annotation else {}))
        self.backend.cordon(cluster, node, reason)
        if annotation is not None:
            self.backend.annotate(cluster, node, annotation[0], annotation[1])
        self._outcome(seq, "ok")

    def uncordon(self, step_id: str, cluster: str, node: str,
                 clear_annotation: str | None = None) -> None:
        seq = self._intent(step_id, Act.UNCORDON, node, {} if clear_annotation is None
                           else {"clear": clear_annotation})
        self.backend.uncordon(cluster, node)
        if clear_annotation is not None:
            self.backend.annotate(cluster, node, clear_annotation, None)
        self._outcome(seq, "ok")

    def annotate(self, step_id: str, cluster: str, node: str, key: str,
                 value: str | None) -> None:
        seq = self._intent(step_id, Act.ANNOTATE, node, {"key": key, "value": value})
        self.backend.annotate(cluster, node, key, value)
        self._outcome(seq, "ok")

    # -- evictions --------------------------------------------------------------------------
    def evict_all(self, step_id: str, cluster: str, node: str,
                  pods: Sequence[PodObservation], *, delete: bool = False,
                  refused_by: Callable[[PodObservation], Sequence[str]] | None = None
                  ) -> list[Answer]:
        """Ask for every pod's eviction (or deletion, ``delete``: bypasses PDBs; only a drain
        the policy forces does it). Every intent is journaled first; then the calls go out —
        at once when the backend takes concurrent calls, as ``kubectl drain`` sends them
        (:func:`pitstop.drain.call_all`) — then every answer is journaled in order; a call
        that raised leaves its intent open (settled by observation on resume).
        ``refused_by(pod)`` names the budgets a refusal came from (kept with the answer: the
        report's drain stalls name them)."""
        how = "delete" if delete else "evict"
        seqs = [self._intent(step_id, Act.EVICT, node, {"pod": p.key, "uid": p.uid, "how": how})
                for p in pods]
        answers = call_all(self.backend, cluster, pods, delete=delete)
        for seq, p, answer in zip(seqs, pods, answers, strict=True):
            if isinstance(answer, BaseException):
                continue
            detail: dict[str, Any] = {"pod": p.key}
            if refused_by is not None and answer in (EvictionResult.BUDGET_EXHAUSTED,
                                                     EvictionResult.MULTIPLE_PDBS):
                detail["pdbs"] = list(refused_by(p))
            self._outcome(seq, str(answer), detail)
        return answers

    def evictions(self, step_id: str, cluster: str, node: str,
                  refused_by: Callable[[PodObservation], Sequence[str]] | None = None
                  ) -> Evictions:
        """The drain's way to evict the pods of ``node``, journaled (:meth:`evict_all`)."""
        return _JournaledEvictions(self, step_id, cluster, node, refused_by)

    def settle_eviction(self, seq: int, accepted: bool, observed: str) -> None:
        """An eviction journaled before a crash without an answer, settled by observation."""
        self._outcome(seq, "settled-accepted" if accepted else "settled-not-accepted",
                      {"observed": observed})

    # -- operations -------------------------------------------------------------------------
    def start(self, step_id: str, cluster: str, kind: Act, target: str, key: str,
              action: Action, detail: dict[str, Any] | None = None) -> Operation:
        """Start ``action`` under ``key`` (idempotent by key, in the backend and here: an
        intent of this kind and key that exists already is reused)."""
        existing = next((a for a in self.journal.actions(step_id, kind=kind)
                         if a.detail.get("key") == key), None)
        seq = existing.seq if existing is not None else self._intent(
            step_id, kind, target, {"key": key, **(detail or {})})
        op = self.backend.start(cluster, key, action)
        if existing is None or existing.outcome is None:
            self._outcome(seq, "started", {"key": key, "state": str(op.state)})
        return op

    def record(self, step_id: str, kind: Act, target: str, outcome: str,
               detail: dict[str, Any] | None = None,
               outcome_detail: dict[str, Any] | None = None) -> int:
        """A decision or an end the journal keeps (an operation done, a node done, a skew
        check): intent and outcome at once, no effect on the fleet."""
        seq = self._intent(step_id, kind, target, detail or {})
        self._outcome(seq, outcome, outcome_detail)
        return seq
