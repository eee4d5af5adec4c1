"""Upgrading a container runtime in place on a host, with its containers kept running.

A runtime daemon (containerd, CRI-O, dockerd) can be restarted under running containers: each
container belongs to a shim process that outlives the daemon, and the restarted daemon
reconnects to the shims (seen on this project's test hosts: a container keeps its PID across
an ``apt-get install`` of a newer containerd and a daemon restart, tests/hosts/
test_containerd.py). So a runtime patch upgrade is: install the new package, restart the
daemon, and check that every container is still the same process.

The :class:`RuntimeActuator` protocol splits that into calls a backend drives one at a time
(``Backend.start(UpgradeComponent(target=host, component="containerd", version=V))`` maps to
:func:`upgrade_runtime`, or to the calls below when the executor journals each one):

``facts(host)``
    What is there: installed and offered package versions, holds, the daemon's own version,
    its configuration file.
``check(facts, target)``
    Why the upgrade must not start (``Severity.ERROR``) or deserves a look (``WARNING``). Pure:
    reads only the facts and the catalog.
``snapshot(host)``
    Every container task with its PID, process start time and shim, before the change.
``upgrade(host, target)``
    Pin and install the exact package build, restart the daemon. Idempotent: nothing is done
    when the package is at the target and the daemon already runs it; only the restart is done
    when the package is at the target but the daemon still runs the old binary (a run that was
    interrupted between the two).
``verify(host, before, target)``
    The daemon answers and reports the target build, runs the installed binary, CRI answers
    (``crictl info`` when crictl is installed), every task running before runs after with the
    same id, PID and start time, and its shim is alive.
``rollback(host, previous, before)``
    ``upgrade`` to the previous build, then ``verify`` against the same snapshot.

:class:`ContainerdActuator` implements it for containerd with apt (Debian, Ubuntu) or dnf
(RHEL family), the package manager given or detected per host (see
:mod:`pitstop.hosts.packages`). Docker Engine fits the same shape — another package name,
another daemon version query, another task listing — and :class:`~pitstop.hosts.docker.
DockerActuator` is this class with those (and Docker's live-restore checks); CRI-O would be the
same again.

Restarting the daemon is a :class:`DaemonControl` strategy: :class:`SystemdDaemon` on real
hosts, :class:`ProcessDaemon` where there is no systemd (a daemon started detached with a pid
file, as the tests do).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from pitstop.catalog import Catalog, load_catalog
from pitstop.errors import PitstopError
from pitstop.hosts import debversion, facts
from pitstop.hosts.connect import CommandFailed, Host, HostError
from pitstop.hosts.facts import FactError
from pitstop.hosts.packages import TERMS, Detected, PackageManager
from pitstop.versions import VersionError, parse_version

__all__ = [
    "ContainerdActuator",
    "DaemonControl",
    "DaemonInfo",
    "PostCheck",
    "Problem",
    "ProcessDaemon",
    "RuntimeActuator",
    "RuntimeFacts",
    "RuntimeUnavailable",
    "RuntimeUpgradeReport",
    "Severity",
    "Snapshot",
    "StepResult",
    "SystemdDaemon",
    "TaskState",
    "UpgradeRefused",
    "Verification",
    "task_states",
    "upgrade_runtime",
]


# ---------------------------------------------------------------------------------------------
# Values


class Severity(StrEnum):
    ERROR = "error"  # the step must not run
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    code: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}" + (f" Fix: {self.fix}" if self.fix else "")


class UpgradeRefused(PitstopError):
    """The checks found errors; nothing was changed on the host."""

    exit_code = 3

    def __init__(self, host: str, problems: Sequence[Problem]) -> None:
        self.host = host
        self.problems = tuple(problems)
        super().__init__(f"{host}: upgrade refused, host left untouched:\n"
                         + "\n".join(f"  - {p}" for p in self.problems))


class RuntimeUnavailable(HostError):
    """The runtime daemon does not answer on its socket."""


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    version: str  # as the daemon reports it (containerd: "1.6.20~ds1")
    revision: str  # Debian builds: the package version; upstream builds: a git commit
    pid: int | None = None
    binary_current: bool | None = None  # False: runs a binary the package manager replaced


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    host: str
    runtime: str
    package: str
    installed: str | None
    candidates: tuple[str, ...]  # newest first
    held: tuple[str, ...]
    daemon: DaemonInfo | None  # None: the daemon does not answer
    daemon_error: str
    address: str
    config_path: str
    config_present: bool
    config_version: int | None  # None when there is no file or it cannot be read
    config_keys: frozenset[tuple[str, ...]] = frozenset()  # every table and key path
    config_error: str = ""
    manager: str = "apt"  # the package manager serving the host: its words and version order


@dataclass(frozen=True, slots=True)
class TaskState:
    namespace: str
    id: str
    pid: int
    status: str  # RUNNING, STOPPED, PAUSED, CREATED, …
    start_ticks: int | None = None  # /proc/PID/stat starttime: tells PID reuse apart
    shim_pid: int | None = None
    shim_alive: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    host: str
    taken_at: float  # time.time()
    daemon: DaemonInfo | None
    tasks: tuple[TaskState, ...]

    def running(self) -> tuple[TaskState, ...]:
        return tuple(t for t in self.tasks if t.status == "RUNNING")

    def task(self, namespace: str, task_id: str) -> TaskState | None:
        return next((t for t in self.tasks if t.namespace == namespace and t.id == task_id),
                    None)


@dataclass(frozen=True, slots=True)
class StepResult:
    host: str
    action: Literal["upgrade", "rollback"]
    from_version: str | None
    to_version: str
    changed: bool  # False: the host already was at the target (a no-op)
    installed: bool
    restarted: bool
    install_seconds: float = 0.0
    daemon_unavailable_seconds: float = 0.0  # stop → the restarted daemon answers
    seconds: float = 0.0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    host: str
    target: str
    problems: tuple[Problem, ...]
    after: Snapshot | None
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)


PostCheck = Callable[[Host, Snapshot], Sequence[Problem]]


@dataclass(frozen=True, slots=True)
class RuntimeUpgradeReport:
    host: str
    runtime: str
    from_version: str | None
    target: str
    # already-current: nothing to do, verified; verify-failed: nothing done, verification failed;
    # upgraded: changed and verified; rolled-back: verification (or the change) failed and the
    # previous build is back, verified; rollback-failed: the host needs a person.
    outcome: Literal["already-current", "verify-failed", "upgraded", "rolled-back",
                     "rollback-failed"]
    upgrade: StepResult | None
    verification: Verification | None
    rollback: StepResult | None = None
    rollback_verification: Verification | None = None
    error: str = ""
    seconds: float = 0.0
    before: Snapshot | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# Protocols


class DaemonControl(Protocol):
    """How the runtime daemon is stopped and started on a host."""

    def pid(self, host: Host) -> int | None: ...

    def restart(self, host: Host) -> None: ...

    def start(self, host: Host) -> None: ...

    def stop(self, host: Host) -> None: ...


class RuntimeActuator(Protocol):
    """A container runtime on a host; see the module docstring."""

    runtime: str

    def facts(self, host: Host) -> RuntimeFacts: ...

    def check(self, facts: RuntimeFacts, target: str) -> list[Problem]: ...

    def snapshot(self, host: Host) -> Snapshot: ...

    def upgrade(self, host: Host, target: str, *,
                facts: RuntimeFacts | None = None) -> StepResult: ...

    def verify(self, host: Host, before: Snapshot, target: str,
               post_checks: Sequence[PostCheck] = ()) -> Verification: ...

    def rollback(self, host: Host, previous: str, before: Snapshot
                 ) -> tuple[StepResult, Verification]: ...


# ---------------------------------------------------------------------------------------------
# Daemon control strategies


class SystemdDaemon:
    """A daemon managed by systemd (production hosts)."""

    def __init__(self, unit: str = "containerd") -> None:
        self.unit = unit

    def pid(self, host: Host) -> int | None:
        return facts.parse_pid(host.run(facts.systemd_main_pid_command(self.unit), timeout=30))

    def restart(self, host: Host) -> None:
        host.run(["systemctl", "restart", self.unit], timeout=180, sudo=True, check=True)

    def start(self, host: Host) -> None:
        host.run(["systemctl", "start", self.unit], timeout=180, sudo=True, check=True)

    def stop(self, host: Host) -> None:
        host.run(["systemctl", "stop", self.unit], timeout=180, sudo=True, check=True)


class ProcessDaemon:
    """A daemon started detached (``setsid``) with a pid file, for hosts without systemd.

    ``match`` must appear in the process's command line before pitstop signals the pid from
    the pid file, so that a stale pid file never makes it kill an unrelated process.
    """

    def __init__(self, argv: Sequence[str], *, pid_file: str, log_file: str, match: str,
                 stop_timeout: float = 30.0) -> None:
        self.argv = list(argv)
        self.pid_file = pid_file
        self.log_file = log_file
        self.match = match
        self.stop_timeout = stop_timeout

    @classmethod
    def containerd(cls, *, root: str, state: str, address: str, config: str, pid_file: str,
                   log_file: str, binary: str = "containerd") -> ProcessDaemon:
        return cls([binary, "--root", root, "--state", state, "--address", address,
                    "--config", config], pid_file=pid_file, log_file=log_file,
                   match=f"--address {address}")

    def _alive_pid_script(self) -> str:
        # Prints the pid when the pid file names a live (non-zombie) process whose command line
        # contains `match`.
        return (
            f"p=$(cat {shlex.quote(self.pid_file)} 2>/dev/null); "
            f'[ -n "$p" ] && [ -d /proc/$p ] && '
            f"! grep -q '^State:.*Z' /proc/$p/status 2>/dev/null && "
            f"tr '\\0' ' ' < /proc/$p/cmdline | grep -qF -- {shlex.quote(self.match)} && "
            f'echo "$p"'
        )

    def pid(self, host: Host) -> int | None:
        return facts.parse_pid(host.run(self._alive_pid_script(), timeout=30, sudo=True))

    def stop(self, host: Host) -> None:
        ticks = int(self.stop_timeout * 10)
        script = (
            f"pid=$({self._alive_pid_script()}) || exit 0; "
            "alive() { [ -d /proc/$pid ] && "
            "! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; }; "
            'kill -TERM "$pid"; i=0; '
            f'while alive; do i=$((i+1)); [ $i -eq {ticks} ] && kill -KILL "$pid"; '
            f"[ $i -ge {ticks + 50} ] && exit 3; sleep 0.1; done; "
            f"rm -f {shlex.quote(self.pid_file)}"
        )
        host.run(script, timeout=self.stop_timeout + 30, sudo=True, check=True)

    def start(self, host: Host) -> None:
        if self.pid(host) is not None:
            return
        inner = f"echo $$ > {shlex.quote(self.pid_file)}; exec {shlex.join(self.argv)} " \
                f">> {shlex.quote(self.log_file)} 2>&1"
        script = (f"setsid -f sh -c {shlex.quote(inner)} < /dev/null > /dev/null 2>&1; "
                  f"i=0; while [ ! -s {shlex.quote(self.pid_file)} ] && [ $i -lt 100 ]; "
                  f"do i=$((i+1)); sleep 0.05; done")
        host.run(script, timeout=60, sudo=True, check=True)

    def restart(self, host: Host) -> None:
        self.stop(host)
        self.start(host)


# ---------------------------------------------------------------------------------------------
# containerd


_SHA = re.compile(r"^[0-9a-f]{7,40}$")


def _split_key(pattern: str) -> tuple[str, ...]:
    """``plugins."io.containerd.grpc.v1.cri".containerd.runtimes.*.runtime_root`` → parts."""
    parts: list[str] = []
    buf = ""
    quoted = False
    for ch in pattern:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return tuple(parts)


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """The key path is the pattern, or lies inside the table the pattern names."""
    if len(path) < len(pattern):
        return False
    return all(p in ("*", k) for p, k in zip(pattern, path, strict=False))


class ContainerdActuator:
    """containerd installed from apt; see the module docstring.

    ``target`` versions are package builds (``1.6.20~ds1-1+deb12u3``), or a release number
    (``1.6.20``) meaning the newest offered build of that release.
    """

    runtime = "containerd"

    def __init__(self, daemon: DaemonControl, *,
                 address: str = "/run/containerd/containerd.sock",
                 config_path: str = "/etc/containerd/config.toml",
                 package: str = "containerd",
                 packages: PackageManager | None = None,
                 catalog: Catalog | None = None,
                 ctr: str = "ctr", crictl: str = "crictl",
                 install_timeout: float = 900.0, ready_timeout: float = 60.0) -> None:
        self.daemon = daemon
        self.address = address
        self.config_path = config_path
        self.package = package
        # None: apt or dnf, detected per host from /etc/os-release.
        self.packages: PackageManager = packages or Detected()
        self._catalog = catalog
        self.ctr = ctr
        self.crictl = crictl
        self.install_timeout = install_timeout
        self.ready_timeout = ready_timeout

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog()
        return self._catalog

    # -- facts -----------------------------------------------------------------------------
    def _ctr(self, *args: str, namespace: str | None = None) -> list[str]:
        return facts.ctr_command(self.ctr, self.address, *args, namespace=namespace)

    def daemon_info(self, host: Host) -> tuple[DaemonInfo | None, str]:
        r = host.run(self._ctr("version"), timeout=30, sudo=True)
        try:
            build = facts.parse_ctr_version(r)
        except FactError as exc:
            return None, exc.message
        pid, current = self.daemon_process(host)
        return DaemonInfo(build.version, build.revision, pid, current), ""

    def daemon_process(self, host: Host) -> tuple[int | None, bool | None]:
        """(pid, runs the installed binary) of the daemon; None when unknown. A daemon whose
        binary the package manager replaced runs a deleted file."""
        pid = self.daemon.pid(host)
        current: bool | None = None
        if pid is not None:
            current = facts.parse_exe_current(host.run(facts.exe_command(pid), timeout=30,
                                                       sudo=True))
        return pid, current

    def facts(self, host: Host) -> RuntimeFacts:
        installed = self.packages.installed(host, self.package)
        candidates = self.packages.candidates(host, self.package)
        held = self.packages.held(host, (self.package,))
        daemon, daemon_error = self.daemon_info(host)
        config = facts.parse_containerd_config(
            host.run(facts.cat_command(self.config_path), timeout=30, sudo=True),
            self.config_path)
        return RuntimeFacts(host.name, self.runtime, self.package, installed, candidates, held,
                            daemon, daemon_error, self.address, self.config_path,
                            config.present, config.version, config.keys, config.error,
                            self.packages.kind(host))

    # -- check -----------------------------------------------------------------------------
    def resolve(self, target: str, candidates: Sequence[str]) -> str | None:
        """The offered build ``target`` names, or None."""
        if target in candidates:
            return target
        if re.fullmatch(r"v?\d+\.\d+\.\d+", target):
            release = target.lstrip("v")
            builds = [c for c in candidates if debversion.upstream(c) == release]
            return builds[0] if builds else None  # candidates are newest first
        return None

    def daemon_runs(self, daemon: DaemonInfo | None, build: str) -> bool:
        """The daemon answers, reports ``build`` and runs the installed binary."""
        if daemon is None or daemon.binary_current is False:
            return False
        if daemon.revision == build:
            return True
        # Upstream builds report a git commit as revision: compare the release number.
        return bool(_SHA.match(daemon.revision)) and \
            debversion.upstream(daemon.version.lstrip("v")) == debversion.upstream(build)

    def check(self, facts: RuntimeFacts, target: str) -> list[Problem]:
        out: list[Problem] = []
        pkg = facts.package
        words = TERMS[facts.manager]
        offered = ", ".join(facts.candidates) or "none"
        build = self.resolve(target, facts.candidates)
        if build is None:
            out.append(Problem(
                Severity.ERROR, "target-not-offered",
                f"{facts.host}: {pkg} {target} is not offered by {facts.manager} "
                f"({words.offered.format(pkg=pkg)} offers: {offered}).",
                "pick one of the offered builds, or add the repository that carries it and run "
                f"{words.refresh} on the host."))
        if facts.installed is None:
            out.append(Problem(Severity.ERROR, "not-installed",
                               f"{facts.host}: {pkg} is not installed; pitstop upgrades an "
                               f"installed runtime, it does not install one."))
        for held in facts.held:
            out.append(Problem(
                Severity.ERROR, "held",
                f"{facts.host}: package {held} is held ({words.holds}); pitstop does not "
                f"override holds.",
                f"if the upgrade is intended, release it with `{words.unhold.format(pkg=held)}`."
                ))
        if facts.daemon is None:
            out.append(Problem(
                Severity.WARNING, "daemon-down",
                f"{facts.host}: {self.runtime} does not answer on {facts.address} "
                f"({facts.daemon_error}); the upgrade will start it, and no running container "
                f"can be checked."))
        if facts.config_error:
            out.append(Problem(Severity.ERROR, "config-unreadable",
                               f"{facts.host}: {facts.config_error}"))
        if (facts.installed is not None and build is not None
                and facts.installed != build and facts.installed not in facts.candidates):
            out.append(Problem(
                Severity.ERROR, "no-way-back",
                f"{facts.host}: the installed build {pkg} {facts.installed} is no longer "
                f"offered by {facts.manager}, so a failed upgrade could not be rolled back.",
                "keep the installed build available (a local repository or package cache) "
                "before upgrading."))
        # The catalog checks read the release number, so they run even for a build apt does
        # not offer: the person fixing the repository learns about the configuration too.
        out += self._catalog_checks(facts, build or target)
        return out

    def _catalog_checks(self, facts: RuntimeFacts, build: str) -> list[Problem]:
        out: list[Problem] = []
        try:
            want = parse_version(debversion.upstream(build))
        except VersionError:
            return [Problem(Severity.WARNING, "unknown-version",
                            f"{facts.host}: cannot read a release number in {build}; the "
                            f"catalog checks were skipped.")]
        line = self.catalog.runtime_line(self.runtime, want)
        if line is None:
            out.append(Problem(Severity.WARNING, "unknown-line",
                               f"{facts.host}: the catalog knows nothing of {self.runtime} "
                               f"{want.line}; configuration checks were skipped."))
            return out
        if facts.installed is not None:
            try:
                have = parse_version(debversion.upstream(facts.installed))
            except VersionError:
                have = None
            if have is not None and have.line < want.line:
                path = self.catalog.runtime_path(self.runtime, have, want)
                if len(path) > 1:
                    out.append(Problem(
                        Severity.ERROR, "skips-line",
                        f"{facts.host}: {self.runtime} {have} → {want} skips release lines; "
                        f"the supported path is {' → '.join(str(v) for v in path)}.",
                        f"upgrade to {path[0]} first."))
            if have is not None and TERMS[facts.manager].compare(build, facts.installed) < 0:
                out.append(Problem(Severity.WARNING, "downgrade",
                                   f"{facts.host}: {build} is older than the installed "
                                   f"{facts.installed}."))
        if facts.config_present and facts.config_version is not None and line.config_versions \
                and facts.config_version not in line.config_versions:
            out.append(Problem(
                Severity.ERROR, "config-version",
                f"{facts.host}: {facts.config_path} is config version {facts.config_version}; "
                f"{self.runtime} {want.line} reads versions "
                f"{', '.join(map(str, line.config_versions))}."))
        removed: list[str] = []
        for ln in self.catalog.runtimes.get(self.runtime, ()):
            if ln.line > want.line:
                continue
            for key in ln.removed_config_keys:
                pattern = _split_key(key)
                hits = sorted(".".join(p) for p in facts.config_keys if _matches(pattern, p))
                removed += [f"{h} (removed in {ln.line})" for h in hits]
        if removed:
            out.append(Problem(
                Severity.ERROR, "removed-config-keys",
                f"{facts.host}: {facts.config_path} sets keys that {self.runtime} {want.line} "
                f"no longer accepts: {'; '.join(sorted(set(removed)))}.",
                "migrate the configuration (containerd config migrate) before upgrading."))
        return out

    # -- snapshot --------------------------------------------------------------------------
    def snapshot(self, host: Host) -> Snapshot:
        daemon, why = self.daemon_info(host)
        if daemon is None:
            raise RuntimeUnavailable(host.name, f"{host.name}: {self.runtime} does not answer "
                                                f"on {self.address}: {why}")
        ns = host.run(self._ctr("namespaces", "ls", "-q"), timeout=30, sudo=True, check=True)
        rows: list[tuple[str, str, int, str]] = []
        for namespace in facts.parse_ctr_namespaces(ns):
            tasks = host.run(self._ctr("task", "ls", namespace=namespace), timeout=30,
                             sudo=True, check=True)
            rows += [(namespace, t.id, t.pid, t.status) for t in facts.parse_ctr_tasks(tasks)]
        return Snapshot(host.name, time.time(), daemon, tuple(task_states(host, rows)))

    # -- upgrade ---------------------------------------------------------------------------
    def _answers(self, host: Host) -> str:
        """"" when the daemon answers on its socket, else why not."""
        r = host.run(self._ctr("version"), timeout=15, sudo=True)
        try:
            facts.parse_ctr_version(r)
        except FactError as exc:
            return exc.message[-300:]
        return ""

    def _wait_ready(self, host: Host) -> None:
        deadline = time.monotonic() + self.ready_timeout
        why = ""
        while time.monotonic() < deadline:
            why = self._answers(host)
            if not why:
                return
            time.sleep(0.1)
        raise RuntimeUnavailable(host.name, f"{host.name}: {self.runtime} did not answer on "
                                            f"{self.address} within {self.ready_timeout:g}s "
                                            f"after a restart: {why}")

    def _restart(self, host: Host, running: bool) -> float:
        started = time.monotonic()
        if running:
            self.daemon.restart(host)
        else:
            self.daemon.start(host)
        self._wait_ready(host)
        return time.monotonic() - started

    def upgrade(self, host: Host, target: str,
                action: Literal["upgrade", "rollback"] = "upgrade",
                facts: RuntimeFacts | None = None) -> StepResult:
        """``facts`` may be passed when they were read just before (saves a round of
        queries); otherwise they are read here."""
        started = time.monotonic()
        facts = facts if facts is not None else self.facts(host)
        errors = [p for p in self.check(facts, target) if p.severity is Severity.ERROR]
        if errors:
            raise UpgradeRefused(host.name, errors)
        build = self.resolve(target, facts.candidates)
        assert build is not None  # check() refuses otherwise
        need_install = facts.installed != build
        need_restart = need_install or not self.daemon_runs(facts.daemon, build)
        if not need_restart:
            return StepResult(host.name, action, facts.installed, build, changed=False,
                              installed=False, restarted=False,
                              seconds=time.monotonic() - started,
                              message=f"{self.package} {build} is installed and running: "
                                      f"nothing to do")
        install_seconds = 0.0
        if need_install:
            t = time.monotonic()
            self.packages.install(host, self.package, build, timeout=self.install_timeout)
            install_seconds = time.monotonic() - t
        gap = self._restart(host, running=facts.daemon is not None)
        return StepResult(
            host.name, action, facts.installed, build, changed=True, installed=need_install,
            restarted=True, install_seconds=install_seconds, daemon_unavailable_seconds=gap,
            seconds=time.monotonic() - started,
            message=(f"installed {self.package} {build} (was {facts.installed}) and restarted "
                     f"the daemon" if need_install else
                     f"{self.package} {build} was installed; restarted the daemon onto it"))

    # -- verify ----------------------------------------------------------------------------
    def verify(self, host: Host, before: Snapshot, target: str,
               post_checks: Sequence[PostCheck] = ()) -> Verification:
        started = time.monotonic()
        problems: list[Problem] = []
        candidates = self.packages.candidates(host, self.package)
        build = self.resolve(target, candidates) or target
        installed = self.packages.installed(host, self.package)

        def err(code: str, message: str) -> None:
            problems.append(Problem(Severity.ERROR, code, f"{host.name}: {message}"))

        if installed != build:
            err("package-version", f"{self.package} {installed} is installed, not {build}")
        after: Snapshot | None = None
        try:
            after = self.snapshot(host)
        except RuntimeUnavailable as exc:
            err("daemon-down", str(exc).split(": ", 1)[-1])
        except CommandFailed as exc:
            err("api-error", f"listing tasks failed: {exc}")
        if after is not None and after.daemon is not None:
            d = after.daemon
            if not self.daemon_runs(d, build):
                err("daemon-version",
                    f"the daemon reports {d.version} (revision {d.revision})"
                    + (", from a binary that has been replaced" if d.binary_current is False
                       else "") + f", not {build}")
            if self.crictl:  # "": the runtime serves no CRI (dockerd)
                cri = host.run(f"command -v {shlex.quote(self.crictl)} >/dev/null || exit 200; "
                               f"{shlex.quote(self.crictl)} --runtime-endpoint "
                               f"{shlex.quote('unix://' + self.address)} --timeout 10s info",
                               timeout=60, sudo=True)
                if cri.exit_code not in (0, 200):
                    err("cri-down", f"crictl info failed: {(cri.stderr or cri.stdout)[-300:]}")
            for t in before.running():
                now = after.task(t.namespace, t.id)
                name = f"container {t.namespace}/{t.id}"
                if now is None:
                    err("container-gone", f"{name} (pid {t.pid}) is gone")
                elif now.status != "RUNNING":
                    err("container-not-running", f"{name} is {now.status}, was RUNNING")
                elif now.pid != t.pid or (t.start_ticks is not None
                                          and now.start_ticks != t.start_ticks):
                    err("container-restarted",
                        f"{name} runs as pid {now.pid} (start {now.start_ticks}), was pid "
                        f"{t.pid} (start {t.start_ticks}): it was restarted")
                elif not now.shim_alive or (t.shim_pid is not None and now.shim_pid != t.shim_pid):
                    err("shim-lost", f"{name}: its shim (pid {t.shim_pid}) is not its parent "
                                     f"any more (now {now.shim_pid}, alive={now.shim_alive})")
            for post in post_checks:
                problems.extend(post(host, after))
        return Verification(host.name, build, tuple(problems), after,
                            time.monotonic() - started)

    # -- rollback --------------------------------------------------------------------------
    def rollback(self, host: Host, previous: str, before: Snapshot
                 ) -> tuple[StepResult, Verification]:
        step = self.upgrade(host, previous, action="rollback")
        return step, self.verify(host, before, previous)


def task_states(host: Host, rows: Sequence[tuple[str, str, int, str]]) -> list[TaskState]:
    """(namespace, id, pid, status) rows as :class:`TaskState`: each pid's start time and
    parent from ``/proc``, and whether that parent is a live containerd shim."""
    pids = [pid for *_, pid, _ in rows if pid > 0]
    procs = facts.parse_proc_stats(host.run(facts.proc_stat_script(pids), timeout=30,
                                            sudo=True)) if pids else {}
    parents = sorted({p.ppid for p in procs.values() if p.ppid > 1})
    shims = facts.parse_shim_pids(host.run(facts.proc_cmdline_script(parents), timeout=30,
                                           sudo=True)) if parents else frozenset()
    out = []
    for namespace, task_id, pid, status in rows:
        stat = procs.get(pid)
        ppid = stat.ppid if stat else None
        out.append(TaskState(namespace, task_id, pid, status,
                             stat.start_ticks if stat else None, ppid,
                             ppid is not None and ppid in shims))
    return out


# ---------------------------------------------------------------------------------------------
# The whole step


def upgrade_runtime(actuator: RuntimeActuator, host: Host, target: str, *,
                    post_checks: Sequence[PostCheck] = ()) -> RuntimeUpgradeReport:
    """facts → check → snapshot → upgrade → verify (+ ``post_checks``) → rollback on failure.

    Refusals (:class:`UpgradeRefused`) and unreachable hosts raise before anything changes.
    When the install or restart fails, or verification finds a problem, the previous build is
    re-installed, the daemon restarted and verified against the same snapshot. Running it again
    after success is a verified no-op (``already-current``).
    """
    started = time.monotonic()
    facts = actuator.facts(host)
    errors = [p for p in actuator.check(facts, target) if p.severity is Severity.ERROR]
    if errors:
        raise UpgradeRefused(host.name, errors)
    before = actuator.snapshot(host)
    previous = facts.installed
    assert previous is not None  # check() refuses a host without the package
    step: StepResult | None = None
    verification: Verification | None = None
    error = ""
    try:
        step = actuator.upgrade(host, target, facts=facts)
        verification = actuator.verify(host, before, target, post_checks)
    except HostError as exc:
        error = str(exc)
    if step is not None and not step.changed and verification is not None:
        # Nothing was changed, so there is nothing to roll back.
        return RuntimeUpgradeReport(
            host.name, actuator.runtime, previous, target,
            "already-current" if verification.ok else "verify-failed", step, verification,
            error=error, seconds=time.monotonic() - started, before=before)
    if verification is not None and verification.ok:
        return RuntimeUpgradeReport(host.name, actuator.runtime, previous, target, "upgraded",
                                    step, verification, error=error,
                                    seconds=time.monotonic() - started, before=before)
    rb_step, rb_verification = actuator.rollback(host, previous, before)
    return RuntimeUpgradeReport(
        host.name, actuator.runtime, previous, target,
        "rolled-back" if rb_verification.ok else "rollback-failed", step, verification,
        rb_step, rb_verification, error=error, seconds=time.monotonic() - started,
        before=before)
