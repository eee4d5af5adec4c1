"""etcd on hosts: members and their processes, health, verified snapshots, the rolling upgrade,
and the way back (restoring a snapshot into a new cluster of the old version).

The pieces
==========

* :class:`EtcdCluster` describes a cluster: its members (name, client URL, peer URL, data
  directory), where the binaries of each etcd version live, its cluster token and quota.
* :class:`MemberControl` is how a member's etcd process is started and stopped. It is a strategy:
  :class:`LocalProcessControl` runs members as local processes (pid files and logs in a run
  directory); a systemd unit or an SSH host fits the same four calls later.
* :class:`EtcdActuator` does the work through ``etcdctl`` (``ETCDCTL_API=3``, JSON output) and,
  for etcd 3.5 and later, ``etcdutl``. Every call is separate and idempotent, so a backend can
  drive it through ``start``/``poll``: :meth:`~EtcdActuator.snapshot` reuses a snapshot that is
  already there and verifies, :meth:`~EtcdActuator.begin_member_upgrade` does nothing to a member
  already running the target version, :meth:`~EtcdActuator.member_upgrade_state` only reads
  (and writes the probe key), :meth:`~EtcdActuator.next_member` says which member is next.
  :meth:`~EtcdActuator.upgrade` strings them together with the gates in between.
  :meth:`~EtcdActuator.restore` is one blocking call (seconds for small clusters), idempotent
  too: a backend runs it in a worker and polls that.

Time stamps in reports are :func:`time.monotonic` seconds, so callers can line them up with
their own measurements.

TLS
===

Members that serve ``https://`` client URLs (usually with ``--client-cert-auth``) are reached
with :attr:`EtcdCluster.client_tls` (:class:`EtcdTLS`: CA, client certificate and key *paths*),
passed as ``--cacert/--cert/--key`` to every etcdctl call that talks to a member; the members'
own server and peer TLS flags are :attr:`EtcdCluster.extra_flags` and
:attr:`EtcdMember.extra_flags`, passed at every start (so a restarted or restored member keeps
them). etcdutl and etcdctl 3.4's ``snapshot status/restore`` work on files and need none. A TLS
failure is diagnosed from etcdctl's words (:func:`diagnose_tls`: wrong CA → ``caFile``, refused
or missing client certificate → ``certFile``, …) and the diagnosis is added to the error, naming
the field; :meth:`EtcdActuator.check_access` asks every member once, read-only, before anything
is done.

Rolling upgrade (:meth:`EtcdActuator.upgrade`)
==============================================

1. Check that the target binaries are there and report the version they claim.
2. Gate: every member healthy, one leader that every member agrees on, no alarms, db size under
   80 % of the quota, raft index advancing (a probe write is applied by every member).
3. Snapshot: ``etcdctl snapshot save`` from the leader, then verify it (below). A snapshot that
   does not verify stops the upgrade before any member is touched.
4. One member at a time, followers first and the leader last: stop it, start it with the new
   binary on the same data directory and the same flags, wait until it is healthy at the new
   version, sees a leader, has no alarm and has applied a probe write made after it came back
   (caught up); then the gate again before the next member. A member already at the target
   version is skipped, so a re-run after an interruption continues where it stopped.
5. A member that does not come back (its process exits, or it is not healthy and caught up in
   time) stops the upgrade with :class:`MemberRejoinError`, which names the member and carries
   the end of its log. The cluster keeps quorum with the other members.

Snapshot verification (:meth:`EtcdActuator.verify_snapshot`)
============================================================

* the sha256 that ``snapshot save`` appends to the file matches its content (this is the check
  ``snapshot restore`` makes; ``snapshot status`` alone does not notice a damaged page);
* ``snapshot status`` (``etcdutl`` for 3.5 and later binaries, ``etcdctl`` for 3.4) reads it:
  hash, revision, total keys;
* the values recorded when it was saved (sha256, hash, revision) still match;
* a trial restore into a scratch directory succeeds (then the scratch directory is removed).

Any failure raises :class:`SnapshotVerificationError`; nothing is changed (a snapshot that
fails right after it was saved is renamed ``*.rejected`` and kept for inspection).

The probe key (``/pitstop/etcd-probe``, outside Kubernetes' ``/registry``) is the only key
pitstop ever writes: the gates overwrite it to see the raft index advance on every member.

The way back: restore (:meth:`EtcdActuator.restore`)
====================================================

etcd does not support downgrading from 3.5 to 3.4: once every member runs 3.5 the cluster
version is 3.5, and a 3.4 binary started on such a data directory exits with "cluster cannot be
downgraded". The documented, automated way back is to restore the verified
snapshot taken before the upgrade into a **new** cluster running the **old** version:

1. Verify the snapshot again (as above).
2. For every member, ``snapshot restore`` (``etcdctl`` for 3.4, ``etcdutl`` for 3.5+, from the
   old version's binaries) into a new, empty data directory, with the same member name and peer
   URL and a new cluster token (so no member of the old cluster can join the new one by mistake).
   The old data directories are left untouched, for inspection.
3. Stop every member of the old cluster (they use the same ports).
4. Start every member with the old version's binary on its new data directory.
5. Wait until the new cluster passes the gate at the old version, then check its content against
   the snapshot: the number of keys at the snapshot's revision and ``endpoint hashkv`` at that
   revision equal what the live cluster answered when the snapshot was taken.

Writes accepted after the snapshot was taken are not in the restored cluster: take the snapshot
as late as possible (the upgrade takes it right before the first member) and, for Kubernetes,
restart the API servers after a restore so that their caches and watches start over.
Re-running :meth:`~EtcdActuator.restore` after an interruption reuses data directories it
already restored (a marker beside each names the snapshot and the token).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pitstop.backend.api import EtcdMemberObservation, OperationState
from pitstop.errors import PitstopError
from pitstop.hosts import facts
from pitstop.hosts.facts import FactError, Output
from pitstop.versions import parse_version

__all__ = [
    "EtcdActuator",
    "EtcdBinaries",
    "EtcdCluster",
    "EtcdError",
    "EtcdGateError",
    "EtcdMember",
    "EtcdTLS",
    "GateResult",
    "LocalProcessControl",
    "MemberControl",
    "MemberProcess",
    "MemberRejoinError",
    "MemberStep",
    "MemberUpgrade",
    "RestoreError",
    "RestoreReport",
    "SnapshotVerificationError",
    "TlsDiagnosis",
    "UpgradeReport",
    "VerifiedSnapshot",
    "diagnose_tls",
]

# ---------------------------------------------------------------------------------------------
# Errors


class EtcdError(PitstopError):
    """Something about an etcd cluster stopped the work; the message says what and where."""


class SnapshotVerificationError(EtcdError):
    """A snapshot file that cannot be trusted: nothing was done with it."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__(f"etcd snapshot {path} failed verification, refusing to use it: "
                         + "; ".join(self.problems))


