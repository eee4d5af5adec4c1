"""The dnf package manager (:class:`pitstop.hosts.packages.Dnf`) against the real dnf and rpm.

This Debian machine gets Debian's ``dnf``, ``rpm``, ``createrepo-c`` and ``dnf-plugins-core``
(the versionlock and config-manager commands) when it lacks them; they are purged afterwards.
The test builds a containerd-like ``pitstop-dummy`` at ``1.0-1``, ``1.0-2`` and ``1:0.9-1``
(an epoch) with ``rpmbuild``, a repository with ``createrepo_c``, and drives ``Dnf`` in an
installroot (:class:`DnfRoot`: the configuration meant for tests and chroots) with its own
repository directory, plugin configuration and versionlock list, through the local connector
and through SSH (a private sshd on 127.0.0.1, as the estate starts one). Nothing outside the
temp dir is changed but the packages, which tear-down puts back; files dnf or rpm create on the
host itself (``~/.rpmdb``, ``/var/cache/dnf``…) are removed when they were not there before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pitstop.hosts import rpmversion
from pitstop.hosts.connect import CommandResult, Host, LocalHost, SSHHost
from pitstop.hosts.packages import (
    Apt,
    Detected,
    Dnf,
    DnfRoot,
    PackageHeld,
    UnsupportedHost,
    VersionNotOffered,
    detect,
    from_os_release,
    package_manager,
)
from pitstop.model.hosts import HostNode

from .estate import APT, Estate, EstateError, Sshd, dpkg_config_only, dpkg_installed, sh
from .estate import LOCK_NAME as ESTATE_LOCK
from .test_rpmversion import EVR, RPMVERCMP

TOOLS = ("dnf", "rpm", "createrepo-c", "dnf-plugins-core", "openssh-server")
LOCK_NAME = "\0pitstop-dnf-tests"
HOSTS_LOCK = ESTATE_LOCK  # the containerd estate's
PKG = "pitstop-dummy"
# Paths dnf or rpm may create on the host itself, even when they work in an installroot.
HOST_PATHS = (str(Path.home() / ".rpmdb"), "/var/cache/dnf", "/var/lib/dnf", "/var/log/dnf.log",
              "/var/log/dnf.librepo.log", "/var/log/dnf.rpm.log", "/var/log/hawkey.log",
              "/var/lib/rpm", str(Path.home() / "rpmbuild"))

SPEC = """\
Name: pitstop-dummy
Epoch: %{pe}
Version: %{pv}
Release: %{pr}
Summary: a containerd-like package for the pitstop tests
License: MIT
BuildArch: noarch
%description
Carries its build string in /usr/share/pitstop-dummy/build.
%install
mkdir -p %{buildroot}/usr/share/pitstop-dummy
echo %{epoch}:%{version}-%{release} > %{buildroot}/usr/share/pitstop-dummy/build
%files
/usr/share/pitstop-dummy/build
"""


def _held_here(name: str) -> bool:
    """This process has a socket bound to the abstract name ``name``."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                mine.add(link[8:-1])
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[7] == "@" + name[1:] and cols[6] in mine:
            return True
    return False


def _lock(name: str) -> socket.socket:
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 1800
    while True:
        try:
            lock.bind(name)
            return lock
        except OSError:
            if time.monotonic() > deadline:
                lock.close()
                raise EstateError(f"another session holds @{name[1:]}") from None
            time.sleep(1)


