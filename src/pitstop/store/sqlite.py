"""The SQLite implementation of :class:`~pitstop.store.api.RunStore`: a run directory's
``journal.sqlite`` (WAL, ``synchronous=FULL``: a write is on disk when the call returns) and
its lock file ``run.lock``.

The lock is an OS file lock (``flock``) on ``run.lock``, held for as long as a process acts on
the run; the file names the holder (pid, host, since, command) so that a second process is
refused with who it is. The kernel releases the lock when its holder dies, however it dies, so
a crashed run is never left locked.

Crash testing: with ``PITSTOP_FAILPOINT=journal-write:N`` in its environment, the process
kills itself with SIGKILL just before its N-th write of a step status, an intent, an
outcome or an audit record about the step (1-based; ``journal-write:STEP:N`` counts only the
writes of step STEP and of its rollback). The state on disk is exactly that of a process
killed at that instant from outside: before an intent is written, the effect was not made;
before an outcome, it was made and not recorded. So a test can crash a run at every position
of a step, not only at random ones (``tests/executor/test_crash_resume.py``). Unset, it costs
one comparison per write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.errors import RunDamaged, RunLocked
from pitstop.store.api import (
    ActionRecord,
    ApprovalRecord,
    GateRecord,
    LockHolder,
    StepRecord,
)

__all__ = ["SCHEMA_VERSION", "SqliteRunStore"]

SCHEMA_VERSION = "2"
"""The journal's layout; a journal of another layout is refused, not guessed at."""

