"""The write-ahead journal of a run: SQLite in the run directory.

Every action is recorded as an *intent* (committed) before it is carried out, and its *outcome*
after. A step is marked done only after its post-conditions and gates passed. After a crash,
``pitstop resume`` reads the journal: completed steps are skipped; an action with an intent and
no outcome is settled by observing the fleet (did the pod go? is the node at the version?)
before anything is done again, so no completed destructive action is repeated and none is
skipped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ActionRecord", "Journal", "StepRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    key TEXT PRIMARY KEY, value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    step_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, status TEXT NOT NULL,
    started REAL, finished REAL, message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, step_id TEXT NOT NULL, kind TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL, intent_at REAL NOT NULL,
    outcome TEXT, outcome_detail TEXT, outcome_at REAL
);
CREATE INDEX IF NOT EXISTS actions_open ON actions (outcome);
CREATE TABLE IF NOT EXISTS approvals (
    step_id TEXT NOT NULL, approver TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (step_id, approver)
);
CREATE TABLE IF NOT EXISTS gates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, step_id TEXT NOT NULL, gate TEXT NOT NULL,
    phase TEXT NOT NULL, message TEXT NOT NULL, at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StepRecord:
    step_id: str
    idx: int
    status: str  # pending | running | done | failed | rolled-back | paused
    started: float | None
    finished: float | None
    message: str


@dataclass(frozen=True, slots=True)
class ActionRecord:
    seq: int
    step_id: str
    kind: str
    target: str
    detail: dict[str, Any]
    intent_at: float
    outcome: str | None
    outcome_detail: dict[str, Any] | None
    outcome_at: float | None


class Journal:
    """One run's journal. Safe to open from a new process after the old one died."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # check_same_thread off: the executor's lanes (one thread per cluster of a wave) take
        # turns, never at once, so one connection serves them all
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- run-level key/values (status, reason, control requests) ---------------------------
    def get(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO run (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value", (key, value))

    # -- steps -----------------------------------------------------------------------------
    def init_steps(self, step_ids: list[str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for i, sid in enumerate(step_ids):
                self.db.execute("INSERT OR IGNORE INTO steps (step_id, idx, status) VALUES "
                                "(?, ?, 'pending')", (sid, i))

    def step(self, step_id: str) -> StepRecord:
        row = self.db.execute("SELECT step_id, idx, status, started, finished, message FROM "
                              "steps WHERE step_id = ?", (step_id,)).fetchone()
        if row is None:
            raise KeyError(step_id)
        return StepRecord(*row)

    def steps(self) -> list[StepRecord]:
        return [StepRecord(*r) for r in self.db.execute(
            "SELECT step_id, idx, status, started, finished, message FROM steps ORDER BY idx")]

    def set_step(self, step_id: str, status: str, at: float, message: str = "") -> None:
        if status == "running":
            self.db.execute("UPDATE steps SET status = ?, started = COALESCE(started, ?), "
                            "message = ? WHERE step_id = ?", (status, at, message, step_id))
        else:
            self.db.execute("UPDATE steps SET status = ?, finished = ?, message = ? WHERE "
                            "step_id = ?", (status, at, message, step_id))

    # -- actions (write-ahead) -------------------------------------------------------------
    def intent(self, step_id: str, kind: str, target: str, detail: dict[str, Any],
               at: float) -> int:
        cur = self.db.execute(
            "INSERT INTO actions (step_id, kind, target, detail, intent_at) VALUES "
            "(?, ?, ?, ?, ?)", (step_id, kind, target, json.dumps(detail, sort_keys=True), at))
        return int(cur.lastrowid or 0)

    def outcome(self, seq: int, outcome: str, detail: dict[str, Any] | None, at: float) -> None:
        self.db.execute("UPDATE actions SET outcome = ?, outcome_detail = ?, outcome_at = ? "
                        "WHERE seq = ?", (outcome, json.dumps(detail or {}, sort_keys=True), at,
                                          seq))

    def actions(self, step_id: str | None = None, *, open_only: bool = False
                ) -> list[ActionRecord]:
        q = ("SELECT seq, step_id, kind, target, detail, intent_at, outcome, outcome_detail, "
             "outcome_at FROM actions")
        cond, args = [], []
        if step_id is not None:
            cond.append("step_id = ?")
            args.append(step_id)
        if open_only:
            cond.append("outcome IS NULL")
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY seq"
        return [ActionRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6],
                             json.loads(r[7]) if r[7] else None, r[8])
                for r in self.db.execute(q, args)]

    # -- approvals and gates ---------------------------------------------------------------
    def approve(self, step_id: str, approver: str, at: float | None = None) -> None:
        self.db.execute("INSERT OR IGNORE INTO approvals (step_id, approver, at) VALUES "
                        "(?, ?, ?)", (step_id, approver, at if at is not None else time.time()))

    def approvers(self, step_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT approver FROM approvals WHERE step_id = ? ORDER BY at", (step_id,))]

    def gate(self, step_id: str, gate: str, phase: str, message: str, at: float) -> None:
        self.db.execute("INSERT INTO gates (step_id, gate, phase, message, at) VALUES "
                        "(?, ?, ?, ?, ?)", (step_id, gate, phase, message, at))

    def gates(self) -> list[tuple[str, str, str, str, float]]:
        return [(r[0], r[1], r[2], r[3], r[4]) for r in self.db.execute(
            "SELECT step_id, gate, phase, message, at FROM gates ORDER BY seq")]
