"""`pitstop plan` / `apply --backend hosts` / `resume` on a real host, as a user runs them: the
same executor, journal, audit and resume as the twin, driving the containerd actuator through
the estate's OpenSSH server on 127.0.0.1.

The Fleet is one cluster with one node, ``node-a`` = the estate's host running containerd at
the start build. Its Kubernetes version is 1.24: the catalog supports containerd 1.6 there
(it does not for the newest Kubernetes minors), so the planner accepts the Debian builds
(``1.6.20~ds1-1+deb12u2`` → ``…u3``) as they are. The policy drops the canary and the soaks so
the run takes seconds, not the default quarter of an hour; the gates stay (nodes Ready at the
new build, workloads available).

Every pitstop here is a separate process (``python -m pitstop``); the container is watched
from outside every 50 ms.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pitstop.store import OpEvent, SqliteOperationStore
from tests.runlib import journal, only_run, query

from .estate import Estate, installed_version, pid_alive
from .runtime_fixtures import figure
from .test_containerd import PidWatch


def pitstop(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_files(tmp: Path, est: Estate, *, failing_gate: bool = False,
                known_hosts: Path | None = None) -> list[str]:
    c = est.containerd
    fleet = {
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "lab"},
        "spec": {"clusters": [{
            "name": "lab", "environment": "test",
            "controlPlane": {"apiServers": [{"name": "cp-1", "version": "1.24.17"}],
                             "controllerManager": {"version": "1.24.17"},
                             "scheduler": {"version": "1.24.17"}},
            "nodePools": [{"name": "hosts", "nodes": [{
                "name": "node-a", "kubelet": "1.24.17",
                "containerRuntime": {"name": "containerd", "version": est.from_version}}]}]}]}}
    policy = {
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
        "metadata": {"name": "lab"},
        "spec": {"pools": [{"pools": ["*"], "canaryNodes": 0, "soak": "0s",
                            "canarySoak": "0s"}]}}
    node: dict[str, object] = {
        "name": "node-a", "address": "127.0.0.1",
        "ssh": {"user": "root", "port": est.sshd.port,
                "identityFile": str(est.sshd.client_key),
                "knownHostsFile": str(known_hosts or est.sshd.known_hosts)},
        "runtime": {"socket": c.address, "config": c.config,
                    "control": {"type": "process", "root": str(c.dir / "root"),
                                "state": str(c.dir / "state"), "pidFile": c.pid_file,
                                "logFile": c.log}}}
    if failing_gate:
        node["verify"] = [{"name": "injected-gate",
                           "command": "echo injected post-upgrade gate failure >&2; exit 1"}]
    hosts = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
             "metadata": {"name": "lab"}, "spec": {"clusters": [{"name": "lab",
                                                                 "nodes": [node]}]}}
    out = []
    for name, doc in (("fleet", fleet), ("policy", policy), ("hosts", hosts)):
        p = tmp / f"{name}.yaml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        out += ["-f", str(p)]
    return out


def events(run: Path) -> list[OpEvent]:
    return SqliteOperationStore(run / "hosts.sqlite").events()


def installs(run: Path, version: str) -> list[OpEvent]:
    return [e for e in events(run) if e.kind == "install" and e.detail.endswith(f"={version}")]


def container_untouched(est: Estate) -> None:
    c = est.containerd
    assert c.task_row() == (c.container_pid, "RUNNING")
    assert pid_alive(c.container_pid, c.container_start)


def audit_ok(run: Path) -> None:
    r = pitstop("audit", "verify", str(run))
    assert r.returncode == 0 and "chain intact" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------


def test_plan_then_apply_on_the_host(at_start: Estate, tmp_path: Path) -> None:
    est, c = at_start, at_start.containerd
    files = write_files(tmp_path, est)
    target = f"containerd={est.to_version}"
    plan = pitstop("plan", *files, "--target", target, "-o", "json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    step = yaml.safe_load(plan.stdout)["steps"]
    assert [(s["action"], s["targets"], s["from"], s["to"]) for s in step] == [
        ("upgrade-nodes", ["node-a"], est.from_version, est.to_version)]

    runs = tmp_path / "runs"
    daemon_before = c.daemon_pid()
    with PidWatch(c.container_pid, c.container_start) as watch:
        t0 = time.monotonic()
        r = pitstop("apply", *files, "--target", target, "--backend", "hosts", "-y",
                    "--runs-dir", str(runs))
        took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed: every step done and every gate passed" in r.stdout
    # seen from outside pitstop
    assert installed_version() == est.to_version
    assert c.revision() == est.to_version
    assert c.daemon_pid() not in (None, daemon_before)
    container_untouched(est)
    assert watch.gaps() == [], f"the container was not seen alive for {watch.gaps()} s"
    # the run: journal, audit, the backend's log
    run = only_run(runs)
    assert journal(run, "SELECT value FROM run WHERE key = 'status'") == [("completed",)]
    assert {s for (s,) in journal(run, "SELECT status FROM steps")} == {"done"}
    kinds = [k for (k,) in journal(run, "SELECT kind FROM actions ORDER BY seq")]
    assert kinds[:4] == ["skew-check", "cordon", "upgrade", "upgrade-done"], kinds
    assert kinds[-2:] == ["node-done", "final-check"]  # the fleet checked at the end
    # no apiserver version on hosts: the live skew check had nothing to judge, and says so
    assert journal(run, "SELECT outcome FROM actions WHERE kind = 'skew-check'") == [
        ("unjudged",)]
    audit_ok(run)
    (op,) = SqliteOperationStore(run / "hosts.sqlite").operations()
    assert op.state == "succeeded", op.message
    assert "verified: 1 container(s) running as before, same PID and shim" in op.message
    assert len(installs(run, est.to_version)) == 1
    log = [e.kind for e in events(run)]
    assert "cordon" in log and "uncordon" in log and "daemon-restart" in log
    figure("apply --backend hosts (plan, cordon record, upgrade over SSH, gates): wall time",
           f"{took:.1f} s")
    figure("  of which the operation (facts → verified)",
           f"{op.finished - op.started:.1f} s (apt install {op.data['installSeconds']:.1f} s, "
           f"daemon answering again after {op.data['daemonUnavailableSeconds']:.2f} s)")
    figure("container downtime during apply", f"{sum(watch.gaps()):.3f} s "
           f"({len(watch.samples)} samples every 50 ms)")


@pytest.mark.parametrize("kill_when", ["operation-started", "apt-installing"])
def test_sigkill_during_the_upgrade_then_resume(at_start: Estate, tmp_path: Path,
                                                kill_when: str) -> None:
    """Killed as soon as the journal shows the upgrade operation started; or later, while apt
    installs the target on the host (seen in the backend's log): apt then runs to its end on
    the host, and resume waits for it and only restarts the daemon."""
    est, c = at_start, at_start.containerd
    files = write_files(tmp_path, est)
    runs = tmp_path / "runs"
    out = (tmp_path / "apply.out").open("w")
    with PidWatch(c.container_pid, c.container_start) as watch:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitstop", "apply", *files, "--target",
             f"containerd={est.to_version}", "--backend", "hosts", "-y", "--runs-dir",
             str(runs)], stdout=out, stderr=subprocess.STDOUT)
        try:
            # until the upgrade operation is started (journaled) / apt installs, then kill
            deadline = time.monotonic() + 60
            started: list[tuple[object, ...]] = []
            while not started and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
                if not (runs.exists() and any(runs.iterdir())):
                    continue
                run = only_run(runs)
                if kill_when == "operation-started" and (run / "journal.sqlite").exists():
                    started = journal(run, "SELECT seq FROM actions WHERE kind = 'upgrade' "
                                           "AND outcome = 'started'")
                elif kill_when == "apt-installing" and (run / "hosts.sqlite").exists():
                    started = query(run / "hosts.sqlite", "SELECT seq FROM events WHERE "
                                    f"kind = 'install' AND detail LIKE '%={est.to_version}'")
            assert started, (tmp_path / "apply.out").read_text()
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # also when the test fails: never left running
            assert proc.wait(10) == -signal.SIGKILL
        run = only_run(runs)
        (op,) = SqliteOperationStore(run / "hosts.sqlite").operations()
        assert op.state == "running"
        killed_in = op.data.get("phase", "not begun")

        r = pitstop("resume", str(run))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout
    assert installed_version() == est.to_version
    assert c.revision() == est.to_version
    container_untouched(est)
    assert watch.gaps() == []
    assert journal(run, "SELECT value FROM run WHERE key = 'status'") == [("completed",)]
    audit_ok(run)
    (op,) = SqliteOperationStore(run / "hosts.sqlite").operations()
    assert op.state == "succeeded", op.message
    log = events(run)
    adopt = [e for e in log if e.kind == "adopt"]
    assert len(adopt) == 1 and adopt[0].op_key == op.key and adopt[0].owner == op.owner
    first_owner = next(e.owner for e in log if e.kind == "start")
    assert first_owner != op.owner  # started by the killed process, settled by resume
    # no second apt install of the same target, whichever phase the kill interrupted
    assert len(installs(run, est.to_version)) == 1, [e for e in log if e.kind == "install"]
    if kill_when == "apt-installing":
        assert killed_in == "upgrade"
        assert installs(run, est.to_version)[0].owner == first_owner
        assert [e.owner for e in log if e.kind == "daemon-restart"] == [op.owner]
    figure(f"SIGKILL ({kill_when}) → resume",
           f"killed in phase {killed_in!r}; settled by resume, 1 install of "
           f"{est.to_version}, container downtime {sum(watch.gaps()):.3f} s")


def test_failing_gate_rolls_back_automatically(at_start: Estate, tmp_path: Path) -> None:
    est, c = at_start, at_start.containerd
    files = write_files(tmp_path, est, failing_gate=True)
    runs = tmp_path / "runs"
    with PidWatch(c.container_pid, c.container_start) as watch:
        t0 = time.monotonic()
        r = pitstop("apply", *files, "--target", f"containerd={est.to_version}", "--backend",
                    "hosts", "-y", "--runs-dir", str(runs))
        took = time.monotonic() - t0
    assert r.returncode == 5, r.stdout + r.stderr  # rolled back
    assert "rolled-back" in r.stdout
    assert installed_version() == est.from_version
    assert c.revision() == est.from_version
    container_untouched(est)
    assert watch.gaps() == []
    run = only_run(runs)
    assert journal(run, "SELECT value FROM run WHERE key = 'status'") == [("rolled-back",)]
    audit_ok(run)
    (op,) = SqliteOperationStore(run / "hosts.sqlite").operations()
    assert op.state == "failed"
    assert "verification command 'injected-gate' exited with 1" in op.message
    assert f"rolled back to {est.from_version}, verified" in op.message
    assert op.data["phase"] == "rolled-back"
    assert len(installs(run, est.to_version)) == 1
    assert len(installs(run, est.from_version)) == 1
    figure("failing post-upgrade gate → automatic rollback through apply",
           f"{took:.1f} s wall, container downtime {sum(watch.gaps()):.3f} s")


def test_unknown_host_key_pauses_the_run_and_touches_nothing(at_start: Estate,
                                                              tmp_path: Path) -> None:
    est, c = at_start, at_start.containerd
    fresh = tmp_path / "known_hosts"
    fresh.write_text("")
    files = write_files(tmp_path, est, known_hosts=fresh)
    runs = tmp_path / "runs"
    daemon = c.daemon_pid()
    r = pitstop("apply", *files, "--target", f"containerd={est.to_version}", "--backend",
                "hosts", "-y", "--runs-dir", str(runs))
    assert r.returncode == 4, r.stdout + r.stderr  # paused
    text = " ".join((r.stdout + r.stderr).split())
    assert "paused" in text and f"is not in the known_hosts file {fresh}" in text
    assert "never trusts an unknown host key" in text
    assert installed_version() == est.from_version and c.daemon_pid() == daemon
    container_untouched(est)
    run = only_run(runs)
    assert journal(run, "SELECT value FROM run WHERE key = 'status'") == [("paused",)]
    assert SqliteOperationStore(run / "hosts.sqlite").operations() == []
    assert not [e for e in events(run) if e.destructive]
    audit_ok(run)
