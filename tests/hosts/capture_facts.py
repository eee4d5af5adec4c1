"""Capture what the real tools print, for the parser tests (``test_facts_data.py``).

Not part of the suite (the name does not match ``test_*.py``): run it on purpose, as root,
under the hosts lock, when a tool's output may have changed or a new fact is added::

    flock /tmp/pitstop-hosts.lock .venv/bin/python -m pytest tests/hosts/capture_facts.py \\
        -p no:cacheprovider

Each capture runs the command pitstop runs (the builders of :mod:`pitstop.hosts.facts`) in the
same real estates the other host tests use (containerd, Docker Engine, etcd 3.4 and 3.5, dnf
and rpm in an installroot) and writes ``data/<tool>/<case>.txt`` (stdout, as printed) and the
facts of the run into ``data/<tool>/<case>.json``: the fact, its arguments, the command, the
exit code, stderr and what printed it. The expected value (``expected``, or ``raises`` with the
failure kind) is written by a person who read the output, never by this script: a case whose
sidecar lacks it fails ``test_facts_data.py`` until someone checks it. Re-capturing keeps it,
so a changed output shows as a failing case.

Every capture also asserts what the estate makes certain (an exit code, a build that must be
listed), so that a broken estate does not record nonsense.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pitstop.hosts import facts
from pitstop.hosts.connect import LocalHost
from pitstop.hosts.facts import Output, Printed
from pitstop.hosts.packages import Dnf, DnfRoot

from .docker_fixtures import DockerEstate, docker_estate
from .estate import Estate, apt_install, apt_mark, sh
from .etcdlib import NEW, OLD, MakeCluster, put
from .test_dnf import PKG, Repo, clean, dnf_tools, repo

__all__ = ["clean", "dnf_tools", "docker_estate", "repo"]  # fixtures used below

DATA = Path(__file__).parent / "data"
HOST = LocalHost()


def _version(package: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True,
                       text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else "?"


def _os() -> str:
    fields = facts.os_release_fields(Path("/etc/os-release").read_text())
    return f"{fields.get('PRETTY_NAME', platform.system())}, {platform.machine()}"


def record(tool: str, case: str, fact: str, out: Printed, command: Sequence[str] | str, *,
           printed_by: str, args: dict[str, Any] | None = None, note: str = "") -> Printed:
    """Write ``out`` as the case ``tool/case`` of ``fact``; keep a person's expectation."""
    assert fact in facts.FACTS, fact
    d = DATA / tool
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{case}.txt").write_text(out.stdout)
    side = d / f"{case}.json"
    old = json.loads(side.read_text()) if side.exists() else {}
    doc: dict[str, Any] = {
        "fact": fact,
        "args": args or {},
        "command": command if isinstance(command, str) else shlex.join(command),
        "exitCode": out.exit_code,
        "stderr": out.stderr,
        "captured": f"{printed_by}; {_os()}; {time.strftime('%Y-%m-%d')}; "
                    "tests/hosts/capture_facts.py",
    }
    if note:
        doc["note"] = note
    for keep in ("expected", "expectedFields", "expectedMembers", "raises", "note"):
        if keep in old and keep not in doc:
            doc[keep] = old[keep]
    side.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return out


def run(argv: Sequence[str] | str, *, env: dict[str, str] | None = None,
        timeout: float = 120) -> Output:
    """The command as pitstop runs it on a host (LocalHost: argv, or ``sh -c``), or, with
    ``env``, as the etcd actuator runs etcdctl (``ETCDCTL_API=3``)."""
    if env is None:
        r = HOST.run(argv if isinstance(argv, str) else list(argv), timeout=timeout)
        return Output(r.stdout, r.stderr, r.exit_code)
    p = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout,
                       check=False)
    return Output(p.stdout, p.stderr, p.returncode)


def capture(tool: str, case: str, fact: str, argv: Sequence[str] | str, *, printed_by: str,
            args: dict[str, Any] | None = None, env: dict[str, str] | None = None,
            exit_code: int | None = 0, note: str = "") -> Output:
    out = run(argv, env=env)
    if exit_code is not None:
        assert out.exit_code == exit_code, (argv, out)
    record(tool, case, fact, out, argv, printed_by=printed_by, args=args, note=note)
    return out


def _gone_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