class EtcdGateError(EtcdError):
    """The cluster is not healthy enough to go on."""

    def __init__(self, when: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"etcd gate failed {when}: " + "; ".join(self.problems))


class MemberRejoinError(EtcdError):
    """A member did not come back healthy and caught up after its restart."""

    def __init__(self, member: str, version: str, reason: str, log_tail: str = "") -> None:
        self.member = member
        self.version = version
        self.reason = reason
        self.log_tail = log_tail
        text = (f"etcd member {member} did not rejoin after restarting with etcd {version}: "
                f"{reason}. The upgrade stopped here; the other members keep quorum. "
                "To go back, restore the pre-upgrade snapshot into a cluster of the old version "
                "(EtcdActuator.restore).")
        if log_tail:
            text += f"\nfrom its log:\n{log_tail}"
        super().__init__(text)


class RestoreError(EtcdError):
    """The restored cluster did not come up, or does not hold what the snapshot holds."""


# ---------------------------------------------------------------------------------------------
# Description


@dataclass(frozen=True, slots=True)
class EtcdMember:
    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    extra_flags: tuple[str, ...] = ()  # this member's own flags (its server/peer certificates)


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """How pitstop authenticates to the members' client URLs (``https://``): the CA that signed
    their server certificates and, for ``--client-cert-auth``, a client certificate and key.
    Only the *paths* are held, passed to etcdctl as ``--cacert/--cert/--key``; the files are
    read by etcdctl, never by pitstop, so their content reaches no log, journal or audit record.
    ``origin`` says where they were configured (for messages), e.g.
    ``spec.clusters[0].etcd.clientTls``."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    origin: str = "clientTls"

    def ctl_flags(self) -> list[str]:
        out = ["--cacert", str(self.ca_file)]
        if self.cert_file is not None and self.key_file is not None:
            out += ["--cert", str(self.cert_file), "--key", str(self.key_file)]
        return out

    def files(self) -> list[tuple[str, Path]]:
        """(field name, path) of every file configured."""
        return [(f, p) for f, p in (("caFile", self.ca_file), ("certFile", self.cert_file),
                                    ("keyFile", self.key_file)) if p is not None]

    def file_problems(self) -> list[TlsDiagnosis]:
        """Files that are missing or unreadable on this machine (etcdctl runs here)."""
        out = []
        for name, path in self.files():
            if not path.is_file():
                out.append(TlsDiagnosis(name, f"{path} does not exist or is not a file",
                                        "give the path of the PEM file on the machine pitstop "
                                        "runs on (etcdctl reads it there)"))
            elif not os.access(path, os.R_OK):
                out.append(TlsDiagnosis(name, f"{path} is not readable by pitstop",
                                        "make it readable by the user pitstop runs as"))
        return out


@dataclass(frozen=True, slots=True)
class TlsDiagnosis:
    """What a TLS failure says about the configuration: the field at fault (``caFile``,
    ``certFile``, ``keyFile``, or ``clientUrl``), what is wrong and the fix."""

    field: str
    message: str
    fix: str

    def text(self, origin: str) -> str:
        where = f"{origin}.{self.field}" if self.field != "clientUrl" else "the member's clientUrl"
        return f"{where}: {self.message}. Fix: {self.fix}"


def diagnose_tls(output: str, tls: EtcdTLS | None, endpoint: str = "") -> TlsDiagnosis | None:
    """Read a TLS failure out of etcdctl's output (``None`` when there is none)."""
    at = f" at {endpoint}" if endpoint else ""
    if tls is None:
        if "first record does not look like a TLS handshake" not in output and \
                not re.search(r"x509:|tls:", output):
            return None
        return TlsDiagnosis("clientUrl", f"the member{at} speaks TLS but no clientTls is "
                            "configured", "use an https:// clientUrl and set clientTls "
                            "(caFile, and certFile/keyFile when the members use "
                            "--client-cert-auth)")
    if "signed by unknown authority" in output or "certificate is not trusted" in output:
        return TlsDiagnosis("caFile", f"the server certificate{at} is not signed by the CA in "
                            f"{tls.ca_file}", "set caFile to the CA that signed the members' "
                            "server certificates (their --trusted-ca-file is usually it)")
    if "certificate has expired" in output or "not yet valid" in output:
        return TlsDiagnosis("caFile", f"a certificate{at} is expired or not yet valid "
                            f"(checked against {tls.ca_file})", "renew the members' server "
                            "certificates or pitstop's client certificate")
    m = re.search(r"x509: (certificate is valid for [^\"]*|cannot validate certificate for "
                  r"[^\"]*)", output)
    if m:
        return TlsDiagnosis("clientUrl", f"the server certificate{at} does not name the host of "
                            f"the clientUrl ({m.group(1).strip()})", "use a clientUrl whose "
                            "host is in the member's certificate (subjectAltName)")
    if "bad certificate" in output or "certificate required" in output or \
            "didn't provide a certificate" in output:
        if tls.cert_file is None:
            return TlsDiagnosis("certFile", f"the member{at} requires a client certificate "
                                "(--client-cert-auth) and none is configured",
                                "set certFile and keyFile to a client certificate signed by "
                                "the members' --trusted-ca-file")
        return TlsDiagnosis("certFile", f"the member{at} refused the client certificate "
                            f"{tls.cert_file}", "use a client certificate signed by the CA the "
                            "members trust (their --trusted-ca-file), with extendedKeyUsage "
                            "clientAuth")
    if "private key does not match public key" in output:
        return TlsDiagnosis("keyFile", f"{tls.key_file} is not the key of {tls.cert_file}",
                            "give the key that belongs to certFile")
    m = re.search(r"open (\S+): (no such file or directory|permission denied)", output)
    if m:
        name = next((f for f, p in tls.files() if str(p) == m.group(1)), "caFile")
        return TlsDiagnosis(name, f"{m.group(1)}: {m.group(2)}",
                            "give the path of a readable PEM file")
    if "first record does not look like a TLS handshake" in output or \
            "server gave HTTP response" in output:
        return TlsDiagnosis("clientUrl", f"the member{at} does not speak TLS on its client URL",
                            "use http:// for it, or start the member with --cert-file/"
                            "--key-file")
    return None


