"""Commands that can hurt show what they will do and ask; they refuse what they should not do;
their failures are messages, never "internal error".

Everything runs the real command line (`python -m pitstop …`) on twin runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pitstop.backend import BackendError
from pitstop.executor.core import Executor
from pitstop.executor.nodes import CORDON_ANNOTATION
from pitstop.executor.run import open_run
from pitstop.twin import Twin
from tests.executor.test_crash_resume import SMALL, SMALL_POLICY, SMALL_STEP, SMALL_TARGET
from tests.executor.test_crash_resume import _files as crash_files
from tests.runlib import journal, only_run

NOW = "2026-11-30T08:00:00+00:00"


def pitstop(*args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=300, check=False, input=stdin,
                          env={**os.environ, **(env or {})})


def _files(tmp: Path, fleet: dict[str, Any] = SMALL, policy: dict[str, Any] = SMALL_POLICY,
           target: str = SMALL_TARGET) -> list[str]:
    return crash_files(tmp, fleet, policy, target)


def _nodes(run: Path) -> dict[str, tuple[str, str, bool]]:
    twin = Twin.open(run / "twin.sqlite")
    try:
        return {n.name: (n.kubelet, n.runtime_version, n.unschedulable)
                for n in twin.observe("c1").nodes}
    finally:
        twin.close()


# -- rollback --------------------------------------------------------------------------------

def test_rollback_refuses_a_completed_run_without_the_explicit_flag(tmp_path: Path) -> None:
    r = pitstop("apply", *_files(tmp_path / "in"), "-y", "--runs-dir", str(tmp_path / "runs"),
                "--now", NOW)
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(tmp_path / "runs")
    before = _nodes(run)
    refused = pitstop("rollback", str(run), "-y")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "completed" in refused.stderr and "--undo-completed" in refused.stderr
    assert _nodes(run) == before
    # with the flag it shows what it will undo and asks; "no" does nothing
    asked = pitstop("rollback", str(run), "--undo-completed", stdin="n\n")
    assert asked.returncode == 1, asked.stdout + asked.stderr
    assert "will:" in asked.stdout and "2 node(s) back to" in asked.stdout
    assert "keep 3 control-plane step(s)" in asked.stdout and "nothing was done" in asked.stdout
    assert _nodes(run) == before
    done = pitstop("rollback", str(run), "--undo-completed", stdin="y\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_nodes(run).values()) == {("1.35.8", "2.1.5", False)}
    status = json.loads(pitstop("status", str(run), "-o", "json").stdout)
    assert status["status"] == "rolled-back"


def test_rollback_of_a_paused_run_lists_what_it_will_undo_and_asks(tmp_path: Path) -> None:
    """A run stopped inside its node step (n0 upgraded, n1 not yet): rollback lists n0 and its
    way back, the control-plane steps it keeps, and acts only after "yes"."""
    env = {"PITSTOP_FAILPOINT": f"journal-write:{SMALL_STEP}:40"}
    first = pitstop("apply", *_files(tmp_path / "in"), "-y", "--runs-dir",
                    str(tmp_path / "runs"), "--now", NOW, env=env)
    assert first.returncode == -9, first.stdout + first.stderr
    run = only_run(tmp_path / "runs")
    moved = {n for n, v in _nodes(run).items() if v[:2] != ("1.35.8", "2.1.5")}
    assert moved, "write 40 of the node step is after the first node moved"
    before = _nodes(run)
    asked = pitstop("rollback", str(run), stdin="n\n")
    assert asked.returncode == 1
    lines = asked.stdout.splitlines()
    undo = [ln for ln in lines if ln.strip().startswith(f"- undo {SMALL_STEP}")]
    assert len(undo) == 1, asked.stdout
    for n in moved:
        assert n in undo[0]
    assert "containerd 2.1.5" in undo[0] and "kubelet 1.35.8" in undo[0]
    assert any("keep 3 control-plane step(s)" in ln for ln in lines), asked.stdout
    assert "roll back? [y/N]" in asked.stdout and _nodes(run) == before
    done = pitstop("rollback", str(run), "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_nodes(run).values()) == {("1.35.8", "2.1.5", False)}
    assert journal(run, "SELECT status FROM steps WHERE step_id = ?", SMALL_STEP) == [
        ("rolled-back",)]


def test_restore_etcd_asks_twice_and_says_what_it_restored(tmp_path: Path) -> None:
    fleet = json.loads(json.dumps(SMALL))
    fleet["spec"]["clusters"][0]["controlPlane"]["etcd"] = {
        "version": "3.5.26", "members": [{"name": f"e{i}"} for i in range(3)]}
    files = _files(tmp_path / "in", fleet, SMALL_POLICY, "etcd=3.6.8")
    r = pitstop("apply", *files, "-y", "--runs-dir", str(tmp_path / "runs"), "--now", NOW)
    assert r.returncode == 0, r.stdout + r.stderr
    run = only_run(tmp_path / "runs")
    asked = pitstop("rollback", str(run), "--undo-completed", "--restore-etcd", stdin="y\nn\n")
    assert asked.returncode == 1, asked.stdout + asked.stderr
    assert "RESTORE etcd of cluster c1 from the snapshot of c1/001-etcd-snapshot-3.5.26" in \
        asked.stdout and "EVERY WRITE SINCE THE SNAPSHOT IS LOST" in asked.stdout
    assert "lose every write made since it was taken?" in asked.stdout
    done = pitstop("rollback", str(run), "--undo-completed", "--restore-etcd", "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(restored c1/001-etcd-snapshot-3.5.26 into etcd 3.5.26" in done.stdout
    assert ": )" not in done.stdout and "3.5.26: )" not in done.stdout


class _Unreachable:
    """The run's twin, whose API becomes unreachable once ``down`` is set: what a real backend
    does when the connection drops (BackendError) — for this error path only."""

    def __init__(self, twin: Twin) -> None:
        self._twin = twin
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin, name)

    def observe(self, cluster: str) -> Any:
        if self.down:
            raise BackendError(f"{cluster}: connection refused (the API server is down)")
        return self._twin.observe(cluster)


def test_a_backend_error_during_a_rollback_pauses_with_a_message(tmp_path: Path) -> None:
    """A failed gate rolls the wave back; the backend stops answering during that rollback:
    the run pauses, saying what could not be done, instead of an internal error."""
    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "FaultScenario",
        "metadata": {"name": "f"},
        "spec": {"faults": [{"type": "runtimeUpgradeFails", "nodes": ["n1"]}]}}))
    env = {"PITSTOP_FAILPOINT": f"journal-write:{SMALL_STEP}:2"}  # stop in the node step
    pitstop("rehearse", *_files(tmp_path / "in"), "--faults", str(faults), "--runs-dir",
            str(tmp_path / "runs"), "--now", NOW, env=env)
    run = open_run(only_run(tmp_path / "runs"))
    backend = _Unreachable(Twin.open(run.path / "twin.sqlite"))

    def on_event(action: str, info: dict[str, Any]) -> None:
        if action == "gate-failed":  # the wave is about to be rolled back
            backend.down = True

    result = Executor(run, backend, on_event=on_event).execute()  # type: ignore[arg-type]
    assert result.status == "paused", result.reason
    assert "connection refused" in result.reason and "pitstop resume" in result.reason
    actions = [json.loads(line)["action"] for line in
               (run.path / "audit.jsonl").read_text().splitlines()]
    assert "gate-failed" in actions and actions[-1] == "run-paused"


# -- approve ---------------------------------------------------------------------------------

def test_approve_refuses_a_name_off_the_list_and_a_step_that_needs_none(tmp_path: Path) -> None:
    policy = {**SMALL_POLICY, "spec": {**SMALL_POLICY["spec"], "approvals": [
        {"environment": "staging", "required": 2, "approvers": ["sre-leads", "change-board"]}]}}
    r = pitstop("apply", *_files(tmp_path / "in", SMALL, policy), "-y", "--runs-dir",
                str(tmp_path / "runs"), "--now", NOW)
    assert r.returncode == 4 and "waits for 2 approval(s)" in r.stdout, r.stdout + r.stderr
    run = only_run(tmp_path / "runs")
    first = "c1/001-apiserver-cp-0-1.36.5"
    off = pitstop("approve", str(run), "--step", first, "--as", "mallory")
    assert off.returncode == 1, off.stdout + off.stderr
    assert "'mallory' may not approve" in off.stderr and "change-board, sre-leads" in off.stderr
    none = pitstop("approve", str(run), "--step", "c1/002-kube-controller-manager-1.36.5",
                   "--as", "sre-leads")
    assert none.returncode == 1 and "needs no approval" in none.stderr, none.stderr
    assert journal(run, "SELECT count(*) FROM approvals") == [(0,)]
    ok = pitstop("approve", str(run), "--step", first, "--as", "sre-leads")
    assert ok.returncode == 0 and "approvals 1 of 2: sre-leads" in ok.stdout, ok.stdout


# -- apply names what it acts on ---------------------------------------------------------------

def test_apply_names_the_backend_and_says_rehearsal_for_the_twin(tmp_path: Path) -> None:
    r = pitstop("apply", *_files(tmp_path / "in"), "--runs-dir", str(tmp_path / "runs"),
                "--now", NOW, stdin="n\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "apply 4 steps to 1 cluster(s) on the twin: a rehearsal on a simulated copy" in \
        r.stderr and "(c1)" in r.stderr and "Go ahead? [y/N]" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_rollback_uncordons_a_node_its_stalled_drain_left_cordoned(tmp_path: Path) -> None:
    """A drain that stalls on a PDB pauses the run with the node cordoned and annotated; a
    rollback of that wave uncordons it (no upgrade was ever started on it) and says so."""
    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "FaultScenario",
        "metadata": {"name": "stuck"},
        "spec": {"faults": [{"type": "pdbNeverAllows", "cluster": "c1", "pdb": "a/web"}]}}))
    r = pitstop("rehearse", *_files(tmp_path / "in"), "--faults", str(faults), "--runs-dir",
                str(tmp_path / "runs"), "--now", NOW)
    assert r.returncode == 4 and "timed out" in r.stdout, r.stdout + r.stderr
    run = only_run(tmp_path / "runs")
    stuck = {n for n, v in _nodes(run).items() if v[2]}
    assert len(stuck) == 1, _nodes(run)
    (node,) = stuck
    asked = pitstop("rollback", str(run), "-y")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert f"uncordon {node} (cordoned by {SMALL_STEP}, never upgraded)" in asked.stdout
    assert not any(v[2] for v in _nodes(run).values()), _nodes(run)
    twin = Twin.open(run / "twin.sqlite")
    try:
        annotations = twin.observe("c1").node(node).annotations  # type: ignore[union-attr]
    finally:
        twin.close()
    assert CORDON_ANNOTATION not in annotations
