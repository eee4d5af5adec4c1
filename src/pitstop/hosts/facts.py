"""Everything pitstop reads from a host, as pairs: the command that asks, and the pure parse of
what it printed.

Each fact is a ``*_command`` function (or constant) building the argument list (or, where a
loop over processes is needed, the shell script) and a ``parse_*`` function turning the
command's output into a value. The parse functions do no I/O: they take a :class:`Printed`
(``stdout``, ``stderr``, ``exit_code``; :class:`~pitstop.hosts.connect.CommandResult` is one,
:class:`Output` another) and return a value, or raise :class:`FactError` saying why the output
is not an answer. The modules that act on hosts (``packages``, ``containerd``, ``docker``,
``etcd``, ``backend``) run the commands and call these; the layers contract in
``pyproject.toml`` keeps this module free of I/O.

The tests run every parser on outputs captured from the real tools (``tests/hosts/data/<tool>/
<case>.txt``, the expected value beside it in ``<case>.json``): :data:`FACTS` names every
fact, the tool that prints it and its parser, so that a parser with no captured case is noticed.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from pitstop.hosts import debversion, rpmversion

__all__ = [
    "FACTS",
    "UNCAPTURED",
    "Alarm",
    "ConfigFile",
    "CtrTask",
    "DaemonBuild",
    "DockerContainer",
    "DockerInfo",
    "EndpointHealth",
    "EndpointStatus",
    "Fact",
    "FactError",
    "HashKV",
    "Output",
    "Printed",
    "ProcStat",
    "SnapshotStatus",
]


# ---------------------------------------------------------------------------------------------
# What a command printed, and an output that is not an answer


class Printed(Protocol):
    """What a command printed and how it exited."""

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...

    @property
    def exit_code(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Output:
    stdout: str
    stderr: str = ""
    exit_code: int = 0


FailureKind = Literal["missing-tool", "not-a-command", "failed", "unreadable"]


class FactError(ValueError):
    """The output is not an answer to the question: the tool is missing (exit 127, the shell's
    "command not found"), the tool lacks the subcommand (a plugin not installed), the command
    failed, or it printed something unreadable. ``message`` says what it printed."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        self.kind: FailureKind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


def said(out: Printed, limit: int = 500) -> str:
    """What a failed command said: the end of its stderr, else of its stdout, else its exit
    code."""
    return (out.stderr.strip() or out.stdout.strip() or f"exit {out.exit_code}")[-limit:]


def _require(out: Printed, what: str) -> None:
    if out.exit_code == 127:
        raise FactError("missing-tool", f"{what}: {said(out, 300)}")
    if out.exit_code != 0:
        raise FactError("failed", f"{what} exited with {out.exit_code}: {said(out, 300)}")


def _json(out: Printed, what: str) -> Any:
    _require(out, what)
    try:
        return json.loads(out.stdout)
    except ValueError as exc:
        text = out.stdout.strip()[-200:]
        raise FactError("unreadable", f"{what} printed {text!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# apt and dpkg


def dpkg_status_command(package: str) -> list[str]:
    return ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", package]


def parse_dpkg_status(out: Printed) -> str | None:
    """The installed version; None when dpkg knows no installed build (``dpkg-query: no
    packages found matching …`` exits 1; ``rc`` is removed with its configuration files left;
    ``un`` was never installed). ``hi`` (held and installed) is installed."""
    if out.exit_code == 127:
        raise FactError("missing-tool", f"dpkg-query: {said(out, 300)}")
    if out.exit_code != 0:
        return None
    status, _, version = out.stdout.strip().partition("|")
    if len(status) >= 2 and status[1] == "i" and version:
        return version
    return None


def madison_command(package: str) -> list[str]:
    return ["apt-cache", "madison", package]


def parse_madison(out: Printed, package: str) -> tuple[str, ...]:
    """Every build the apt sources offer, newest first (a build in several sources once). An
    unknown package prints nothing, and madison exits 0."""
    _require(out, "apt-cache madison")
    versions: set[str] = set()
    for line in out.stdout.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) >= 3 and cols[0] == package and cols[1]:
            versions.add(cols[1])
    return tuple(sorted(versions, key=debversion.sort_key, reverse=True))


