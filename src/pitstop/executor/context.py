"""What every part of the executor shares while it carries one run out: the run, the backend
(read through a view, changed only through :class:`~pitstop.executor.effects.Effects`), the
clock, the audit trail, requests, and how a part stops the run (:class:`Stop`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pitstop.backend import Action, Backend, Operation, OperationState
from pitstop.catalog import Catalog
from pitstop.executor.effects import Effects
from pitstop.executor.lanes import Lanes
from pitstop.executor.run import RunDir
from pitstop.executor.vocabulary import Act, Request, RunStatus
from pitstop.observe.api import NO_TELEMETRY, Telemetry
from pitstop.planner.plan import Step
from pitstop.store import RunStore

__all__ = ["HALTED", "ROLLBACK_NEEDED", "RunContext", "Stop"]

ROLLBACK_NEEDED = "rollback-needed"  # a gate failed: roll the wave back once it has stopped
HALTED = "halted"  # another cluster of the wave stopped


class Stop(Exception):
    """Ends the run (or, in a lane, one cluster's work): ``status`` is a
    :class:`~pitstop.executor.vocabulary.RunStatus`, or :data:`ROLLBACK_NEEDED`, or
    :data:`HALTED`."""

    def __init__(self, status: str, reason: str, cluster: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.cluster = cluster


@dataclass
class RunContext:
    run: RunDir
    backend: Backend
    actor: str = "pitstop"
    poll_s: float = 5.0
    on_event: Callable[[str, dict[str, Any]], None] | None = None
    catalog: Catalog | None = None
    rollbacks: list[str] = field(default_factory=list)
    lanes: Lanes | None = None  # clusters of the wave worked on at once (None: one at a time)
    halt: str | None = None  # why the other clusters of the wave must stop (None: go on)
    telemetry: Telemetry = NO_TELEMETRY  # spans and measurements (pitstop.observe.api)
    effects: Effects = field(init=False)

    def __post_init__(self) -> None:
        self.effects = Effects(self.backend, self.run.journal)

    @property
    def journal(self) -> RunStore:
        return self.run.journal

    def now(self) -> float:
        return self.backend.clock.now()

    def audit(self, action: str, reason: str, subject: str, before: Any = None,
              after: Any = None, **extra: Any) -> None:
        self.run.record(self.actor, action, reason, subject, before, after, at=self.now(),
                        **extra)
        if self.on_event is not None:
            self.on_event(action, {"subject": subject, "reason": reason, **extra})

    def sleep(self, seconds: float) -> None:
        """Wait on the backend's clock — or, with clusters in lanes, give the others a turn."""
        if self.lanes is not None and self.lanes.in_lane():
            self.lanes.sleep(seconds)
        else:
            self.backend.clock.sleep(seconds)

    def check_requests(self) -> None:
        if self.halt is not None:
            raise Stop(HALTED, self.halt)
        req = self.journal.get("request")
        if req == Request.ABORT:
            raise Stop(RunStatus.ABORTED, self.journal.get("request_reason") or "abort requested")
        if req == Request.PAUSE:
            raise Stop(RunStatus.PAUSED, self.journal.get("request_reason") or "pause requested")

    def stopping(self) -> bool:
        """A pause or abort is requested, or another cluster of the wave stopped: admit no new
        work."""
        return bool(self.journal.get("request")) or self.halt is not None

    def sleep_checked(self, seconds: float) -> None:
        end = self.now() + seconds
        while self.now() < end:
            self.check_requests()
            self.sleep(min(self.poll_s * 12, end - self.now()))

    def run_op(self, step: Step, key: str, action: Action) -> Operation:
        """Start ``action`` under ``key`` (journaled), poll it to its end, journal the end."""
        finished = [a for a in self.journal.actions(step.id, kind=Act.OPERATION_DONE)
                    if a.target == key]
        if finished and finished[-1].outcome == str(OperationState.SUCCEEDED):
            return self.backend.poll(step.cluster, key)  # done before a restart: not again
        op = self.effects.start(step.id, step.cluster, Act.OPERATION, key, key, action,
                                {"action": repr(action)})
        while op.state is OperationState.RUNNING:
            self.sleep(self.poll_s)
            op = self.backend.poll(step.cluster, key)
        self.effects.record(step.id, Act.OPERATION_DONE, key, str(op.state), {},
                            {"message": op.message})
        self.audit("operation", f"{action!r}: {op.state}", key, cluster=step.cluster)
        return op
