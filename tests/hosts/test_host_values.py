"""Parts of the host layer that need no estate: Debian version order (against dpkg),
redaction, and the checks on configuration keys the target line removed."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from pitstop.catalog import load_catalog
from pitstop.hosts import debversion
from pitstop.hosts.connect import CommandFailed, HostCredentialsUnusable, LocalHost, SSHHost
from pitstop.hosts.containerd import ContainerdActuator, RuntimeFacts, SystemdDaemon
from pitstop.redact import redact_text as redact

PAIRS = [
    ("1.6.20~ds1-1+deb12u2", "1.6.20~ds1-1+deb12u3"),
    ("1.6.20~ds1-1+deb12u3", "1.6.20-1"),
    ("1.6.20", "1.6.20+b1"),
    ("1.0~rc1", "1.0"),
    ("1:0.1", "2.0"),
    ("1.2.3-1", "1.2.3-1"),
    ("1.10", "1.9"),
    ("1.0a", "1.0+"),
    ("1.0~~", "1.0~"),
    ("2.0-1", "2.0-1.1"),
    ("1.6.20~ds1-1+deb12u9", "1.6.20~ds1-1+deb12u10"),
]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_debian_order_matches_dpkg(a: str, b: str) -> None:
    ours = debversion.compare(a, b)
    if shutil.which("dpkg") is None:
        pytest.fail("dpkg is needed to check the ordering against the real thing")
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0
    eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0
    assert ours == (-1 if lt else 0 if eq else 1)
    assert debversion.compare(b, a) == -ours


def test_upstream_part() -> None:
    assert debversion.upstream("1.6.20~ds1-1+deb12u3") == "1.6.20"
    assert debversion.upstream("1:1.7.27-1") == "1.7.27"


@pytest.mark.parametrize(("text", "secret"), [
    ("mysql --password hunter2xyz db", "hunter2xyz"),
    ("export REGISTRY_TOKEN=abcdef123456", "abcdef123456"),
    ("curl https://bob:pa55word@registry.example/v2/", "pa55word"),
    ('{"client_secret": "s3cr3tvalue"}', "s3cr3tvalue"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
     "b3BlbnNzaC1rZXk"),
    ("mysql --user=root --password=hunter2xyz db", "hunter2xyz"),
    ("curl -H 'Authorization: Bearer eyJhbGci.payload.sig' http://x", "eyJhbGci.payload.sig"),
    ("GET /api failed with Bearer abc.def-ghi= (401)", "abc.def-ghi="),
    ("PGPASSWORD=s3cr3tpg psql -h db", "s3cr3tpg"),
    ("env x=password=inner-s3cret ./probe", "inner-s3cret"),
    ("aws s3 ls # AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
])
def test_redaction_removes_secret_looking_values(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "***" in out


@pytest.mark.parametrize("cmd", [
    "apt-get -q -y install containerd=1.6.20~ds1-1+deb12u3",
    "etcd --peer-key-file=/etc/etcd/peer.key --client-cert-auth=true",
    "3 gates passed: apiserver-ready, etcd-healthy",
    "keyFile: /etc/pitstop/client.key is not the key of /etc/pitstop/client.crt",
    "curl https://10.0.0.1:2379/health",
])
def test_redaction_keeps_ordinary_text(cmd: str) -> None:
    assert redact(cmd) == cmd


def test_redaction_of_declared_secrets() -> None:
    assert redact("value 0xfeed here", secrets=["0xfeed"]) == "value *** here"


def test_secrets_never_reach_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    host = LocalHost("here", secrets=["tok-4471-zz"])
    caplog.set_level(logging.DEBUG, logger="pitstop.hosts")
    with pytest.raises(CommandFailed) as err:
        host.run("echo using tok-4471-zz >&2; echo password=hunter2xyz >&2; exit 4",
                 timeout=10, check=True)
    assert err.value.result.exit_code == 4
    text = str(err.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert "tok-4471-zz" not in text and "hunter2xyz" not in text
    assert "***" in text
    # The caller still gets the real output on the result.
    assert "tok-4471-zz" in err.value.result.stderr


def _facts(config_keys: set[tuple[str, ...]], version: int = 2) -> RuntimeFacts:
    return RuntimeFacts(
        host="n1", runtime="containerd", package="containerd", installed="1.7.24-1",
        candidates=("2.0.4-1", "1.7.24-1"), held=(), daemon=None, daemon_error="down",
        address="/x.sock", config_path="/etc/containerd/config.toml", config_present=True,
        config_version=version, config_keys=frozenset(config_keys))


def test_check_finds_config_keys_the_target_line_removed() -> None:
    act = ContainerdActuator(SystemdDaemon(), catalog=load_catalog())
    cri = ("plugins", "io.containerd.grpc.v1.cri")
    facts = _facts({("version",), cri, (*cri, "systemd_cgroup"),
                    (*cri, "containerd", "runtimes", "runc", "runtime_root"),
                    (*cri, "containerd", "runtimes", "runc", "options", "SystemdCgroup")})
    problems = {p.code: p for p in act.check(facts, "2.0.4")}
    removed = problems["removed-config-keys"]
    assert "systemd_cgroup" in removed.message and "runtimes.runc.runtime_root" in removed.message
    assert "SystemdCgroup" not in removed.message
    # Staying on 1.7 is fine with the same file.
    assert "removed-config-keys" not in {p.code for p in act.check(facts, "1.7.24")}


def test_facts_read_a_real_config_file_in_either_version(tmp_path: Path) -> None:
    """facts() reads the file on the host (here: this machine) and names keys the way the
    catalog does, whether the file uses config version 1 or 2 names."""
    v1 = tmp_path / "v1.toml"
    v1.write_text('[plugins.cri]\n  systemd_cgroup = true\n')
    v2 = tmp_path / "v2.toml"
    v2.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
                  '  default_runtime_name = "runc"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("version = = 2\n")
    host = LocalHost()
    catalog = load_catalog()

    def facts(path: Path) -> RuntimeFacts:
        act = ContainerdActuator(SystemdDaemon(), catalog=catalog, config_path=str(path),
                                 address=str(tmp_path / "none.sock"))
        return act.facts(host)

    f1 = facts(v1)
    assert f1.config_version == 1
    assert ("plugins", "io.containerd.grpc.v1.cri", "systemd_cgroup") in f1.config_keys
    act = ContainerdActuator(SystemdDaemon(), catalog=catalog)
    assert "removed-config-keys" in {p.code for p in act.check(f1, "2.0.4")}
    f2 = facts(v2)
    assert f2.config_version == 2 and f2.daemon is None
    assert "removed-config-keys" not in {p.code for p in act.check(f2, "2.0.4")}
    f3 = facts(bad)
    assert "config-unreadable" in {p.code for p in act.check(f3, "2.0.4")}
    missing = facts(tmp_path / "absent.toml")
    assert not missing.config_present and not missing.config_error


def test_an_unusable_client_key_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """A malformed key used to escape SSHHost as asyncssh's KeyImportError (an internal error,
    exit 3): now it is a HostCredentialsUnusable naming the file, before any connection."""
    bad = tmp_path / "id_garbage"
    bad.write_text("this is not a key\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    with socket.socket() as s:  # a port nobody listens on: connecting would be refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = SSHHost("127.0.0.1", port=port, client_keys=[bad], known_hosts=known, name="n1")
    try:
        with pytest.raises(HostCredentialsUnusable) as err:
            host.run(["true"], timeout=10)
    finally:
        host.close()
    assert f"{bad} is not a private key SSH can read" in str(err.value)
    assert "Nothing was sent to the host" in str(err.value)


def test_a_failed_verify_command_reports_its_output_redacted() -> None:
    from pitstop.hosts.backend import _verify_command
    from pitstop.hosts.containerd import Snapshot
    from pitstop.model import VerifyCommand

    check = _verify_command(VerifyCommand(
        name="db", command="echo 'login failed for --password=hunter2xyz' >&2; exit 3"))
    problems = check(LocalHost("n1"), Snapshot("n1", 0.0, None, ()))
    assert len(problems) == 1 and "exited with 3" in problems[0].message
    assert "hunter2xyz" not in problems[0].message and "--password=***" in problems[0].message
