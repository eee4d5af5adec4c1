"""Host connectors against real components: local processes, and a real OpenSSH server on
127.0.0.1 (the estate's private sshd: its own host key, key authentication, known_hosts)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pitstop.hosts.connect import (
    CommandFailed,
    CommandTimeout,
    HostAuthFailed,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    LocalHost,
    SSHHost,
    run_many,
)

from .estate import Estate, free_port, pid_alive, sh


def test_local_run_captures_exit_code_and_output() -> None:
    host = LocalHost()
    r = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert 0 <= r.duration < 10
    with pytest.raises(CommandFailed, match="exited with 3: err"):
        host.run("echo err >&2; exit 3", timeout=10, check=True)
    assert host.run(["no-such-command-pitstop"], timeout=10).exit_code == 127


def test_local_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"did not finish within 0\.5s"):
        LocalHost().run(f"sleep 60 & echo $! > {pid_file}; wait", timeout=0.5)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child)


def test_ssh_runs_commands_with_exit_codes_and_output(ssh: SSHHost) -> None:
    r = ssh.run(["sh", "-c", "echo 'a b'; echo oops >&2; exit 5"], timeout=20)
    assert (r.exit_code, r.stdout, r.stderr) == (5, "a b\n", "oops\n")
    assert ssh.run(["id", "-u"], timeout=20, sudo=True, check=True).stdout.strip() == "0"
    # Arguments are quoted for the remote shell: nothing is interpreted twice.
    assert ssh.run(["echo", "$HOME; rm -rf /nonexistent"], timeout=20).stdout == \
        "$HOME; rm -rf /nonexistent\n"
    with pytest.raises(CommandFailed, match="node-a: `false` exited with 1"):
        ssh.run(["false"], timeout=20, check=True)


def test_ssh_timeout_kills_the_remote_command(ssh: SSHHost, tmp_path: Path) -> None:
    pid_file = tmp_path / "remote-pid"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within 1s"):
        ssh.run(f"echo $$ > {pid_file}; exec sleep 60", timeout=1)
    assert time.monotonic() - started < 15
    remote = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while pid_alive(remote) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(remote), "the remote command outlived its timeout"
    # The connection is still usable.
    assert ssh.run(["true"], timeout=20).ok


def test_unknown_host_key_is_refused_with_a_way_to_add_it(estate: Estate, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = SSHHost("127.0.0.1", port=estate.sshd.port, client_keys=[estate.sshd.client_key],
                   known_hosts=empty, name="stranger")
    with pytest.raises(HostKeyUnknown) as err:
        host.run(["touch", str(tmp_path / "ran")], timeout=20)
    msg = str(err.value)
    assert "127.0.0.1 port" in msg and str(empty) in msg
    assert f"ssh-keyscan -p {estate.sshd.port} 127.0.0.1" in msg and "ssh-keygen -lf" in msg
    fingerprint = sh(["ssh-keygen", "-lf", f"{estate.sshd.host_key}.pub"]).stdout.split()[1]
    assert fingerprint in msg  # what the host presented, to compare out of band
    assert not (tmp_path / "ran").exists()
    # A known_hosts file that does not exist is no different.
    with pytest.raises(HostKeyUnknown, match="does not exist"):
        SSHHost("127.0.0.1", port=estate.sshd.port, client_keys=[estate.sshd.client_key],
                known_hosts=tmp_path / "absent").run(["true"], timeout=20)


def test_changed_host_key_is_refused(estate: Estate, tmp_path: Path) -> None:
    other = tmp_path / "other"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{estate.sshd.port} "
                  + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    host = SSHHost("127.0.0.1", port=estate.sshd.port, client_keys=[estate.sshd.client_key],
                   known_hosts=kh)
    with pytest.raises(HostKeyMismatch, match="does not match the key recorded"):
        host.run(["true"], timeout=20)


def test_unreachable_host(estate: Estate) -> None:
    port = free_port()  # nothing listens there
    host = SSHHost("127.0.0.1", port=port, client_keys=[estate.sshd.client_key],
                   known_hosts=estate.sshd.known_hosts, connect_timeout=5)
    with pytest.raises(HostUnreachable, match=f"cannot connect to 127.0.0.1 port {port}"):
        host.run(["true"], timeout=10)


def test_wrong_client_key_is_an_auth_failure(estate: Estate, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)])
    host = SSHHost("127.0.0.1", port=estate.sshd.port, client_keys=[stranger],
                   known_hosts=estate.sshd.known_hosts)
    with pytest.raises(HostAuthFailed, match="refused authentication as 'root'"):
        host.run(["true"], timeout=20)


def test_run_many_is_bounded_and_keeps_going_past_failures(estate: Estate) -> None:
    def make(i: int, port: int) -> SSHHost:
        return SSHHost("127.0.0.1", port=port, client_keys=[estate.sshd.client_key],
                       known_hosts=estate.sshd.known_hosts, name=f"h{i}", connect_timeout=5)

    hosts = [make(i, estate.sshd.port) for i in range(7)]
    hosts.insert(3, make(99, free_port()))
    lock = threading.Lock()
    active = peak = 0

    def work(host: SSHHost) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return host.run("sleep 0.3; hostname", timeout=20, check=True).stdout.strip()
        finally:
            with lock:
                active -= 1
            host.close()

    out = run_many(hosts, work, limit=3)
    assert [o.host.name for o in out] == [h.name for h in hosts]
    assert [o.ok for o in out] == [True, True, True, False, True, True, True, True]
    assert isinstance(out[3].error, HostUnreachable)
    assert all(o.value for o in out if o.ok)
    assert peak == 3  # ran in parallel, never more than the limit at once