@contextlib.contextmanager
def _dpkg_lock_held() -> Iterator[None]:
    """Hold dpkg's frontend lock the way apt takes it (a POSIX write lock)."""
    fd = os.open("/var/lib/dpkg/lock-frontend", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------


def test_capture_apt_containerd_and_processes(estate: Estate, tmp_path: Path) -> None:
    estate.reset()
    apt = f"apt {_version('apt')}, dpkg {_version('dpkg')}"
    ctrd = f"containerd {_version('containerd')}"
    c = estate.containerd

    out = capture("apt", "dpkg-installed", "dpkg-query status",
                  facts.dpkg_status_command("containerd"), printed_by=apt)
    assert estate.from_version in out.stdout
    capture("apt", "dpkg-unknown-package", "dpkg-query status",
            facts.dpkg_status_command("pitstop-no-such-package"), printed_by=apt, exit_code=1)
    out = capture("apt", "madison-two-builds", "apt-cache madison",
                  facts.madison_command("containerd"), printed_by=apt,
                  args={"package": "containerd"})
    assert estate.to_version in out.stdout and estate.from_version in out.stdout
    capture("apt", "madison-no-candidate", "apt-cache madison",
            facts.madison_command("pitstop-no-such-package"), printed_by=apt,
            args={"package": "pitstop-no-such-package"})
    capture("apt", "showhold-none", "apt-mark showhold", facts.showhold_command(["containerd"]),
            printed_by=apt, args={"packages": ["containerd"]})
    apt_mark("hold", "containerd")
    try:
        capture("apt", "showhold-held", "apt-mark showhold",
                facts.showhold_command(["containerd", "runc"]), printed_by=apt,
                args={"packages": ["containerd", "runc"]})
        out = capture("apt", "dpkg-held", "dpkg-query status",
                      facts.dpkg_status_command("containerd"), printed_by=apt)
        assert out.stdout.startswith("hi")
    finally:
        apt_mark("unhold", "containerd")
    capture("apt", "check-ok", "apt-get check", facts.apt_check_command(30), printed_by=apt)
    with _dpkg_lock_held():
        out = capture("apt", "check-locked", "apt-get check", facts.apt_check_command(1),
                      printed_by=f"{apt}, dpkg's frontend lock held", exit_code=None)
        assert out.exit_code != 0 and "lock" in out.stderr, out
    capture("os", "debian-12", "os-release", facts.OS_RELEASE_COMMAND,
            printed_by="cat /etc/os-release")

    ctr = ["ctr", c.address]
    out = capture("ctr", "version", "ctr version", facts.ctr_command(*ctr, "version"),
                  printed_by=ctrd)
    capture("ctr", "version-no-daemon", "ctr version",
            facts.ctr_command("ctr", str(tmp_path / "absent.sock"), "version"), printed_by=ctrd,
            exit_code=1)
    capture("ctr", "namespaces", "ctr namespaces ls", facts.ctr_command(*ctr, "namespaces", "ls",
                                                                        "-q"), printed_by=ctrd)
    out = capture("ctr", "tasks-running", "ctr task ls",
                  facts.ctr_command(*ctr, "task", "ls", namespace=c.namespace), printed_by=ctrd)
    assert c.container in out.stdout
    capture("ctr", "tasks-none", "ctr task ls",
            facts.ctr_command(*ctr, "task", "ls", namespace="pitstop-capture-empty"),
            printed_by=ctrd)

    daemon = c.daemon_pid()
    assert daemon is not None
    shim = int(Path(f"/proc/{c.container_pid}/stat").read_text().rpartition(")")[2].split()[1])
    capture("proc", "stat", "/proc/PID/stat",
            facts.proc_stat_script([c.container_pid, shim, _gone_pid()]),
            printed_by=f"cat /proc/PID/stat, Linux {platform.release()}")
    capture("proc", "cmdline", "/proc/PID/cmdline", facts.proc_cmdline_script([shim, daemon]),
            printed_by=f"tr < /proc/PID/cmdline, Linux {platform.release()}")
    capture("proc", "exe-current", "readlink /proc/PID/exe", facts.exe_command(daemon),
            printed_by="readlink (coreutils)")
    capture("proc", "systemctl-without-systemd", "systemctl show MainPID",
            facts.systemd_main_pid_command("containerd"),
            printed_by=f"systemctl {_version('systemd')}, no systemd running", exit_code=None)
    capture("kubelet", "no-kubelet", "kubelet --version", facts.KUBELET_VERSION_COMMAND,
            printed_by="sh, no kubelet installed", exit_code=200)

    capture("containerd", "config-v2", "containerd config", facts.cat_command(c.config),
            printed_by="cat of the estate's config.toml", args={"path": c.config})
    default = tmp_path / "config.toml"
    default.write_text(sh(["containerd", "config", "default"]).stdout)
    capture("containerd", "config-default", "containerd config", facts.cat_command(str(default)),
            printed_by=f"cat of the output of `containerd config default`, {ctrd}",
            args={"path": str(default)})
    capture("containerd", "config-missing", "containerd config",
            facts.cat_command(str(tmp_path / "absent.toml")), printed_by="cat (coreutils)",
            args={"path": str(tmp_path / "absent.toml")}, exit_code=1)
    capture("containerd", "config-a-directory", "containerd config",
            facts.cat_command(str(tmp_path)), printed_by="cat (coreutils)",
            args={"path": str(tmp_path)}, exit_code=1)
    for case, text in (("config-v1", "[plugins.cri]\n  systemd_cgroup = true\n"
                                     "[plugins.cri.containerd.runtimes.runc]\n"
                                     "  runtime_root = \"/run/runc\"\n"),
                       ("config-not-toml", "version = = 2\n")):
        f = tmp_path / f"{case}.toml"
        f.write_text(text)
        capture("containerd", case, "containerd config", facts.cat_command(str(f)),
                printed_by="cat (coreutils) of a hand-written file", args={"path": str(f)},
                note="hand-written file content (cat printed it): "
                + ("a config version 1 file, which containerd 1.6 no longer writes"
                   if case == "config-v1" else "a file that is not TOML"))

    # A daemon still running the binary the package manager just replaced.
    apt_install(f"containerd={estate.to_version}")
    try:
        out = capture("proc", "exe-replaced", "readlink /proc/PID/exe", facts.exe_command(daemon),
                      printed_by="readlink (coreutils), containerd upgraded under the daemon")
        assert out.stdout.strip().endswith("(deleted)")
    finally:
        estate.reset()


def test_capture_docker(docker_estate: DockerEstate, tmp_path: Path) -> None:
    docker_estate.reset()
    d = docker_estate.dockerd
    by = f"docker.io {_version('docker.io')}"
    cli = ("docker", d.address)
    capture("docker", "version", "docker version",
            facts.docker_command(*cli, *facts.DOCKER_VERSION_ARGS), printed_by=by)
    capture("docker", "version-no-daemon", "docker version",
            facts.docker_command("docker", str(tmp_path / "absent.sock"),
                                 *facts.DOCKER_VERSION_ARGS), printed_by=by, exit_code=1)
    capture("docker", "info-live-restore", "docker info",
            facts.docker_command(*cli, *facts.DOCKER_INFO_ARGS), printed_by=by)
    out = capture("docker", "ps", "docker ps", facts.docker_command(*cli, *facts.DOCKER_PS_ARGS),
                  printed_by=by)
    ids = out.stdout.split()
    assert d.container_id in ids
    capture("docker", "inspect", "docker inspect",
            facts.docker_command(*cli, *facts.docker_inspect_args(ids)), printed_by=by)
    gone = "0" * 64
    capture("docker", "inspect-one-gone", "docker inspect",
            facts.docker_command(*cli, *facts.docker_inspect_args([gone, *ids])), printed_by=by,
            exit_code=1)
    capture("docker", "inspect-all-gone", "docker inspect",
            facts.docker_command(*cli, *facts.docker_inspect_args([gone])), printed_by=by,
            exit_code=1)
    capture("docker", "daemon-json", "docker daemon.json", facts.cat_command(d.config),
            printed_by="cat of the estate's daemon.json", args={"path": d.config})
    out = capture("apt", "madison-local-repository", "apt-cache madison",
                  facts.madison_command("docker.io"), printed_by=f"apt {_version('apt')}",
                  args={"package": "docker.io"})
    assert docker_estate.to_version in out.stdout


def test_capture_etcd(make_cluster: MakeCluster, etcd_binaries: dict[str, Path],
                      tmp_path: Path) -> None:
    env = {**os.environ, "ETCDCTL_API": "3"}
    for version in (OLD, NEW):
        capture("etcd", f"version-{version}", "etcd --version",
                facts.etcd_version_command(str(etcd_binaries[version] / "etcd")),
                printed_by=f"etcd {version}", env=env)

    def ctl(version: str, endpoints: list[str], *args: str) -> list[str]:
        return facts.etcdctl_command(str(etcd_binaries[version] / "etcdctl"), endpoints, *args,
                                     dial_timeout=2, command_timeout=3)

    for server in (OLD, NEW):
        live = make_cluster(server)
        urls = [m.client_url for m in live.cluster.members]
        put(urls[0], "/capture/a", "1")
        by = f"etcdctl {NEW} against etcd {server} members"
        capture("etcdctl", f"status-{server}", "etcdctl endpoint status",
                ctl(NEW, urls[:1], *facts.ENDPOINT_STATUS_ARGS), printed_by=by, env=env)
        capture("etcdctl", f"health-{server}", "etcdctl endpoint health",
                ctl(NEW, urls[:1], *facts.ENDPOINT_HEALTH_ARGS), printed_by=by, env=env)
        capture("etcdctl", f"member-list-{server}", "etcdctl member list",
                ctl(NEW, urls, *facts.MEMBER_LIST_ARGS), printed_by=by, env=env)
        capture("etcdctl", f"alarm-none-{server}", "etcdctl alarm list",
                ctl(NEW, urls, *facts.ALARM_LIST_ARGS), printed_by=by, env=env)
        status = facts.parse_endpoint_status(run(ctl(NEW, urls[:1], *facts.ENDPOINT_STATUS_ARGS),
                                                 env=env))
        capture("etcdctl", f"hashkv-{server}", "etcdctl endpoint hashkv",
                ctl(NEW, urls[:1], *facts.hashkv_args(status.revision)), printed_by=by, env=env)
        capture("etcdctl", f"get-count-{server}", "etcdctl get count",
                ctl(NEW, urls[:1], *facts.key_count_args(status.revision)), printed_by=by,
                env=env)
        snap = tmp_path / f"snap-{server}.db"
        sh([str(etcd_binaries[NEW] / "etcdctl"), "--endpoints", urls[0], "snapshot", "save",
            str(snap)])
        capture("etcdutl", f"snapshot-status-{server}", "snapshot status",
                facts.snapshot_status_command(str(etcd_binaries[NEW] / "etcdutl"), str(snap)),
                printed_by=f"etcdutl {NEW}, a snapshot of etcd {server}", env=env)
        if server == OLD:
            capture("etcdutl", "snapshot-status-etcdctl-3.4", "snapshot status",
                    facts.snapshot_status_command(str(etcd_binaries[OLD] / "etcdctl"),
                                                  str(snap)),
                    printed_by=f"etcdctl {OLD}, a snapshot of etcd {server}", env=env)
            damaged = tmp_path / "damaged.db"
            damaged.write_bytes(snap.read_bytes()[:4096])
            capture("etcdutl", "snapshot-status-truncated", "snapshot status",
                    facts.snapshot_status_command(str(etcd_binaries[NEW] / "etcdutl"),
                                                  str(damaged)),
                    printed_by=f"etcdutl {NEW}, the first 4 KiB of a snapshot", env=env,
                    exit_code=None)
            # A member that is down: what etcdctl says for it.
            live.control.stop(live.cluster.members[2])
            capture("etcdctl", "status-member-down", "etcdctl endpoint status",
                    ctl(NEW, urls[2:], *facts.ENDPOINT_STATUS_ARGS),
                    printed_by=f"etcdctl {NEW}, the member's process stopped", env=env,
                    exit_code=1)
            capture("etcdctl", "health-member-down", "etcdctl endpoint health",
                    ctl(NEW, urls[2:], *facts.ENDPOINT_HEALTH_ARGS),
                    printed_by=f"etcdctl {NEW}, the member's process stopped", env=env,
                    exit_code=1)
        live.actuator.stop_members()

    # NOSPACE: a small quota filled up (as test_etcd_gates does).
    live = make_cluster(OLD, quota_backend_bytes=2 * 1024 * 1024)
    url = live.cluster.members[0].client_url
    for i in range(200):
        try:
            put(url, f"/big/{i}", "x" * 64 * 1024)
        except OSError:  # urllib's HTTPError: "database space exceeded"
            break
    urls = [m.client_url for m in live.cluster.members]
    out = capture("etcdctl", "alarm-nospace", "etcdctl alarm list",
                  ctl(NEW, urls, *facts.ALARM_LIST_ARGS),
                  printed_by=f"etcdctl {NEW} against etcd {OLD}, the quota filled", env=env)
    assert "alarm" in out.stdout


def test_capture_dnf(clean: Repo, tmp_path: Path) -> None:
    by = f"dnf {_version('dnf')}, rpm {_version('rpm')} (Debian's), in an installroot"
    dnf = Dnf(clean.root)
    rpm, q = dnf._rpm(), dnf._dnf()
    capture("rpm", "not-installed", "rpm -q", facts.rpm_installed_command(PKG, rpm),
            printed_by=by, args={"package": PKG}, exit_code=1)
    capture("dnf", "repoquery-none-installed", "dnf repoquery", facts.repoquery_command(PKG, q),
            printed_by=by, args={"package": PKG})
    capture("dnf", "repoquery-unknown", "dnf repoquery",
            facts.repoquery_command("pitstop-no-such-package", q), printed_by=by,
            args={"package": "pitstop-no-such-package"})
    capture("dnf", "versionlock-empty", "dnf versionlock list", facts.versionlock_list_command(q),
            printed_by=by)
    capture("dnf", "versionlock-no-plugin", "dnf versionlock list",
            facts.versionlock_list_command([*q, "--disableplugin=versionlock"]), printed_by=by,
            exit_code=None)
    capture("dnf", "check-ok", "dnf check --duplicates", facts.dnf_check_command(q),
            printed_by=by)
    capture("dnf", "config-dump-repositories", "dnf config-manager --dump",
            facts.config_dump_command(q, repositories=True), printed_by=by)

    dnf.install(HOST, PKG, "1.0-1", timeout=300)
    capture("rpm", "installed", "rpm -q", facts.rpm_installed_command(PKG, rpm), printed_by=by,
            args={"package": PKG})
    capture("dnf", "repoquery-one-installed", "dnf repoquery", facts.repoquery_command(PKG, q),
            printed_by=by, args={"package": PKG})
    clean.dnf("versionlock", "add", PKG)
    capture("dnf", "versionlock-pinned", "dnf versionlock list",
            facts.versionlock_list_command(q), printed_by=by)
    clean.dnf("versionlock", "clear")
    clean.dnf("versionlock", "exclude", f"{PKG}-1.0-2")
    capture("dnf", "versionlock-exclude", "dnf versionlock list",
            facts.versionlock_list_command(q), printed_by=by)
    clean.dnf("versionlock", "clear")
    dnf.install(HOST, PKG, "1:0.9-1", timeout=300)
    capture("rpm", "installed-epoch", "rpm -q", facts.rpm_installed_command(PKG, rpm),
            printed_by=by, args={"package": PKG})

    conf = tmp_path / "dnf-exclude.conf"
    conf.write_text(f"[main]\ngpgcheck=0\nexclude=foo* {PKG}\n")
    excl = Dnf(DnfRoot(clean.root.installroot, reposdir=clean.root.reposdir, config=str(conf),
                       pluginconfpath=clean.root.pluginconfpath, releasever="1"))
    capture("dnf", "config-dump-main-exclude", "dnf config-manager --dump",
            facts.config_dump_command(excl._dnf()),
            printed_by=f"{by}, a dnf.conf with exclude=")
    repo_file = clean.dir / "repos.d" / "pitstop.repo"
    text = repo_file.read_text()
    repo_file.write_text(text + f"excludepkgs={PKG}-1.0*\n")
    try:
        capture("dnf", "config-dump-repository-exclude", "dnf config-manager --dump",
                facts.config_dump_command(q, repositories=True),
                printed_by=f"{by}, a repository with excludepkgs=")
    finally:
        repo_file.write_text(text)
    (tmp_path / "no-repos").mkdir()
    bare = Dnf(DnfRoot(clean.root.installroot, reposdir=str(tmp_path / "no-repos"),
                       pluginconfpath=clean.root.pluginconfpath, releasever="1"))
    capture("dnf", "config-dump-no-repositories", "dnf config-manager --dump",
            facts.config_dump_command(bare._dnf(), repositories=True),
            printed_by=f"{by}, no repository configured", exit_code=None)
    clean.reset()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-p", "no:cacheprovider", "-q"]))