def showhold_command(packages: Sequence[str]) -> list[str]:
    return ["apt-mark", "showhold", *packages]


def parse_showhold(out: Printed, packages: Sequence[str]) -> tuple[str, ...]:
    """Those of ``packages`` apt holds."""
    _require(out, "apt-mark showhold")
    held = {line.strip() for line in out.stdout.splitlines() if line.strip()}
    return tuple(p for p in packages if p in held)


def apt_check_command(wait: int) -> list[str]:
    """``apt-get check`` takes the dpkg frontend lock, so it waits (up to ``wait`` seconds) for
    any apt or dpkg run to finish, then checks the package database."""
    return ["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={wait}", "check"]


def parse_apt_check(out: Printed) -> str:
    """"" when the package database is consistent and apt is free, else apt's ``E:``/``W:``
    lines (an interrupted dpkg: "you must manually run 'dpkg --configure -a'")."""
    if out.exit_code == 0:
        return ""
    lines = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.startswith(("E:", "W:"))]
    return "; ".join(lines[-3:]) or f"apt-get check exited with {out.exit_code}"


# ---------------------------------------------------------------------------------------------
# rpm and dnf

RPM_QUERY_FORMAT = "%{NAME}|%|EPOCH?{%{EPOCH}}:{0}||%{VERSION}|%{RELEASE}\\n"


def rpm_installed_command(package: str, rpm: Sequence[str] = ("rpm",)) -> list[str]:
    return [*rpm, "-q", "--qf", RPM_QUERY_FORMAT, package]


def parse_rpm_installed(out: Printed, package: str) -> str | None:
    """The installed build, ``[epoch:]version-release``; with several installed (an interrupted
    transaction) the newest. None for ``package … is not installed``."""
    if out.exit_code == 127:
        raise FactError("missing-tool", f"rpm: {said(out, 300)}")
    builds = []
    for line in out.stdout.splitlines():
        cols = line.strip().split("|")
        if len(cols) == 4 and cols[0] == package:
            builds.append(rpmversion.evr(cols[1], cols[2], cols[3]))
    if not builds:
        if out.exit_code != 0 and "is not installed" not in out.stdout + out.stderr:
            raise FactError("failed", f"rpm -q exited with {out.exit_code}: {said(out, 300)}")
        return None
    return max(builds, key=rpmversion.sort_key)


REPOQUERY_FORMAT = "%{name}|%{epoch}|%{version}|%{release}|%{arch}|%{reponame}"


def repoquery_command(package: str, dnf: Sequence[str] = ("dnf", "-q")) -> list[str]:
    """Every build the repositories carry, holds ignored (so a held package still shows what is
    offered and its hold is reported as a hold)."""
    return [*dnf, "repoquery", "--showduplicates", "--disableexcludes=all",
            "--disableplugin=versionlock", "--qf", REPOQUERY_FORMAT, package]


def parse_repoquery(out: Printed, package: str) -> tuple[str, ...]:
    """Offered builds, newest first; source packages and the installed one (``@System``) are
    not offers."""
    _require(out, "dnf repoquery")
    versions: set[str] = set()
    for line in out.stdout.splitlines():
        cols = line.strip().split("|")
        if (len(cols) == 6 and cols[0] == package and cols[4] not in ("src", "nosrc")
                and cols[5] != "@System"):
            versions.add(rpmversion.evr(cols[1], cols[2], cols[3]))
    return tuple(sorted(versions, key=rpmversion.sort_key, reverse=True))


_NOT_A_COMMAND = ("No such command", "no such command", "Unknown argument")


def versionlock_list_command(dnf: Sequence[str] = ("dnf", "-q")) -> list[str]:
    return [*dnf, "versionlock", "list"]


def parse_versionlock_list(out: Printed) -> tuple[str, ...]:
    """The versionlock entries (``NAME-[EPOCH:]VERSION-RELEASE.*`` locks, ``!…`` excludes). No
    versionlock plugin (``No such command: versionlock``) means no locks."""
    if out.exit_code not in (0, 127) and \
            any(m in out.stdout + out.stderr for m in _NOT_A_COMMAND):
        return ()
    _require(out, "dnf versionlock list")
    return tuple(e for e in (line.strip() for line in out.stdout.splitlines())
                 if e and not e.startswith("#"))


