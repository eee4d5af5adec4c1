"""Run files are not trusted blindly, and one process acts on a run at a time.

Each test makes a real run with `pitstop apply` on the twin (a small fleet: one apiserver,
two nodes, a multi-hop node step), then does to its directory what a careless or hostile
person could — edit the plan, forge approvals or step states in the journal, drop the WAL,
corrupt a file, resume twice at once — and checks that pitstop refuses clearly (exit 2 for a
damaged run, naming the file; exit 1 for a held one, naming the holder), that nothing is done
to the fleet, and that an honest resume still ends as the uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pitstop.catalog import load_catalog
from pitstop.config import target_from_text
from pitstop.executor.core import Executor
from pitstop.executor.integrity import acting
from pitstop.executor.run import create_run, open_run
from pitstop.model import Fleet, UpgradePolicy
from pitstop.planner import make_plan
from pitstop.twin import Twin
from tests.executor.test_crash_resume import SMALL, SMALL_POLICY, SMALL_STEP, SMALL_TARGET
from tests.executor.test_crash_resume import _files as crash_files
from tests.runlib import journal, only_run

NOW = "2026-11-30T08:00:00+00:00"
PROD_POLICY: dict[str, Any] = {
    **SMALL_POLICY, "spec": {**SMALL_POLICY["spec"], "approvals": [
        {"environment": "staging", "required": 2, "approvers": ["sre-leads", "change-board"]}]}}


def pitstop(*args: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=300, check=False, input=stdin,
                          env={**os.environ, **(env or {})})


def _files(tmp: Path, policy: dict[str, Any] = SMALL_POLICY) -> list[str]:
    return crash_files(tmp, SMALL, policy, SMALL_TARGET)


def _apply(tmp: Path, *, policy: dict[str, Any] = SMALL_POLICY, kill_at: int = 0,
           expect: int | None = 0) -> Path:
    runs = tmp / "runs"
    env = {"PITSTOP_FAILPOINT": f"journal-write:{SMALL_STEP}:{kill_at}"} if kill_at else None
    r = pitstop("apply", *_files(tmp / "in", policy), "-y", "--runs-dir", str(runs), "--now",
                NOW, env=env)
    if expect is not None:
        assert r.returncode == expect, r.stdout + r.stderr
    return only_run(runs)


def _fleet_state(run: Path) -> str:
    """The twin's state files as they are (the fleet of a rehearsal): a hash of their bytes."""
    h = hashlib.sha256()
    for name in ("twin.sqlite", "twin.sqlite-wal"):
        p = run / name
        h.update(p.read_bytes() if p.exists() else b"-")
    return h.hexdigest()


def _refused_damaged(run: Path, *args: str, names: str) -> None:
    """``pitstop resume`` (or ``args``) refuses with exit 2 naming ``names``, and nothing is
    done to the fleet."""
    before = _fleet_state(run)
    r = pitstop(*(args or ("resume", str(run))))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert names in r.stderr, r.stderr
    assert _fleet_state(run) == before  # nothing was done to the fleet


# -- one process at a time --------------------------------------------------------------------

