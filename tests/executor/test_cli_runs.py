"""The run commands as a user runs them: demo, rehearse with faults, status, approve/resume,
and `audit verify` on a tampered log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def pitstop(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=300, check=False, cwd=cwd)


def _only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def test_demo_tells_the_story_and_writes_a_report(tmp_path: Path) -> None:
    r = pitstop("demo", "--runs-dir", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "BLOCKING pdb-blocks-drain in prod-eu-1" in out
    assert "result: rolled-back" in out and "canary-analysis" in out
    assert "result: completed" in out and "no workload dropped below its PDB minimum at any" in out
    assert "drain(s) waited on a PodDisruptionBudget; the longest" in out
    reports = sorted((tmp_path / "demo").glob("*/report.html"))
    assert len(reports) == 2
    html = max(reports, key=lambda p: p.stat().st_size).read_text()
    assert "<svg" in html and "Clean rehearsal after the fix" in html


def _fixed_fleet(tmp: Path) -> Path:
    out = tmp / "fleet.yaml"
    out.write_text((EX / "fleet.yaml").read_text().replace("maxUnavailable: 0",
                                                           "maxUnavailable: 1"))
    return out


def test_rehearse_with_fault_file_then_status(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "FaultScenario",
        "metadata": {"name": "runtime"},
        "spec": {"faults": [{"type": "runtimeUpgradeFails", "nodes": ["stg-gen-02"]}]}}))
    runs = tmp_path / "runs"
    r = pitstop("rehearse", "-f", str(_fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"),
                "-f", str(EX / "target.yaml"), "--faults", str(faults), "--runs-dir",
                str(runs), "--now", "2026-11-30T07:00:00+00:00")
    assert r.returncode == 5, r.stdout + r.stderr  # rolled back
    assert "rolled-back" in r.stdout and "stg-gen-02" in r.stdout
    run = _only_run(runs)
    assert (run / "report.html").is_file()
    st = pitstop("status", str(run), "-o", "json")
    doc = json.loads(st.stdout)
    assert doc["status"] == "rolled-back"
    assert any(s["status"] == "rolled-back" for s in doc["steps"])


def test_apply_refuses_a_blocked_plan(tmp_path: Path) -> None:
    r = pitstop("apply", "-f", str(EX / "fleet.yaml"), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), "-y", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 1 and "pdb-blocks-drain" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_apply_waits_for_approvals_then_resumes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["-f", str(_fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"), "-f",
            str(EX / "target.yaml")]
    r = pitstop("apply", *args, "-y", "--runs-dir", str(runs), "--now",
                "2026-11-30T07:00:00+00:00")
    assert r.returncode == 4 and "waits for 2 approval(s)" in r.stdout  # paused
    run = _only_run(runs)
    step = next(s["id"] for s in json.loads(pitstop("status", str(run), "-o", "json").stdout)
                ["steps"] if s["status"] == "pending")
    assert pitstop("approve", str(run), "--step", step, "--as", "sre-leads").returncode == 0
    r = pitstop("resume", str(run))
    assert r.returncode == 4 and "has 1" in r.stdout  # one of two approvals is not enough
    assert pitstop("approve", str(run), "--step", "nope", "--as", "x").returncode == 2


def test_audit_verify_detects_edit_delete_reorder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    pitstop("rehearse", "-f", str(_fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"), "-f",
            str(EX / "target.yaml"), "--runs-dir", str(runs))
    run = _only_run(runs)
    log = run / "audit.jsonl"
    assert pitstop("audit", "verify", str(run)).returncode == 0
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) > 10
    original = "".join(lines)

    def check(text: str, needle: str) -> None:
        log.write_text(text)
        r = pitstop("audit", "verify", str(run))
        assert r.returncode == 1 and "TAMPERED" in r.stderr and needle in r.stderr, r.stderr
        log.write_text(original)

    edited = json.loads(lines[5])
    edited["reason"] = "nothing to see here"
    check("".join([*lines[:5], json.dumps(edited) + "\n", *lines[6:]]), "line 6")
    check("".join(lines[:4] + lines[5:]), "line 5")
    check("".join([*lines[:3], lines[4], lines[3], *lines[5:]]), "line 4")
    assert pitstop("audit", "verify", str(run)).returncode == 0
