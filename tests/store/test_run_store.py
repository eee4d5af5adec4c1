"""Conformance of every :class:`pitstop.store.RunStore` implementation (SQLite today; a shared
store joins ``STORES``): what the executor relies on — values, steps in order, write-ahead
actions and their filters, approvals with their audit records, gates, durability across
processes, and the lock that lets one process act on a run (released when its holder dies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pitstop.errors import RunDamaged, RunLocked
from pitstop.store import RunStore, SqliteRunStore

Make = Callable[[Path, bool], RunStore]


def _sqlite(d: Path, create: bool) -> RunStore:
    return SqliteRunStore(d / "journal.sqlite", create=create)


STORES: dict[str, Make] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(STORES))
def make(request: pytest.FixtureRequest) -> Make:
    return STORES[request.param]


def test_values_steps_actions_approvals_and_gates(tmp_path: Path, make: Make) -> None:
    s = make(tmp_path, True)
    assert s.get("status") == "" and s.get("x", "d") == "d"
    s.set("status", "created")
    s.set("status", "running")
    assert s.get("status") == "running"
    s.init_steps(["c/002", "c/001", "c/003"])
    s.init_steps(["c/002"])  # again: nothing changes
    assert [r.step_id for r in s.steps()] == ["c/002", "c/001", "c/003"]  # plan order kept
    s.set_step("c/002", "running", 10.0)
    s.set_step("c/002", "running", 20.0)  # started stays the first time
    s.set_step("c/002", "done", 30.0, "gates passed")
    r = s.step("c/002")
    assert (r.status, r.started, r.finished, r.message) == ("done", 10.0, 30.0, "gates passed")
    with pytest.raises(KeyError):
        s.step("nope")
    a = s.intent("c/002", "cordon", "n1", {"reason": "x"}, 11.0)
    b = s.intent("c/002", "evict", "n1", {"pod": "a/p", "uid": "u1"}, 12.0)
    c = s.intent("c/001", "evict", "n2", {}, 13.0)
    assert a < b < c and s.last_seq() == c
    s.outcome(a, "ok", None, 11.5)
    s.outcome(b, "budget-exhausted", {"pdbs": ["a/web"]}, 12.5)
    assert [x.seq for x in s.actions()] == [a, b, c]
    assert [x.seq for x in s.actions("c/002")] == [a, b]
    assert [x.seq for x in s.actions(kind="evict")] == [b, c]
    assert [x.seq for x in s.actions(open_only=True)] == [c]
    rec = s.actions("c/002", kind="evict")[0]
    assert (rec.target, rec.detail, rec.outcome, rec.outcome_detail, rec.outcome_at) == (
        "n1", {"pod": "a/p", "uid": "u1"}, "budget-exhausted", {"pdbs": ["a/web"]}, 12.5)
    s.approve("c/001", "alice", 5.0, 7, "h7")
    s.approve("c/001", "alice", 6.0, 9, "h9")  # one approval per approver: the first stays
    s.approve("c/001", "bob", 4.0, 8, "h8")
    got = s.approvals("c/001")
    assert [(x.approver, x.audit_seq) for x in got] == [("bob", 8), ("alice", 7)]  # by time
    assert s.approvals("c/003") == []
    s.gate("c/002", "nodes-ready", "Successful", "ok", 31.0)
    s.gate("c/002", "canary", "Failed", "ratio 3", 32.0)
    assert [(g.gate, g.phase) for g in s.gates()] == [("nodes-ready", "Successful"),
                                                       ("canary", "Failed")]
    s.close()


def test_what_one_process_wrote_another_reads(tmp_path: Path, make: Make) -> None:
    s = make(tmp_path, True)
    s.init_steps(["a"])
    s.intent("a", "upgrade", "n1", {"key": "k"}, 1.0)
    s.set("status", "running")
    s.close()
    code = ("import sys; from pathlib import Path; "
            "from tests.store.test_run_store import STORES; "
            f"s = STORES[{next(iter(STORES))!r}](Path(sys.argv[1]), False); "
            "print(s.get('status'), len(s.actions()), s.steps()[0].step_id)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["running", "1", "a"]


def test_a_new_store_over_an_old_one_and_a_missing_one_are_refused(tmp_path: Path,
                                                                   make: Make) -> None:
    make(tmp_path, True).close()
    with pytest.raises(RunDamaged, match="exists already"):
        make(tmp_path, True)
    with pytest.raises(RunDamaged, match="missing"):
        make(tmp_path / "elsewhere", False)


_HOLD = """
import sys, time
from pathlib import Path
from tests.store.test_run_store import STORES
s = STORES[sys.argv[2]](Path(sys.argv[1]), False)
with s.lock("resume"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_the_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path: Path,
                                                                  make: Make) -> None:
    make(tmp_path, True).close()
    name = next(k for k, v in STORES.items() if v is make)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), name],
                              stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        s = make(tmp_path, False)
        who = s.holder()
        assert who is not None and who.pid == holder.pid and who.command == "resume"
        with pytest.raises(RunLocked, match=f"process {holder.pid} on .* \\(resume\\), since"), \
                s.lock("apply"):
            pytest.fail("a second holder")
        os.kill(holder.pid, signal.SIGKILL)  # however it dies, the lock goes with it
        holder.wait(timeout=30)
        deadline = time.monotonic() + 10
        while s.holder() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        with s.lock("apply") as me:
            assert me.pid == os.getpid() and s.holder() == me
        assert s.holder() is None
        s.close()
    finally:
        if holder.poll() is None:
            holder.kill()
