"""The twin's state in SQLite: one row per object, written only when it changed.

Tables: ``meta`` (clock, counters, seed, timings, fault scenario and fault decisions),
``clusters``, ``workloads``, ``pdbs``, ``nodes``, ``pods``, ``operations`` (a JSON document per
row), ``agenda`` (pending timed events), ``log`` (the event log) and ``availability``
(samples). Each :meth:`Store.commit` is one transaction, so a process killed at any instant
leaves the state of the last completed call or event. WAL journal with ``synchronous=NORMAL``:
a commit survives the process being killed (not a power cut, which a rehearsal does not need).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pitstop.twin.world import Changes, World

__all__ = ["SCHEMA_VERSION", "Store"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE clusters (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE workloads (cluster TEXT, key TEXT, data TEXT NOT NULL, PRIMARY KEY (cluster, key));
CREATE TABLE pdbs (cluster TEXT, key TEXT, data TEXT NOT NULL, PRIMARY KEY (cluster, key));
CREATE TABLE nodes (cluster TEXT, name TEXT, data TEXT NOT NULL, PRIMARY KEY (cluster, name));
CREATE TABLE pods (uid TEXT PRIMARY KEY, cluster TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE operations (cluster TEXT, key TEXT, data TEXT NOT NULL, PRIMARY KEY (cluster, key));
CREATE TABLE agenda (seq INTEGER PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL,
                     args TEXT NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, time REAL NOT NULL, cluster TEXT NOT NULL,
                  source TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
                  uid TEXT NOT NULL, detail TEXT NOT NULL, destructive INTEGER NOT NULL);
CREATE TABLE availability (id INTEGER PRIMARY KEY AUTOINCREMENT, cluster TEXT NOT NULL,
                           workload TEXT NOT NULL, time REAL NOT NULL, ready INTEGER NOT NULL,
                           desired INTEGER NOT NULL);
CREATE INDEX availability_by_workload ON availability (cluster, workload, id);
"""


def _dump(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


class Store:
    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        # used from the executor's lanes too: they take turns, never at once
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if create:
            self.db.executescript(_SCHEMA)
        else:  # a damaged file is refused when opened, not found out half-way through a run
            ok = self.db.execute("PRAGMA quick_check").fetchone()
            if ok is None or ok[0] != "ok":
                self.db.close()
                raise sqlite3.DatabaseError(f"{path}: damaged ({ok[0] if ok else '?'})")

    def close(self) -> None:
        self.db.close()

    # -- writing ---------------------------------------------------------------------------
    def commit(self, world: World, meta: dict[str, Any], *, static: dict[str, Any] | None = None,
               workloads: Iterable[tuple[str, str, dict[str, Any]]] = ()) -> None:
        """Write what changed in ``world`` (and ``meta``) in one transaction."""
        ch = world.changes
        world.changes = Changes(touched=ch.touched)
        db = self.db
        db.execute("BEGIN")
        try:
            rows = {**meta, **(static or {})}
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [(k, _dump(v)) for k, v in rows.items()])
            db.executemany("INSERT INTO workloads VALUES (?, ?, ?)",
                           [(c, k, _dump(d)) for c, k, d in workloads])
            self._objects(world, ch)
            db.executemany("INSERT INTO agenda VALUES (?, ?, ?, ?)",
                           [(seq, t, kind, _dump(args))
                            for seq, (t, kind, args) in ch.agenda_add.items()])
            db.executemany("DELETE FROM agenda WHERE seq = ?", [(s,) for s in ch.agenda_done])
            db.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ch.log)
            db.executemany("INSERT INTO availability (cluster, workload, time, ready, desired) "
                           "VALUES (?, ?, ?, ?, ?)", ch.samples)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _objects(self, world: World, ch: Changes) -> None:
        db = self.db
        db.executemany("INSERT OR REPLACE INTO clusters VALUES (?, ?)",
                       [(c, _dump(world.clusters[c].to_row())) for c in sorted(ch.clusters)])
        db.executemany("INSERT OR REPLACE INTO pdbs VALUES (?, ?, ?)",
                       [(c, k, _dump(world.pdbs[c][k].to_row())) for c, k in sorted(ch.pdbs)])
        db.executemany("INSERT OR REPLACE INTO operations VALUES (?, ?, ?)",
                       [(c, k, _dump(world.ops[c][k].to_row())) for c, k in sorted(ch.ops)])
        db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)",
                       [(c, n, _dump(node.to_row()))
                        for (c, n), node in ch.nodes.items() if node is not None])
        db.executemany("DELETE FROM nodes WHERE cluster = ? AND name = ?",
                       [key for key, node in ch.nodes.items() if node is None])
        db.executemany("INSERT OR REPLACE INTO pods VALUES (?, ?, ?)",
                       [(uid, c, _dump(pod.to_row()))
                        for uid, (c, pod) in ch.pods.items() if pod is not None])
        db.executemany("DELETE FROM pods WHERE uid = ?",
                       [(uid,) for uid, (_, pod) in ch.pods.items() if pod is None])

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every object row of ``table`` (clusters, workloads, pdbs, nodes, pods, operations)."""
        return [json.loads(d) for (d,) in self.db.execute(f"SELECT data FROM {table} "
                                                          "ORDER BY rowid")]

    def pod_rows(self) -> list[tuple[str, dict[str, Any]]]:
        return [(c, json.loads(d)) for c, d in self.db.execute("SELECT cluster, data FROM pods")]

    def agenda(self) -> list[tuple[float, int, str, tuple[Any, ...]]]:
        return [(t, seq, kind, tuple(json.loads(args))) for seq, t, kind, args in
                self.db.execute("SELECT seq, time, kind, args FROM agenda ORDER BY seq")]

    def log(self, since: int = 0) -> list[tuple[Any, ...]]:
        return list(self.db.execute("SELECT * FROM log WHERE seq > ? ORDER BY seq", (since,)))

    def samples(self) -> list[tuple[str, str, float, int, int]]:
        return list(self.db.execute("SELECT cluster, workload, time, ready, desired "
                                    "FROM availability ORDER BY id"))