@dataclass(frozen=True, slots=True)
class EtcdBinaries:
    """The etcd, etcdctl and (3.5 and later) etcdutl of one version, in one directory."""

    version: str
    directory: Path

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def etcdctl(self) -> Path:
        return self.directory / "etcdctl"

    @property
    def etcdutl(self) -> Path | None:
        p = self.directory / "etcdutl"
        return p if p.exists() else None

    def check(self) -> None:
        """Raise :class:`EtcdError` unless ``etcd --version`` reports :attr:`version`."""
        for p in (self.etcd, self.etcdctl):
            if not p.is_file() or not os.access(p, os.X_OK):
                raise EtcdError(f"etcd {self.version}: {p} is missing or not executable")
        try:
            r = subprocess.run(facts.etcd_version_command(str(self.etcd)), capture_output=True,
                               text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EtcdError(f"etcd {self.version}: cannot run {self.etcd}: {e}") from e
        found = facts.parse_etcd_version(_output(r))
        if found != self.version:
            got = found or r.stdout.strip()[:200]
            raise EtcdError(f"{self.etcd} reports version {got!r}, not {self.version}")


@dataclass(frozen=True)
class EtcdCluster:
    """A cluster: members, the binaries of each version (version → directory), its token."""

    name: str
    members: tuple[EtcdMember, ...]
    binaries: Mapping[str, Path]
    token: str
    quota_backend_bytes: int = 2 * 1024**3
    extra_flags: tuple[str, ...] = ()
    ctl_version: str | None = None  # whose etcdctl answers queries; default: the newest
    client_tls: EtcdTLS | None = None  # how pitstop reaches https:// client URLs

    def member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise EtcdError(f"etcd cluster {self.name} has no member {name!r} "
                        f"(members: {', '.join(m.name for m in self.members)})")

    def binaries_for(self, version: str) -> EtcdBinaries:
        if version not in self.binaries:
            raise EtcdError(f"no etcd {version} binaries for cluster {self.name} "
                            f"(known: {', '.join(sorted(self.binaries))})")
        return EtcdBinaries(version, Path(self.binaries[version]))

    @property
    def ctl(self) -> EtcdBinaries:
        v = self.ctl_version or max(self.binaries, key=parse_version)
        return self.binaries_for(v)

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def flags(self, member: EtcdMember) -> list[str]:
        """etcd's flags for ``member``. The ``initial-*`` flags only matter while the data
        directory is empty; on an existing one etcd ignores them."""
        return ["--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url,
                "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--quota-backend-bytes", str(self.quota_backend_bytes),
                *self.extra_flags, *member.extra_flags]


# ---------------------------------------------------------------------------------------------
# Member control (strategy)


@dataclass(frozen=True, slots=True)
class MemberProcess:
    """What the control knows about a member's etcd process."""

    member: str
    running: bool
    pid: int | None
    version: str  # the version it was last started with
    binary: str
    data_dir: str
    exit_code: int | None = None


@runtime_checkable
class MemberControl(Protocol):
    """Starts and stops one member's etcd. ``start`` of a member already running the same binary
    and ``stop`` of a stopped member do nothing."""

    def start(self, member: EtcdMember, binaries: EtcdBinaries,
              flags: Sequence[str]) -> MemberProcess: ...

    def stop(self, member: EtcdMember, timeout: float = 20.0) -> None: ...

    def stop_many(self, members: Iterable[EtcdMember], timeout: float = 20.0) -> None:
        """Stop several members at once (a cluster that loses quorum while its members are
        stopped one by one makes each later stop slow)."""
        ...

    def process(self, member: EtcdMember) -> MemberProcess | None: ...

    def logs(self, member: EtcdMember, lines: int = 20) -> str: ...


_START_MARK = "--- pitstop: starting etcd"


class LocalProcessControl:
    """Members as processes of this host: ``<run_dir>/<member>.pid``, ``.json`` (version,
    binary, flags) and ``.log``. Only processes whose pid file this control wrote, and whose
    command line is still the etcd binary it started, are ever signalled."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # files
    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _meta_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def _meta(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._meta_file(name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_meta(self, name: str, meta: dict[str, Any]) -> None:
        tmp = self._meta_file(name).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self._meta_file(name))

    def _alive(self, name: str, pid: int, binary: str) -> bool:
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            return child.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
        return state not in ("Z", "X") and cmdline[0].decode(errors="replace") == binary

    def process(self, member: EtcdMember) -> MemberProcess | None:
        meta = self._meta(member.name)
        if meta is None:
            return None
        pid = meta.get("pid")
        binary = str(meta.get("binary", ""))
        running = isinstance(pid, int) and self._pid_file(member.name).exists() and self._alive(
            member.name, pid, binary)
        exit_code = meta.get("exit_code")
        child = self._children.get(member.name)
        if not running and child is not None and child.pid == pid:
            exit_code = child.poll()
        return MemberProcess(member.name, running, pid if isinstance(pid, int) else None,
                             str(meta.get("version", "")), binary, str(meta.get("data_dir", "")),
                             exit_code if isinstance(exit_code, int) else None)

    def start(self, member: EtcdMember, binaries: EtcdBinaries,
              flags: Sequence[str]) -> MemberProcess:
        cur = self.process(member)
        if cur is not None and cur.running:
            if cur.binary == str(binaries.etcd) and cur.data_dir == str(member.data_dir):
                return cur
            raise EtcdError(f"etcd member {member.name} is already running {cur.binary} "
                            f"(pid {cur.pid}) on {cur.data_dir}; stop it first")
        log = self.log_file(member.name).open("ab")
        try:
            log.write(f"{_START_MARK} {binaries.version} at "
                      f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            log.flush()
            proc = subprocess.Popen([str(binaries.etcd), *flags], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.run_dir, start_new_session=True)
        finally:
            log.close()
        self._children[member.name] = proc
        self._write_meta(member.name, {
            "pid": proc.pid, "version": binaries.version, "binary": str(binaries.etcd),
            "data_dir": str(member.data_dir), "flags": list(flags), "started": time.time()})
        self._pid_file(member.name).write_text(f"{proc.pid}\n")
        return MemberProcess(member.name, True, proc.pid, binaries.version, str(binaries.etcd),
                             str(member.data_dir))

    def stop(self, member: EtcdMember, timeout: float = 20.0) -> None:
        self.stop_many([member], timeout)

    def stop_many(self, members: Iterable[EtcdMember], timeout: float = 20.0) -> None:
        """SIGTERM to every running member at once, SIGKILL to those still alive at
        ``timeout``."""
        members = list(members)
        waiting: list[tuple[EtcdMember, int, str]] = []
        for m in members:
            cur = self.process(m)
            if cur is None or not cur.running or cur.pid is None:
                self._pid_file(m.name).unlink(missing_ok=True)
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(cur.pid, signal.SIGTERM)
            waiting.append((m, cur.pid, cur.binary))
        deadline = time.monotonic() + timeout
        for sig_deadline, sig in ((deadline, signal.SIGKILL), (deadline + 10, None)):
            while waiting and time.monotonic() < sig_deadline:
                waiting = [w for w in waiting if self._alive(w[0].name, w[1], w[2])]
                if waiting:
                    time.sleep(0.05)
            if sig is not None:
                for m, pid, binary in waiting:
                    if self._alive(m.name, pid, binary):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sig)
        if waiting:
            raise EtcdError("etcd members did not exit: "
                            + ", ".join(f"{m.name} (pid {pid})" for m, pid, _ in waiting))
        for m in members:
            child = self._children.pop(m.name, None)
            meta = self._meta(m.name)
            if child is not None and meta is not None and meta.get("pid") == child.pid:
                meta["exit_code"] = child.wait(timeout=5)
                self._write_meta(m.name, meta)
            self._pid_file(m.name).unlink(missing_ok=True)

    def stop_all(self, timeout: float = 20.0) -> None:
        """Stop every member this run directory has a pid file for."""
        names = [p.stem for p in self.run_dir.glob("*.pid")]
        members = [EtcdMember(n, "", "", Path(str((self._meta(n) or {}).get("data_dir", ""))))
                   for n in names]
        self.stop_many(members, timeout)

    def logs(self, member: EtcdMember, lines: int = 20) -> str:
        try:
            with self.log_file(member.name).open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                tail = f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(tail)


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class _Status:
    """One member's answers to ``endpoint status`` and ``endpoint health``."""

    name: str
    reachable: bool
    healthy: bool
    version: str = ""
    member_id: int = 0
    leader_id: int = 0
    raft_index: int = 0
    applied_index: int = 0
    revision: int = 0
    db_size: int = 0
    error: str = ""

    @property
    def is_leader(self) -> bool:
        return self.reachable and self.member_id != 0 and self.member_id == self.leader_id


@dataclass(frozen=True, slots=True)
class GateResult:
    ok: bool
    problems: tuple[str, ...]
    members: tuple[EtcdMemberObservation, ...]


@dataclass(frozen=True, slots=True)
class VerifiedSnapshot:
    """A snapshot file that passed verification, and what the live cluster said about its
    content when it was saved (``kv_hash``/``key_count`` at ``revision``; None if unknown)."""

    path: Path
    sha256: str
    hash: int
    revision: int
    total_keys: int
    total_size: int
    version: str  # etcd version of the cluster it was taken from (whose tools read it)
    taken_from: str
    kv_hash: int | None = None
    compact_revision: int | None = None
    key_count: int | None = None

    @property
    def meta_path(self) -> Path:
        return _meta_path(self.path)

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "hash": self.hash, "revision": self.revision,
                "totalKeys": self.total_keys, "totalSize": self.total_size,
                "version": self.version, "takenFrom": self.taken_from, "kvHash": self.kv_hash,
                "compactRevision": self.compact_revision, "keyCount": self.key_count}


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _snapshot_digest(path: Path) -> tuple[str, bool] | None:
    """(sha256 of the database part, whether it equals the 32-byte trailer ``snapshot save``
    appends), or None when the size cannot be a database plus that trailer."""
    size = path.stat().st_size
    if size < 512 + 32 or size % 512 != 32:
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        left = size - 32
        while left > 0:
            chunk = f.read(min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        trailer = f.read(32)
    return h.hexdigest(), h.digest() == trailer


@dataclass(frozen=True, slots=True)
class MemberStep:
    """State of one member's upgrade, as :meth:`EtcdActuator.member_upgrade_state` sees it."""

    member: str
    state: OperationState
    message: str


@dataclass(frozen=True, slots=True)
class MemberUpgrade:
    name: str
    from_version: str
    to_version: str
    skipped: bool
    was_leader: bool = False
    stopping_at: float | None = None  # monotonic: just before the stop
    started_at: float | None = None  # the new binary was started
    healthy_at: float | None = None  # healthy, caught up, gate passed


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    version: str
    snapshot: VerifiedSnapshot
    members: tuple[MemberUpgrade, ...]
    started_at: float
    finished_at: float

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class RestoreReport:
    cluster: EtcdCluster
    snapshot: VerifiedSnapshot
    version: str
    key_count: int
    started_at: float
    finished_at: float

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at


# ---------------------------------------------------------------------------------------------
# The actuator

_RESTORE_MARKER = ".pitstop-restored.json"  # beside the data dir (etcd warns about files in it)


def _log_excerpt(log: str, keep: int = 6) -> str:
    """The lines of an etcd log that say what went wrong (error, panic and fatal entries of its
    JSON log without their stack traces, Go's ``panic:`` lines), else its last lines."""
    log = log.rsplit(_START_MARK, 1)[-1]  # the latest start only (LocalProcessControl's logs)
    picked: list[str] = []
    for line in log.splitlines():
        text = line.strip()
        if text.startswith("{"):
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(text)
                if str(entry.get("level", "")).lower() in ("error", "dpanic", "panic", "fatal"):
                    extra = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in (
                        "level", "ts", "caller", "msg", "stacktrace"))
                    picked.append(f"{entry['level']}: {entry.get('msg', '')}"
                                  + (f" ({extra})" if extra else ""))
                continue
        if text.startswith("panic:") or " C | " in text or " E | " in text:  # 3.4 capnslog
            picked.append(text)
    lines = picked[-keep:] if picked else log.splitlines()[-keep * 2:]
    return "\n".join(line[:500] for line in lines)


