"""containerd upgraded in place through a real OpenSSH server, with a running container kept.

The estate (runtime_fixtures.py / estate.py) has Debian's containerd at the start build, a
private containerd daemon on its own socket, and a busybox container running under it. These
tests drive pitstop's actuator over SSH to 127.0.0.1 and watch the container from outside.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from pitstop.hosts.connect import Host, HostKeyUnknown, HostUnreachable, SSHHost
from pitstop.hosts.containerd import (
    ContainerdActuator,
    Problem,
    ProcessDaemon,
    Severity,
    Snapshot,
    UpgradeRefused,
    upgrade_runtime,
)

from .estate import Estate, apt_mark, free_port, installed_version, pid_alive, sh
from .runtime_fixtures import figure


def actuator(estate: Estate) -> ContainerdActuator:
    c = estate.containerd
    daemon = ProcessDaemon.containerd(
        root=str(c.dir / "root"), state=str(c.dir / "state"), address=c.address,
        config=c.config, pid_file=c.pid_file, log_file=c.log)
    return ContainerdActuator(daemon, address=c.address, config_path=c.config)


@dataclass
class PidWatch:
    """Samples a process every 50 ms from outside: alive, same start time, not a zombie."""

    pid: int
    start_ticks: int
    interval: float = 0.05
    samples: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PidWatch:
        def loop() -> None:
            while not self._stop.is_set():
                self.samples.append((time.monotonic(), pid_alive(self.pid, self.start_ticks)))
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def gaps(self) -> list[float]:
        """Lengths of the stretches during which the process was not seen alive."""
        out: list[float] = []
        start: float | None = None
        for t, alive in self.samples:
            if not alive and start is None:
                start = t
            elif alive and start is not None:
                out.append(t - start)
                start = None
        if start is not None:
            out.append(self.samples[-1][0] - start)
        return out

    def resolution(self) -> float:
        ts = [t for t, _ in self.samples]
        return max((b - a for a, b in itertools.pairwise(ts)), default=0.0)


def untouched(estate: Estate, daemon_pid: int | None) -> None:
    c = estate.containerd
    assert installed_version() == estate.from_version
    assert c.daemon_pid() == daemon_pid, "the daemon was restarted"
    assert c.task_row() == (c.container_pid, "RUNNING")


# ---------------------------------------------------------------------------------------------
# Facts


def test_facts_through_ssh(at_start: Estate, ssh: SSHHost) -> None:
    facts = actuator(at_start).facts(ssh)
    assert facts.installed == at_start.from_version
    assert facts.candidates[:2] == tuple(at_start.offered[:2])
    assert facts.held == ()
    assert facts.daemon is not None and facts.daemon.revision == at_start.from_version
    assert facts.daemon.pid == at_start.containerd.daemon_pid()
    assert facts.daemon.binary_current is True
    assert facts.config_present and facts.config_version == 2
    assert ("grpc", "address") in facts.config_keys
    snap = actuator(at_start).snapshot(ssh)
    task = snap.task(at_start.containerd.namespace, at_start.containerd.container)
    assert task is not None and task.pid == at_start.containerd.container_pid
    assert task.status == "RUNNING" and task.shim_alive and task.shim_pid
    assert task.start_ticks == at_start.containerd.container_start


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error and an untouched host


def test_version_not_offered_is_refused(at_start: Estate, ssh: SSHHost) -> None:
    before = at_start.containerd.daemon_pid()
    wrong = at_start.from_version.rsplit("u", 1)[0] + "u99"
    with pytest.raises(UpgradeRefused) as err:
        upgrade_runtime(actuator(at_start), ssh, wrong)
    msg = str(err.value)
    assert "target-not-offered" in {p.code for p in err.value.problems}
    assert f"containerd {wrong} is not offered by apt" in msg
    assert at_start.from_version in msg and at_start.to_version in msg
    untouched(at_start, before)


def test_held_package_is_refused(at_start: Estate, ssh: SSHHost) -> None:
    before = at_start.containerd.daemon_pid()
    apt_mark("hold", "containerd")
    try:
        with pytest.raises(UpgradeRefused, match=r"package containerd is held") as err:
            upgrade_runtime(actuator(at_start), ssh, at_start.to_version)
        assert "apt-mark unhold containerd" in str(err.value)
        # The actuator's own upgrade() refuses as well (a backend may call it directly).
        with pytest.raises(UpgradeRefused):
            actuator(at_start).upgrade(ssh, at_start.to_version)
        untouched(at_start, before)
    finally:
        apt_mark("unhold", "containerd")


def test_unknown_host_key_touches_nothing(at_start: Estate, tmp_path: object) -> None:
    before = at_start.containerd.daemon_pid()
    fresh = at_start.dir / "fresh_known_hosts"
    fresh.write_text("")
    host = SSHHost("127.0.0.1", port=at_start.sshd.port,
                   client_keys=[at_start.sshd.client_key], known_hosts=fresh, name="node-a")
    with pytest.raises(HostKeyUnknown, match=str(fresh)):
        upgrade_runtime(actuator(at_start), host, at_start.to_version)
    untouched(at_start, before)


def test_unreachable_host_touches_nothing(at_start: Estate) -> None:
    before = at_start.containerd.daemon_pid()
    host = SSHHost("127.0.0.1", port=free_port(), client_keys=[at_start.sshd.client_key],
                   known_hosts=at_start.sshd.known_hosts, connect_timeout=5, name="node-b")
    with pytest.raises(HostUnreachable, match="node-b: cannot connect"):
        upgrade_runtime(actuator(at_start), host, at_start.to_version)
    untouched(at_start, before)


# ---------------------------------------------------------------------------------------------
# The upgrade


def test_upgrade_through_ssh_keeps_the_container(at_start: Estate, ssh: SSHHost) -> None:
    c = at_start.containerd
    act = actuator(at_start)
    daemon_before = c.daemon_pid()
    with PidWatch(c.container_pid, c.container_start) as watch:
        time.sleep(0.3)
        report = upgrade_runtime(act, ssh, at_start.to_version)
        time.sleep(0.3)
    assert report.outcome == "upgraded", report
    assert report.verification is not None and report.verification.ok, \
        report.verification.problems
    step = report.upgrade
    assert step is not None and step.changed and step.installed and step.restarted
    assert (step.from_version, step.to_version) == (at_start.from_version, at_start.to_version)
    # Seen from outside pitstop.
    assert installed_version() == at_start.to_version
    assert c.revision() == at_start.to_version
    assert c.daemon_pid() not in (None, daemon_before)
    assert c.task_row() == (c.container_pid, "RUNNING")
    assert pid_alive(c.container_pid, c.container_start)
    assert "hello" in c.ctr("task", "exec", "--exec-id", "probe", "--fifo-dir",
                            str(c.dir / "fifo"), c.container, "/bin/sh", "-c",
                            "echo hello").stdout
    gaps = watch.gaps()
    assert gaps == [], f"the container was not seen alive for {gaps} s"
    figure("container downtime during upgrade",
           f"{sum(gaps):.3f} s (gaps: {len(gaps)}; {len(watch.samples)} samples, "
           f"every {watch.interval * 1000:.0f} ms, longest interval "
           f"{watch.resolution() * 1000:.0f} ms)")
    figure("upgrade time (facts, checks, snapshot, install, restart, verify; over SSH)",
           f"{report.seconds:.2f} s")
    figure("  of which apt install", f"{step.install_seconds:.2f} s")
    figure("  of which daemon unavailable (stop -> answering again)",
           f"{step.daemon_unavailable_seconds:.2f} s")
    figure("  of which verify", f"{report.verification.seconds:.2f} s")

    # Idempotent: a second run changes nothing and verifies.
    daemon_after = c.daemon_pid()
    again = act.upgrade(ssh, at_start.to_version)
    assert not again.changed and "nothing to do" in again.message
    rerun = upgrade_runtime(act, ssh, at_start.to_version)
    assert rerun.outcome == "already-current"
    assert c.daemon_pid() == daemon_after
    figure("re-run at target (no-op, verified)", f"{rerun.seconds:.2f} s")


def test_interrupted_upgrade_is_finished_by_a_rerun(at_start: Estate, ssh: SSHHost) -> None:
    """Package installed, daemon still on the old binary (pitstop killed in between): a re-run
    restarts the daemon only."""
    c = at_start.containerd
    sh(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "--allow-downgrades",
        "-o", "DPkg::Lock::Timeout=600", "install", f"containerd={at_start.to_version}"])
    assert c.revision() == at_start.from_version  # still the old daemon
    step = actuator(at_start).upgrade(ssh, at_start.to_version)
    assert step.changed and not step.installed and step.restarted
    assert c.revision() == at_start.to_version
    assert c.task_row() == (c.container_pid, "RUNNING")


def test_failed_verification_rolls_back(at_start: Estate, ssh: SSHHost) -> None:
    c = at_start.containerd
    seen: list[str] = []

    def failing_gate(host: Host, after: Snapshot) -> Sequence[Problem]:
        seen.append(after.daemon.revision if after.daemon else "")
        return [Problem(Severity.ERROR, "injected", f"{host.name}: injected post-upgrade gate "
                                                    f"failure")]

    with PidWatch(c.container_pid, c.container_start) as watch:
        report = upgrade_runtime(actuator(at_start), ssh, at_start.to_version,
                                 post_checks=[failing_gate])
    assert seen == [at_start.to_version]  # the gate ran against the upgraded daemon
    assert report.outcome == "rolled-back", report
    assert report.verification is not None and not report.verification.ok
    assert [p.code for p in report.verification.problems] == ["injected"]
    rb = report.rollback
    assert rb is not None and rb.action == "rollback" and rb.changed
    assert (rb.from_version, rb.to_version) == (at_start.to_version, at_start.from_version)
    assert report.rollback_verification is not None and report.rollback_verification.ok
    assert installed_version() == at_start.from_version
    assert c.revision() == at_start.from_version
    assert c.task_row() == (c.container_pid, "RUNNING")
    assert watch.gaps() == []
    figure("rollback time (install previous, restart, verify)",
           f"{rb.seconds + report.rollback_verification.seconds:.2f} s")
    figure("container downtime during upgrade + rollback", f"{sum(watch.gaps()):.3f} s")
    figure("failed upgrade, rolled back: total", f"{report.seconds:.2f} s")
