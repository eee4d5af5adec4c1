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

import fnmatch
import re
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pitstop.hosts import debversion, rpmversion
from pitstop.hosts.connect import CommandFailed, CommandTimeout, Host, HostError
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
        r = host.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", package],
                     timeout=60)
        if r.exit_code == 127:
            raise UnsupportedHost(
                host.name, f"{host.name}: dpkg-query is not available, so this is not an apt "
                f"host; for a RHEL-family host set packageManager: dnf (or leave it to "
                f"detection from /etc/os-release)")
        if r.exit_code != 0:  # dpkg-query: no packages found matching …
            return None
        status, _, version = r.stdout.strip().partition("|")
        # "ii " installed; "rc " removed with config files left; "hi " held and installed.
        if len(status) >= 2 and status[1] == "i" and version:
            return version
        return None

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        r = host.run(["apt-cache", "madison", package], timeout=120, check=True)
        versions: set[str] = set()
        for line in r.stdout.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) >= 3 and cols[0] == package and cols[1]:
                versions.add(cols[1])
        return tuple(sorted(versions, key=debversion.sort_key, reverse=True))

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        r = host.run(["apt-mark", "showhold", *packages], timeout=60, check=True)
        held = {line.strip() for line in r.stdout.splitlines() if line.strip()}
        return tuple(p for p in packages if p in held)

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
        r = host.run(["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={wait}", "check"],
                     timeout=wait + 60, sudo=True)
        if r.ok:
            return ""
        lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.startswith(("E:", "W:"))]
        return "; ".join(lines[-3:]) or f"apt-get check exited with {r.exit_code}"


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
_NOT_A_COMMAND = ("No such command", "no such command", "Unknown argument")