T = TypeVar("T")


def _output(r: subprocess.CompletedProcess[str]) -> Output:
    return Output(r.stdout or "", r.stderr or "", r.returncode)


def _tail(text: str, n: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= n else "…" + text[-n:]


@dataclass
class EtcdActuator:
    """Operations on one etcd cluster; see the module docstring."""

    cluster: EtcdCluster
    control: MemberControl
    probe_key: str = "/pitstop/etcd-probe"
    command_timeout: float = 5.0
    dial_timeout: float = 2.0
    max_db_fraction: float = 0.8
    on_event: Callable[[str], None] | None = None
    _checked: set[str] = field(default_factory=set)

    # -- plumbing ------------------------------------------------------------------------------
    def _event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    def _run(self, argv: Sequence[str | Path],
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ETCDCTL_API": "3"}
        try:
            return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                                  env=env, timeout=timeout or self.command_timeout + 10,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(list(argv), 124, "", f"timed out after {e.timeout}s")
        except OSError as e:
            raise EtcdError(f"cannot run {argv[0]}: {e}") from e

    def _ctl(self, endpoints: Sequence[str], *args: str,
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """etcdctl against ``endpoints``, with the cluster's client TLS. A TLS failure's
        diagnosis (which file or URL is at fault, and the fix) is appended to stderr, so every
        error built from it names it."""
        t = timeout or self.command_timeout
        tls = self.cluster.client_tls
        r = self._run(facts.etcdctl_command(
            str(self.cluster.ctl.etcdctl), endpoints, *args, dial_timeout=self.dial_timeout,
            command_timeout=t, tls_flags=tls.ctl_flags() if tls is not None else ()),
            timeout=t + 10)
        if r.returncode != 0:
            d = diagnose_tls(r.stderr + r.stdout, tls, ",".join(endpoints))
            if d is not None:  # last: the callers keep the tail of stderr
                origin = tls.origin if tls is not None else "clientTls"
                r.stderr = f"[etcdctl: {_tail(r.stderr or r.stdout, 200)}] {d.text(origin)}"
        return r

    def check_access(self) -> list[tuple[str, TlsDiagnosis | None, str]]:
        """Read-only: can every member be reached with the configured client TLS? Returns
        (member, TLS diagnosis or None, etcdctl's words) for each member that cannot (member
        "" for a TLS file that is missing); changes nothing (``endpoint status`` only, no
        probe write). The members are asked at once."""
        tls = self.cluster.client_tls
        if tls is not None:
            missing = tls.file_problems()
            if missing:
                return [("", d, d.message) for d in missing]

        def ask(m: EtcdMember) -> tuple[str, TlsDiagnosis | None, str] | None:
            r = self._run(facts.etcdctl_command(
                str(self.cluster.ctl.etcdctl), [m.client_url], *facts.ENDPOINT_STATUS_ARGS,
                dial_timeout=self.dial_timeout, command_timeout=3,
                tls_flags=tls.ctl_flags() if tls is not None else ()), timeout=15)
            if r.returncode == 0:
                return None
            text = r.stderr + r.stdout
            return m.name, diagnose_tls(text, tls), facts.etcdctl_said(text)

        with ThreadPoolExecutor(max_workers=len(self.cluster.members)) as pool:
            return [x for x in pool.map(ask, self.cluster.members) if x is not None]

    def _ctl_fact(self, parse: Callable[[Output], T], endpoints: Sequence[str],
                  *args: str) -> T:
        """etcdctl ``args`` against ``endpoints``, its output read by ``parse``; raises
        :class:`EtcdError` when it failed or printed no answer."""
        r = self._ctl(endpoints, *args)
        shown = " ".join(a for a in args if a not in ("-w", "json"))
        if r.returncode != 0:
            raise EtcdError(f"etcdctl {shown} against {', '.join(endpoints)} failed: "
                            f"{_tail(r.stderr or r.stdout)}")
        try:
            return parse(_output(r))
        except FactError as e:
            raise EtcdError(f"etcdctl {shown}: unreadable output {_tail(r.stdout, 200)!r} "
                            f"({e.message})") from e

    def _endpoints(self) -> list[str]:
        return [m.client_url for m in self.cluster.members]

    def _check_binaries(self, version: str) -> EtcdBinaries:
        b = self.cluster.binaries_for(version)
        if version not in self._checked:
            b.check()
            self._checked.add(version)
        return b

    # -- observation ---------------------------------------------------------------------------
    def _status(self, member: EtcdMember) -> _Status:
        t = min(self.command_timeout, 3.0)
        st = self._ctl([member.client_url], *facts.ENDPOINT_STATUS_ARGS, timeout=t)
        try:
            s = facts.parse_endpoint_status(_output(st))
        except FactError:
            return _Status(member.name, False, False, error=_tail(st.stderr or st.stdout, 700))
        hl = self._ctl([member.client_url], *facts.ENDPOINT_HEALTH_ARGS, timeout=t)
        health = facts.parse_endpoint_health(_output(hl))
        return _Status(member.name, True, health.healthy, version=s.version,
                       member_id=s.member_id, leader_id=s.leader_id, raft_index=s.raft_index,
                       applied_index=s.applied_index, revision=s.revision, db_size=s.db_size,
                       error=health.error)

    def _statuses(self) -> list[_Status]:
        with ThreadPoolExecutor(max_workers=len(self.cluster.members)) as pool:
            return list(pool.map(self._status, self.cluster.members))

    def _alarms(self, statuses: Sequence[_Status]) -> tuple[dict[str, tuple[str, ...]], str]:
        """Alarms by member name (alarms are cluster state: any reachable member answers), and
        an error text when they could not be listed."""
        up = [m.client_url for m, s in zip(self.cluster.members, statuses, strict=True)
              if s.reachable]
        if not up:
            return {}, "no member answers"
        try:
            alarms = self._ctl_fact(facts.parse_alarm_list, up, *facts.ALARM_LIST_ARGS)
            if not alarms:
                return {}, ""
            by_id = self._ctl_fact(facts.parse_member_list, up, *facts.MEMBER_LIST_ARGS)
        except EtcdError as e:
            return {}, str(e)
        by_id.update({s.member_id: s.name for s in statuses if s.reachable})
        out: dict[str, list[str]] = {}
        for a in alarms:
            out.setdefault(by_id.get(a.member_id) or f"member {a.member_id:x}", []).append(
                a.alarm)
        return {k: tuple(v) for k, v in out.items()}, ""

    def _observe(self) -> tuple[list[_Status], tuple[EtcdMemberObservation, ...],
                                dict[str, tuple[str, ...]], str]:
        statuses = self._statuses()
        alarms, alarm_error = self._alarms(statuses)
        obs = tuple(EtcdMemberObservation(
            name=s.name, version=s.version, healthy=s.healthy, leader=s.is_leader,
            raft_index=s.raft_index, db_size=s.db_size, quota=self.cluster.quota_backend_bytes,
            alarms=alarms.get(s.name, ())) for s in statuses)
        return statuses, obs, alarms, alarm_error

    def health(self, *, probe: bool = False) -> tuple[EtcdMemberObservation, ...]:
        """One observation per member, in the order of the description. ``probe``: write the
        probe key first, so that the raft index of a cluster that takes writes advances between
        two looks even when nothing else writes (an idle cluster's does not); a failed write
        shows as an index that does not advance."""
        if probe:
            self._ctl(self._endpoints(), "put", self.probe_key,
                      f"pitstop probe {time.time():.3f}")
        return self._observe()[1]

    def _probe(self, members: Sequence[EtcdMember], statuses: Sequence[_Status],
               timeout: float) -> list[str]:
        """Write the probe key, then wait until every member in ``members`` applied an entry
        newer than the newest raft index seen before the write. Returns problems."""
        base = max((s.raft_index for s in statuses if s.reachable), default=0)
        r = self._ctl(self._endpoints(), "put", self.probe_key,
                      f"pitstop probe {time.time():.3f}")
        if r.returncode != 0:
            return [f"probe write failed: {_tail(r.stderr or r.stdout, 700)}"]
        deadline = time.monotonic() + timeout
        pending = list(members)
        while pending:
            with ThreadPoolExecutor(max_workers=len(pending)) as pool:
                now = list(pool.map(self._status, pending))
            pending = [m for m, s in zip(pending, now, strict=True)
                       if not (s.reachable and s.applied_index > base)]
            if not pending:
                break
            if time.monotonic() > deadline:
                return [f"raft index not advancing on {m.name}: it has not applied entries past "
                        f"{base} within {timeout:g}s" for m in pending]
            time.sleep(0.1)
        return []

    def gate(self, *, exclude: Iterable[str] = (), probe: bool = True,
             catch_up: float = 10.0) -> GateResult:
        """Every member (but ``exclude``) healthy, one leader all agree on, no alarms, db size
        under ``max_db_fraction`` of the quota, raft index advancing (probe write applied)."""
        skip = set(exclude)
        statuses, obs, alarms, alarm_error = self._observe()
        problems: list[str] = []
        if alarm_error:
            problems.append(f"cannot list alarms: {alarm_error}")
        names = {m.name for m in self.cluster.members}
        problems += [f"{who} (not in the description) has alarms {', '.join(kinds)}"
                     for who, kinds in alarms.items() if who not in names]
        considered = [(s, o) for s, o in zip(statuses, obs, strict=True) if s.name not in skip]
        for s, o in considered:
            if not s.reachable:
                problems.append(f"{s.name} does not answer ({s.error or 'no status'})")
            elif not s.healthy:
                problems.append(f"{s.name} is not healthy ({s.error or 'endpoint health false'})")
            if o.alarms:
                problems.append(f"{s.name} has alarms {', '.join(o.alarms)}")
            limit = self.max_db_fraction * self.cluster.quota_backend_bytes
            if s.reachable and s.db_size >= limit:
                problems.append(f"{s.name} db size {s.db_size} is not under "
                                f"{self.max_db_fraction:.0%} of the quota "
                                f"{self.cluster.quota_backend_bytes}")
        leaders = {s.leader_id for s, _ in considered if s.reachable}
        if not any(s.is_leader for s in statuses) or 0 in leaders:
            problems.append("no leader")
        elif len(leaders) > 1:
            problems.append(f"members disagree on the leader ({len(leaders)} leaders seen)")
        if not problems and probe:
            members = [self.cluster.member(s.name) for s, _ in considered]
            problems += self._probe(members, statuses, catch_up)
        return GateResult(not problems, tuple(problems), obs)

    # -- snapshots -----------------------------------------------------------------------------
    def _snapshot_tool(self, version: str) -> tuple[Path, str]:
        b = self.cluster.binaries_for(version)
        return (b.etcdutl, "etcdutl") if b.etcdutl is not None else (b.etcdctl, "etcdctl")

    def verify_snapshot(self, path: Path, *, trial_restore: bool = True) -> VerifiedSnapshot:
        """Check ``path`` (see the module docstring) against the metadata saved beside it.
        Raises :class:`SnapshotVerificationError`; never changes anything."""
        path = Path(path)
        problems: list[str] = []
        try:
            meta = json.loads(_meta_path(path).read_text())
        except (OSError, ValueError) as e:
            raise SnapshotVerificationError(path, [f"its metadata {_meta_path(path)} is "
                                                   f"missing or unreadable ({e})"]) from e
        version = str(meta.get("version", ""))
        if not path.is_file():
            raise SnapshotVerificationError(path, ["the file does not exist"])
        digest = ""
        checked = _snapshot_digest(path)
        if checked is None:
            problems.append(f"{path.stat().st_size} bytes is not a database plus the 32-byte "
                            "sha256 that `snapshot save` appends (truncated, or not a saved "
                            "snapshot)")
        else:
            digest, matches = checked
            if not matches:
                problems.append("the sha256 appended by `snapshot save` does not match the "
                                "content (the file was damaged after it was saved)")
            elif meta.get("sha256") != digest:
                problems.append("its sha256 differs from the one recorded when it was saved")
        tool, tool_name = self._snapshot_tool(version)
        r = self._run(facts.snapshot_status_command(str(tool), str(path)), timeout=120)
        status: facts.SnapshotStatus | None = None
        if r.returncode != 0:
            problems.append(f"`{tool_name} snapshot status` failed: "
                            f"{_tail(r.stderr or r.stdout, 300)}")
        else:
            try:
                status = facts.parse_snapshot_status(_output(r))
            except FactError:
                problems.append(f"`{tool_name} snapshot status` printed {_tail(r.stdout, 200)!r}")
        if status is not None:
            for key, got in (("hash", status.hash), ("revision", status.revision)):
                if key in meta and meta[key] is not None and got != meta[key]:
                    problems.append(f"{tool_name} snapshot status reports {key} "
                                    f"{got}, recorded at save: {meta[key]}")
            if status.total_keys <= 0:
                problems.append("snapshot status reports no keys at all")
        if not problems and trial_restore:
            problems += self._trial_restore(path, version)
        if problems or status is None:
            raise SnapshotVerificationError(path, problems)
        return VerifiedSnapshot(
            path=path, sha256=digest, hash=status.hash, revision=status.revision,
            total_keys=status.total_keys, total_size=status.total_size, version=version,
            taken_from=str(meta.get("takenFrom", "")), kv_hash=meta.get("kvHash"),
            compact_revision=meta.get("compactRevision"), key_count=meta.get("keyCount"))

    def _trial_restore(self, path: Path, version: str) -> list[str]:
        tool, tool_name = self._snapshot_tool(version)
        scratch = Path(tempfile.mkdtemp(prefix="pitstop-etcd-trial-", dir=path.parent))
        try:
            m = self.cluster.members[0]
            r = self._run([tool, "snapshot", "restore", str(path), "--name", m.name,
                           "--data-dir", str(scratch / "data"),
                           "--initial-cluster", f"{m.name}={m.peer_url}",
                           "--initial-advertise-peer-urls", m.peer_url], timeout=300)
            if r.returncode != 0:
                return [f"a trial `{tool_name} snapshot restore` failed: "
                        f"{_tail(r.stderr or r.stdout, 300)}"]
            return []
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def snapshot(self, path: Path) -> VerifiedSnapshot:
        """Save a snapshot from the leader to ``path`` and verify it. Idempotent: when ``path``
        already holds a snapshot with its metadata, that one is verified and returned (never
        overwritten; one that fails verification raises)."""
        path = Path(path)
        if path.exists():
            snap = self.verify_snapshot(path)
            self._event(f"snapshot {path} already there and verified (revision {snap.revision})")
            return snap
        statuses = self._statuses()
        leader = next((s for s in statuses if s.is_leader), None)
        source = leader or next((s for s in statuses if s.healthy), None)
        if source is None:
            first = next((s for s in statuses if s.error), None)
            raise EtcdGateError("before the snapshot", ["no healthy member to take it from"
                                                        + (f" ({first.name}: {first.error})"
                                                           if first else "")])
        versions = sorted({s.version for s in statuses if s.reachable}, key=parse_version)
        version = versions[0]
        member = self.cluster.member(source.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".saving")
        part.unlink(missing_ok=True)
        r = self._ctl([member.client_url], "snapshot", "save", str(part), timeout=300)
        if r.returncode != 0:
            part.unlink(missing_ok=True)
            raise EtcdError(f"etcdctl snapshot save from {member.name} failed: "
                            f"{_tail(r.stderr or r.stdout)}")
        tool, _ = self._snapshot_tool(version)
        st = self._run(facts.snapshot_status_command(str(tool), str(part)), timeout=120)
        meta: dict[str, Any] = {"version": version, "takenFrom": member.name}
        try:
            status: facts.SnapshotStatus | None = facts.parse_snapshot_status(_output(st))
        except FactError:
            status = None  # verify_snapshot below says why
        if status is not None:
            rev = status.revision
            meta.update(hash=status.hash, revision=rev)
            with contextlib.suppress(FactError):
                kv = facts.parse_hashkv(_output(self._ctl([member.client_url],
                                                          *facts.hashkv_args(rev))))
                meta.update(kvHash=kv.hash, compactRevision=kv.compact_revision)
            with contextlib.suppress(FactError):
                meta["keyCount"] = facts.parse_key_count(_output(self._ctl(
                    [member.client_url], *facts.key_count_args(rev))))
        checked = _snapshot_digest(part)
        meta["sha256"] = checked[0] if checked else None
        _meta_path(path).write_text(json.dumps(meta, indent=1))
        os.replace(part, path)
        try:
            snap = self.verify_snapshot(path)
        except SnapshotVerificationError:
            # kept for inspection, out of the way: a re-run takes a new one
            for f in (path, _meta_path(path)):
                os.replace(f, f.with_name(f.name + ".rejected"))
            raise
        self._event(f"snapshot {path} saved from {member.name} and verified: revision "
                    f"{snap.revision}, {snap.total_keys} bbolt keys, hash {snap.hash}")
        return snap

    # -- one member ----------------------------------------------------------------------------
    def begin_member_upgrade(self, name: str, version: str) -> MemberStep:
        """Restart ``name`` with etcd ``version`` on its data directory (stop, start) and return
        at once. Does nothing to a member already running ``version``."""
        member = self.cluster.member(name)
        binaries = self._check_binaries(version)
        proc = self.control.process(member)
        if proc is not None and proc.running and proc.version == version:
            return self.member_upgrade_state(name, version)
        if proc is None or not proc.running:
            st = self._status(member)
            if st.reachable and st.version == version:  # run by someone else, already there
                return self.member_upgrade_state(name, version)
        self._event(f"{name}: stopping")
        self.control.stop(member)
        self._event(f"{name}: starting etcd {version}")
        self.control.start(member, binaries, self.cluster.flags(member))
        return MemberStep(name, OperationState.RUNNING, f"started etcd {version}")

    def member_upgrade_state(self, name: str, version: str, *,
                             catch_up: float = 5.0) -> MemberStep:
        """RUNNING until ``name`` answers healthy at ``version``, sees a leader, has no alarm
        and applied a probe write (caught up); FAILED if its process exited. Changes nothing
        but the probe key."""
        member = self.cluster.member(name)

        def exited() -> MemberStep | None:
            proc = self.control.process(member)
            if proc is not None and not proc.running and proc.version == version:
                code = f" with code {proc.exit_code}" if proc.exit_code is not None else ""
                return MemberStep(name, OperationState.FAILED,
                                  f"its etcd {version} process exited{code}")
            return None

        if (failed := exited()) is not None:
            return failed
        s = self._status(member)  # this member first: the others only once it answers
        if not s.reachable:
            return exited() or MemberStep(name, OperationState.RUNNING,
                                          f"not answering yet ({s.error})")
        if s.version != version:
            return MemberStep(name, OperationState.RUNNING, f"answers as {s.version}")
        if not s.healthy:
            return MemberStep(name, OperationState.RUNNING, f"not healthy yet ({s.error})")
        if s.leader_id == 0:
            return MemberStep(name, OperationState.RUNNING, "sees no leader yet")
        statuses, obs, _, alarm_error = self._observe()
        o = next(x for x in obs if x.name == name)
        if o.alarms or alarm_error:
            return MemberStep(name, OperationState.RUNNING,
                              f"alarms {', '.join(o.alarms)}" if o.alarms else alarm_error)
        problems = self._probe([member], statuses, catch_up)
        if problems:
            return MemberStep(name, OperationState.RUNNING, "; ".join(problems))
        return MemberStep(name, OperationState.SUCCEEDED,
                          f"healthy at {version} and caught up (raft index {s.raft_index})")

    def upgrade_member(self, name: str, version: str, *, timeout: float = 60.0) -> MemberStep:
        """:meth:`begin_member_upgrade`, then poll until it succeeds; raises
        :class:`MemberRejoinError` if it fails or times out."""
        self.begin_member_upgrade(name, version)
        return self._wait_member(name, version, timeout)

    def _wait_member(self, name: str, version: str, timeout: float) -> MemberStep:
        deadline = time.monotonic() + timeout
        step = self.member_upgrade_state(name, version)
        while step.state is OperationState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
            step = self.member_upgrade_state(name, version)
        if step.state is not OperationState.SUCCEEDED:
            reason = step.message if step.state is OperationState.FAILED else (
                f"not healthy and caught up within {timeout:g}s (last: {step.message})")
            raise MemberRejoinError(name, version, reason, _log_excerpt(
                self.control.logs(self.cluster.member(name), 300)))
        return step

    # -- the rolling upgrade -------------------------------------------------------------------
    def upgrade(self, version: str, snapshot: Path, *, member_timeout: float = 60.0,
                catch_up: float = 10.0) -> UpgradeReport:
        """Roll every member to ``version``; see the module docstring. ``snapshot`` is where
        the pre-upgrade snapshot is saved (or, on a re-run, found)."""
        t0 = time.monotonic()
        self._check_binaries(version)
        statuses = self._statuses()
        from_versions = {s.name: s.version for s in statuses}
        down = [s.name for s in statuses if not s.reachable]
        resumable = [n for n in down if self._mid_upgrade(n, version)]
        pre = self.gate(exclude=resumable[:1], catch_up=catch_up)
        if not pre.ok:
            raise EtcdGateError("before the upgrade", pre.problems)
        snap = self.snapshot(snapshot)
        if all(s.version == version for s in statuses if s.reachable) and not down:
            self._event(f"every member already runs etcd {version}")
        done: list[MemberUpgrade] = []
        while True:
            statuses = self._statuses()
            nxt = self._next(statuses, version)
            if nxt is None:
                break
            resuming = not nxt.reachable and self._mid_upgrade(nxt.name, version)
            gate = self.gate(exclude=[nxt.name] if resuming else [], catch_up=catch_up)
            if not gate.ok:
                raise EtcdGateError(f"before upgrading {nxt.name}", gate.problems)
            self._event(f"{nxt.name}: {nxt.version or 'down'} → {version}"
                        + (" (leader)" if nxt.is_leader else ""))
            t_stop = time.monotonic()
            self.begin_member_upgrade(nxt.name, version)
            t_start = time.monotonic()
            step = self._wait_member(nxt.name, version, member_timeout)
            done.append(MemberUpgrade(nxt.name, from_versions.get(nxt.name) or nxt.version,
                                      version, False, nxt.is_leader, t_stop, t_start,
                                      time.monotonic()))
            self._event(f"{nxt.name}: {step.message}")
        post = self.gate(catch_up=catch_up)
        if not post.ok:
            raise EtcdGateError(f"after upgrading to {version}", post.problems)
        names = {d.name for d in done}
        skipped = [MemberUpgrade(m.name, version, version, True) for m in self.cluster.members
                   if m.name not in names]
        return UpgradeReport(version, snap, (*done, *skipped), t0, time.monotonic())

    def next_member(self, version: str) -> str | None:
        """The member to upgrade to ``version`` next, or None when all run it: one interrupted
        mid-upgrade first, then followers, the leader last (read now: leadership moves)."""
        nxt = self._next(self._statuses(), version)
        return nxt.name if nxt else None

    def _next(self, statuses: Sequence[_Status], version: str) -> _Status | None:
        todo = [s for s in statuses if s.version != version]
        todo.sort(key=lambda s: (not (not s.reachable and self._mid_upgrade(s.name, version)),
                                 s.is_leader))
        return todo[0] if todo else None

    def _mid_upgrade(self, name: str, version: str) -> bool:
        proc = self.control.process(self.cluster.member(name))
        return proc is not None and not proc.running

    # -- start a whole cluster -----------------------------------------------------------------
    def start_cluster(self, version: str, *, timeout: float = 60.0) -> GateResult:
        """Start every member with etcd ``version`` (a new cluster on empty data directories,
        or the existing one) and wait until the gate passes at that version."""
        binaries = self._check_binaries(version)
        for m in self.cluster.members:
            self.control.start(m, binaries, self.cluster.flags(m))
        return self._wait_cluster(version, timeout)

    def stop_members(self, members: Sequence[EtcdMember] | None = None) -> None:
        """Stop ``members`` (default: all), followers together first, then the leader: a leader
        stopped while its followers are still connected tries to hand its leadership over and
        waits for that to time out."""
        members = list(self.cluster.members if members is None else members)
        if not members:
            return
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            leaders = {s.name for s in pool.map(self._status, members) if s.is_leader}
        self.control.stop_many([m for m in members if m.name not in leaders])
        self.control.stop_many([m for m in members if m.name in leaders])

    def _wait_cluster(self, version: str, timeout: float) -> GateResult:
        deadline = time.monotonic() + timeout
        while True:
            g = self.gate(catch_up=5.0)
            wrong = [f"{o.name} runs {o.version or 'nothing'}, not {version}"
                     for o in g.members if o.version != version]
            if g.ok and not wrong:
                return g
            exited = [m.name for m in self.cluster.members
                      if (p := self.control.process(m)) is not None and not p.running]
            if exited or time.monotonic() > deadline:
                why = (f"members exited: {', '.join(exited)}" if exited
                       else f"not healthy within {timeout:g}s")
                logs = "\n".join(
                    f"[{n}] {_log_excerpt(self.control.logs(self.cluster.member(n), 300), 3)}"
                    for n in exited)
                raise EtcdError(f"etcd cluster {self.cluster.name} at {version}: {why}: "
                                + "; ".join((*g.problems, *wrong)) + (f"\n{logs}" if logs else ""))
            time.sleep(0.2)

    # -- the way back --------------------------------------------------------------------------
    def restore(self, snapshot: Path, version: str, data_root: Path, *,
                token: str | None = None, timeout: float = 60.0) -> RestoreReport:
        """Restore ``snapshot`` into a new cluster of etcd ``version`` (see the module
        docstring). New data directories are ``data_root/<member>``; the new token defaults to
        ``<old token>-restored-<first 12 hex of the snapshot's sha256>``. On success this
        actuator describes the new cluster (:attr:`cluster`), which is also returned."""
        t0 = time.monotonic()
        binaries = self._check_binaries(version)
        snap = self.verify_snapshot(snapshot)
        if parse_version(snap.version).line != parse_version(version).line:
            raise RestoreError(f"snapshot {snapshot} was taken on etcd {snap.version}; restoring "
                               f"it into etcd {version} is not the way back")
        old = self.cluster
        new_token = token or f"{old.token.split('-restored-')[0]}-restored-{snap.sha256[:12]}"
        data_root = Path(data_root)
        new_members = tuple(replace(m, data_dir=data_root / m.name) for m in old.members)
        if new_token == old.token and new_members != old.members:
            raise RestoreError("the restored cluster needs a new cluster token")
        new = replace(old, members=new_members, token=new_token)
        tool, tool_name = self._snapshot_tool(version)
        marker = {"snapshot": snap.sha256, "token": new_token}
        for m in new_members:
            mark = m.data_dir.with_name(m.data_dir.name + _RESTORE_MARKER)
            if mark.exists():
                with contextlib.suppress(OSError, ValueError):
                    if json.loads(mark.read_text()) == marker:
                        continue
                raise RestoreError(f"{m.data_dir} holds another restore; choose a new data_root")
            if m.data_dir.exists() and any(m.data_dir.iterdir()):
                raise RestoreError(f"{m.data_dir} is not empty; choose a new data_root")
            m.data_dir.parent.mkdir(parents=True, exist_ok=True)
            if m.data_dir.exists():
                m.data_dir.rmdir()
            r = self._run([tool, "snapshot", "restore", str(snap.path), "--name", m.name,
                           "--data-dir", str(m.data_dir), "--initial-cluster", new.initial_cluster,
                           "--initial-cluster-token", new_token,
                           "--initial-advertise-peer-urls", m.peer_url], timeout=600)
            if r.returncode != 0:
                raise RestoreError(f"`{tool_name} snapshot restore` for {m.name} failed: "
                                   f"{_tail(r.stderr or r.stdout)}")
            mark.write_text(json.dumps(marker))
            self._event(f"{m.name}: restored {snap.path} into {m.data_dir}")
        # stop the old cluster's members (not those already running on the new data dirs)
        stale = []
        for m_old, m_new in zip(old.members, new_members, strict=True):
            p = self.control.process(m_old)
            if p is not None and p.running and p.data_dir != str(m_new.data_dir):
                stale.append(m_old)
        self._event(f"stopping the old members: {', '.join(m.name for m in stale) or 'none'}")
        self.stop_members(stale)
        self.cluster = new
        self._event(f"starting the restored members with etcd {version}")
        for m in new_members:
            self.control.start(m, binaries, new.flags(m))
        try:
            self._wait_cluster(version, timeout)
        except EtcdError as e:
            raise RestoreError(f"the restored cluster did not come up: {e}") from e
        count = self._verify_content(snap)
        self._event(f"restored cluster at etcd {version} holds the snapshot's {count} keys")
        return RestoreReport(new, snap, version, count, t0, time.monotonic())

    def _verify_content(self, snap: VerifiedSnapshot) -> int:
        problems: list[str] = []
        count = -1
        for m in self.cluster.members:
            count = self._ctl_fact(facts.parse_key_count, [m.client_url],
                                   *facts.key_count_args(snap.revision))
            if snap.key_count is not None and count != snap.key_count:
                problems.append(f"{m.name} has {count} keys at revision {snap.revision}, the "
                                f"cluster had {snap.key_count} when the snapshot was taken")
            if snap.kv_hash is not None:
                got = self._ctl_fact(facts.parse_hashkv, [m.client_url],
                                     *facts.hashkv_args(snap.revision)).hash
                if got != snap.kv_hash:
                    problems.append(f"{m.name}: hashkv at revision {snap.revision} is {got}, "
                                    f"the cluster's was {snap.kv_hash}")
        if problems:
            raise RestoreError("the restored cluster does not hold what the snapshot holds: "
                               + "; ".join(problems))
        return count
