"""The audit log (pitstop.audit): hash chain, tamper detection, concurrency, redaction."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pitstop.audit import (
    GENESIS,
    REDACTED,
    AuditError,
    AuditLog,
    JsonValue,
    head_path,
    is_secret_key,
    record_hash,
    redact,
    verify,
)

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
       "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
       "-----END RSA PRIVATE KEY-----")


def fill(path: Path, n: int) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append("run-1", "executor", "cordon", f"drain before upgrade ({i})",
                   f"prod/node-{i}", before={"unschedulable": False},
                   after={"unschedulable": True}, at=1_700_000_000.0 + i, step=f"s{i}")
    return log


def lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines(keepends=True)


def write_lines(path: Path, content: list[str]) -> None:
    path.write_text("".join(content), "utf-8")


# -- the chain ---------------------------------------------------------------------------------


def test_chain_across_many_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 60)
    records = [json.loads(line) for line in lines(path)]
    assert [r["seq"] for r in records] == list(range(1, 61))
    assert records[0]["prev"] == GENESIS
    for before, after in pairwise(records):
        assert after["prev"] == before["hash"]
    for r in records:
        assert r["hash"] == record_hash(r)
    result = verify(path)
    assert result.ok, result.problems
    assert result.records == 60
    assert result.head == records[-1]["hash"]
    assert json.loads(head_path(path).read_text()) == {"seq": 60, "hash": records[-1]["hash"]}


def test_record_fields_and_times(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    virtual = log.append("r", "executor", "gate", "soak done", "c1/wave-1", at=0.0)
    assert virtual.time == "1970-01-01T00:00:00.000000Z"
    cest = timezone(timedelta(hours=2))
    aware = log.append("r", "executor", "gate", "x", "c1", at=datetime(2025, 6, 1, 12, tzinfo=cest))
    assert aware.time == "2025-06-01T10:00:00.000000Z"
    before = datetime.now(UTC)
    wall = log.append("r", "alice", "approve", "looks good ✓ café", "step s3", (1, 2), {"a": {3}},
                      ticket="OPS-1")
    stamp = datetime.fromisoformat(wall.time.replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
    assert (wall.seq, wall.actor, wall.before, wall.after) == (3, "alice", [1, 2], {"a": [3]})
    assert wall.extra == {"ticket": "OPS-1"}
    assert wall.prev == aware.hash
    with pytest.raises(ValueError, match="timezone-aware"):
        log.append("r", "a", "b", "c", "d", at=datetime(2025, 1, 1))
    with pytest.raises(AuditError, match="cannot write a object"):
        log.append("r", "a", "b", "c", "d", before=object())
    assert verify(log.path).ok


# -- tampering ---------------------------------------------------------------------------------


def test_edit_a_field_names_line_and_seq(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 10)
    content = lines(path)
    record = json.loads(content[3])
    record["reason"] = "nothing to see here"
    content[3] = json.dumps(record, ensure_ascii=False) + "\n"
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.problems == ["line 4: seq 4: hash mismatch: the record was edited"]


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 10)
    content = lines(path)
    record = json.loads(content[3])
    record["after"] = {"unschedulable": False}
    record["hash"] = record_hash(record)
    content[3] = json.dumps(record, ensure_ascii=False) + "\n"
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert any(p.startswith("line 5: seq 5: prev does not match") and "line 4, seq 4" in p
               for p in result.problems), result.problems


def test_reencoded_line_is_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    content = lines(path)
    content[1] = json.dumps(json.loads(content[1]), indent=None, separators=(",", ":")) + "\n"
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.problems[0].startswith("line 2: seq 2: the line was re-encoded")


def test_delete_a_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 10)
    content = lines(path)
    del content[4]
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.records == 9
    assert "line 5: seq 6: 1 record(s) missing after seq 4 (deleted)" in result.problems
    assert any(p.startswith("line 5: seq 6: prev does not match") for p in result.problems)


def test_delete_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 4)
    write_lines(path, lines(path)[1:])
    result = verify(path)
    assert "line 1: seq 2: 1 record(s) missing at the start (deleted)" in result.problems
    assert "line 1: seq 2: prev does not match the genesis value" in result.problems


def test_swap_two_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 10)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert "line 4: seq 3 follows seq 4: records out of order or duplicated" in result.problems
    assert not any("hash mismatch" in p for p in result.problems)  # each record is intact


def test_truncate_mid_line_is_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    result = verify(path, use_head_file=False)
    assert not result.ok
    assert result.records == 4
    assert len(result.problems) == 1
    assert result.problems[0].startswith("line 5: not JSON")
    assert "torn write" in result.problems[0]
    # and the writer refuses to chain onto a torn line
    with pytest.raises(AuditError, match="torn write"):
        AuditLog(path).append("r", "a", "b", "c", "d")


def test_missing_final_newline_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    path.write_bytes(path.read_bytes()[:-1])
    result = verify(path)
    assert result.records == 3
    assert result.problems == ["line 3: no newline at the end of the file (a torn write)"]


def test_non_json_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    content = lines(path)
    content.insert(2, "rm -rf /\n")
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.problems[0].startswith("line 3: not JSON (")
    # the chain around the junk line is intact, so nothing else is reported
    assert len(result.problems) == 1


@pytest.mark.parametrize(("junk", "reason"), [
    ('"x": NaN', "NaN is not a JSON value"),
    ('"x": -Infinity', "-Infinity is not a JSON value"),
    ('"x": 1e999', "the number 1e999 is beyond a double"),
    ('"x": ' + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('"x": ' + "9" * 5000, "an integer of 5000 digits"),
])
def test_a_line_python_reads_but_json_forbids_is_tampering(tmp_path: Path, junk: str,
                                                            reason: str) -> None:
    """NaN, Infinity, a number beyond a double, a 100k-deep array or a 5,000-digit integer on
    a line: reported as that line's problem (TAMPERED), never an exception (it was exit 3)."""
    from click.testing import CliRunner

    from pitstop.cli.main import main

    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    content = lines(path)
    content[1] = content[1].rstrip("\n")[:-1] + ", " + junk + "}\n"
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.problems[0] == f"line 2: not JSON ({reason})"
    r = CliRunner().invoke(main, ["audit", "verify", str(path)])
    assert r.exit_code == 1, r.output
    assert "TAMPERED" in r.output and f"line 2: not JSON ({reason})" in r.output