@pytest.fixture(scope="module")
def dnf_tools() -> Iterator[None]:
    """dnf, rpm, createrepo_c, the dnf plugins and sshd; what was missing is purged after."""
    if os.geteuid() != 0:
        pytest.fail("the dnf tests install Debian packages: run them as root", pytrace=False)
    lock = _lock(LOCK_NAME)
    # openssh-server is the containerd estate's too: install or purge it only while holding
    # the estate's lock, unless this very process holds it (the estate is up in this session
    # and has sshd installed).
    hosts_lock = None
    if "openssh-server" not in dpkg_installed() and not _held_here(HOSTS_LOCK):
        hosts_lock = _lock(HOSTS_LOCK)
    before = dpkg_installed()
    config_only = dpkg_config_only()
    paths_before = {p for p in HOST_PATHS if os.path.lexists(p)}
    missing = [p for p in TOOLS if p not in before]
    ours: list[str] = []
    try:
        if missing:
            if "Candidate: (none)" in sh(["apt-cache", "policy", *missing]).stdout:
                sh([*APT, "update"])
            plan = sh([*APT, "-s", "--no-install-recommends", "install", *missing]).stdout
            ours = sorted({m.group(1) for m in re.finditer(r"(?m)^Inst (\S+)", plan)}
                          - set(dpkg_installed()))
            sh([*APT, "--no-install-recommends", "install", *missing])
            print(f"dnf tests: installed {' '.join(ours)}")
        yield
    finally:
        try:
            left = [p for p in ours if p in dpkg_installed()]
            safe = Estate._safe_to_purge(left)
            if [p for p in safe if p not in config_only]:
                sh([*APT, "purge", *[p for p in safe if p not in config_only]])
            if [p for p in safe if p in config_only]:
                sh([*APT, "remove", *[p for p in safe if p in config_only]])
            if set(left) - set(safe):
                print(f"dnf tests: left installed (needed by packages installed meanwhile): "
                      f"{' '.join(sorted(set(left) - set(safe)))}")
            for p in HOST_PATHS:
                if p not in paths_before and os.path.lexists(p):
                    shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        finally:
            lock.close()
            if hosts_lock is not None:
                hosts_lock.close()


