"""The SQLite implementation of :class:`~pitstop.store.api.OperationStore`: a backend's own
durable state — its operations by key, the log of what it did, and marks and key/values (e.g.
cordon marks on hosts that are not Kubernetes nodes).

One file, shared by every process that opens it, so that a process started after a crash
finds the operations an earlier one began, sees that their owner is gone
(:func:`owner_alive`), claims them (:meth:`SqliteOperationStore.claim`: one process wins) and
settles them. An operation's *owner* names the process that runs it, ``host:pid:start-ticks``
(:func:`process_identity`: the start time in clock ticks since boot from ``/proc/PID/stat``, so
a recycled pid is not mistaken for the owner). ``path`` ``:memory:`` keeps it in this process
only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pitstop.backend.api import Action, OperationState, action_from_dict, action_to_dict
from pitstop.store.api import OpEvent, OpRecord

__all__ = ["SqliteOperationStore", "owner_alive", "process_identity"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    key TEXT PRIMARY KEY, cluster TEXT NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '', started REAL NOT NULL, finished REAL,
    owner TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, cluster TEXT NOT NULL,
    kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,
    destructive INTEGER NOT NULL, op_key TEXT NOT NULL, owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (
    cluster TEXT NOT NULL, node TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (cluster, node, key)
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _action_json(action: Action) -> str:
    return json.dumps(action_to_dict(action), sort_keys=True)


def _action_from(text: str) -> Action:
    return action_from_dict(json.loads(text))


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rpartition(")")[2].split()
    if len(rest) < 20 or rest[0] in ("Z", "X"):
        return None
    return rest[19]


def process_identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by ``owner`` still runs. An owner on another machine is
    assumed alive (pitstop cannot tell; its operations are left to it)."""
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname():
        return True
    if not pid_text.isdigit():
        return False
    return _start_ticks(int(pid_text)) == ticks


class SqliteOperationStore:
    """A backend's operations, events, marks and key/values in one SQLite file (WAL,
    ``synchronous=FULL``), shared by every process that opens it (module docstring). Safe to
    use from several threads: a connection each."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._local = threading.local()
        self._keeper: sqlite3.Connection | None = None
        if self.path is None:  # this process only: one shared in-memory database
            self._uri = f"file:pitstop-ops-{secrets.token_hex(8)}?mode=memory&cache=shared"
            self._keeper = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # 0600 whatever the umask (-wal and -shm follow it)
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._uri = f"file:{self.path}"
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=30)
            if self.path is not None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """What is read and written inside happens at once for every other process (a write
        lock is taken at the start: two processes starting one key cannot both miss it)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    # -- operations ------------------------------------------------------------------------
    @staticmethod
    def _op(row: tuple[Any, ...]) -> OpRecord:
        return OpRecord(row[0], row[1], _action_from(row[2]), OperationState(row[3]), row[4],
                        row[5], row[6], row[7], json.loads(row[8]))

    _COLS = "key, cluster, action, state, message, started, finished, owner, data"

    def get(self, key: str) -> OpRecord | None:
        row = self._db().execute(f"SELECT {self._COLS} FROM operations WHERE key = ?",
                                 (key,)).fetchone()
        return None if row is None else self._op(row)

    def operations(self, cluster: str | None = None, *, running: bool = False
                   ) -> list[OpRecord]:
        q, args = f"SELECT {self._COLS} FROM operations", []
        cond = []
        if cluster is not None:
            cond.append("cluster = ?")
            args.append(cluster)
        if running:
            cond.append("state = 'running'")
        if cond:
            q += " WHERE " + " AND ".join(cond)
        return [self._op(r) for r in self._db().execute(q + " ORDER BY started", args)]

    def insert(self, rec: OpRecord) -> bool:
        """Add ``rec``; False when its key exists already (the existing one stays)."""
        cur = self._db().execute(
            f"INSERT OR IGNORE INTO operations ({self._COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.key, rec.cluster, _action_json(rec.action), str(rec.state), rec.message,
             rec.started, rec.finished, rec.owner, json.dumps(rec.data, sort_keys=True)))
        return cur.rowcount == 1

    def save_data(self, key: str, data: dict[str, Any]) -> None:
        self._db().execute("UPDATE operations SET data = ? WHERE key = ?",
                           (json.dumps(data, sort_keys=True), key))

    def finish(self, key: str, state: OperationState, message: str, at: float,
               data: dict[str, Any]) -> None:
        self._db().execute(
            "UPDATE operations SET state = ?, message = ?, finished = ?, data = ? WHERE key = ?",
            (str(state), message, at, json.dumps(data, sort_keys=True), key))

    def claim(self, key: str, old_owner: str, new_owner: str) -> bool:
        """Take over a running operation from ``old_owner``; True for the one process that
        wins."""
        cur = self._db().execute(
            "UPDATE operations SET owner = ? WHERE key = ? AND owner = ? AND state = 'running'",
            (new_owner, key, old_owner))
        return cur.rowcount == 1

    # -- the log ---------------------------------------------------------------------------
    def record(self, at: float, cluster: str, kind: str, subject: str, detail: str,
               destructive: bool, op_key: str, owner: str) -> None:
        self._db().execute(
            "INSERT INTO events (at, cluster, kind, subject, detail, destructive, op_key, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (at, cluster, kind, subject, detail, int(destructive), op_key, owner))

    def events(self, cluster: str | None = None) -> list[OpEvent]:
        q = ("SELECT seq, at, cluster, kind, subject, detail, destructive, op_key, owner "
             "FROM events")
        rows = (self._db().execute(q + " WHERE cluster = ? ORDER BY seq", (cluster,))
                if cluster is not None else self._db().execute(q + " ORDER BY seq"))
        return [OpEvent(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8])
                for r in rows]

    # -- marks (cordon, annotations) and key/values ------------------------------------------
    def set_mark(self, cluster: str, node: str, key: str, value: str | None) -> None:
        if value is None:
            self._db().execute("DELETE FROM marks WHERE cluster = ? AND node = ? AND key = ?",
                               (cluster, node, key))
        else:
            self._db().execute(
                "INSERT INTO marks (cluster, node, key, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(cluster, node, key) DO UPDATE SET value = excluded.value",
                (cluster, node, key, value))

    def marks(self, cluster: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for node, key, value in self._db().execute(
                "SELECT node, key, value FROM marks WHERE cluster = ?", (cluster,)):
            out.setdefault(node, {})[key] = value
        return out

    def get_kv(self, key: str) -> Any:
        row = self._db().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_kv(self, key: str, value: Any) -> None:
        self._db().execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO "
                           "UPDATE SET value = excluded.value", (key, json.dumps(value)))