def config_dump_command(dnf: Sequence[str] = ("dnf", "-q"), *,
                        repositories: bool = False) -> list[str]:
    """The main configuration, or that of every enabled repository, as dnf resolved it."""
    return [*dnf, "config-manager", "--dump", *(("*",) if repositories else ())]


def parse_config_dump(out: Printed) -> tuple[tuple[str, str], ...]:
    """(section, pattern) of every ``excludepkgs`` (dnf prints ``exclude=`` as it) in a
    ``config-manager --dump``: ``main``, or the repository's id. No repository (``No matching
    repo to modify``) is none; no ``config-manager`` (dnf-plugins-core missing) raises
    ``not-a-command``."""
    if out.exit_code != 0:
        if "No matching repo" in out.stdout + out.stderr:
            return ()
        if out.exit_code != 127 and any(m in out.stdout + out.stderr for m in _NOT_A_COMMAND):
            raise FactError("not-a-command", f"dnf config-manager: {said(out, 300)}")
    _require(out, "dnf config-manager --dump")
    found: list[tuple[str, str]] = []
    section = "main"
    for line in out.stdout.splitlines():
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
    return tuple(found)


def concerns(package: str, pattern: str) -> bool:
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


def dnf_holds(packages: Sequence[str], locks: Iterable[str],
              excludes: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """package → the rules that hold it (``versionlock: containerd-0:1.6.28-1.*``, ``exclude in
    [main]: containerd*``), from the parsed versionlock list and excludes; packages nothing
    holds are left out."""
    out: dict[str, list[str]] = {}

    def hit(pattern: str, why: str) -> None:
        for p in packages:
            if concerns(p, pattern.lstrip("!")):
                out.setdefault(p, []).append(why)

    for entry in locks:
        kind = "versionlock exclude" if entry.startswith("!") else "versionlock"
        hit(entry, f"{kind}: {entry}")
    for section, pattern in excludes:
        hit(pattern, f"exclude in [{section}]: {pattern}")
    return out


def dnf_check_command(dnf: Sequence[str] = ("dnf", "-q")) -> list[str]:
    return [*dnf, "check", "--duplicates"]


def parse_dnf_check(out: Printed) -> str:
    """"" when no package is installed twice, else what ``dnf check`` said."""
    if out.exit_code == 0 and not out.stdout.strip():
        return ""
    lines = [ln for ln in (out.stdout.strip() or out.stderr.strip()).splitlines() if ln.strip()]
    return ("; ".join(lines[-3:]) or f"dnf check exited with {out.exit_code}") + \
        " (an interrupted transaction? see `dnf check` and `dnf remove --duplicates`)"


# ---------------------------------------------------------------------------------------------
# The operating system

OS_RELEASE_COMMAND = "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"

_APT_IDS = {"debian", "ubuntu"}
_DNF_IDS = {"rhel", "fedora", "centos"}


def os_release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


def package_manager_of(text: str) -> Literal["apt", "dnf"] | None:
    """apt or dnf from the text of an os-release file, by ``ID`` then ``ID_LIKE`` in order:
    debian/ubuntu → apt, rhel/fedora/centos → dnf (rocky, almalinux, ol… carry
    ``ID_LIKE="rhel centos fedora"``); None for anything else."""
    fields = os_release_fields(text)
    for i in [fields.get("ID", "").lower(), *fields.get("ID_LIKE", "").lower().split()]:
        if i in _APT_IDS:
            return "apt"
        if i in _DNF_IDS:
            return "dnf"
    return None


@dataclass(frozen=True, slots=True)
class OsRelease:
    id: str
    id_like: str
    package_manager: Literal["apt", "dnf"] | None


def parse_os_release(out: Printed) -> OsRelease:
    _require(out, "cat /etc/os-release")
    fields = os_release_fields(out.stdout)
    return OsRelease(fields.get("ID", ""), fields.get("ID_LIKE", ""),
                     package_manager_of(out.stdout))


# ---------------------------------------------------------------------------------------------
# Processes


def systemd_main_pid_command(unit: str) -> list[str]:
    return ["systemctl", "show", "-p", "MainPID", "--value", unit]


def parse_pid(out: Printed) -> int | None:
    """A pid printed alone (``systemctl show -p MainPID --value``: 0 when the unit runs
    nothing); None for anything else."""
    text = out.stdout.strip()
    return int(text) if out.exit_code == 0 and text.isdigit() and int(text) > 0 else None


def exe_command(pid: int) -> list[str]:
    return ["readlink", f"/proc/{pid}/exe"]


def parse_exe_current(out: Printed) -> bool | None:
    """Whether the process runs the file now on disk: a binary the package manager replaced
    reads ``… (deleted)``. None when it cannot be read."""
    if out.exit_code != 0 or not out.stdout.strip():
        return None
    return not out.stdout.strip().endswith("(deleted)")


def proc_stat_script(pids: Iterable[int]) -> str:
    """``PID <the line of /proc/PID/stat>`` for each pid (an empty line after a gone one)."""
    return ("for p in " + " ".join(str(int(p)) for p in pids)
            + '; do printf "%s " "$p"; cat /proc/$p/stat 2>/dev/null || echo; done')


class ProcStat(NamedTuple):
    state: str
    ppid: int
    start_ticks: int  # clock ticks after boot: tells a reused pid apart


def parse_proc_stats(out: Printed) -> dict[int, ProcStat]:
    """pid → (state, ppid, start time) of the live processes (zombies and gone ones left out)."""
    stats: dict[int, ProcStat] = {}
    for line in out.stdout.splitlines():
        pid_text, _, stat = line.partition(" ")
        # Fields after the command name, which is in parentheses and may contain anything.
        rest = stat.rpartition(")")[2].split()
        if pid_text.isdigit() and len(rest) >= 20 and rest[0] != "Z":
            stats[int(pid_text)] = ProcStat(rest[0], int(rest[1]), int(rest[19]))
    return stats


def proc_cmdline_script(pids: Iterable[int]) -> str:
    """``PID <its command line, NULs as spaces>`` for each pid."""
    return ("for p in " + " ".join(str(int(p)) for p in pids)
            + """; do printf "%s " "$p"; tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null; """
              "echo; done")


def parse_shim_pids(out: Printed) -> frozenset[int]:
    """The pids whose command line is a containerd shim's."""
    return frozenset(int(pid) for pid, _, cmd in (ln.partition(" ")
                                                  for ln in out.stdout.splitlines())
                     if pid.isdigit() and "containerd-shim" in cmd)


KUBELET_VERSION_COMMAND = "command -v kubelet >/dev/null 2>&1 || exit 200; kubelet --version"


def parse_kubelet_version(out: Printed) -> str | None:
    """``Kubernetes v1.35.4`` → ``1.35.4``; None without a kubelet (exit 200) or a version."""
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", out.stdout) if out.exit_code == 0 else None
    return m.group(1) if m else None


# ---------------------------------------------------------------------------------------------
# containerd


def ctr_command(ctr: str, address: str, *args: str, namespace: str | None = None) -> list[str]:
    ns = ["--namespace", namespace] if namespace else []
    return [ctr, "--address", address, "--connect-timeout", "3s", *ns, *args]


class DaemonBuild(NamedTuple):
    version: str  # containerd: "1.6.20~ds1"; dockerd: "20.10.24+dfsg1"
    revision: str  # Debian builds of containerd: the package version; upstream: a git commit


def parse_ctr_version(out: Printed) -> DaemonBuild:
    """The Server section of ``ctr version``; a daemon that does not answer raises (``failed``,
    with what ctr said)."""
    if out.exit_code != 0:
        raise FactError("failed", said(out))
    server = out.stdout.split("Server:", 1)
    if len(server) < 2:
        raise FactError("unreadable", f"no Server section in {out.stdout.strip()[-300:]!r}")
    version = revision = ""
    for line in server[1].splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Version":
            version = value.strip()
        elif key == "Revision":
            revision = value.strip()
    if not (version or revision):
        raise FactError("unreadable", f"no server version in {out.stdout.strip()[-300:]!r}")
    return DaemonBuild(version, revision)


def parse_ctr_namespaces(out: Printed) -> tuple[str, ...]:
    """``ctr namespaces ls -q``: one namespace a line."""
    _require(out, "ctr namespaces ls")
    return tuple(out.stdout.split())


class CtrTask(NamedTuple):
    id: str
    pid: int
    status: str  # RUNNING, STOPPED, PAUSED, CREATED, …


def parse_ctr_tasks(out: Printed) -> tuple[CtrTask, ...]:
    """``ctr task ls``: the table under its ``TASK PID STATUS`` header."""
    _require(out, "ctr task ls")
    rows = []
    for line in out.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3 and cols[1].isdigit():
            rows.append(CtrTask(cols[0], int(cols[1]), cols[2]))
    return tuple(rows)


def cat_command(path: str) -> list[str]:
    return ["cat", path]


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A daemon's configuration file as read on the host."""

    present: bool
    version: int | None = None  # containerd: the file's ``version`` (1 when absent)
    keys: frozenset[tuple[str, ...]] = frozenset()  # every table and key path
    error: str = ""  # why it could not be read or parsed
    live_restore: bool | None = None  # dockerd: daemon.json "live-restore" (None: not set)


def flatten(table: Mapping[str, object], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path of a nested mapping, tables included."""
    out: set[tuple[str, ...]] = set()
    for key, value in table.items():
        path = (*prefix, key)
        out.add(path)
        if isinstance(value, dict):
            out |= flatten(value, path)
    return out


def _normalise_v1(path: tuple[str, ...]) -> tuple[str, ...]:
    # Config version 1 names the CRI plugin "cri"; version 2 "io.containerd.grpc.v1.cri".
    if len(path) >= 2 and path[0] == "plugins" and path[1] == "cri":
        return ("plugins", "io.containerd.grpc.v1.cri", *path[2:])
    return path


def _absent(out: Printed, path: str) -> ConfigFile | None:
    """None when the file was read; else a missing file (no error) or the error."""
    if out.exit_code == 0:
        return None
    if "No such file" in out.stderr:
        return ConfigFile(present=False)
    return ConfigFile(present=False, error=f"cannot read {path}: {out.stderr.strip()[-300:]}")


def parse_containerd_config(out: Printed, path: str) -> ConfigFile:
    """``cat config.toml``: its version and key paths (version 1 names as version 2's, the way
    the catalog names them); a missing file is not an error, one that is not TOML is."""
    absent = _absent(out, path)
    if absent is not None:
        return absent
    try:
        data = tomllib.loads(out.stdout)
    except tomllib.TOMLDecodeError as exc:
        return ConfigFile(present=True, error=f"{path} is not valid TOML: {exc}")
    raw = data.get("version", 1)
    version = raw if isinstance(raw, int) else None
    keys = frozenset(_normalise_v1(p) if version == 1 else p for p in flatten(data))
    return ConfigFile(present=True, version=version, keys=keys)


# ---------------------------------------------------------------------------------------------
# Docker Engine


def docker_command(docker: str, address: str, *args: str) -> list[str]:
    return [docker, "--host", f"unix://{address}", *args]


DOCKER_VERSION_ARGS = ("version", "--format", "{{json .Server}}")
DOCKER_INFO_ARGS = ("info", "--format", "{{json .}}")
DOCKER_PS_ARGS = ("ps", "--all", "--quiet", "--no-trunc")
DOCKER_INSPECT_FORMAT = "{{.Id}}|{{.State.Status}}|{{.State.Pid}}|{{.Name}}"


def docker_inspect_args(ids: Sequence[str]) -> tuple[str, ...]:
    return ("inspect", "--type", "container", "--format", DOCKER_INSPECT_FORMAT, *ids)


def parse_docker_version(out: Printed) -> DaemonBuild:
    """``docker version --format '{{json .Server}}'``: the Engine's version and git commit; a
    daemon that does not answer raises with what the CLI said."""
    if out.exit_code != 0:
        raise FactError("failed", said(out))
    data = _json(out, "docker version")
    if not isinstance(data, dict) or not data.get("Version"):
        raise FactError("unreadable", "the daemon gave no version")
    return DaemonBuild(str(data["Version"]), str(data.get("GitCommit", "")))


@dataclass(frozen=True, slots=True)
class DockerInfo:
    live_restore: bool  # LiveRestoreEnabled: what the running daemon applies
    swarm: str  # Swarm.LocalNodeState: "inactive", "active", … ("" when not said)


def parse_docker_info(out: Printed) -> DockerInfo:
    if out.exit_code != 0:
        raise FactError("failed", said(out))
    info = _json(out, "docker info")
    if not isinstance(info, dict):
        raise FactError("unreadable", "docker info printed no object")
    sw = info.get("Swarm")
    return DockerInfo(bool(info.get("LiveRestoreEnabled")),
                      str(sw.get("LocalNodeState", "")) if isinstance(sw, dict) else "")


def parse_docker_ps(out: Printed) -> tuple[str, ...]:
    """``docker ps --all --quiet --no-trunc``: every container's full id."""
    _require(out, "docker ps")
    return tuple(out.stdout.split())


class DockerContainer(NamedTuple):
    id: str
    status: str  # upper case, as ctr prints task states: RUNNING, EXITED, …
    pid: int  # 0 when not running
    name: str


def parse_docker_inspect(out: Printed) -> tuple[DockerContainer, ...]:
    """One row per container (:data:`DOCKER_INSPECT_FORMAT`). A container removed between
    ``ps`` and ``inspect`` makes inspect exit 1 and print the others: those are kept; nothing
    at all with a failure raises."""
    rows = []
    for line in out.stdout.splitlines():
        cols = line.strip().split("|")
        if len(cols) == 4 and cols[2].lstrip("-").isdigit():
            rows.append(DockerContainer(cols[0], cols[1].upper(), int(cols[2]),
                                        cols[3].lstrip("/")))
    if out.exit_code != 0 and not rows:
        raise FactError("failed", f"docker inspect exited with {out.exit_code}: {said(out)}")
    return tuple(rows)


def parse_daemon_json(out: Printed, path: str) -> ConfigFile:
    """``cat daemon.json``: its key paths and ``live-restore``; an empty file is ``{}``."""
    absent = _absent(out, path)
    if absent is not None:
        return absent
    try:
        data = json.loads(out.stdout) if out.stdout.strip() else {}
    except json.JSONDecodeError as exc:
        return ConfigFile(present=True, error=f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return ConfigFile(present=True, error=f"{path} is not a JSON object")
    value = data.get("live-restore")
    return ConfigFile(present=True, keys=frozenset(flatten(data)),
                      live_restore=value if isinstance(value, bool) else None)


# ---------------------------------------------------------------------------------------------
# etcd


def etcd_version_command(etcd: str) -> list[str]:
    return [etcd, "--version"]


def parse_etcd_version(out: Printed) -> str | None:
    """``etcd Version: 3.5.1`` → ``3.5.1``."""
    m = re.search(r"etcd Version:\s*(\S+)", out.stdout)
    return m.group(1) if m else None


def etcdctl_command(etcdctl: str, endpoints: Sequence[str], *args: str, dial_timeout: float,
                    command_timeout: float, tls_flags: Sequence[str] = ()) -> list[str]:
    return [etcdctl, "--endpoints", ",".join(endpoints), f"--dial-timeout={dial_timeout:g}s",
            f"--command-timeout={command_timeout:g}s", *tls_flags, *args]


ENDPOINT_STATUS_ARGS = ("endpoint", "status", "-w", "json")
ENDPOINT_HEALTH_ARGS = ("endpoint", "health", "-w", "json")
ALARM_LIST_ARGS = ("alarm", "list", "-w", "json")
MEMBER_LIST_ARGS = ("member", "list", "-w", "json")


def hashkv_args(revision: int) -> tuple[str, ...]:
    return ("endpoint", "hashkv", "--rev", str(revision), "-w", "json")


def key_count_args(revision: int) -> tuple[str, ...]:
    """The number of keys at ``revision`` (``count`` is the total, whatever the limit)."""
    return ("get", "", "--prefix", "--keys-only", "--limit", "1", "--rev", str(revision),
            "-w", "json")


def snapshot_status_command(tool: str, path: str) -> list[str]:
    """``etcdutl`` (3.5+) or ``etcdctl`` (3.4) ``snapshot status``."""
    return [tool, "snapshot", "status", path, "-w", "json"]


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    version: str
    member_id: int
    leader_id: int  # 0: the member sees no leader
    raft_index: int
    applied_index: int
    revision: int
    db_size: int


def parse_endpoint_status(out: Printed) -> EndpointStatus:
    """``etcdctl endpoint status -w json`` against one endpoint (etcd 3.4 has no
    ``raftAppliedIndex``: the raft index stands in for it)."""
    data = _json(out, "etcdctl endpoint status")
    try:
        s = data[0]["Status"]
        return EndpointStatus(
            version=str(s.get("version", "")), member_id=int(s["header"]["member_id"]),
            leader_id=int(s.get("leader", 0)), raft_index=int(s.get("raftIndex", 0)),
            applied_index=int(s.get("raftAppliedIndex", s.get("raftIndex", 0))),
            revision=int(s["header"].get("revision", 0)), db_size=int(s.get("dbSize", 0)))
    except (LookupError, TypeError, AttributeError, ValueError) as exc:
        raise FactError("unreadable", f"etcdctl endpoint status: {exc!r} in "
                                      f"{out.stdout.strip()[-200:]!r}") from None


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    healthy: bool
    error: str  # etcd's words when it is not healthy


def parse_endpoint_health(out: Printed) -> EndpointHealth:
    """``etcdctl endpoint health -w json``: JSON, also when the endpoint is unhealthy or cannot
    be reached (``"health": false`` with etcd's ``error``; etcdctl exits 1); output that is not
    that JSON is unhealthy, with the end of stderr as the error."""
    try:
        h = json.loads(out.stdout)
        return EndpointHealth(bool(h and h[0].get("health")),
                              str(h[0].get("error", "")) if h else "")
    except (ValueError, LookupError, AttributeError):
        return EndpointHealth(False, out.stderr.strip()[-300:])


ALARM_KINDS = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}


class Alarm(NamedTuple):
    member_id: int
    alarm: str  # NOSPACE, CORRUPT


def parse_alarm_list(out: Printed) -> tuple[Alarm, ...]:
    """``etcdctl alarm list -w json``: no ``alarms`` field when there is none."""
    data = _json(out, "etcdctl alarm list")
    if not isinstance(data, dict):
        raise FactError("unreadable", "etcdctl alarm list printed no object")
    out_: list[Alarm] = []
    for a in data.get("alarms") or ():
        kind = a.get("alarm", 0)
        label = ALARM_KINDS.get(kind, str(kind)) if isinstance(kind, int) else str(kind)
        out_.append(Alarm(int(a.get("memberID", 0)), label))
    return tuple(out_)


def parse_member_list(out: Printed) -> dict[int, str]:
    """``etcdctl member list -w json``: member id → name ("" for a member added but not
    started)."""
    data = _json(out, "etcdctl member list")
    members = data.get("members") if isinstance(data, dict) else None
    return {int(m["ID"]): str(m.get("name", "")) for m in members or () if "ID" in m}


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int  # bbolt keys, not etcd keys
    total_size: int


def parse_snapshot_status(out: Printed) -> SnapshotStatus:
    data = _json(out, "snapshot status")
    try:
        return SnapshotStatus(int(data["hash"]), int(data["revision"]), int(data["totalKey"]),
                              int(data["totalSize"]))
    except (LookupError, TypeError, ValueError) as exc:
        raise FactError("unreadable", f"snapshot status: {exc!r} in "
                                      f"{out.stdout.strip()[-200:]!r}") from None


class HashKV(NamedTuple):
    hash: int
    compact_revision: int


def parse_hashkv(out: Printed) -> HashKV:
    """``etcdctl endpoint hashkv --rev R -w json`` against one endpoint."""
    data = _json(out, "etcdctl endpoint hashkv")
    try:
        h = data[0]["HashKV"]
        return HashKV(int(h["hash"]), int(h.get("compact_revision", 0)))
    except (LookupError, TypeError, ValueError) as exc:
        raise FactError("unreadable", f"etcdctl endpoint hashkv: {exc!r}") from None


def parse_key_count(out: Printed) -> int:
    """``etcdctl get … --keys-only --limit 1 -w json``: ``count`` (absent when there is no
    key)."""
    data = _json(out, "etcdctl get")
    if not isinstance(data, dict):
        raise FactError("unreadable", "etcdctl get printed no object")
    return int(data.get("count", 0))


def etcdctl_said(text: str, limit: int = 200) -> str:
    """The words that matter in a failed etcdctl's output: the x509/TLS error, or the refused
    connection; else its end."""
    m = re.search(r"(x509: [^\"\\]+|tls: [^\"\\]+|remote error: [^\"\\]+|"
                  r"open \S+: [^\"\\]+|connection refused)", text)
    if m:
        return m.group(1)
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


# ---------------------------------------------------------------------------------------------
# The facts, by name


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing read from hosts: the tool that prints it (the folder of its captured cases in
    ``tests/hosts/data``), and its parser, called as ``parse(output, **args)``."""

    tool: str
    parse: Callable[..., object]


FACTS: dict[str, Fact] = {
    "dpkg-query status": Fact("apt", parse_dpkg_status),
    "apt-cache madison": Fact("apt", parse_madison),
    "apt-mark showhold": Fact("apt", parse_showhold),
    "apt-get check": Fact("apt", parse_apt_check),
    "rpm -q": Fact("rpm", parse_rpm_installed),
    "dnf repoquery": Fact("dnf", parse_repoquery),
    "dnf versionlock list": Fact("dnf", parse_versionlock_list),
    "dnf config-manager --dump": Fact("dnf", parse_config_dump),
    "dnf check --duplicates": Fact("dnf", parse_dnf_check),
    "os-release": Fact("os", parse_os_release),
    "systemctl show MainPID": Fact("proc", parse_pid),
    "readlink /proc/PID/exe": Fact("proc", parse_exe_current),
    "/proc/PID/stat": Fact("proc", parse_proc_stats),
    "/proc/PID/cmdline": Fact("proc", parse_shim_pids),
    "kubelet --version": Fact("kubelet", parse_kubelet_version),
    "ctr version": Fact("ctr", parse_ctr_version),
    "ctr namespaces ls": Fact("ctr", parse_ctr_namespaces),
    "ctr task ls": Fact("ctr", parse_ctr_tasks),
    "containerd config": Fact("containerd", parse_containerd_config),
    "docker version": Fact("docker", parse_docker_version),
    "docker info": Fact("docker", parse_docker_info),
    "docker ps": Fact("docker", parse_docker_ps),
    "docker inspect": Fact("docker", parse_docker_inspect),
    "docker daemon.json": Fact("docker", parse_daemon_json),
    "etcd --version": Fact("etcd", parse_etcd_version),
    "etcdctl endpoint status": Fact("etcdctl", parse_endpoint_status),
    "etcdctl endpoint health": Fact("etcdctl", parse_endpoint_health),
    "etcdctl alarm list": Fact("etcdctl", parse_alarm_list),
    "etcdctl member list": Fact("etcdctl", parse_member_list),
    "etcdctl endpoint hashkv": Fact("etcdctl", parse_hashkv),
    "etcdctl get count": Fact("etcdctl", parse_key_count),
    "snapshot status": Fact("etcdutl", parse_snapshot_status),
}

# Facts whose tool cannot print here (the test machines run no systemd and no kubelet): their
# parsers are tested on hand-written cases, marked as such.
UNCAPTURED: dict[str, str] = {
    "systemctl show MainPID": "the test machines do not run systemd",
    "kubelet --version": "the test machines have no kubelet binary",
}