_TABLES = ("run", "steps", "actions", "approvals", "gates")

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
CREATE INDEX IF NOT EXISTS actions_step ON actions (step_id);
CREATE TABLE IF NOT EXISTS approvals (
    step_id TEXT NOT NULL, approver TEXT NOT NULL, at REAL NOT NULL,
    audit_seq INTEGER NOT NULL DEFAULT 0, audit_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (step_id, approver)
);
CREATE TABLE IF NOT EXISTS gates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, step_id TEXT NOT NULL, gate TEXT NOT NULL,
    phase TEXT NOT NULL, message TEXT NOT NULL, at REAL NOT NULL
);
"""

def _failpoint() -> tuple[str | None, int]:
    """(step or None for every write, the write before which this process dies — 0: none),
    from ``PITSTOP_FAILPOINT`` (module docstring)."""
    name, _, rest = os.environ.get("PITSTOP_FAILPOINT", "").partition(":")
    step, _, at = rest.rpartition(":")
    if name != "journal-write" or not at.isdigit():
        return None, 0
    return step or None, int(at)


_ACTION_COLS = ("seq, step_id, kind, target, detail, intent_at, outcome, outcome_detail, "
                "outcome_at")


class SqliteRunStore:
    """A run's state in ``path`` (``journal.sqlite``); its lock in ``run.lock`` beside it.

    ``create``: make a new journal (the file must not exist). Otherwise the file must exist
    and hold a journal of :data:`SCHEMA_VERSION`: a missing, empty, damaged or foreign file is
    refused with :class:`~pitstop.errors.RunDamaged` naming it — never recreated empty.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name("run.lock")
        self._writes = 0
        self._die_step, self._die_at = _failpoint()
        if create and self.path.exists():
            raise RunDamaged(f"{self.path}: a journal exists already; a new run needs a new "
                             "directory")
        if not create and not self.path.is_file():
            raise RunDamaged(f"{self.path}: the run's journal is missing. Fix: restore it "
                             "(with its -wal file) from a backup; without it the run's progress "
                             "is unknown — check the fleet (`pitstop inventory`) and plan again")
        # check_same_thread off: the executor's lanes (one thread per cluster of a wave) take
        # turns, never at once, so one connection serves them all
        if create:  # 0600 whatever the umask; SQLite gives its -wal and -shm files the same
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            if create:
                self.db.executescript(_SCHEMA)
                self.set("schema", SCHEMA_VERSION)
            else:
                self._check()
        except sqlite3.DatabaseError as exc:
            raise RunDamaged(f"{self.path}: not a readable journal ({exc}). Fix: restore it "
                             "from a backup; nothing was done to the fleet") from None

    def _check(self) -> None:
        ok = self.db.execute("PRAGMA quick_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise RunDamaged(f"{self.path}: the journal is damaged ({ok[0] if ok else '?'}). "
                             "Fix: restore it from a backup; nothing was done to the fleet")
        have = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _TABLES if t not in have]
        if missing:
            raise RunDamaged(f"{self.path}: the journal lacks table(s) {', '.join(missing)}. "
                             "Fix: restore it from a backup; nothing was done to the fleet")
        schema = self.get("schema")
        if schema != SCHEMA_VERSION:
            raise RunDamaged(f"{self.path}: a journal of layout {schema or '1'}; this pitstop "
                             f"reads layout {SCHEMA_VERSION}. Fix: finish the run with the "
                             "pitstop that started it")

    def close(self) -> None:
        self.db.close()

    def crash_point(self, step_id: str) -> None:
        """An audit record about ``step_id`` is about to be written: a write the failpoint
        counts too (module docstring)."""
        self._write(step_id)

    def _write(self, step_id: str) -> None:
        """Count a write for the crash-test failpoint (module docstring)."""
        if not self._die_at:
            return
        if self._die_step is not None and step_id.removesuffix("/rollback") != self._die_step:
            return
        self._writes += 1
        if self._writes == self._die_at:
            os.kill(os.getpid(), signal.SIGKILL)

    # -- run-level values -------------------------------------------------------------------
    def get(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO run (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET value = excluded.value", (key, value))

    # -- steps ------------------------------------------------------------------------------
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
        self._write(step_id)
        if status == "running":
            self.db.execute("UPDATE steps SET status = ?, started = COALESCE(started, ?), "
                            "message = ? WHERE step_id = ?", (status, at, message, step_id))
        else:
            self.db.execute("UPDATE steps SET status = ?, finished = ?, message = ? WHERE "
                            "step_id = ?", (status, at, message, step_id))

    # -- actions (write-ahead) --------------------------------------------------------------
    def intent(self, step_id: str, kind: str, target: str, detail: dict[str, Any],
               at: float) -> int:
        self._write(step_id)
        cur = self.db.execute(
            "INSERT INTO actions (step_id, kind, target, detail, intent_at) VALUES "
            "(?, ?, ?, ?, ?)", (step_id, kind, target, json.dumps(detail, sort_keys=True), at))
        return int(cur.lastrowid or 0)

    def outcome(self, seq: int, outcome: str, detail: dict[str, Any] | None, at: float) -> None:
        if self._die_at:
            row = self.db.execute("SELECT step_id FROM actions WHERE seq = ?", (seq,)).fetchone()
            self._write(str(row[0]) if row else "")
        self.db.execute("UPDATE actions SET outcome = ?, outcome_detail = ?, outcome_at = ? "
                        "WHERE seq = ?", (outcome, json.dumps(detail or {}, sort_keys=True), at,
                                          seq))

    def actions(self, step_id: str | None = None, *, open_only: bool = False,
                kind: str | None = None) -> list[ActionRecord]:
        q = f"SELECT {_ACTION_COLS} FROM actions"
        cond: list[str] = []
        args: list[object] = []
        if step_id is not None:
            cond.append("step_id = ?")
            args.append(step_id)
        if kind is not None:
            cond.append("kind = ?")
            args.append(kind)
        if open_only:
            cond.append("outcome IS NULL")
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY seq"
        return [ActionRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6],
                             json.loads(r[7]) if r[7] else None, r[8])
                for r in self.db.execute(q, args)]

    def last_seq(self) -> int:
        row = self.db.execute("SELECT max(seq) FROM actions").fetchone()
        return int(row[0] or 0)

    # -- approvals and gates ----------------------------------------------------------------
    def approve(self, step_id: str, approver: str, at: float, audit_seq: int,
                audit_hash: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO approvals (step_id, approver, at, audit_seq, "
                        "audit_hash) VALUES (?, ?, ?, ?, ?)",
                        (step_id, approver, at, audit_seq, audit_hash))

    def approvals(self, step_id: str | None = None) -> list[ApprovalRecord]:
        q = "SELECT step_id, approver, at, audit_seq, audit_hash FROM approvals"
        rows = (self.db.execute(q + " WHERE step_id = ? ORDER BY at", (step_id,))
                if step_id is not None else self.db.execute(q + " ORDER BY at"))
        return [ApprovalRecord(*r) for r in rows]

    def gate(self, step_id: str, gate: str, phase: str, message: str, at: float) -> None:
        self.db.execute("INSERT INTO gates (step_id, gate, phase, message, at) VALUES "
                        "(?, ?, ?, ?, ?)", (step_id, gate, phase, message, at))

    def gates(self) -> list[GateRecord]:
        return [GateRecord(*r) for r in self.db.execute(
            "SELECT step_id, gate, phase, message, at FROM gates ORDER BY seq")]

    # -- the lock ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str = "") -> Iterator[LockHolder]:
        """Hold the run for this process (module docstring), or raise
        :class:`~pitstop.errors.RunLocked` naming who holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = _read_holder(fd)
                raise RunLocked(
                    f"run {self.path.parent.name} is being acted on by "
                    f"{who.describe() if who else 'another process'}; only one process acts "
                    "on a run at a time. Wait for it to end, or ask it to stop at its next "
                    f"safe point (`pitstop pause {self.path.parent}`), then try again"
                ) from None
            me = LockHolder(os.getpid(), socket.gethostname(),
                            datetime.now(UTC).isoformat(timespec="seconds"), command)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": me.pid, "host": me.host, "since": me.since,
                                      "command": me.command}).encode(), 0)
            os.fsync(fd)
            try:
                yield me
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """Who holds the run now (None: nobody)."""
        if not self.lock_path.exists():
            return None
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return LockHolder(int(doc["pid"]), str(doc["host"]), str(doc["since"]),
                          str(doc.get("command", "")))
    except (ValueError, KeyError, TypeError):
        return None
