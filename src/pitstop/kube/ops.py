"""Long-running operations of the Kubernetes backend, by key: kept in memory and, when a state
file is given, in that file too, so that a process started after a crash polls (and never
restarts) what an earlier one began.

The file is JSON, rewritten whole (write to a temporary file, then rename) under an exclusive
``flock`` on ``<file>.lock``, so two processes never interleave their updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitstop.backend import (
    Action,
    BackendError,
    Operation,
    OperationState,
    action_from_dict,
    action_to_dict,
)

__all__ = ["OpRecord", "OperationStore", "action_from_dict", "action_to_dict"]

_SCHEMA = 1


@dataclass
class OpRecord:
    key: str
    action: Action
    state: OperationState
    started: float
    message: str = ""
    finished: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def observe(self) -> Operation:
        return Operation(self.key, self.action, self.state, self.message, self.started,
                         self.finished)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "action": action_to_dict(self.action),
                "state": str(self.state), "started": self.started, "message": self.message,
                "finished": self.finished, "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpRecord:
        return cls(key=str(d["key"]), action=action_from_dict(d["action"]),
                   state=OperationState(d["state"]), started=float(d["started"]),
                   message=str(d.get("message") or ""), finished=d.get("finished"),
                   data=dict(d.get("data") or {}))


class OperationStore:
    """Operations by key; with ``path``, shared with other processes through that file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._ops: dict[str, OpRecord] = {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._load()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read the operation state {self.path}: {exc}") from None
        if doc.get("schema") != _SCHEMA:
            raise BackendError(f"{self.path}: operation state of schema {doc.get('schema')}, "
                               f"this pitstop reads {_SCHEMA}")
        self._ops = {k: OpRecord.from_dict(v) for k, v in doc.get("operations", {}).items()}

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"schema": _SCHEMA, "operations": {
            k: r.to_dict() for k, r in self._ops.items()}}, indent=1))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, OpRecord]]:
        """The operations, fresh from the file; changes made inside are saved on exit."""
        with self._locked():
            yield self._ops
            self._save()

    def get(self, key: str) -> OpRecord | None:
        with self._locked():
            return self._ops.get(key)
