"""Durable state behind two small interfaces (:mod:`pitstop.store.api`): a run's state
(:class:`RunStore`) and a real backend's operations (:class:`OperationStore`), with SQLite
implementations (:mod:`pitstop.store.sqlite`)."""

from pitstop.store.api import (
    ActionRecord,
    ApprovalRecord,
    GateRecord,
    LockHolder,
    OperationStore,
    OpEvent,
    OpRecord,
    RunStore,
    StepRecord,
)
from pitstop.store.ops import SqliteOperationStore, owner_alive, process_identity
from pitstop.store.sqlite import SCHEMA_VERSION, SqliteRunStore

__all__ = ["SCHEMA_VERSION", "ActionRecord", "ApprovalRecord", "GateRecord", "LockHolder",
           "OpEvent", "OpRecord", "OperationStore", "RunStore", "SqliteOperationStore",
           "SqliteRunStore", "StepRecord", "owner_alive", "process_identity"]