def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = _apply(tmp_path, kill_at=3, expect=None)  # killed in the node step: resumable
    rd = open_run(run)
    with acting(rd, "resume"):
        r = pitstop("resume", str(run))
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"process {os.getpid()} on {socket.gethostname()} (resume), since" in r.stderr
        assert "only one process acts on a run at a time" in r.stderr
        rb = pitstop("rollback", str(run), "-y")
        assert rb.returncode == 1 and f"process {os.getpid()}" in rb.stderr, rb.stderr
        # asking the holder to pause is allowed while it holds the run
        p = pitstop("pause", str(run))
        assert p.returncode == 0, p.stderr
        assert rd.journal.get("request") == "pause"
    rd.journal.set("request", "")
    rd.close()
    done = pitstop("resume", str(run))
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_resumes_at_once_one_acts_and_the_end_is_the_uninterrupted_one(
        tmp_path: Path) -> None:
    base = _apply(tmp_path / "base")
    want = _nodes(base)
    for trial in range(3):
        run = _apply(tmp_path / f"t{trial}", kill_at=2 + trial, expect=None)
        procs = [subprocess.Popen([sys.executable, "-m", "pitstop", "resume", str(run)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        refused = [err for (_, err), p in zip(outs, procs, strict=True) if p.returncode == 1]
        assert codes in ([0, 0], [0, 1]), outs
        for err in refused:
            assert "is being acted on by process" in err, err
        actions = [json.loads(line)["action"]
                   for line in (run / "audit.jsonl").read_text().splitlines()]
        assert actions.count("run-resume") == 1, actions
        assert _nodes(run) == want
        rows = journal(run, "SELECT count(*) FROM (SELECT json_extract(detail, '$.key') k "
                       "FROM actions WHERE kind = 'upgrade' GROUP BY k HAVING count(*) > 1)")
        assert rows == [(0,)], "an operation was journaled as started twice"


def _nodes(run: Path) -> dict[str, tuple[str, str, bool, bool]]:
    twin = Twin.open(run / "twin.sqlite")
    try:
        return {n.name: (n.kubelet, n.runtime_version, n.ready, n.unschedulable)
                for n in twin.observe("c1").nodes}
    finally:
        twin.close()


# -- edited run files ----------------------------------------------------------------------

def test_an_approval_removed_from_the_plan_is_refused(tmp_path: Path) -> None:
    run = _apply(tmp_path, policy=PROD_POLICY, expect=4)  # paused for approvals
    plan = json.loads((run / "plan.json").read_text())
    assert plan["steps"][0]["requiresApproval"] is True
    plan["steps"][0]["requiresApproval"] = False
    (run / "plan.json").write_text(json.dumps(plan, indent=1))
    _refused_damaged(run, names="plan.json: changed since the run started")
    assert all(s == "pending" for (s,) in journal(run, "SELECT status FROM steps"))


def test_steps_cut_off_the_plan_are_refused(tmp_path: Path) -> None:
    run = _apply(tmp_path, kill_at=3, expect=None)
    plan = json.loads((run / "plan.json").read_text())
    plan["steps"] = plan["steps"][:-1]
    (run / "plan.json").write_text(json.dumps(plan, indent=1))
    _refused_damaged(run, names="plan.json: changed since the run started")


def test_steps_marked_done_in_the_journal_are_refused(tmp_path: Path) -> None:
    run = _apply(tmp_path, kill_at=3, expect=None)
    db = sqlite3.connect(run / "journal.sqlite")
    db.execute("UPDATE steps SET status = 'done'")
    db.commit()
    db.close()
    _refused_damaged(run, names="the audit log never recorded them finishing")


def test_a_run_whose_fleet_is_not_at_the_plan_end_is_not_completed(tmp_path: Path) -> None:
    """Every step recorded done — journal and audit log consistent, as a forger using
    pitstop's own code could make them — while the nodes were never touched: the final check
    of the observed fleet ends the run failed, naming each node and version, not completed."""
    fleet = Fleet.model_validate(SMALL)
    policy = UpgradePolicy.model_validate(SMALL_POLICY)
    target = target_from_text(SMALL_TARGET)
    plan = make_plan(fleet, target, policy, load_catalog(), now=datetime.fromisoformat(NOW))
    run = create_run(tmp_path, plan, policy, {"c1": {"name": "c1"}}, {"kind": "twin"},
                     fleet=fleet)
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=datetime.fromisoformat(NOW).timestamp())
    run.record("mallory", "run-start", "forged", run.run_id, files=run.fingerprints())
    for s in plan.steps:
        run.journal.set_step(s.id, "done", 0.0, "forged")
        run.record("mallory", "step-done", "forged", s.id)
    run.journal.set("status", "paused")
    result = Executor(run, twin).execute()
    assert result.status == "failed", result.reason
    for node in ("n0", "n1"):
        assert f"c1: kubelet {node} is at 1.35.8, the plan ends at 1.36.5" in result.reason
    assert "c1: apiserver cp-0 is at 1.35.8, the plan ends at 1.36.5" in result.reason
    final = run.journal.actions(kind="final-check")
    assert final and final[-1].outcome == "differs"


def test_a_dropped_wal_or_a_lost_journal_is_refused(tmp_path: Path) -> None:
    run = _apply(tmp_path, kill_at=40, expect=None)
    wal = run / "journal.sqlite-wal"
    assert wal.exists() and wal.stat().st_size > 0
    wal.unlink()
    (run / "journal.sqlite-shm").unlink(missing_ok=True)
    _refused_damaged(run, names="journal.sqlite")
    (run / "journal.sqlite").unlink()
    _refused_damaged(run, names="journal.sqlite: the run's journal is missing")
    assert not (run / "journal.sqlite").exists()  # not recreated empty


@pytest.mark.parametrize(("name", "damage", "names"), [
    ("plan.json", lambda p: p.write_text(p.read_text()[:200]), "plan.json"),
    ("policy.json", lambda p: p.write_text('{"metadata": {"name": 7}}'), "policy.json"),
    ("run.json", lambda p: p.write_bytes(b"\x00\x01garbage"), "run.json"),
    ("journal.sqlite", lambda p: _flip(p, 4096), "journal.sqlite"),
    ("journal.sqlite", lambda p: _drop_table(p, "steps"), "lacks table(s) steps"),
    ("twin.sqlite", lambda p: _flip(p, 0), "twin.sqlite"),
    ("twin.sqlite", lambda p: _flip(p, 8192), "twin.sqlite"),
])
def test_damaged_run_files_are_refused_naming_the_file(tmp_path: Path, name: str, damage: Any,
                                                       names: str) -> None:
    run = _apply(tmp_path, kill_at=20, expect=None)
    # checkpoint the databases, so that a damaged main file is really what is read (a page in
    # the WAL is read from there)
    for name_ in ("journal.sqlite", "twin.sqlite"):
        db = sqlite3.connect(run / name_)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    damage(run / name)
    _refused_damaged(run, names=names)
    r = pitstop("status", str(run))
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(at, min(at + 64, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_table(path: Path, table: str) -> None:
    db = sqlite3.connect(path)
    db.execute(f"DROP TABLE {table}")
    db.commit()
    db.close()


# -- at rest -----------------------------------------------------------------------------

def test_run_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = _apply(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    loose = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in run.rglob("*")
             if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert not loose, loose
    assert {"plan.json", "policy.json", "fleet.json", "run.json", "journal.sqlite",
            "audit.jsonl", "twin.sqlite", "report.html"} <= {p.name for p in run.iterdir()}


def test_the_run_start_record_keeps_the_hashes_of_the_run_files(tmp_path: Path) -> None:
    run = _apply(tmp_path)
    start = next(json.loads(line) for line in (run / "audit.jsonl").read_text().splitlines()
                 if '"run-start"' in line)
    files = start["extra"]["files"]
    for name in ("plan.json", "policy.json", "fleet.json"):
        assert files[name] == hashlib.sha256((run / name).read_bytes()).hexdigest(), name