def test_a_record_too_deep_to_encode_again_is_tampering(tmp_path: Path) -> None:
    """A line json reads but cannot write back (nesting near the recursion limit) is a
    mismatch of that line, not an exception."""
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    content = lines(path)
    depth = 990
    content[0] = content[0].rstrip("\n")[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}\n"
    write_lines(path, content)
    result = verify(path)
    assert not result.ok
    assert result.problems[0].startswith("line 1: ")


def test_a_head_file_with_junk_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    for junk in ('{"seq": Infinity, "hash": "x"}', '{"seq": 1e999, "hash": "x"}',
                 "[" * 100_000 + "]" * 100_000):
        head_path(path).write_text(junk)
        result = verify(path)
        assert not result.ok
        assert "cannot be read" in result.problems[0], result.problems


def test_drop_last_record_detected_by_head_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 6)
    full = verify(path)
    write_lines(path, lines(path)[:-1])
    result = verify(path)
    assert not result.ok
    assert len(result.problems) == 1
    assert "head file audit.head names seq 6" in result.problems[0]
    assert "the log ends at seq 5" in result.problems[0]
    # an anchor kept elsewhere catches it too, head file or not
    head_path(path).unlink()
    anchored = verify(path, expect_head=full.head)
    assert not anchored.ok and "expected head" in anchored.problems[0]
    # without any anchor the remaining chain is valid: no hash chain can see this (documented)
    assert verify(path).ok


def test_anchor_earlier_than_the_end_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = fill(path, 3)
    anchor = verify(path).head
    log.append("r", "a", "b", "c", "d")
    assert verify(path, expect_head=anchor).ok


def test_missing_log(tmp_path: Path) -> None:
    result = verify(tmp_path / "nope.jsonl")
    assert not result.ok and "no audit log" in result.problems[0]


# -- concurrency -------------------------------------------------------------------------------


def _writer(path: str, actor: str, n: int, start: Any) -> None:
    log = AuditLog(path)
    start.wait()
    for i in range(n):
        log.append("run-1", actor, "evict", f"drain {i}", f"pod-{i}", extra_payload="x" * 300)


def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), name, 200, start))
             for name in ("proc-a", "proc-b")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = verify(path)
    assert result.ok, result.problems[:5]
    assert result.records == 400
    actors = [json.loads(line)["actor"] for line in lines(path)]
    assert Counter(actors) == {"proc-a": 200, "proc-b": 200}
    # the writers really ran at the same time: their records interleave
    switches = sum(a != b for a, b in pairwise(actors))
    assert switches > 1


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "secret"), [
    ("password", True), ("db_password", True), ("passwd", True), ("token", True),
    ("bootstrapToken", True), ("client-secret", True), ("key", True), ("api_key", True),
    ("apiKey", True), ("ssh.private_key", True), ("credentials", True), ("aws_credential", True),
    ("Authorization", True), ("monkey", False), ("keyboard", False), ("key_id", False),
    ("node", False), ("reason", False), ("", False),
])
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_redact_values_and_nested_keys() -> None:
    value: JsonValue = {
        "node": "n1",
        "kubeconfig": {"users": [{"name": "admin", "token": "abc123", "client-key": PEM}]},
        "headers": {"Authorization": "Bearer eyJhbGciOi.JIUzI1.NiJ9"},
        "log": "GET /api failed with Bearer abc.def-ghi= (401)",
        "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "blob": f"before {PEM} after",
        "cut": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "count": 3,
    }
    assert redact(value) == {
        "node": "n1",
        "kubeconfig": {"users": [{"name": "admin", "token": REDACTED, "client-key": REDACTED}]},
        "headers": {"Authorization": REDACTED},
        "log": f"GET /api failed with {REDACTED} (401)",
        "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "blob": f"before {REDACTED} after",
        "cut": REDACTED,
        "count": 3,
    }


def test_append_redacts_every_field(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    record = log.append(
        "run-1", "executor", "join-node", "kubeadm join with Bearer s3cr3t.t0k3n",
        "node-9", before={"password": "hunter2"}, after=[{"nested": {"secret": 42}}],
        token="abcdef.0123456789abcdef", note=PEM)
    assert record.reason == f"kubeadm join with {REDACTED}"
    assert record.before == {"password": REDACTED}
    assert record.after == [{"nested": {"secret": REDACTED}}]
    assert record.extra == {"token": REDACTED, "note": REDACTED}
    text = path.read_text()
    for leaked in ("hunter2", "s3cr3t", "abcdef.0123", "MIIEowIBAAKCAQEA"):
        assert leaked not in text
    assert verify(path).ok  # the hash covers the redacted record
