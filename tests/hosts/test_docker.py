"""Docker Engine upgraded in place, with a running container kept (live-restore).

The docker estate (docker_fixtures.py) has Debian's docker.io at the start build, a local apt
repository offering a repackaged higher build, a private dockerd (live-restore on) on a private
containerd, and a busybox container sleeping under it. These tests drive pitstop's Docker
actuator locally and over the estate's OpenSSH server, and watch the container from outside.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pitstop.backend.api import OperationState, UpgradeComponent
from pitstop.hosts.backend import HostsBackend
from pitstop.hosts.connect import Host, LocalHost, SSHHost
from pitstop.hosts.containerd import (
    Problem,
    Severity,
    Snapshot,
    UpgradeRefused,
    upgrade_runtime,
)
from pitstop.hosts.docker import NAMESPACE, DockerFacts
from pitstop.model import HostInventory

from .docker_fixtures import DockerEstate, docker_at_start, docker_estate, installed_docker
from .estate import apt_mark, pid_alive
from .runtime_fixtures import figure
from .test_containerd import PidWatch

__all__ = ["docker_at_start", "docker_estate"]  # the fixtures, for pytest


def untouched(est: DockerEstate, daemon_pid: int | None) -> None:
    d = est.dockerd
    assert installed_docker() == est.from_version
    assert d.daemon_pid() == daemon_pid, "dockerd was restarted"
    assert d.state() == ("running", d.container_pid)
    assert pid_alive(d.container_pid, d.container_start)


def test_facts(docker_at_start: DockerEstate) -> None:
    est = docker_at_start
    d = est.dockerd
    facts = d.actuator().facts(LocalHost("node-d"))
    assert isinstance(facts, DockerFacts)
    assert facts.runtime == "docker" and facts.package == "docker.io"
    assert facts.installed == est.from_version
    assert facts.candidates[:2] == (est.to_version, est.from_version)
    assert facts.held == ()
    assert facts.daemon is not None and facts.daemon.version == d.version()
    assert facts.daemon.pid == d.daemon_pid() and facts.daemon.binary_current is True
    assert facts.live_restore_config is True and facts.live_restore_daemon is True
    assert facts.config_present and ("live-restore",) in facts.config_keys
    [c] = [c for c in facts.containers if c.id == d.container_id]
    assert (c.namespace, c.pid, c.status) == (NAMESPACE, d.container_pid, "RUNNING")
    assert c.start_ticks == d.container_start and c.shim_alive and c.shim_pid
    assert facts.name(d.container_id) == d.container
    assert [p for p in d.actuator().check(facts, est.to_version)
            if p.severity is Severity.ERROR] == []
    print(f"dockerd {facts.daemon.version} (commit {facts.daemon.revision}), "
          f"container {d.container} pid {c.pid}, shim {c.shim_pid}")


def test_live_restore_off_is_refused(docker_at_start: DockerEstate) -> None:
    est = docker_at_start
    d = est.dockerd
    host = LocalHost("node-d")
    before = d.daemon_pid()
    d.write_config(live_restore=False)
    d.reload()
    with pytest.raises(UpgradeRefused) as err:
        upgrade_runtime(d.actuator(), host, est.to_version)
    msg = str(err.value)
    print(msg)
    assert [p.code for p in err.value.problems] == ["live-restore-off"]
    assert "dockerd runs without live-restore, so restarting it for the upgrade stops every " \
           "container (1 running: " + d.container in msg
    assert f'set "live-restore": true in {d.config}' in msg
    assert "systemctl reload docker" in msg and "drain the host" in msg
    untouched(est, before)
    # daemon.json fixed but the daemon not reloaded: still refused, and told so.
    d.write_config(live_restore=True)
    with pytest.raises(UpgradeRefused, match="sets it, but the daemon was not reloaded"):
        d.actuator().upgrade(host, est.to_version)
    untouched(est, before)
    d.reload()
    # A held package is refused too.
    apt_mark("hold", "docker.io")
    try:
        with pytest.raises(UpgradeRefused, match=r"package docker.io is held") as held:
            upgrade_runtime(d.actuator(), host, est.to_version)
        assert "apt-mark unhold docker.io" in str(held.value)
    finally:
        apt_mark("unhold", "docker.io")
    # A build apt does not offer.
    with pytest.raises(UpgradeRefused, match=r"docker\.io 20\.10\.99 is not offered by apt"):
        upgrade_runtime(d.actuator(), host, "20.10.99")
    untouched(est, before)


def test_release_line_change_is_refused(docker_at_start: DockerEstate) -> None:
    """Live restore covers patch releases only: a YY.MM change with running containers is
    refused (check() is pure: the real facts with another build offered)."""
    est = docker_at_start
    act = est.dockerd.actuator()
    facts = act.facts(LocalHost("node-d"))
    other = "5:24.0.7-1~debian.12~bookworm"
    problems = act.check(dataclasses.replace(facts, candidates=(other, *facts.candidates)),
                         other)
    assert [p.code for p in problems if p.severity is Severity.ERROR] == ["live-restore-line"]
    assert "changes the release line (20.10 → 24.0)" in str(problems[0])


def test_upgrade_over_ssh_keeps_the_container(docker_at_start: DockerEstate,
                                              ssh: SSHHost) -> None:
    est = docker_at_start
    d = est.dockerd
    act = d.actuator()
    daemon_before = d.daemon_pid()
    with PidWatch(d.container_pid, d.container_start) as watch:
        time.sleep(0.3)
        report = upgrade_runtime(act, ssh, est.to_version)
        time.sleep(0.3)
    assert report.outcome == "upgraded", report
    assert report.verification is not None and report.verification.ok, \
        report.verification.problems
    step = report.upgrade
    assert step is not None and step.changed and step.installed and step.restarted
    assert (step.from_version, step.to_version) == (est.from_version, est.to_version)
    # Seen from outside pitstop.
    assert installed_docker() == est.to_version
    assert d.daemon_pid() not in (None, daemon_before)
    assert d.state() == ("running", d.container_pid)
    assert pid_alive(d.container_pid, d.container_start)
    assert d.live_restore()
    assert "hello" in d.docker("exec", d.container_id, "/bin/sh", "-c", "echo hello").stdout
    gaps = watch.gaps()
    assert gaps == [], f"the container was not seen alive for {gaps} s"
    figure("docker: container downtime during upgrade",
           f"{sum(gaps):.3f} s (gaps: {len(gaps)}; {len(watch.samples)} samples, every "
           f"{watch.interval * 1000:.0f} ms, longest interval {watch.resolution() * 1000:.0f} ms)")
    figure("docker: upgrade time (facts, checks, snapshot, install, restart, verify; SSH)",
           f"{report.seconds:.2f} s")
    figure("docker:   of which apt install", f"{step.install_seconds:.2f} s")
    figure("docker:   of which dockerd unavailable (stop -> answering again)",
           f"{step.daemon_unavailable_seconds:.2f} s")
    figure("docker:   of which verify", f"{report.verification.seconds:.2f} s")

    # Idempotent: a second run changes nothing and verifies.
    daemon_after = d.daemon_pid()
    again = act.upgrade(ssh, est.to_version)
    assert not again.changed and "nothing to do" in again.message
    rerun = upgrade_runtime(act, ssh, est.to_version)
    assert rerun.outcome == "already-current"
    assert d.daemon_pid() == daemon_after
    figure("docker: re-run at target (no-op, verified)", f"{rerun.seconds:.2f} s")


def test_failed_check_rolls_back(docker_at_start: DockerEstate) -> None:
    est = docker_at_start
    d = est.dockerd
    host = LocalHost("node-d")
    seen: list[bool] = []

    def failing_gate(h: Host, after: Snapshot) -> Sequence[Problem]:
        seen.append(after.daemon is not None and after.daemon.binary_current is True)
        return [Problem(Severity.ERROR, "injected", f"{h.name}: injected post-upgrade gate "
                                                    "failure")]

    daemon_before = d.daemon_pid()
    with PidWatch(d.container_pid, d.container_start) as watch:
        report = upgrade_runtime(d.actuator(), host, est.to_version, post_checks=[failing_gate])
    assert seen == [True]  # the gate ran against the restarted daemon
    assert report.outcome == "rolled-back", report
    assert report.verification is not None
    assert [p.code for p in report.verification.problems] == ["injected"]
    rb = report.rollback
    assert rb is not None and rb.action == "rollback" and rb.changed and rb.installed
    assert (rb.from_version, rb.to_version) == (est.to_version, est.from_version)
    assert report.rollback_verification is not None and report.rollback_verification.ok
    assert installed_docker() == est.from_version
    assert d.daemon_pid() not in (None, daemon_before)
    assert d.state() == ("running", d.container_pid)
    assert watch.gaps() == []
    figure("docker: rollback time (install previous, restart, verify)",
           f"{rb.seconds + report.rollback_verification.seconds:.2f} s")
    figure("docker: container downtime during upgrade + rollback", f"{sum(watch.gaps()):.3f} s")
    figure("docker: failed upgrade, rolled back: total", f"{report.seconds:.2f} s")


def test_hosts_backend_selects_the_docker_actuator(docker_at_start: DockerEstate,
                                                   tmp_path: Path) -> None:
    """``runtime.name: docker`` in the HostInventory: the hosts backend observes dockerd and
    upgrades it through start/poll, like containerd."""
    est = docker_at_start
    d = est.dockerd
    inv = HostInventory.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
        "metadata": {"name": "lab"},
        "spec": {"clusters": [{"name": "lab", "nodes": [{
            "name": "node-d", "local": True, "packageManager": "apt",
            "runtime": {"name": "docker", "socket": d.address, "config": d.config,
                        "control": {"type": "process", "root": str(d.dir / "data"),
                                    "state": str(d.dir / "exec"), "pidFile": d.pid_file,
                                    "logFile": d.log}}}]}]}})
    rt = inv.spec.clusters[0].nodes[0].runtime
    assert (rt.package, rt.control.type, getattr(rt.control, "binary", "")) == \
        ("docker.io", "process", "dockerd")
    b = HostsBackend(inv, tmp_path / "state")
    [seen] = b.observe("lab").nodes
    assert (seen.runtime, seen.runtime_version, seen.ready) == ("docker", est.from_version, True)
    with PidWatch(d.container_pid, d.container_start) as watch:
        op = b.start("lab", "run/node-d/docker", UpgradeComponent("node-d", "docker",
                                                                  est.to_version))
        deadline = time.monotonic() + 300
        while op.state is OperationState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
            op = b.poll("lab", "run/node-d/docker")
    print(op.message)
    assert op.state is OperationState.SUCCEEDED, op.message
    assert "1 container(s) running as before" in op.message
    assert watch.gaps() == []
    assert installed_docker() == est.to_version
    assert d.state() == ("running", d.container_pid)
    [seen] = b.observe("lab").nodes
    assert seen.runtime_version == est.to_version
    health = b.health("lab")
    print(health.metrics)
    kinds = [e.kind for e in b.events()]
    assert kinds.count("install") == 1 and kinds.count("daemon-restart") == 1, kinds