@dataclass
class Repo:
    dir: Path
    root: DnfRoot
    locklist: Path

    def dnf(self, *args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
        cfg = [f"--config={config}"] if config else []
        return sh(["dnf", "-q", "-y", *self.root.dnf_args(), *cfg, *args])

    def installed(self) -> str | None:
        """EPOCH:VERSION-RELEASE as rpm reads it (the 1.0 builds say Epoch: 0)."""
        r = sh(["rpm", "--root", self.root.installroot, "-q", "--qf",
                "%{EPOCHNUM}:%{VERSION}-%{RELEASE}", PKG], check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def history(self) -> str:
        return self.dnf("history", "list").stdout

    def reset(self) -> None:
        """No package in the installroot, no lock."""
        self.locklist.write_text("")
        if self.installed() is not None:
            self.dnf("remove", PKG)


@pytest.fixture(scope="module")
def repo(dnf_tools: None) -> Iterator[Repo]:
    """Three builds of pitstop-dummy in a local rpm-md repository, an empty installroot, and
    dnf configuration for both, all in a temp dir."""
    d = Path(tempfile.mkdtemp(prefix="pitstop-dnf-"))
    try:
        (d / "dummy.spec").write_text(SPEC)
        for epoch, version, release in (("0", "1.0", "1"), ("0", "1.0", "2"), ("1", "0.9", "1")):
            sh(["rpmbuild", "-bb", "--define", f"_topdir {d / 'build'}",
                "--define", f"_rpmdir {d / 'repo'}", "--define", f"pe {epoch}",
                "--define", f"pv {version}", "--define", f"pr {release}", str(d / "dummy.spec")])
        sh(["createrepo_c", "-q", str(d / "repo")])
        (d / "repos.d").mkdir()
        (d / "repos.d" / "pitstop.repo").write_text(
            f"[pitstop-test]\nname=pitstop test\nbaseurl=file://{d / 'repo'}\ngpgcheck=0\n"
            "enabled=1\nmetadata_expire=0\n")
        plugins = d / "plugins"
        plugins.mkdir()
        locklist = d / "versionlock.list"
        locklist.write_text("")
        (plugins / "versionlock.conf").write_text(f"[main]\nenabled=1\nlocklist={locklist}\n")
        # Debian's dnf-plugins-core enables the "local" plugin, which copies every installed
        # package into a repository on the host: not in these tests.
        (plugins / "local.conf").write_text("[main]\nenabled=0\n")
        (d / "root").mkdir()
        root = DnfRoot(str(d / "root"), reposdir=str(d / "repos.d"),
                       pluginconfpath=str(plugins), releasever="1")
        yield Repo(d, root, locklist)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def clean(repo: Repo) -> Repo:
    repo.reset()
    return repo


@pytest.fixture
def ssh_host(dnf_tools: None) -> Iterator[SSHHost]:
    d = Path(tempfile.mkdtemp(prefix="pitstop-dnf-ssh-"))
    sshd = Sshd(d)
    try:
        sshd.start()
        host = SSHHost("127.0.0.1", port=sshd.port, user="root", client_keys=[sshd.client_key],
                       known_hosts=sshd.known_hosts, name="rhel-a")
        try:
            yield host
        finally:
            host.close()
    finally:
        sshd.stop()
        shutil.rmtree(d, ignore_errors=True)


def _flow(host: Host, repo: Repo) -> None:
    """facts, install the older build, upgrade, roll back, each checked in the rpm db."""
    dnf = Dnf(repo.root)
    assert dnf.installed(host, PKG) is None
    assert dnf.candidates(host, PKG) == ("1:0.9-1", "1.0-2", "1.0-1")
    assert dnf.held(host, (PKG,)) == ()
    assert dnf.wait_idle(host, 30) == ""

    dnf.install(host, PKG, "1.0-1", timeout=300)
    assert (dnf.installed(host, PKG), repo.installed()) == ("1.0-1", "0:1.0-1")
    dnf.install(host, PKG, "1.0-2", timeout=300)
    assert (dnf.installed(host, PKG), repo.installed()) == ("1.0-2", "0:1.0-2")
    # The rollback: a lower version goes through `dnf downgrade`.
    dnf.install(host, PKG, "1.0-1", timeout=300)
    assert dnf.installed(host, PKG) == "1.0-1"
    actions = [ln.split("|")[3].strip() for ln in repo.history().splitlines()[2:5]]
    assert actions == ["Downgrade", "Upgrade", "Install"], repo.history()
    # The same build again changes nothing.
    dnf.install(host, PKG, "1.0-1", timeout=300)
    assert dnf.installed(host, PKG) == "1.0-1"
    # An epoch wins over the version.
    dnf.install(host, PKG, "1:0.9-1", timeout=300)
    assert dnf.installed(host, PKG) == "1:0.9-1" == repo.installed()
    assert Path(repo.root.installroot, "usr/share/pitstop-dummy/build").read_text() == \
        "1:0.9-1\n"
    assert dnf.wait_idle(host, 30) == ""


def test_dnf_facts_install_upgrade_and_rollback_locally(clean: Repo) -> None:
    _flow(LocalHost(), clean)


def test_dnf_flow_over_ssh(clean: Repo, ssh_host: SSHHost) -> None:
    _flow(ssh_host, clean)


def test_versionlock_holds_the_package_and_the_install_is_refused(clean: Repo) -> None:
    host = LocalHost()
    dnf = Dnf(clean.root)
    dnf.install(host, PKG, "1.0-1", timeout=300)
    clean.dnf("versionlock", "add", PKG)
    assert dnf.held(host, (PKG, "containerd")) == (PKG,)
    assert dnf.holds(host, (PKG,)) == {PKG: [f"versionlock: {PKG}-0:1.0-1.*"]}
    # The repositories still offer every build: the hold is reported as a hold.
    assert dnf.candidates(host, PKG) == ("1:0.9-1", "1.0-2", "1.0-1")
    with pytest.raises(PackageHeld) as err:
        dnf.install(host, PKG, "1.0-2", timeout=300)
    assert str(err.value) == (
        f"localhost: package {PKG} is held (versionlock: {PKG}-0:1.0-1.*); pitstop does not "
        f"override holds. Fix: if the upgrade is intended, release it (`dnf versionlock delete "
        f"{PKG}`).")
    assert clean.installed() == "0:1.0-1"
    # dnf itself would refuse too: the lock is real, not only pitstop's reading of it.
    r = sh(["dnf", "-q", "-y", *clean.root.dnf_args(), "install", f"{PKG}-1.0-2"], check=False)
    assert r.returncode != 0 and clean.installed() == "0:1.0-1"
    # An exclude entry (`versionlock exclude`) holds it as well.
    clean.dnf("versionlock", "clear")
    clean.dnf("versionlock", "exclude", f"{PKG}-1.0-2")
    assert dnf.holds(host, (PKG,)) == {PKG: [f"versionlock exclude: !{PKG}-0:1.0-2.*"]}
    clean.dnf("versionlock", "clear")
    assert dnf.held(host, (PKG,)) == ()
    dnf.install(host, PKG, "1.0-2", timeout=300)
    assert clean.installed() == "0:1.0-2"


def test_exclude_in_dnf_conf_holds_the_package(clean: Repo) -> None:
    host = LocalHost()
    conf = clean.dir / "dnf-exclude.conf"
    conf.write_text(f"[main]\ngpgcheck=0\nexclude=foo* {PKG}\n")
    root = DnfRoot(clean.root.installroot, reposdir=clean.root.reposdir, config=str(conf),
                   pluginconfpath=clean.root.pluginconfpath, releasever="1")
    dnf = Dnf(root)
    assert dnf.holds(host, (PKG, "foobar", "bar")) == {
        PKG: [f"exclude in [main]: {PKG}"], "foobar": ["exclude in [main]: foo*"]}
    assert dnf.candidates(host, PKG) == ("1:0.9-1", "1.0-2", "1.0-1")
    with pytest.raises(PackageHeld, match=re.escape(
            f"is held (exclude in [main]: {PKG}); pitstop does not override holds. Fix: if the "
            f"upgrade is intended, release it (remove it from exclude= in dnf.conf or the "
            f"repository file).")):
        dnf.install(host, PKG, "1.0-1", timeout=300)
    assert clean.installed() is None
    # An exclude in a repository file counts too.
    (clean.dir / "repos.d" / "pitstop.repo").write_text(
        (clean.dir / "repos.d" / "pitstop.repo").read_text() + f"excludepkgs={PKG}-1.0*\n")
    try:
        assert Dnf(clean.root).holds(host, (PKG,)) == {
            PKG: [f"exclude in [pitstop-test]: {PKG}-1.0*"]}
    finally:
        text = (clean.dir / "repos.d" / "pitstop.repo").read_text()
        (clean.dir / "repos.d" / "pitstop.repo").write_text(text.replace(
            f"excludepkgs={PKG}-1.0*\n", ""))


def test_a_version_the_repositories_do_not_offer_is_refused(clean: Repo) -> None:
    host = LocalHost()
    dnf = Dnf(clean.root)
    dnf.install(host, PKG, "1.0-1", timeout=300)
    with pytest.raises(VersionNotOffered) as err:
        dnf.install(host, PKG, "1.0-3", timeout=300)
    assert str(err.value) == (
        f"localhost: {PKG} 1.0-3 is not offered by the dnf repositories (dnf repoquery "
        f"--showduplicates {PKG}) (offered: 1:0.9-1, 1.0-2, 1.0-1); nothing was changed")
    assert clean.installed() == "0:1.0-1"
    assert dnf.candidates(host, "no-such-package") == ()
    assert dnf.installed(host, "no-such-package") is None


def test_install_waits_for_the_rpm_transaction_lock_and_wait_idle_reports_it(
        clean: Repo) -> None:
    host = LocalHost()
    dnf = Dnf(clean.root)
    dnf.install(host, PKG, "1.0-1", timeout=300)
    lock_path = Path(clean.root.installroot + sh(
        ["rpm", "--root", clean.root.installroot, "--eval", "%{_rpmlock_path}"]).stdout.strip())
    with lock_path.open("r+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)  # as an rpm transaction holds it
        busy = dnf.wait_idle(host, 1)
        assert busy == f"still busy after 1s: rpm (a transaction holds {lock_path})"
        errors: list[BaseException] = []

        def install() -> None:
            try:
                dnf.install(host, PKG, "1.0-2", timeout=300)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=install)
        t.start()
        # However long it has run, it cannot have installed anything under the lock.
        assert dnf.wait_idle(host, 2).startswith("still busy")
        assert clean.installed() == "0:1.0-1"
        fcntl.lockf(f, fcntl.LOCK_UN)
    t.join(300)
    assert not t.is_alive() and errors == []
    assert clean.installed() == "0:1.0-2"

    # A live dnf named in its pid lock file.
    pid_file = Path(clean.root.installroot, "var/lib/dnf/rpmdb_lock.pid")
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        pid_file.write_text(str(sleeper.pid))
        assert dnf.wait_idle(host, 1) == \
            f"still busy after 1s: dnf (pid {sleeper.pid} holds {pid_file})"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert dnf.wait_idle(host, 30) == ""  # a dead pid is no lock
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()


def test_rpm_order_matches_the_installed_rpm(dnf_tools: None) -> None:
    """Our rpmvercmp and EVR order against rpm's own (its Lua: rpm.vercmp, rpm.ver)."""
    cases = [*(("v", a, b) for a, b, _ in RPMVERCMP), *(("evr", a, b) for a, b, _ in EVR)]
    # rpm's Lua print() adds no newline inside a macro: a comma ends each answer.
    lua = "; ".join(
        f"print(rpm.vercmp('{a}', '{b}') .. ',')" if kind == "v" else
        f"do local a, b = rpm.ver('{a}'), rpm.ver('{b}'); "
        f"print((a < b and -1 or (a == b and 0 or 1)) .. ',') end" for kind, a, b in cases)
    out = [x for x in sh(["rpm", "--eval", f"%{{lua: {lua}}}"]).stdout.split(",") if x.strip()]
    assert len(out) == len(cases)
    ours = [rpmversion.vercmp(a, b) if kind == "v" else rpmversion.compare(a, b)
            for kind, a, b in cases]
    mismatches = [(c, o, int(r)) for c, o, r in zip(cases, ours, out, strict=True) if o != int(r)]
    assert mismatches == []


OS_RELEASES = {
    'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n': "dnf",
    'ID="rocky"\nID_LIKE="rhel centos fedora"\n': "dnf",
    'ID=fedora\nVERSION_ID=40\n': "dnf",
    'ID="centos"\nID_LIKE="rhel fedora"\n': "dnf",
    'ID="almalinux"\nID_LIKE="rhel centos fedora"\n': "dnf",
    'ID=debian\nVERSION_ID="12"\n': "apt",
    'ID=ubuntu\nID_LIKE=debian\n': "apt",
    'ID=linuxmint\nID_LIKE="ubuntu debian"\n': "apt",
    'ID=alpine\n': None,
    'ID=arch\n': None,
    'ID="opensuse-leap"\nID_LIKE="suse opensuse"\n': None,
    '': None,
}


@pytest.mark.parametrize(("text", "want"), OS_RELEASES.items())
def test_package_manager_from_os_release(text: str, want: str | None) -> None:
    assert from_os_release(text) == want


def test_selection_per_host() -> None:
    host = LocalHost("deb-a")
    assert detect(host) == "apt"  # this machine is Debian
    auto = Detected()
    assert auto.for_host(host).name == "apt"
    assert auto.installed(host, "dpkg") == Apt().installed(host, "dpkg")
    assert auto.compare("1.0~rc1", "1.0") == -1
    assert isinstance(package_manager("dnf"), Dnf)
    assert isinstance(package_manager("apt"), Apt)
    assert isinstance(package_manager("auto"), Detected)
    node = HostNode.model_validate({"name": "n", "local": True, "packageManager": "dnf"})
    assert node.package_manager == "dnf"
    assert HostNode.model_validate({"name": "n", "local": True}).package_manager == "auto"
    with pytest.raises(ValueError, match="packageManager"):
        HostNode.model_validate({"name": "n", "local": True, "packageManager": "yum"})


def test_a_host_that_is_neither_is_refused(tmp_path: Path) -> None:
    """A real host whose os-release names neither family: a chroot-free stand-in is a
    LocalHost whose commands see another os-release through an unshared mount namespace."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed")
    fake = tmp_path / "os-release"
    fake.write_text('ID=alpine\nNAME="Alpine Linux"\n')
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount --bind {fake} /etc/os-release && cat /etc/os-release"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.fail(f"unshare -m is not permitted here: {r.stderr}")
    assert from_os_release(r.stdout) is None
    with pytest.raises(UnsupportedHost, match=re.escape(
            "cannot tell its package manager (ID='alpine' ID_LIKE=''); pitstop knows apt")):
        detect(_Namespaced(fake))


class _Namespaced(LocalHost):
    """This machine, each command run in a private mount namespace where /etc/os-release is
    ``os_release``: a real host with another distribution's identity."""

    def __init__(self, os_release: Path) -> None:
        super().__init__("alpine-a")
        self._os_release = os_release

    def run(self, cmd: list[str] | str, timeout: float = 60.0, *, sudo: bool = False,
            check: bool = False) -> CommandResult:
        inner = cmd if isinstance(cmd, str) else shlex.join(cmd)
        return super().run(["unshare", "-m", "sh", "-c",
                            f"mount --bind {self._os_release} /etc/os-release && {inner}"],
                           timeout, sudo=sudo, check=check)
