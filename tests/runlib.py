"""Reading a run directory while the ``pitstop`` process that owns it is still running.

The process under test creates the run directory first and its SQLite files a moment later, and
makes their tables later still; a reader polling in that window sees nothing yet rather than an
error. Every reader opens the file read-only so it can never change what it watches.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def only_run(runs: Path) -> Path:
    """The one run directory under ``runs`` (the tests start one run per directory)."""
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def query(db_file: Path, sql: str, *args: object, timeout: float = 30) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on ``db_file``, read-only; [] while the file or its tables do not exist."""
    if not db_file.is_file():
        return []
    db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=timeout)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def journal(run: Path, sql: str, *args: object, timeout: float = 30) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the run's journal (see :func:`query`)."""
    return query(run / "journal.sqlite", sql, *args, timeout=timeout)
