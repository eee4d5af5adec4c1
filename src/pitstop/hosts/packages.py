"""Package managers on hosts: what is installed, what is offered, what is held, and pinned
installs.

Implemented: :class:`Apt` (Debian, Ubuntu) and :class:`Dnf` (RHEL, CentOS Stream, Fedora and
their rebuilds; dnf 4). Which one a host uses is its inventory's choice (``packageManager:
apt|dnf``) or, by default, read from the host's ``/etc/os-release`` (:func:`detect`): ``ID`` or
``ID_LIKE`` naming debian/ubuntu → apt, rhel/fedora/centos → dnf; a host with neither is
refused with :class:`UnsupportedHost`, never guessed at. :class:`Detected` does that per host
and remembers the answer.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pitstop.hosts import debversion, facts, rpmversion
from pitstop.hosts.connect import CommandFailed, CommandResult, CommandTimeout, Host, HostError
from pitstop.hosts.facts import FactError
from pitstop.redact import Redactor

__all__ = [
    "Apt",
    "Detected",
    "Dnf",
    "DnfRoot",
    "PackageHeld",
    "PackageManager",
    "PackageManagerName",
    "UnsupportedHost",
    "VersionNotOffered",
    "detect",
    "from_os_release",
    "package_manager",
]

PackageManagerName = Literal["apt", "dnf"]


class UnsupportedHost(HostError):
    """The host lacks the package tooling pitstop supports."""


class PackageHeld(HostError):
    """The package is held (dnf: versionlock or an exclude); pitstop does not override it."""

    def __init__(self, host: str, package: str, reasons: Sequence[str], fix: str) -> None:
        self.package = package
        self.reasons = tuple(reasons)
        super().__init__(host, f"{host}: package {package} is held ({'; '.join(reasons)}); "
                               f"pitstop does not override holds. Fix: {fix}")


class VersionNotOffered(HostError):
    """The exact version asked for is not in the configured repositories."""

    def __init__(self, host: str, package: str, version: str,
                 offered: Sequence[str], where: str) -> None:
        self.package = package
        self.version = version
        self.offered = tuple(offered)
        super().__init__(host, f"{host}: {package} {version} is not offered by {where} "
                               f"(offered: {', '.join(offered) or 'none'}); nothing was changed")


class PackageManager(Protocol):
    name: str

    def installed(self, host: Host, package: str) -> str | None:
        """The installed version, or None when the package is not installed."""
        ...

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        """Every version the configured repositories offer, newest first."""
        ...

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        """Those of ``packages`` that are held (never changed by the package manager)."""
        ...

    def install(self, host: Host, package: str, version: str, *, timeout: float) -> None:
        """Install exactly ``version`` (upgrading or downgrading); never overrides a hold."""
        ...

    def compare(self, a: str, b: str) -> int: ...

    def kind(self, host: Host) -> PackageManagerName:
        """Which package manager serves ``host`` (its version order and commands:
        :data:`TERMS`)."""
        ...

    def wait_idle(self, host: Host, timeout: float) -> str:
        """Wait until no other package operation runs on the host; "" when it is idle and
        consistent, else what is wrong (e.g. an install that was interrupted half-way)."""
        ...


class Apt:
    """apt/dpkg. Every mutating command pins an exact version, keeps existing configuration
    files (``--force-confold``), waits for the dpkg lock instead of failing when another apt
    runs, and never passes ``--allow-change-held-packages``."""

    name = "apt"

    def __init__(self, lock_timeout: int = 300) -> None:
        self.lock_timeout = lock_timeout

    def compare(self, a: str, b: str) -> int:
        return debversion.compare(a, b)

    def kind(self, host: Host) -> PackageManagerName:
        return "apt"

    def installed(self, host: Host, package: str) -> str | None:
        r = host.run(facts.dpkg_status_command(package), timeout=60)
        try:
            return facts.parse_dpkg_status(r)
        except FactError:  # exit 127: no dpkg-query
            raise UnsupportedHost(
                host.name, f"{host.name}: dpkg-query is not available, so this is not an apt "
                f"host; for a RHEL-family host set packageManager: dnf (or leave it to "
                f"detection from /etc/os-release)") from None

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        r = host.run(facts.madison_command(package), timeout=120, check=True)
        return facts.parse_madison(r, package)

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        r = host.run(facts.showhold_command(packages), timeout=60, check=True)
        return facts.parse_showhold(r, packages)

    def install(self, host: Host, package: str, version: str, *, timeout: float) -> None:
        """apt-get writes to a file on the host, which is shown afterwards, not to the SSH
        channel or pipe: if pitstop dies mid-install (SIGKILL, a lost connection), apt and dpkg
        run to their end instead of dying of SIGPIPE half-way through unpacking. The next
        pitstop waits for them (:meth:`wait_idle`) and reads what they left."""
        apt = shlex.join(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y",
                          "-o", f"DPkg::Lock::Timeout={self.lock_timeout}",
                          "-o", "Dpkg::Options::=--force-confold",
                          "-o", "Dpkg::Options::=--force-confdef",
                          "--allow-downgrades", "--no-install-recommends",
                          "install", f"{package}={version}"])
        host.run('log=$(mktemp /tmp/pitstop-apt.XXXXXX) || exit 1; '
                 f'{apt} > "$log" 2>&1 < /dev/null; rc=$?; cat "$log"; rm -f "$log"; exit $rc',
                 timeout=timeout, sudo=True, check=True)

    def wait_idle(self, host: Host, timeout: float) -> str:
        """``apt-get check`` takes the dpkg frontend lock, so it waits (up to ``timeout``) for
        any apt or dpkg run to finish, then checks the package database; it fails when dpkg
        was interrupted ("you must manually run 'dpkg --configure -a'")."""
        wait = max(1, int(timeout))
        r = host.run(facts.apt_check_command(wait), timeout=wait + 60, sudo=True)
        return facts.parse_apt_check(r)


# ---------------------------------------------------------------------------------------------
# dnf


@dataclass(frozen=True, slots=True)
class DnfRoot:
    """**For tests and chroots only**: run dnf and rpm against another root than the host's.

    Production leaves :attr:`Dnf.root` unset: dnf and rpm then use the host's own configuration
    (``/etc/dnf/dnf.conf``, ``/etc/yum.repos.d``, the versionlock list) and rpm database. With a
    root, every dnf command gets ``--installroot`` and the options below, and every rpm query
    ``--root``; the dnf and rpm locks and the database are the installroot's.

    ``reposdir``, ``config`` and ``pluginconfpath`` are paths on the host, as dnf reads them
    (dnf looks for a config file and repositories in the installroot first, then on the host;
    plugin configuration, hence the versionlock list, always comes from the host unless
    ``pluginconfpath`` points elsewhere).
    """

    installroot: str
    reposdir: str | None = None
    config: str | None = None
    pluginconfpath: str | None = None
    releasever: str | None = None

    def dnf_args(self) -> list[str]:
        out = [f"--installroot={self.installroot}"]
        if self.config:
            out.append(f"--config={self.config}")
        if self.reposdir:
            out.append(f"--setopt=reposdir={self.reposdir}")
        if self.pluginconfpath:
            out.append(f"--setopt=pluginconfpath={self.pluginconfpath}")
        if self.releasever:
            out.append(f"--releasever={self.releasever}")
        return out


_REDACT = Redactor()


class Dnf:
    """dnf 4 and rpm (RHEL 8/9, CentOS Stream, Fedora before dnf 5, and rebuilds).

    Versions are builds as dnf prints them, ``[epoch:]version-release`` with the epoch only
    when it is not 0 (``1.6.28-3.el9``). Ordering is rpm's (:mod:`pitstop.hosts.rpmversion`).

    * ``installed``: ``rpm -q --qf`` (epoch:version-release); with several builds installed
      (an interrupted transaction) the newest, and :meth:`wait_idle` reports the duplicates.
    * ``candidates``: ``dnf repoquery --showduplicates`` with excludes and the versionlock
      plugin disabled, so that a held package shows what the repositories really offer and
      the hold is reported as a hold (:meth:`held`), not as a missing version.
    * ``held``: ``dnf versionlock list`` (locks and ``!`` excludes; no plugin installed means no
      locks) and the ``excludepkgs``/``exclude`` of the main configuration and of every
      repository (``dnf config-manager --dump``). :meth:`holds` says which rule holds what.
    * ``install``: refuses a held package (:class:`PackageHeld`) and a version the repositories
      do not offer (:class:`VersionNotOffered`) before running anything; then ``dnf install -y
      NAME-VERSION``, or ``dnf downgrade -y NAME-VERSION`` when the version is older than the
      installed one. Never ``--disableexcludes`` nor ``--disableplugin`` on a change.
    * Locks: dnf waits for another dnf (its pid lock files) by itself, but its rpm transaction
      fails at once when another holds rpm's transaction lock. So :meth:`install` first waits
      for both (:meth:`_wait_locks`), and waits again and retries when dnf still lost the race
      for the rpm lock, all within its ``timeout``. :meth:`wait_idle` waits the same way, then
      runs ``dnf check --duplicates``.
    """

    name = "dnf"

    def __init__(self, root: DnfRoot | None = None, *, dnf: str = "dnf", rpm: str = "rpm") -> None:
        self.root = root
        self.dnf = dnf
        self.rpm = rpm

    def compare(self, a: str, b: str) -> int:
        return rpmversion.compare(a, b)

    def kind(self, host: Host) -> PackageManagerName:
        return "dnf"

    # -- commands --------------------------------------------------------------------------
    def _dnf(self, *args: str) -> list[str]:
        return [self.dnf, "-q", *(self.root.dnf_args() if self.root else []), *args]

    def _rpm(self, *args: str) -> list[str]:
        return [self.rpm, *(["--root", self.root.installroot] if self.root else []), *args]

    def _missing(self, host: Host, tool: str) -> UnsupportedHost:
        return UnsupportedHost(host.name, f"{host.name}: {tool} is not available, so this is "
                                          f"not a dnf host; for Debian or Ubuntu set "
                                          f"packageManager: apt (or leave it to detection)")

    def _failed(self, host: Host, tool: str, r: CommandResult, exc: FactError) -> HostError:
        if exc.kind == "missing-tool":
            return self._missing(host, tool)
        return CommandFailed(r, _REDACT)

    # -- queries ---------------------------------------------------------------------------
    def installed(self, host: Host, package: str) -> str | None:
        r = host.run(facts.rpm_installed_command(package, self._rpm()), timeout=60)
        try:
            return facts.parse_rpm_installed(r, package)
        except FactError as exc:
            raise self._failed(host, "rpm", r, exc) from None

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        r = host.run(facts.repoquery_command(package, self._dnf()), timeout=300)
        try:
            return facts.parse_repoquery(r, package)
        except FactError as exc:
            raise self._failed(host, "dnf", r, exc) from None

    def holds(self, host: Host, packages: Sequence[str]) -> dict[str, list[str]]:
        """package → the rules that hold it (``versionlock: containerd-0:1.6.28-1.*``,
        ``exclude in [main]: containerd*``); packages that nothing holds are left out."""
        r = host.run(facts.versionlock_list_command(self._dnf()), timeout=120)
        try:
            locks = facts.parse_versionlock_list(r)  # no versionlock plugin: no locks
        except FactError as exc:
            raise self._failed(host, "dnf", r, exc) from None
        return facts.dnf_holds(packages, locks, self._excludes(host))

    def _excludes(self, host: Host) -> list[tuple[str, str]]:
        """(section, pattern) of every ``excludepkgs`` in the main config and the enabled
        repositories, as dnf resolved them (``dnf config-manager --dump``)."""
        found: list[tuple[str, str]] = []
        for repositories in (False, True):
            r = host.run(facts.config_dump_command(self._dnf(), repositories=repositories),
                         timeout=120)
            try:
                found += facts.parse_config_dump(r)
            except FactError as exc:
                if exc.kind == "not-a-command":
                    raise UnsupportedHost(
                        host.name, f"{host.name}: `dnf config-manager` is missing, so pitstop "
                        f"cannot read the excludes dnf applies; install dnf-plugins-core"
                    ) from None
                raise self._failed(host, "dnf", r, exc) from None
        return found

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        holds = self.holds(host, packages)
        return tuple(p for p in packages if p in holds)

    # -- changes ---------------------------------------------------------------------------
    def install(self, host: Host, package: str, version: str, *, timeout: float) -> None:
        """Refuses a held package or a version not offered before touching anything. dnf
        writes to a file on the host, shown afterwards, not to the SSH channel: pitstop dying
        mid-install does not kill dnf half-way (see :meth:`Apt.install`)."""
        holds = self.holds(host, (package,))
        if package in holds:
            reasons = holds[package]
            fixes = []
            if any(r.startswith("versionlock") for r in reasons):
                fixes.append(f"`dnf versionlock delete {package}`")
            if any(r.startswith("exclude") for r in reasons):
                fixes.append("remove it from exclude= in dnf.conf or the repository file")
            raise PackageHeld(host.name, package, reasons,
                              f"if the upgrade is intended, release it ({'; '.join(fixes)}).")
        version = rpmversion.format_evr(version)
        offered = self.candidates(host, package)
        if version not in offered:
            raise VersionNotOffered(host.name, package, version, offered,
                                    f"the dnf repositories (dnf repoquery --showduplicates "
                                    f"{package})")
        current = self.installed(host, package)
        verb = "downgrade" if current is not None and \
            rpmversion.compare(version, current) < 0 else "install"
        cmd = shlex.join(self._dnf("-y", "--setopt=install_weak_deps=False", verb,
                                   f"{package}-{version}"))
        deadline = time.monotonic() + timeout
        while True:
            # dnf waits for another dnf by itself, but its rpm transaction does not wait for
            # rpm's transaction lock ("can't create transaction lock"): wait for both first,
            # and again if another transaction took the lock in between.
            busy = self._wait_locks(host, max(1.0, deadline - time.monotonic()))
            if busy:
                raise CommandTimeout(host.name, f"{host.name}: dnf {verb} {package}-{version} "
                                     f"did not start within {timeout:g}s: {busy}",
                                     command=cmd, timeout=timeout)
            try:
                host.run('log=$(mktemp /tmp/pitstop-dnf.XXXXXX) || exit 1; '
                         f'{cmd} > "$log" 2>&1 < /dev/null; rc=$?; cat "$log"; rm -f "$log"; '
                         'exit $rc', timeout=max(1.0, deadline - time.monotonic()), sudo=True,
                         check=True)
                break
            except CommandFailed as exc:
                out = exc.result.stdout + exc.result.stderr
                if "transaction lock" not in out or time.monotonic() >= deadline:
                    raise
        now = self.installed(host, package)
        if now != version:
            raise HostError(host.name, f"{host.name}: dnf {verb} {package}-{version} succeeded "
                                       f"but {package} {now} is installed")

    def _wait_locks(self, host: Host, timeout: float) -> str:
        """"" once no dnf holds its pid lock files (rpmdb, metadata, download: a live pid in
        them) and nothing holds rpm's transaction lock (a POSIX lock on
        ``%{_rpmlock_path}``, seen in ``/proc/locks``); what is busy after ``timeout``."""
        root = self.root.installroot.rstrip("/") if self.root else ""
        wait = max(1, int(timeout))
        lock_path = shlex.join(self._rpm("--eval", "%{_rpmlock_path}"))
        script = f"""
