"""Checking an audit log: every line a record, every record unchanged and in its place.

:func:`verify` reports, naming the line number:

* a line that is not JSON, or not a record (missing fields);
* an edited record: its ``hash`` no longer matches its content (or the line was re-encoded);
* a deleted record: a gap in ``seq`` and a ``prev`` that does not match the record before;
* reordered or duplicated records: ``seq`` not increasing;
* a torn write: the last line has no newline at the end.

What no hash chain can detect on its own: whole records cut off the *end* of the log (what is left
is still a valid chain), or the whole log replaced by a new, self-consistent one. For that,
:func:`verify` compares the last record with an anchor — ``expect_head``, a hash remembered
elsewhere (the executor keeps it in its journal) — or, when none is given, with the head file
the writer keeps next to the log (``audit.head``). The anchor must be the hash of a record in the
log; records appended after it are fine.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.audit.jsonvalue import JsonValue
from pitstop.audit.log import FIELDS, GENESIS, encode_line, head_path, record_hash

__all__ = ["VerifyResult", "verify"]

_MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int  # lines that parsed as records
    problems: list[str] = field(default_factory=list)
    head: str | None = None  # hash of the last readable record: keep it to anchor the next check


def verify(path: str | os.PathLike[str], expect_head: str | None = None, *,
           use_head_file: bool = True) -> VerifyResult:
    """Check the audit log at ``path``; see the module docstring for what is detected.

    ``expect_head`` is a record hash remembered from an earlier append or verify. Without it,
    the head file next to the log is used if it exists (``use_head_file=False`` to skip it).
    """
    log = Path(path)
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return VerifyResult(False, 0, [f"{log}: no audit log here"])

    problems: list[str] = []
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # the file does not end with a newline
    if not torn:
        lines.pop()

    records = 0
    prev_seq = 0
    prev_hash = GENESIS
    prev_line = 0
    seen: dict[str, int] = {}  # hash -> seq
    for number, raw in enumerate(lines, start=1):
        last_torn = torn and number == len(lines)
        parsed = _parse(raw, number, last_torn, problems)
        if parsed is None:
            continue
        record, seq, digest, prev = parsed
        records += 1

        digest_ok, exact = _checks(record, raw)
        if not digest_ok:
            problems.append(f"line {number}: seq {seq}: hash mismatch: the record was edited")
        elif not exact:
            problems.append(f"line {number}: seq {seq}: the line was re-encoded or has "
                            "duplicate keys (its content still hashes to its hash)")

        if seq != prev_seq + 1:
            problems.append(_seq_problem(number, seq, prev_seq))
        if prev != prev_hash:
            before = ("the genesis value" if prev_line == 0 else
                      f"the hash of the record before it (line {prev_line}, seq {prev_seq})")
            problems.append(f"line {number}: seq {seq}: prev does not match {before}")
        prev_seq, prev_hash, prev_line = seq, digest, number
        seen[digest] = seq

    head = prev_hash if records else None
    _check_anchor(log, expect_head, use_head_file, seen, prev_seq, head, problems)

    if len(problems) > _MAX_PROBLEMS:
        more = len(problems) - _MAX_PROBLEMS
        problems = [*problems[:_MAX_PROBLEMS], f"… and {more} more problems"]
    return VerifyResult(not problems, records, problems, head)


_MAX_INT_DIGITS = 100  # the writer's integers are sequence numbers and times


class _NotJson(ValueError):
    """A line the writer cannot have written, although Python's json module would read it."""


def _no_constant(name: str) -> float:
    raise _NotJson(f"{name} is not a JSON value")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _NotJson(f"an integer of {len(text)} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"the number {text[:40]} is beyond a double")
    return value


def _checks(record: dict[str, JsonValue], raw: bytes) -> tuple[bool, bool]:
    """(hash matches, line is byte-exact); a record that cannot be encoded matches neither."""
    try:
        digest_ok = record_hash(record) == record["hash"]
        exact = encode_line(record).encode("utf-8") == raw
    except (ValueError, TypeError, RecursionError):
        return False, False
    return digest_ok, exact


def _parse(raw: bytes, number: int, last_torn: bool,
           problems: list[str]) -> tuple[dict[str, JsonValue], int, str, str] | None:
    """The record on one line with its seq, hash and prev, or None (and a problem noted)."""
    torn_note = " — the last line is incomplete (a torn write: no newline at the end)"
    if not raw.strip():
        problems.append(f"line {number}: empty line" + (torn_note if last_torn else ""))
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                           parse_int=_bounded_int, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError, _NotJson, RecursionError) as exc:
        reason = (exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                  if isinstance(exc, UnicodeDecodeError) else str(exc)
                  if isinstance(exc, _NotJson) else "nested too deeply")
        problems.append(f"line {number}: not JSON ({reason})" + (torn_note if last_torn else ""))
        return None
    if last_torn:
        problems.append(f"line {number}: no newline at the end of the file (a torn write)")
    if not isinstance(value, dict):
        problems.append(f"line {number}: not a record (a JSON {type(value).__name__})")
        return None
    missing = [f for f in FIELDS if f not in value]
    if missing:
        problems.append(f"line {number}: not a record: missing {', '.join(missing)}")
        return None
    seq, digest, prev = value["seq"], value["hash"], value["prev"]
    if not (isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str)
            and isinstance(prev, str)):
        problems.append(f"line {number}: not a record: seq must be an integer, prev and hash "
                        "strings")
        return None
    return value, seq, digest, prev


def _seq_problem(number: int, seq: int, prev_seq: int) -> str:
    if seq <= prev_seq:
        return (f"line {number}: seq {seq} follows seq {prev_seq}: records out of order or "
                "duplicated")
    missing = seq - prev_seq - 1
    where = "at the start" if prev_seq == 0 else f"after seq {prev_seq}"
    return f"line {number}: seq {seq}: {missing} record(s) missing {where} (deleted)"


def _check_anchor(log: Path, expect_head: str | None, use_head_file: bool, seen: dict[str, int],
                  last_seq: int, head: str | None, problems: list[str]) -> None:
    source = "expected head"
    anchor_seq: int | None = None
    if expect_head is None and use_head_file:
        hp = head_path(log)
        if not hp.exists():
            return
        source = f"head file {hp.name}"
        try:
            saved = json.loads(hp.read_text("utf-8"), parse_constant=_no_constant,
                               parse_int=_bounded_int, parse_float=_finite_float)
            expect_head, anchor_seq = str(saved["hash"]), int(saved["seq"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            problems.append(f"{hp}: cannot be read ({exc})")
            return
    if expect_head is None or expect_head in seen:
        return
    ends = f"the log ends at seq {last_seq} (hash {head})" if head else "the log has no records"
    names = f"seq {anchor_seq}, hash {expect_head}" if anchor_seq else f"hash {expect_head}"
    problems.append(f"end of log: {source} names "
                    f"{names}, which is not in the log; {ends}: trailing records were "
                    "dropped or the log was replaced")