def _concerns(package: str, pattern: str) -> bool:
    """A versionlock entry or an exclude pattern names ``package``: the name itself (or a glob
    matching it), or ``NAME-[EPOCH:]VERSION-RELEASE[.ARCH]`` (versions and releases hold no
    ``-``, so ``containerd-shim-1.0-1`` is not about ``containerd``)."""
    pattern = pattern.strip()
    if not pattern:
        return False
    if fnmatch.fnmatchcase(package, pattern):
        return True
    if pattern.startswith(package + "-"):
        return pattern[len(package) + 1:].count("-") <= 1
    return False


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

    # -- queries ---------------------------------------------------------------------------
    def installed(self, host: Host, package: str) -> str | None:
        r = host.run(self._rpm("-q", "--qf", "%{NAME}|%|EPOCH?{%{EPOCH}}:{0}||%{VERSION}|"
                               "%{RELEASE}\\n", package), timeout=60)
        if r.exit_code == 127:
            raise self._missing(host, "rpm")
        builds = []
        for line in r.stdout.splitlines():
            cols = line.strip().split("|")
            if len(cols) == 4 and cols[0] == package:
                builds.append(rpmversion.evr(cols[1], cols[2], cols[3]))
        if not builds:
            if r.exit_code != 0 and "is not installed" not in r.stdout + r.stderr:
                raise CommandFailed(r, _REDACT)
            return None
        return max(builds, key=rpmversion.sort_key)

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        r = host.run(self._dnf("repoquery", "--showduplicates", "--disableexcludes=all",
                               "--disableplugin=versionlock",
                               "--qf", "%{name}|%{epoch}|%{version}|%{release}|%{arch}|"
                               "%{reponame}", package), timeout=300)
        if r.exit_code == 127:
            raise self._missing(host, "dnf")
        if not r.ok:
            raise CommandFailed(r, _REDACT)
        versions: set[str] = set()
        for line in r.stdout.splitlines():
            cols = line.strip().split("|")
            if (len(cols) == 6 and cols[0] == package and cols[4] not in ("src", "nosrc")
                    and cols[5] != "@System"):
                versions.add(rpmversion.evr(cols[1], cols[2], cols[3]))
        return tuple(sorted(versions, key=rpmversion.sort_key, reverse=True))

    def holds(self, host: Host, packages: Sequence[str]) -> dict[str, list[str]]:
        """package → the rules that hold it (``versionlock: containerd-0:1.6.28-1.*``,
        ``exclude in [main]: containerd*``); packages that nothing holds are left out."""
        out: dict[str, list[str]] = {}

        def hit(pattern: str, why: str) -> None:
            for p in packages:
                if _concerns(p, pattern.lstrip("!")):
                    out.setdefault(p, []).append(why)

        r = host.run(self._dnf("versionlock", "list"), timeout=120)
        if r.exit_code == 127:
            raise self._missing(host, "dnf")
        if r.ok:
            for line in r.stdout.splitlines():
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    kind = "versionlock exclude" if entry.startswith("!") else "versionlock"
                    hit(entry, f"{kind}: {entry}")
        elif not any(m in r.stdout + r.stderr for m in _NOT_A_COMMAND):
            raise CommandFailed(r, _REDACT)
        # else: no versionlock plugin, hence no locks.
        for section, pattern in self._excludes(host):
            hit(pattern, f"exclude in [{section}]: {pattern}")
        return out

    def _excludes(self, host: Host) -> list[tuple[str, str]]:
        """(section, pattern) of every ``excludepkgs`` in the main config and the enabled
        repositories, as dnf resolved them (``dnf config-manager --dump``)."""
        found: list[tuple[str, str]] = []
        for which in ((), ("*",)):
            r = host.run(self._dnf("config-manager", "--dump", *which), timeout=120)
            if not r.ok:
                if which and "No matching repo" in r.stdout + r.stderr:
                    continue  # no repositories
                if any(m in r.stdout + r.stderr for m in _NOT_A_COMMAND):
                    raise UnsupportedHost(
                        host.name, f"{host.name}: `dnf config-manager` is missing, so pitstop "
                        f"cannot read the excludes dnf applies; install dnf-plugins-core")
                raise CommandFailed(r, _REDACT)
            section = "main"
            for line in r.stdout.splitlines():
                head = re.fullmatch(r"=+\s*(?:repo:\s*)?(\S+)\s*=+", line.strip())
                if head:
                    section = head.group(1)
                    continue
                sect = re.fullmatch(r"\[(.+)\]", line.strip())
                if sect:
                    section = sect.group(1)
                    continue
                key, sep, value = line.partition("=")
                if sep and key.strip() == "excludepkgs":
                    found += [(section, v) for v in re.split(r"[,\s]+", value) if v.strip()]
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
        c = host.run(self._dnf("check", "--duplicates"), timeout=300, sudo=True)
        if c.ok and not c.stdout.strip():
            return ""
        text = (c.stdout.strip() or c.stderr.strip())
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return ("; ".join(lines[-3:]) or f"dnf check exited with {c.exit_code}") + \
            " (an interrupted transaction? see `dnf check` and `dnf remove --duplicates`)"


# ---------------------------------------------------------------------------------------------
# Choosing per host


_APT_IDS = {"debian", "ubuntu"}
_DNF_IDS = {"rhel", "fedora", "centos"}


def from_os_release(text: str) -> PackageManagerName | None:
    """apt or dnf from the text of an os-release file, by ``ID`` then ``ID_LIKE`` in order:
    debian/ubuntu → apt, rhel/fedora/centos → dnf (rocky, almalinux, ol… carry
    ``ID_LIKE="rhel centos fedora"``); None for anything else."""
    fields = _os_release_fields(text)
    for i in [fields.get("ID", "").lower(), *fields.get("ID_LIKE", "").lower().split()]:
        if i in _APT_IDS:
            return "apt"
        if i in _DNF_IDS:
            return "dnf"
    return None


def _os_release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


def detect(host: Host) -> PackageManagerName:
    """apt or dnf for ``host``, from its ``/etc/os-release`` (:func:`from_os_release`);
    anything else raises :class:`UnsupportedHost`."""
    r = host.run("cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release", timeout=30)
    found = from_os_release(r.stdout) if r.ok else None
    if found is not None:
        return found
    fields = _os_release_fields(r.stdout)
    seen = (f"ID={fields.get('ID', '')!r} ID_LIKE={fields.get('ID_LIKE', '')!r}"
            if r.ok else "no /etc/os-release")
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
