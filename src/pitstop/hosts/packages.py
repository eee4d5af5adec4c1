"""Package managers on hosts: what is installed, what is offered, what is held, and pinned
installs.

Implemented: :class:`Apt` (Debian, Ubuntu). RHEL-family hosts (dnf) are not supported yet: the
:class:`PackageManager` protocol is the place for them (``rpm -q``, ``dnf list --showduplicates``,
``dnf versionlock list``, ``dnf install NAME-VERSION``); until then an actuator given such a host
fails at :meth:`Apt.installed` with :class:`UnsupportedHost` instead of guessing.
"""

from __future__ import annotations

import shlex
from typing import Protocol

from pitstop.hosts import debversion
from pitstop.hosts.connect import Host, HostError

__all__ = ["Apt", "PackageManager", "UnsupportedHost"]


class UnsupportedHost(HostError):
    """The host lacks the package tooling pitstop supports."""


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

    def installed(self, host: Host, package: str) -> str | None:
        r = host.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", package],
                     timeout=60)
        if r.exit_code == 127:
            raise UnsupportedHost(
                host.name, f"{host.name}: dpkg-query is not available; pitstop manages packages "
                f"with apt on Debian and Ubuntu only (RHEL-family hosts with dnf are not "
                f"supported yet)")
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
