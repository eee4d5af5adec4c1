"""Appending to the audit log.

One record per line, JSON, in the order written. Each record carries ``prev``, the hash of the
record before it (:data:`GENESIS` for the first), and ``hash``, the SHA-256 of the canonical JSON
of the record without ``hash`` (sorted keys, no whitespace, UTF-8; see
:func:`pitstop.audit.jsonvalue.canonical`). Changing, removing or moving any record breaks the
chain, which :func:`pitstop.audit.verify.verify` reports.

Appends are safe across processes: the log is locked with ``flock`` while the last record is
read and the new line written, so lines never interleave and every record chains to the one
written just before it. Each line is written in one ``write`` and ``fsync``\\ ed before
:meth:`AuditLog.append` returns.

After every append the hash of the newest record is also written (atomically) to the *head file*
next to the log (``audit.jsonl`` → ``audit.head``). No hash chain can tell that whole records were
cut off the end, because what remains is a valid chain; a head remembered elsewhere can. The
head file catches accidental truncation; the executor should also keep the head in its journal,
out of reach of whoever can rewrite the log, and pass it to ``verify(..., expect_head=…)``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pitstop.audit.jsonvalue import JsonValue, canonical, to_json
from pitstop.audit.redact import redact, redact_text
from pitstop.errors import PitstopError

__all__ = ["FIELDS", "GENESIS", "AuditError", "AuditLog", "AuditRecord", "head_path",
           "record_hash"]

GENESIS = "0" * 64
"""The ``prev`` of the first record."""

FIELDS = ("seq", "time", "run_id", "actor", "action", "subject", "reason", "before", "after",
          "extra", "prev", "hash")
"""The fields of a record, in the order they are written."""

_TAIL_CHUNK = 64 * 1024


class AuditError(PitstopError):
    """The audit log cannot be appended to (its last line is damaged, or a value is not JSON)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: str
    run_id: str
    actor: str
    action: str
    subject: str
    reason: str
    before: JsonValue
    after: JsonValue
    extra: dict[str, JsonValue]
    prev: str
    hash: str

    def to_dict(self) -> dict[str, JsonValue]:
        return {name: getattr(self, name) for name in FIELDS}

    def to_line(self) -> str:
        """The record as written: one line of JSON in :data:`FIELDS` order, no newline."""
        return encode_line(self.to_dict())


def encode_line(record: dict[str, JsonValue]) -> str:
    """The byte-exact form the writer uses, so a reader can tell a re-encoded line."""
    ordered = {k: record[k] for k in FIELDS if k in record}
    ordered.update((k, v) for k, v in record.items() if k not in ordered)
    return json.dumps(ordered, ensure_ascii=False, allow_nan=False)


def record_hash(record: dict[str, JsonValue]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` without its ``hash`` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def head_path(path: str | os.PathLike[str]) -> Path:
    """Where the head of the log at ``path`` is kept: ``audit.jsonl`` → ``audit.head``."""
    return Path(path).with_suffix(".head")


def _timestamp(at: datetime | float | None) -> str:
    if at is None:
        moment = datetime.now(UTC)
    elif isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("audit times must be timezone-aware (got a naive datetime)")
        moment = at.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """An append-only, hash-chained audit log in one JSON-lines file.

    >>> log = AuditLog(run_dir / "audit.jsonl")          # doctest: +SKIP
    >>> log.append("run-1", "executor", "cordon", "drain before kubelet 1.34.2",
    ...            "prod-eu/node-7", before={"unschedulable": False},
    ...            after={"unschedulable": True}, step="s12")  # doctest: +SKIP

    Every string, ``before``, ``after`` and each extra value go through
    :func:`pitstop.audit.redact.redact` before they are hashed and written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.head_path = head_path(self.path)

    def append(self, run_id: str, actor: str, action: str, reason: str, subject: str,
               before: object = None, after: object = None, *,
               at: datetime | float | None = None, **extra: object) -> AuditRecord:
        """Append one record and return it once it is on disk.

        ``at`` is the time to record: a timezone-aware datetime or seconds since the Unix epoch
        (a virtual-time run passes its clock), or ``None`` for the wall clock now. ``extra``
        keyword arguments are kept under ``extra``.
        """
        try:
            before_v, after_v = redact(to_json(before)), redact(to_json(after))
            extra_v = redact(to_json(extra))
        except TypeError as exc:
            raise AuditError(f"cannot log {action!r} on {subject!r}: {exc}") from exc
        if not isinstance(extra_v, dict):  # pragma: no cover - a dict stays a dict
            raise AuditError("extra fields must form a mapping")
        time = _timestamp(at)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last_seq, prev = self._tail(fd)
            record = AuditRecord(
                seq=last_seq + 1, time=time, run_id=redact_text(run_id),
                actor=redact_text(actor), action=redact_text(action),
                subject=redact_text(subject), reason=redact_text(reason),
                before=before_v, after=after_v, extra=extra_v, prev=prev, hash="")
            fields = record.to_dict()
            record = dataclasses.replace(record, hash=record_hash(fields))
            _write_all(fd, (record.to_line() + "\n").encode("utf-8"))
            os.fsync(fd)
            if created:
                _fsync_dir(self.path.parent)
            self._write_head(record.seq, record.hash)
        finally:
            os.close(fd)  # releases the lock
        return record

    def _tail(self, fd: int) -> tuple[int, str]:
        """``(seq, hash)`` of the last record, ``(0, GENESIS)`` for an empty log."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, GENESIS
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditError(
                f"{self.path}: the last line is incomplete (a torn write); nothing more can be "
                f"appended until it is examined — run `pitstop audit verify {self.path}`")
        start = size - 1
        while True:
            lo = max(0, start - _TAIL_CHUNK)
            chunk = os.pread(fd, size - 1 - lo, lo)
            nl = chunk.rfind(b"\n")
            if nl >= 0 or lo == 0:
                line = chunk[nl + 1:]
                break
            start = lo
        try:
            last = json.loads(line)
            return int(last["seq"]), str(last["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"{self.path}: the last record cannot be read ({exc}); nothing more can be "
                f"appended until it is examined — run `pitstop audit verify {self.path}`"
            ) from exc

    def _write_head(self, seq: int, digest: str) -> None:
        tmp = self.head_path.with_name(f"{self.head_path.name}.{os.getpid()}.tmp")
        payload = json.dumps({"seq": seq, "hash": digest}) + "\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, payload.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        _fsync_dir(self.head_path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