root={shlex.quote(root)}
end=$(( $(date +%s) + {wait} ))
lock="$root$({lock_path})"
while :; do
  busy=""
  for f in "$root"/var/lib/dnf/rpmdb_lock.pid "$root"/var/cache/dnf/metadata_lock.pid \\
           "$root"/var/cache/dnf/download_lock.pid; do
    [ -s "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    case "$p" in ''|*[!0-9]*) continue ;; esac
    if [ -e "/proc/$p" ]; then busy="dnf (pid $p holds $f)"; fi
  done
  if [ -z "$busy" ] && [ -e "$lock" ]; then
    ino=$(stat -c %i "$lock")
    if grep -q ":$ino " /proc/locks; then busy="rpm (a transaction holds $lock)"; fi
  fi
  [ -z "$busy" ] && exit 0
  if [ "$(date +%s)" -ge "$end" ]; then echo "still busy after {wait}s: $busy"; exit 75; fi
  sleep 1
done
"""
        r = host.run(script, timeout=wait + 60, sudo=True)
        if r.exit_code == 75:
            return r.stdout.strip()
        if not r.ok:
            return (r.stderr.strip() or r.stdout.strip())[-300:] or \
                f"waiting for the dnf and rpm locks exited with {r.exit_code}"
        return ""

    def wait_idle(self, host: Host, timeout: float) -> str:
        """Waits (up to ``timeout``) for the dnf and rpm locks (:meth:`_wait_locks`), then runs
        ``dnf check --duplicates``: two builds of one package installed are what an
        interrupted transaction leaves."""
        busy = self._wait_locks(host, timeout)
        if busy:
            return busy
        c = host.run(facts.dnf_check_command(self._dnf()), timeout=300, sudo=True)
        return facts.parse_dnf_check(c)


# ---------------------------------------------------------------------------------------------
# Choosing per host


from_os_release = facts.package_manager_of


def detect(host: Host) -> PackageManagerName:
    """apt or dnf for ``host``, from its ``/etc/os-release`` (:func:`from_os_release`);
    anything else raises :class:`UnsupportedHost`."""
    r = host.run(facts.OS_RELEASE_COMMAND, timeout=30)
    try:
        release = facts.parse_os_release(r)
    except FactError:
        release = None
    if release is not None and release.package_manager is not None:
        return release.package_manager
    seen = (f"ID={release.id!r} ID_LIKE={release.id_like!r}" if release is not None
            else "no /etc/os-release")
    raise UnsupportedHost(host.name, f"{host.name}: cannot tell its package manager ({seen}); "
                                     f"pitstop knows apt (debian, ubuntu) and dnf (rhel, "
                                     f"fedora, centos): set packageManager: apt or dnf on the "
                                     f"node in the HostInventory if it is one of those")


def package_manager(name: PackageManagerName | Literal["auto"] | None = None
                    ) -> PackageManager:
    """The package manager an inventory names; ``auto``/None: :class:`Detected`."""
    if name == "apt":
        return Apt()
    if name == "dnf":
        return Dnf()
    return Detected()


class Detected:
    """Chooses :class:`Apt` or :class:`Dnf` per host (:func:`detect`, once per host name) and
    delegates to it. :meth:`compare` needs no host: it uses the order of the hosts seen so far,
    and refuses when it has seen none or both kinds."""

    name = "auto"

    def __init__(self, apt: Apt | None = None, dnf: Dnf | None = None) -> None:
        self._by_kind: dict[str, PackageManager] = {"apt": apt or Apt(), "dnf": dnf or Dnf()}
        self._hosts: dict[str, PackageManager] = {}
        self._lock = threading.Lock()

    def for_host(self, host: Host) -> PackageManager:
        with self._lock:
            pm = self._hosts.get(host.name)
        if pm is None:
            pm = self._by_kind[detect(host)]
            with self._lock:
                self._hosts[host.name] = pm
        return pm

    def installed(self, host: Host, package: str) -> str | None:
        return self.for_host(host).installed(host, package)

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        return self.for_host(host).candidates(host, package)

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        return self.for_host(host).held(host, packages)

    def install(self, host: Host, package: str, version: str, *, timeout: float) -> None:
        self.for_host(host).install(host, package, version, timeout=timeout)

    def wait_idle(self, host: Host, timeout: float) -> str:
        return self.for_host(host).wait_idle(host, timeout)

    def kind(self, host: Host) -> PackageManagerName:
        return self.for_host(host).kind(host)

    def compare(self, a: str, b: str) -> int:
        with self._lock:
            kinds = {pm.name for pm in self._hosts.values()}
        if len(kinds) != 1:
            raise ValueError("Detected.compare: the version order depends on the host's "
                             "package manager; ask for_host(host).compare")
        return next(iter(self._hosts.values())).compare(a, b)


@dataclass(frozen=True, slots=True)
class ManagerTerms:
    """How to speak of a package manager to a person fixing a host, and its version order."""

    compare: Callable[[str, str], int]
    offered: str  # the command listing what is offered; {pkg}
    refresh: str  # the command refreshing the repositories' metadata
    holds: str  # where holds are read from
    unhold: str  # how to release a hold; {pkg}


TERMS: dict[str, ManagerTerms] = {
    "apt": ManagerTerms(debversion.compare, "apt-cache madison {pkg}", "apt-get update",
                        "apt-mark showhold", "apt-mark unhold {pkg}"),
    "dnf": ManagerTerms(rpmversion.compare, "dnf list --showduplicates {pkg}", "dnf makecache",
                        "dnf versionlock list, and exclude= in dnf.conf or a repo file",
                        "dnf versionlock delete {pkg} (or remove it from exclude=)"),
}
