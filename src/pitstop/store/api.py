"""The storage seam: what pitstop keeps durably, as two small interfaces.

* :class:`RunStore` — one run's state: run-level values (status, reason, requests), the steps,
  the write-ahead actions (an *intent* before every effect, its *outcome* after), approvals,
  gate measurements, the audit anchor, and the lock that lets one process act on the run at a
  time. The executor, the command line and the report use nothing else to read or change it.
* :class:`OperationStore` — a real backend's long-running operations by key (start is
  idempotent by key; a process that finds an operation whose owner died claims it, and exactly
  one wins), the backend's event log, and small key/values (marks on hosts that are not nodes).

Each interface has one implementation here, on SQLite (:mod:`pitstop.store.sqlite`): a run
directory's ``journal.sqlite`` and a backend's state file. A shared store (PostgreSQL, for
several replicas of the service) is a second implementation of the same two interfaces; the
conformance tests in ``tests/store`` run against every implementation.

The values are frozen records of plain data; implementations never hand out live rows.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pitstop.backend.api import Action, Operation, OperationState

__all__ = ["ActionRecord", "ApprovalRecord", "GateRecord", "LockHolder", "OpEvent", "OpRecord",
           "OperationStore", "RunStore", "StepRecord"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    step_id: str
    idx: int
    status: str  # a pitstop.executor.vocabulary.StepStatus value
    started: float | None
    finished: float | None
    message: str


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One effect on the fleet (or a decision the executor journals): the intent, written
    before it is made, and its outcome, written after (None while it is unknown)."""

    seq: int
    step_id: str
    kind: str  # a pitstop.executor.vocabulary.Act value
    target: str
    detail: dict[str, Any]
    intent_at: float
    outcome: str | None
    outcome_detail: dict[str, Any] | None
    outcome_at: float | None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    step_id: str
    approver: str
    at: float
    audit_seq: int  # the audit record that says who approved (0: none — it does not count)
    audit_hash: str


@dataclass(frozen=True, slots=True)
class GateRecord:
    step_id: str
    gate: str
    phase: str
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who acts on a run: named in the refusal a second process gets."""

    pid: int
    host: str
    since: str  # ISO-8601 UTC
    command: str = ""

    def describe(self) -> str:
        what = f" ({self.command})" if self.command else ""
        return f"process {self.pid} on {self.host}{what}, since {self.since}"


@runtime_checkable
class RunStore(Protocol):
    """One run's durable state (module docstring). Every write is durable when the call
    returns. Safe to open from a new process after the old one died."""

    # run-level values: status, reason, request, request_reason, anchors, soak marks, …
    def get(self, key: str, default: str = "") -> str: ...

    def set(self, key: str, value: str) -> None: ...

    # steps, in plan order
    def init_steps(self, step_ids: list[str]) -> None: ...

    def step(self, step_id: str) -> StepRecord: ...  # KeyError for an unknown step

    def steps(self) -> list[StepRecord]: ...

    def set_step(self, step_id: str, status: str, at: float, message: str = "") -> None: ...

    def crash_point(self, step_id: str) -> None:
        """Crash testing: count a write of the run's durable state about ``step_id`` made
        outside this store (its audit records), as the store counts its own writes; a store
        without failpoints does nothing."""
        ...

    # the write-ahead actions
    def intent(self, step_id: str, kind: str, target: str, detail: dict[str, Any],
               at: float) -> int: ...

    def outcome(self, seq: int, outcome: str, detail: dict[str, Any] | None,
                at: float) -> None: ...

    def actions(self, step_id: str | None = None, *, open_only: bool = False,
                kind: str | None = None) -> list[ActionRecord]: ...

    def last_seq(self) -> int: ...

    # approvals and gate measurements
    def approve(self, step_id: str, approver: str, at: float, audit_seq: int,
                audit_hash: str) -> None: ...

    def approvals(self, step_id: str | None = None) -> list[ApprovalRecord]: ...

    def gate(self, step_id: str, gate: str, phase: str, message: str, at: float) -> None: ...

    def gates(self) -> list[GateRecord]: ...

    # one process acts on a run at a time
    def lock(self, command: str = "") -> AbstractContextManager[LockHolder]: ...

    def holder(self) -> LockHolder | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OpRecord:
    """A backend operation as stored: its action, state and who runs it (``owner``: a process
    identity, :func:`pitstop.store.sqlite.process_identity`)."""

    key: str
    cluster: str
    action: Action
    state: OperationState
    message: str
    started: float
    finished: float | None
    owner: str
    data: dict[str, Any] = field(default_factory=dict)

    def operation(self) -> Operation:
        return Operation(self.key, self.action, self.state, self.message, self.started,
                         self.finished)


@dataclass(frozen=True, slots=True)
class OpEvent:
    """One thing a backend did (or recorded). ``destructive``: it changed the fleet."""

    seq: int
    at: float
    cluster: str
    kind: str
    subject: str
    detail: str
    destructive: bool
    op_key: str
    owner: str


@runtime_checkable
class OperationStore(Protocol):
    """A real backend's durable operations, events and key/values (module docstring)."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def get(self, key: str) -> OpRecord | None: ...

    def operations(self, cluster: str | None = None, *,
                   running: bool = False) -> list[OpRecord]: ...

    def insert(self, rec: OpRecord) -> bool: ...  # False: the key exists (it stays)

    def save_data(self, key: str, data: dict[str, Any]) -> None: ...

    def finish(self, key: str, state: OperationState, message: str, at: float,
               data: dict[str, Any]) -> None: ...

    def claim(self, key: str, old_owner: str, new_owner: str) -> bool: ...

    def record(self, at: float, cluster: str, kind: str, subject: str, detail: str,
               destructive: bool, op_key: str, owner: str) -> None: ...

    def events(self, cluster: str | None = None) -> list[OpEvent]: ...

    def get_kv(self, key: str) -> Any: ...

    def set_kv(self, key: str, value: Any) -> None: ...

    def set_mark(self, cluster: str, node: str, key: str, value: str | None) -> None: ...

    def marks(self, cluster: str) -> dict[str, dict[str, str]]: ...

    def close(self) -> None: ...
