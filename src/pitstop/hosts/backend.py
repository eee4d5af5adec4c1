"""The backend interface over machines: runtime upgrades over SSH (or locally), etcd members
as processes, driven by the executor exactly like the twin — same plan, journal, audit, gates
and resume.

``HostsBackend(inventory, state_dir, fleet=...)`` serves the clusters of a
:class:`~pitstop.model.HostInventory`. Its durable state (operations by key, the log of what it
did, recorded cordon marks) is ``state_dir/hosts.sqlite``
(:class:`pitstop.store.SqliteOperationStore`); a run keeps it in the run directory, with
copies of the inventory and the fleet, so that ``pitstop resume`` needs nothing else.

What each call does
===================

=================  ===========================================================================
observe            per node of the inventory (in parallel, ``spec.parallelism`` at once): the
                   installed runtime package (``dpkg-query``) and the daemon (``ctr version``,
                   its pid and binary). ``runtime_version`` is the build the daemon *runs*: the
                   installed package when the daemon runs it, else the build the daemon reports
                   (a daemon still on a replaced binary reports the old build). ``ready``: the
                   daemon answers and no operation of this backend is changing the host.
                   ``kubelet``: ``kubelet --version`` when the host has a kubelet, else the
                   version the Fleet declares for the node (a host that is not a Kubernetes
                   node has none to read). ``kube_proxy``: the Fleet's. ``pool``: the Fleet's.
                   No pods and no PDBs: see *Kubernetes nodes* below. ``etcd``: the members'
                   status (``etcdctl endpoint status/health``, alarms). ``apiservers``,
                   controller-manager and scheduler are empty: this backend does not run them.
health             ``etcd`` as above; ``metrics`` from the hosts: ``hosts_unreachable``,
                   ``runtimes_down``, ``containers_running``, ``containers_not_running`` (tasks
                   of every namespace, ``ctr task ls``), and ``error_rate`` /
                   ``error_rate_baseline``: the share of tasks not running on the hosts at the
                   newest runtime build vs. on the others (all hosts when they all run one) —
                   the canary signal for fleets without an application metric.
cordon/uncordon    **recorded only**: a host that is not a Kubernetes node has no scheduler to
annotate           tell. The mark is kept in the state (``observe`` reports it as
                   ``unschedulable`` / ``annotations``, so a node left "cordoned" by a paused
                   run shows) and in the log; nothing on the host changes.
evict/delete_pod   nothing to do (no pods): GONE, recorded.
start/poll         long-running operations in a background thread each, idempotent by key:
                   ``UpgradeComponent(node, "containerd"|"docker", v)`` — the runtime actuator
                   the node's ``runtime.name`` selects (containerd's, or Docker Engine's,
                   which also refuses a dockerd without live-restore): facts,
                   checks, snapshot of every container, pinned apt install, daemon restart,
                   verification (+ the inventory's ``verify`` commands), automatic rollback to
                   the previous build when verification fails → FAILED with the message;
                   ``UpgradeComponent(member, "etcd", v)`` — the other members must pass the
                   etcd gate, then the member restarts on the new binary and must come back
                   healthy and caught up; ``EtcdSnapshot(name)`` — a verified snapshot in the
                   inventory's ``snapshotDir``; ``EtcdRestore(snapshot, version)`` — that
                   snapshot restored into a new cluster of ``version`` (the way back from a
                   failed etcd upgrade; later calls use the restored members). Anything else
                   (kubelet, control plane, add-ons, replacing nodes) ends FAILED with a
                   message saying so: those need the Kubernetes or a provider backend.
clock              real time (:class:`WallClock`).
=================  ===========================================================================

Crashes
=======

Every operation records its owner process and, as it goes, its phase and what it needs to go
on (the previous build, the snapshot of every container taken before anything changed). A
process that finds a *running* operation whose owner is gone (``pitstop resume`` after a
SIGKILL) claims it — one process wins — and settles it before anything else is done in that
cluster: it waits until apt and dpkg are idle (an install the dead process started runs to its
end on the host: apt writes to a file there, not to the SSH channel), re-reads the facts and
carries on from them: at the target and verified (against the containers recorded before the
upgrade) → SUCCEEDED; at the target but the daemon still on the old binary → restart only; not
at the target → install (apt installs of a pinned build are idempotent); a crash during a
rollback → the rollback is finished. The log (:meth:`HostsBackend.events`) shows every install
and restart with its process, so a test can prove nothing was done twice.

Worker threads are not daemon threads: a pitstop interrupted with Ctrl-C finishes the host
operation in flight (it never leaves apt half-way) before it exits.

Kubernetes nodes
================

This backend upgrades what runs *on* a host. When the host is also a Kubernetes node, the node
must be cordoned and drained through the API server first (by policy; a runtime patch may be
allowed in place, since containers survive the daemon restart). :mod:`pitstop.compose` does
that (``pitstop apply --backend hosts+kube``): observe/cordon/uncordon/annotate/evict/delete_pod
and the kubelet go to the Kubernetes backend, ``start``/``poll`` of runtime and etcd actions to
this one (:meth:`HostsBackend.knows` tells a resumed process which one holds a key). Alone,
this backend is for hosts whose containers are not scheduled by Kubernetes (or whose drain is
done by other means).

etcd members are controlled as processes of the machine pitstop runs on
(:class:`~pitstop.hosts.etcd.LocalProcessControl`); members on other hosts (over SSH, or
systemd units) need another ``MemberControl``. Every real stop and start of a member is in the
log (``etcd-stop``, ``etcd-start``, with the operation), so a resumed run can be shown to have
restarted no member twice for one step. Client TLS (``etcd.clientTls``) is passed to every
etcdctl call; :func:`etcd_access_problems` checks it, read-only, before a run is created.
``health`` writes the probe key before it reads the members, so that the etcd gate's "raft index
advancing" holds on an idle cluster that takes writes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pitstop.backend.api import (
    Action,
    BackendError,
    ClusterObservation,
    EtcdMemberObservation,
    EtcdRestore,
    EtcdSnapshot,
    EvictionResult,
    HealthSignals,
    NodeObservation,
    Operation,
    OperationState,
    UpgradeComponent,
)
from pitstop.catalog import Catalog, load_catalog
from pitstop.errors import ConfigProblem, PitstopError
from pitstop.hosts import debversion, facts
from pitstop.hosts.connect import (
    CommandResult,
    CommandTimeout,
    Host,
    HostAuthFailed,
    HostCredentialsUnusable,
    HostError,
    HostKeyMismatch,
    HostKeyUnknown,
    LocalHost,
    SSHHost,
    identity_file_problem,
    known_hosts_problem,
    run_many,
)
from pitstop.hosts.containerd import (
    ContainerdActuator,
    DaemonControl,
    DaemonInfo,
    PostCheck,
    Problem,
    ProcessDaemon,
    Severity,
    Snapshot,
    SystemdDaemon,
    TaskState,
    UpgradeRefused,
)
from pitstop.hosts.docker import DockerActuator, dockerd_process
from pitstop.hosts.etcd import (
    EtcdActuator,
    EtcdBinaries,
    EtcdCluster,
    EtcdMember,
    EtcdTLS,
    LocalProcessControl,
    MemberControl,
    MemberProcess,
)
from pitstop.hosts.packages import (
    PackageManager,
    PackageManagerName,
    UnsupportedHost,
    package_manager,
)
from pitstop.model import (
    Fleet,
    HostCluster,
    HostEtcd,
    HostInventory,
    HostNode,
    SshAccess,
    VerifyCommand,
)
from pitstop.planner import Plan
from pitstop.planner.plan import StepAction, Strategy
from pitstop.redact import REDACTED, Json, Redactor, redact_text
from pitstop.store import OpEvent, OpRecord, SqliteOperationStore, owner_alive, process_identity

__all__ = ["RUNTIMES", "STATE_FILE", "HostsBackend", "RunStateUnreadable", "WallClock",
           "credential_problems", "etcd_access_problems", "plan_problems"]

log = logging.getLogger("pitstop.hosts")

STATE_FILE = "hosts.sqlite"
INVENTORY_FILE = "inventory.json"
SECRETS_FILE = "inventory-secrets.json"  # what redaction took out of inventory.json (0600)
FLEET_FILE = "fleet.json"
RUNTIMES = frozenset({"containerd", "docker"})
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
# Errors that say the inventory is wrong, not that a host is down: they stop the run.
_CONFIG_ERRORS = (HostKeyUnknown, HostKeyMismatch, HostAuthFailed, HostCredentialsUnusable,
                  UnsupportedHost)


class RunStateUnreadable(BackendError):
    """A run directory whose hosts backend files are missing or damaged."""

    exit_code = 2


class WallClock:
    """Real time (POSIX seconds)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# ---------------------------------------------------------------------------------------------
# What the inventory allows: checked before a run starts


def plan_problems(inventory: HostInventory, plan: Plan) -> list[str]:
    """Why this backend cannot carry ``plan`` out (empty: it can). Checked before a run is
    created, so a plan is never started on hosts it cannot reach."""
    out: list[str] = []
    for s in plan.steps:
        inv = inventory.cluster(s.cluster)
        if inv is None:
            out.append(f"{s.id}: cluster {s.cluster} is not in the HostInventory")
            continue
        if s.action is StepAction.UPGRADE_NODES:
            if s.strategy is Strategy.REPLACE:
                out.append(f"{s.id}: the replace strategy needs a provider backend to add "
                           "nodes; hosts are upgraded in place (set the pool's strategy to "
                           "in-place)")
            for c in s.changes:
                if c.component not in RUNTIMES:
                    out.append(f"{s.id}: {c.component} is not upgraded by the hosts backend "
                               f"(runtimes: {', '.join(sorted(RUNTIMES))}); {c.component} "
                               "needs the Kubernetes backend")
            missing = [n for n in s.targets if inv.node(n) is None]
            if missing:
                out.append(f"{s.id}: node(s) {', '.join(missing)} are not in the HostInventory "
                           f"of cluster {s.cluster}")
        elif s.action in (StepAction.ETCD_SNAPSHOT, StepAction.UPGRADE_ETCD_MEMBER):
            if inv.etcd is None:
                out.append(f"{s.id}: cluster {s.cluster} has no etcd section in the "
                           "HostInventory")
            elif s.action is StepAction.UPGRADE_ETCD_MEMBER:
                names = {m.name for m in inv.etcd.members}
                missing = [t for t in s.targets if t not in names]
                if missing:
                    out.append(f"{s.id}: etcd member(s) {', '.join(missing)} are not in the "
                               "HostInventory")
                if s.to_version not in inv.etcd.binaries:
                    out.append(f"{s.id}: no etcd {s.to_version} binaries in the HostInventory "
                               f"(has {', '.join(sorted(inv.etcd.binaries))})")
        else:
            out.append(f"{s.id}: {s.action} is not done by the hosts backend (it upgrades "
                       "container runtimes and etcd members)")
    return out


def _etcd_description(name: str, et: HostEtcd, origin: str = "",
                      restored: dict[str, Any] | None = None) -> EtcdCluster:
    """The actuator's description of a cluster's etcd (after a restore: the restored data
    directories and token, from the backend's state)."""
    restored = restored or {}
    dirs: dict[str, str] = restored.get("dataDirs", {})
    members = tuple(EtcdMember(m.name, m.client_url, m.peer_url,
                               Path(dirs.get(m.name, m.data_dir)), tuple(m.extra_flags))
                    for m in et.members)
    tls = None
    if et.client_tls is not None:
        t = et.client_tls
        tls = EtcdTLS(Path(t.ca_file), Path(t.cert_file) if t.cert_file else None,
                      Path(t.key_file) if t.key_file else None,
                      origin or f"cluster {name}: etcd.clientTls")
    return EtcdCluster(name, members, {v: Path(d) for v, d in et.binaries.items()},
                       restored.get("token", et.token), et.quota_backend_bytes,
                       tuple(et.extra_flags), et.ctl_version, tls)


def etcd_access_problems(inventory: HostInventory, plan: Plan, source: str = "-f"
                         ) -> list[ConfigProblem]:
    """Before a run is created: can pitstop reach the etcd members of every cluster whose etcd
    the plan changes, with the inventory's client TLS? Read-only (``endpoint status``; no probe
    write, no member touched). A TLS failure names the file (``source``), the field and the
    fix; a member that is merely down is left to the run's gates."""
    out: list[ConfigProblem] = []
    clusters = {s.cluster for s in plan.steps if s.action in (StepAction.ETCD_SNAPSHOT,
                                                               StepAction.UPGRADE_ETCD_MEMBER)}
    for i, c in enumerate(inventory.spec.clusters):
        if c.name not in clusters or c.etcd is None:
            continue
        base = f"spec.clusters[{i}].etcd"
        act = EtcdActuator(_etcd_description(c.name, c.etcd, f"{base}.clientTls"),
                           LocalProcessControl(Path(c.etcd.control.run_dir)))
        # one problem per field and diagnosis, naming every member it applies to
        grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        for member, diagnosis, text in act.check_access():
            if diagnosis is not None:
                grouped.setdefault((diagnosis.field, diagnosis.message, diagnosis.fix),
                                   []).append((member, text))
        urls = {m.name: (j, m.client_url) for j, m in enumerate(c.etcd.members)}
        for (field, message, fix), seen in grouped.items():
            names = [n for n, _ in seen if n]
            if field == "clientUrl":
                where = f"{base}.members[{urls[names[0]][0]}].clientUrl"
            else:
                where = f"{base}.clientTls.{field}"
            who = (f"etcd member(s) {', '.join(f'{n} ({urls[n][1]})' for n in names)} of "
                   f"cluster {c.name}" if names else f"etcd of cluster {c.name}")
            said = f" (etcdctl: {seen[0][1]})" if names else ""
            out.append(ConfigProblem(source, None, where, f"{who}: {message}{said}.",
                                     f"{fix}. Nothing was changed."))
    return out


def credential_problems(inventory: HostInventory, source: str = "-f") -> list[ConfigProblem]:
    """Before a run is created: can every client key and known_hosts file the inventory names
    for its SSH nodes be used? Each file is read as SSH would read it, without connecting
    (:func:`~pitstop.hosts.connect.identity_file_problem`,
    :func:`~pitstop.hosts.connect.known_hosts_problem`); a file that is missing, unreadable,
    not a private key, protected by a passphrase or malformed is named with its field in
    ``source`` (where the cluster's ``ssh`` serves several nodes, once) and the fix. An empty
    known_hosts file is readable: the hosts it lacks are reported by the run, per host."""
    out: list[ConfigProblem] = []
    for i, c in enumerate(inventory.spec.clusters):
        # the ssh block's field path → (the block, the nodes it serves)
        users: dict[str, tuple[SshAccess, list[str]]] = {}
        for j, n in enumerate(c.nodes):
            access = c.ssh_for(n)
            if n.local or access is None:
                continue
            where = f"spec.clusters[{i}].nodes[{j}].ssh" if n.ssh is not None \
                else f"spec.clusters[{i}].ssh"
            users.setdefault(where, (access, []))[1].append(n.name)
        for where, (access, nodes) in users.items():
            assert access.identity_file and access.known_hosts_file  # model-validated
            for name, path, check in (("identityFile", access.identity_file,
                                       identity_file_problem),
                                      ("knownHostsFile", access.known_hosts_file,
                                       known_hosts_problem)):
                what, fix = check(path)
                if what:
                    out.append(ConfigProblem(
                        source, None, f"{where}.{name}",
                        f"{what} (SSH to {', '.join(nodes)} of cluster {c.name}).",
                        f"{fix}. Nothing was created or contacted."))
    return out


def _split_secrets(value: Json, pointer: str, taken: dict[str, str]) -> Json:
    """``value`` with what looks like a secret in its strings redacted; the original strings
    go into ``taken`` by JSON pointer."""
    if isinstance(value, str):
        shown = redact_text(value, mask=REDACTED)
        if shown != value:
            taken[pointer] = value
        return shown
    if isinstance(value, dict):
        return {k: _split_secrets(v, f"{pointer}/{_escape(k)}", taken) for k, v in value.items()}
    if isinstance(value, list):
        return [_split_secrets(v, f"{pointer}/{i}", taken) for i, v in enumerate(value)]
    return value


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _put_back(doc: Json, pointer: str, original: str) -> bool:
    """Put ``original`` at ``pointer`` in ``doc`` when what is there is its redaction."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = doc
    try:
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if node[key] != redact_text(original, mask=REDACTED):
            return False
        node[key] = original
    except (LookupError, ValueError, TypeError):
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    """``text`` into a new file only its owner may read (never a wider moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


# ---------------------------------------------------------------------------------------------
# Recording wrappers: every install and restart goes to the log, with its operation


Record = Callable[[str, str, str, bool], None]  # kind, subject, detail, destructive


class _RecordedPackages:
    def __init__(self, inner: PackageManager, record: Record) -> None:
        self.inner = inner
        self.name = inner.name
        self._record = record

    def installed(self, host: Host, package: str) -> str | None:
        return self.inner.installed(host, package)

    def candidates(self, host: Host, package: str) -> tuple[str, ...]:
        return self.inner.candidates(host, package)

    def held(self, host: Host, packages: tuple[str, ...]) -> tuple[str, ...]:
        return self.inner.held(host, packages)

    def compare(self, a: str, b: str) -> int:
        return self.inner.compare(a, b)

    def wait_idle(self, host: Host, timeout: float) -> str:
        return self.inner.wait_idle(host, timeout)

    def kind(self, host: Host) -> PackageManagerName:
        return self.inner.kind(host)

    def install(self, host: Host, package: str, version: str, *, timeout: float) -> None:
        self._record("install", host.name, f"{package}={version}", True)
        self.inner.install(host, package, version, timeout=timeout)
        self._record("install-done", host.name, f"{package}={version}", False)


class _RecordedDaemon:
    def __init__(self, inner: DaemonControl, record: Record) -> None:
        self.inner = inner
        self._record = record

    def pid(self, host: Host) -> int | None:
        return self.inner.pid(host)

    def restart(self, host: Host) -> None:
        self._record("daemon-restart", host.name, "", True)
        self.inner.restart(host)

    def start(self, host: Host) -> None:
        self._record("daemon-start", host.name, "", True)
        self.inner.start(host)

    def stop(self, host: Host) -> None:
        self._record("daemon-stop", host.name, "", True)
        self.inner.stop(host)


class _RecordedMembers:
    """A :class:`~pitstop.hosts.etcd.MemberControl` that logs every real start and stop of an
    etcd member (a start of a member already running that binary, or a stop of a stopped one,
    changes nothing and is not logged)."""

    def __init__(self, inner: MemberControl, record: Callable[[str, str, str], None]) -> None:
        self.inner = inner
        self._record = record

    def start(self, member: EtcdMember, binaries: EtcdBinaries,
              flags: Sequence[str]) -> MemberProcess:
        cur = self.inner.process(member)
        if not (cur is not None and cur.running and cur.binary == str(binaries.etcd)
                and cur.data_dir == str(member.data_dir)):
            self._record("etcd-start", member.name,
                         f"etcd {binaries.version} ({binaries.etcd}) on {member.data_dir}")
        return self.inner.start(member, binaries, flags)

    def stop(self, member: EtcdMember, timeout: float = 20.0) -> None:
        self.stop_many([member], timeout)

    def stop_many(self, members: Iterable[EtcdMember], timeout: float = 20.0) -> None:
        members = list(members)
        for m in members:
            cur = self.inner.process(m)
            if cur is not None and cur.running:
                self._record("etcd-stop", m.name, f"etcd {cur.version} (pid {cur.pid})")
        self.inner.stop_many(members, timeout)

    def process(self, member: EtcdMember) -> MemberProcess | None:
        return self.inner.process(member)

    def logs(self, member: EtcdMember, lines: int = 20) -> str:
        return self.inner.logs(member, lines)


class _NoSudo:
    """A host whose login user has the rights needed (``sudo: false``): never escalates."""

    def __init__(self, inner: Host) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def run(self, cmd: list[str] | str, timeout: float = 60.0, *, sudo: bool = False,
            check: bool = False) -> CommandResult:
        return self.inner.run(cmd, timeout, sudo=False, check=check)

    def close(self) -> None:
        self.inner.close()


def _verify_command(cmd: VerifyCommand) -> PostCheck:
    def check(host: Host, after: Snapshot) -> Sequence[Problem]:
        try:
            r = host.run(cmd.command, timeout=cmd.timeout.total_seconds(), sudo=cmd.sudo)
        except CommandTimeout as exc:
            return [Problem(Severity.ERROR, "verify-command", f"{host.name}: verification "
                            f"command {cmd.name!r} timed out: {exc}")]
        if r.ok:
            return []
        tail = _REDACT((r.stderr.strip() or r.stdout.strip())[-300:])
        return [Problem(Severity.ERROR, "verify-command",
                        f"{host.name}: verification command {cmd.name!r} exited with "
                        f"{r.exit_code}" + (f": {tail}" if tail else ""))]
    return check


_REDACT = Redactor()


def _snapshot_json(s: Snapshot) -> dict[str, Any]:
    return asdict(s)


def _snapshot_from(d: dict[str, Any]) -> Snapshot:
    daemon = DaemonInfo(**d["daemon"]) if d.get("daemon") else None
    return Snapshot(d["host"], float(d["taken_at"]), daemon,
                    tuple(TaskState(**t) for t in d.get("tasks", ())))


# ---------------------------------------------------------------------------------------------


class HostsBackend:
    """A :class:`~pitstop.backend.Backend` over hosts; see the module docstring."""

    def __init__(self, inventory: HostInventory, state_dir: Path, *, fleet: Fleet | None = None,
                 catalog: Catalog | None = None) -> None:
        self.inventory = inventory
        self.fleet = fleet
        self.state_dir = Path(state_dir)
        self.state = SqliteOperationStore(self.state_dir / STATE_FILE)
        self.owner = process_identity()
        self._clock = WallClock()
        self._catalog = catalog
        self._hosts: dict[tuple[str, str], Host] = {}
        self._etcd: dict[str, EtcdActuator] = {}
        self._lock = threading.RLock()
        self._threads: dict[str, threading.Thread] = {}
        self._settled: set[str] = set()
        self._op = threading.local()  # the operation this thread works on (for the log)

    # -- run directories -------------------------------------------------------------------
    @staticmethod
    def run_record() -> dict[str, Any]:
        """What ``run.json`` says about this backend (see :meth:`create` and :meth:`open`)."""
        return {"kind": "hosts", "state": STATE_FILE, "inventory": INVENTORY_FILE,
                "fleet": FLEET_FILE}

    @classmethod
    def create(cls, state_dir: Path, inventory: HostInventory, fleet: Fleet | None
               ) -> HostsBackend:
        """A backend whose inventory and fleet are kept in ``state_dir`` for :meth:`open`.

        ``inventory.json`` holds no secret: what looks like one in its strings (a verify
        command's ``Authorization: Bearer …`` or ``--password=…``; the rules of
        :mod:`pitstop.redact`, as the audit log applies them) is written ``[redacted]``, and
        the original strings go to ``inventory-secrets.json``, readable by its owner only,
        from which :meth:`open` puts them back (a resumed run runs the same commands)."""
        state_dir = Path(state_dir)
        taken: dict[str, str] = {}
        shown = _split_secrets(inventory.model_dump(mode="json", by_alias=True), "", taken)
        if taken:
            _write_private(state_dir / SECRETS_FILE, json.dumps(taken, indent=1))
        (state_dir / INVENTORY_FILE).write_text(json.dumps(shown, indent=1))
        if fleet is not None:
            (state_dir / FLEET_FILE).write_text(fleet.model_dump_json(by_alias=True, indent=1))
        return cls(inventory, state_dir, fleet=fleet)

    @classmethod
    def open(cls, state_dir: Path) -> HostsBackend:
        state_dir = Path(state_dir)
        fleet_file = state_dir / FLEET_FILE
        try:
            text = (state_dir / INVENTORY_FILE).read_text()
            doc = json.loads(text)
            secrets_file = state_dir / SECRETS_FILE
            if secrets_file.exists():
                taken = json.loads(secrets_file.read_text())
                bad = [p for p, v in taken.items() if not _put_back(doc, p, str(v))]
                if bad:
                    raise RunStateUnreadable(
                        f"{state_dir}: {SECRETS_FILE} does not belong to {INVENTORY_FILE} "
                        f"(nothing redacted at {', '.join(bad[:5])}); restore the files the "
                        "run was created with")
            elif REDACTED in text:
                raise RunStateUnreadable(
                    f"{state_dir}: {INVENTORY_FILE} has values {REDACTED} and {SECRETS_FILE}, "
                    "which holds them, is missing: a resumed run would run the redacted "
                    "commands. Restore it from where the run directory was copied from")
            inventory = HostInventory.model_validate(doc)
            fleet = Fleet.model_validate_json(fleet_file.read_text()) if fleet_file.exists() \
                else None
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise RunStateUnreadable(f"{state_dir}: cannot read the run's {INVENTORY_FILE} / "
                                     f"{FLEET_FILE}: {exc}") from None
        return cls(inventory, state_dir, fleet=fleet)

    # -- protocol basics -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return "hosts"

    @property
    def clock(self) -> WallClock:
        return self._clock

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog()
        return self._catalog

    def close(self) -> None:
        """Wait for operations in flight, then close the SSH connections."""
        for t in list(self._threads.values()):
            t.join()
        for h in self._hosts.values():
            h.close()
        self._hosts.clear()
        self.state.close()

    def events(self, cluster: str | None = None) -> list[OpEvent]:
        """The log: every start, install, restart, rollback, recorded cordon… in order."""
        return self.state.events(cluster)

    def _record(self, cluster: str, kind: str, subject: str, detail: str = "",
                destructive: bool = False, op_key: str = "") -> None:
        op_key = op_key or getattr(self._op, "key", "")
        self.state.record(self._clock.now(), cluster, kind, subject, detail, destructive,
                          op_key, self.owner)

    # -- the inventory ---------------------------------------------------------------------
    def _cluster(self, cluster: str) -> HostCluster:
        inv = self.inventory.cluster(cluster)
        if inv is None:
            raise BackendError(f"cluster {cluster!r} is not in the HostInventory "
                               f"{self.inventory.metadata.name}")
        return inv

    def knows(self, key: str) -> bool:
        """An operation by ``key`` was started here (by this process or an earlier one)."""
        return self.state.get(key) is not None

    def _node(self, cluster: str, node: str) -> HostNode:
        n = self._cluster(cluster).node(node)
        if n is None:
            raise BackendError(f"node {node!r} of cluster {cluster} is not in the HostInventory")
        return n

    def _host(self, cluster: str, node: HostNode) -> Host:
        with self._lock:
            key = (cluster, node.name)
            host = self._hosts.get(key)
            if host is None:
                if node.local:
                    host = LocalHost(node.name)
                else:
                    access = self._cluster(cluster).ssh_for(node)
                    assert access is not None and node.address is not None  # model-validated
                    assert access.identity_file and access.known_hosts_file
                    host = SSHHost(node.address, port=access.port, user=access.user,
                                   client_keys=[access.identity_file],
                                   known_hosts=access.known_hosts_file, name=node.name,
                                   connect_timeout=access.connect_timeout.total_seconds())
                if not node.sudo:
                    host = _NoSudo(host)
                self._hosts[key] = host
            return host

    def _actuator(self, node: HostNode, record: Record | None = None) -> ContainerdActuator:
        """The node's runtime actuator: :class:`DockerActuator` for ``runtime.name: docker``
        (a :class:`ContainerdActuator` with Docker's daemon, facts and checks), else
        containerd's."""
        rt = node.runtime
        ctl = rt.control
        daemon: DaemonControl
        if ctl.type == "process" and rt.name == "docker":
            daemon = dockerd_process(data_root=ctl.root, exec_root=ctl.state, address=rt.socket,
                                     config=rt.config, pid_file=ctl.pid_file,
                                     log_file=ctl.log_file, binary=ctl.binary)
        elif ctl.type == "process":
            daemon = ProcessDaemon.containerd(root=ctl.root, state=ctl.state, address=rt.socket,
                                              config=rt.config, pid_file=ctl.pid_file,
                                              log_file=ctl.log_file, binary=ctl.binary)
        else:
            daemon = SystemdDaemon(ctl.unit)
        packages: PackageManager = package_manager(node.package_manager)
        if record is not None:
            daemon = _RecordedDaemon(daemon, record)
            packages = _RecordedPackages(packages, record)
        if rt.name == "docker":
            return DockerActuator(daemon, address=rt.socket, config_path=rt.config,
                                  package=rt.package, packages=packages, catalog=self.catalog,
                                  install_timeout=rt.install_timeout.total_seconds(),
                                  ready_timeout=rt.ready_timeout.total_seconds())
        return ContainerdActuator(daemon, address=rt.socket, config_path=rt.config,
                                  package=rt.package, packages=packages, catalog=self.catalog,
                                  install_timeout=rt.install_timeout.total_seconds(),
                                  ready_timeout=rt.ready_timeout.total_seconds())

    def _fleet_node(self, cluster: str, node: str) -> tuple[str, str, str | None]:
        """(pool, kubelet, kube-proxy) as the Fleet declares them ("" when unknown)."""
        if self.fleet is None:
            return "", "", None
        for c in self.fleet.spec.clusters:
            if c.name == cluster:
                for pool, n in c.all_nodes():
                    if n.name == node:
                        return pool.name, n.kubelet, n.proxy_version
        return "", "", None

    def _etcd_actuator(self, cluster: str) -> EtcdActuator:
        with self._lock:
            act = self._etcd.get(cluster)
            if act is not None:
                return act
            et = self._cluster(cluster).etcd
            if et is None:
                raise BackendError(f"cluster {cluster} has no etcd in the HostInventory")
            index = next(i for i, c in enumerate(self.inventory.spec.clusters)
                         if c.name == cluster)
            desc = _etcd_description(cluster, et, f"HostInventory {self.inventory.metadata.name}"
                                     f": spec.clusters[{index}].etcd.clientTls",
                                     self.state.get_kv(f"etcd-restored/{cluster}"))
            control = _RecordedMembers(
                LocalProcessControl(Path(et.control.run_dir)),
                lambda kind, member, detail: self._record(cluster, kind, member, detail, True))
            act = EtcdActuator(desc, control,
                               on_event=lambda text: self._record(cluster, "etcd", cluster,
                                                                  text))
            self._etcd[cluster] = act
            return act

    # -- observation -----------------------------------------------------------------------
    def _running_build(self, act: ContainerdActuator, installed: str | None,
                       daemon: DaemonInfo | None) -> str:
        if daemon is None:
            return installed or ""
        if installed is not None and act.daemon_runs(daemon, installed):
            return installed
        if daemon.revision and not _SHA.match(daemon.revision):
            return daemon.revision  # a distribution build: the revision is the package version
        return daemon.version.lstrip("v")

    def _kubelet(self, host: Host, declared: str) -> str:
        found = facts.parse_kubelet_version(host.run(facts.KUBELET_VERSION_COMMAND, timeout=30))
        return found or declared

    def _look(self, cluster: str, node: HostNode, busy: set[str],
              marks: dict[str, str], tasks: bool) -> tuple[NodeObservation, Snapshot | None]:
        host = self._host(cluster, node)
        act = self._actuator(node)
        pool, declared, proxy = self._fleet_node(cluster, node.name)
        installed = act.packages.installed(host, node.runtime.package)
        snap: Snapshot | None = None
        if tasks:
            try:
                snap = act.snapshot(host)
            except HostError:
                snap = None
            daemon = snap.daemon if snap is not None else None
        else:
            daemon, _ = act.daemon_info(host)
        annotations = {k.removeprefix("annotation:"): v for k, v in marks.items()
                       if k.startswith("annotation:")}
        obs = NodeObservation(
            name=node.name, pool=pool, ready=daemon is not None and node.name not in busy,
            unschedulable=marks.get("unschedulable") == "true",
            kubelet=self._kubelet(host, declared), kube_proxy=proxy,
            runtime=node.runtime.name, runtime_version=self._running_build(act, installed,
                                                                           daemon),
            annotations=annotations)
        return obs, snap

    def _nodes(self, cluster: str, tasks: bool
               ) -> list[tuple[HostNode, NodeObservation | None, Snapshot | None, str]]:
        inv = self._cluster(cluster)
        busy = {op.action.target for op in self.state.operations(cluster, running=True)
                if isinstance(op.action, UpgradeComponent)}
        marks = self.state.marks(cluster)
        outcomes = run_many(inv.nodes, lambda n: self._look(cluster, n, busy,
                                                             marks.get(n.name, {}), tasks),
                            self.inventory.spec.parallelism)
        out: list[tuple[HostNode, NodeObservation | None, Snapshot | None, str]] = []
        for o in outcomes:
            if o.error is not None:
                if isinstance(o.error, _CONFIG_ERRORS):
                    raise o.error
                if not isinstance(o.error, HostError):
                    raise o.error
                out.append((o.host, None, None, str(o.error)))
            else:
                assert o.value is not None
                out.append((o.host, o.value[0], o.value[1], ""))
        return out

    def _etcd_health(self, cluster: str, *, probe: bool = False
                     ) -> tuple[EtcdMemberObservation, ...]:
        if self._cluster(cluster).etcd is None:
            return ()
        return self._etcd_actuator(cluster).health(probe=probe)

    def observe(self, cluster: str) -> ClusterObservation:
        self._settle(cluster)
        nodes = []
        for node, seen, _, error in self._nodes(cluster, tasks=False):
            if seen is not None:
                nodes.append(seen)
                continue
            pool, declared, proxy = self._fleet_node(cluster, node.name)
            log.warning("%s", error)  # unreachable: not Ready, versions unknown
            nodes.append(NodeObservation(node.name, pool, False, False, declared, proxy,
                                         node.runtime.name, ""))
        return ClusterObservation(cluster=cluster, time=self._clock.now(), apiservers={},
                                  controller_manager="", scheduler="",
                                  etcd=self._etcd_health(cluster), nodes=tuple(nodes), pods=(),
                                  pdbs=())

    def health(self, cluster: str) -> HealthSignals:
        self._settle(cluster)
        looks = self._nodes(cluster, tasks=True)
        reachable = [(o, s) for _, o, s, _ in looks if o is not None]
        versions = {o.runtime_version for o, _ in reachable if o.runtime_version}
        newest = max(versions, key=debversion.sort_key) if versions else ""
        upgraded = [s for o, s in reachable if o.runtime_version == newest]
        others = [s for o, s in reachable if o.runtime_version != newest] or upgraded

        def share(snaps: list[Snapshot | None]) -> float:
            tasks = [t for s in snaps if s is not None for t in s.tasks]
            return sum(1 for t in tasks if t.status != "RUNNING") / len(tasks) if tasks else 0.0

        all_tasks = [t for _, s in reachable if s is not None for t in s.tasks]
        metrics = {
            "hosts_unreachable": float(len(looks) - len(reachable)),
            "runtimes_down": float(sum(1 for _, s in reachable if s is None)),
            "containers_running": float(sum(1 for t in all_tasks if t.status == "RUNNING")),
            "containers_not_running": float(sum(1 for t in all_tasks
                                                if t.status != "RUNNING")),
            "error_rate": share(upgraded), "error_rate_baseline": share(others)}
        return HealthSignals(time=self._clock.now(), apiserver_ok={}, apiserver_latency_ms=None,
                             etcd=self._etcd_health(cluster, probe=True), metrics=metrics)

    # -- recorded no-ops -------------------------------------------------------------------
    _NOT_A_NODE = "recorded only: a host that is not a Kubernetes node has no scheduler to tell"

    def cordon(self, cluster: str, node: str, reason: str) -> None:
        self._node(cluster, node)
        self.state.set_mark(cluster, node, "unschedulable", "true")
        self._record(cluster, "cordon", node, f"{reason}; {self._NOT_A_NODE}")

    def uncordon(self, cluster: str, node: str) -> None:
        self._node(cluster, node)
        self.state.set_mark(cluster, node, "unschedulable", None)
        self._record(cluster, "uncordon", node, self._NOT_A_NODE)

    def annotate(self, cluster: str, node: str, key: str, value: str | None) -> None:
        self._node(cluster, node)
        self.state.set_mark(cluster, node, f"annotation:{key}", value)
        self._record(cluster, "annotate", node, f"{key}={value}; {self._NOT_A_NODE}")

    def evict(self, cluster: str, namespace: str, pod: str, uid: str) -> EvictionResult:
        self._record(cluster, "evict", f"{namespace}/{pod}", "hosts carry no pods: gone")
        return EvictionResult.GONE

    def delete_pod(self, cluster: str, namespace: str, pod: str, uid: str) -> None:
        self._record(cluster, "delete", f"{namespace}/{pod}", "hosts carry no pods: gone")

    # -- operations ------------------------------------------------------------------------
    def _unsupported(self, cluster: str, action: Action) -> str:
        """Why ``action`` cannot be done here ("" when it can)."""
        inv = self._cluster(cluster)
        if isinstance(action, UpgradeComponent):
            if action.component in RUNTIMES:
                node = inv.node(action.target)
                if node is None:
                    return f"node {action.target} is not in the HostInventory"
                if node.runtime.name != action.component:
                    return f"{action.target} runs {node.runtime.name}, not {action.component}"
                return ""
            if action.component == "etcd":
                if inv.etcd is None:
                    return f"cluster {cluster} has no etcd in the HostInventory"
                if action.target not in {m.name for m in inv.etcd.members}:
                    return f"etcd member {action.target} is not in the HostInventory"
                return ""
            return (f"the hosts backend does not upgrade {action.component} (it upgrades "
                    f"{', '.join(sorted(RUNTIMES))} and etcd); that needs the Kubernetes or a "
                    "provider backend")
        if isinstance(action, EtcdSnapshot | EtcdRestore):
            return "" if inv.etcd is not None else \
                f"cluster {cluster} has no etcd in the HostInventory"
        return (f"the hosts backend cannot {type(action).__name__}: adding and removing nodes "
                "needs a provider backend")

    def start(self, cluster: str, key: str, action: Action) -> Operation:
        self._settle(cluster)
        rec = self.state.get(key)
        if rec is None:
            why = self._unsupported(cluster, action)
            now = self._clock.now()
            new = OpRecord(key, cluster, action, OperationState.FAILED if why else
                           OperationState.RUNNING, why, now, now if why else None, self.owner)
            if self.state.insert(new):
                self._record(cluster, "start", key, f"{action!r}" + (f": {why}" if why else ""),
                             not why, key)
                if not why:
                    self._spawn(key)
                return new.operation()
            rec = self.state.get(key)
            assert rec is not None
        if rec.action != action:
            raise BackendError(f"operation {key} exists for {rec.action!r}, not {action!r}")
        self._record(cluster, "start", key, f"known key: {rec.state}", False, key)
        return self._current(rec)

    def poll(self, cluster: str, key: str) -> Operation:
        self._settle(cluster)
        rec = self.state.get(key)
        if rec is None:
            raise BackendError(f"no operation with key {key} (state {self.state.path})")
        return self._current(rec)

    def _current(self, rec: OpRecord) -> Operation:
        if rec.state is OperationState.RUNNING and rec.owner != self.owner \
                and not owner_alive(rec.owner):
            self._adopt(rec)
            got = self.state.get(rec.key)
            assert got is not None
            rec = got
        return rec.operation()

    def _settle(self, cluster: str) -> None:
        """Once per cluster and process: settle the operations whose process died."""
        with self._lock:
            if cluster in self._settled:
                return
            self._settled.add(cluster)
        for rec in self.state.operations(cluster, running=True):
            if rec.owner != self.owner and not owner_alive(rec.owner):
                self._adopt(rec)

    def _adopt(self, rec: OpRecord) -> None:
        if not self.state.claim(rec.key, rec.owner, self.owner):
            return  # another process took it
        self._record(rec.cluster, "adopt", rec.key,
                     f"the process that ran it ({rec.owner}) is gone; re-reading the host to "
                     f"settle it (phase {rec.data.get('phase', 'not begun')})", False, rec.key)
        self._work(rec.key)  # in this thread: the cluster is settled before anything else

    def _spawn(self, key: str) -> None:
        t = threading.Thread(target=self._work, args=(key,), name=f"pitstop-op {key}",
                             daemon=False)
        with self._lock:
            self._threads[key] = t
        t.start()

    def _work(self, key: str) -> None:
        rec = self.state.get(key)
        assert rec is not None
        data = dict(rec.data)
        outer = getattr(self._op, "key", "")
        self._op.key = key
        try:
            state, message = self._dispatch(rec, data)
        except PitstopError as exc:  # HostError, EtcdError, UpgradeRefused: a clear message
            state, message = OperationState.FAILED, str(exc)
        except Exception as exc:  # a bug must not leave the executor polling forever
            log.exception("operation %s", key)
            state, message = OperationState.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._op.key = outer
        self.state.finish(key, state, message, self._clock.now(), data)
        self._record(rec.cluster, "operation-done", key, f"{state}: {message}", False, key)

    def _dispatch(self, rec: OpRecord, data: dict[str, Any]) -> tuple[OperationState, str]:
        a = rec.action
        if isinstance(a, UpgradeComponent) and a.component in RUNTIMES:
            return self._upgrade_runtime(rec, a, data)
        if isinstance(a, UpgradeComponent) and a.component == "etcd":
            return self._upgrade_etcd_member(rec.cluster, a)
        if isinstance(a, EtcdSnapshot):
            return self._etcd_snapshot(rec.cluster, a, data)
        if isinstance(a, EtcdRestore):
            return self._etcd_restore(rec.cluster, a, data)
        return OperationState.FAILED, self._unsupported(rec.cluster, a)

    # -- the runtime upgrade ---------------------------------------------------------------
    def _upgrade_runtime(self, rec: OpRecord, a: UpgradeComponent, data: dict[str, Any]
                         ) -> tuple[OperationState, str]:
        node = self._node(rec.cluster, a.target)
        host = self._host(rec.cluster, node)

        def record(kind: str, subject: str, detail: str, destructive: bool) -> None:
            self._record(rec.cluster, kind, subject, detail, destructive, rec.key)

        act = self._actuator(node, record)
        checks = [_verify_command(c) for c in node.verify]
        phase = data.get("phase")
        what = f"{a.component} on {node.name}"
        if phase is not None:  # an earlier process began: let its apt finish, then look again
            problem = act.packages.wait_idle(host, node.runtime.install_timeout.total_seconds())
            if problem:
                return OperationState.FAILED, (
                    f"{what}: the package manager is not usable after the interrupted run: "
                    f"{problem}. Repair it on the host (e.g. `dpkg --configure -a`), then "
                    "`pitstop resume`")
        if phase == "rollback":
            return self._roll_back(rec, act, host, data, what, resumed=True)
        facts = act.facts(host)
        errors = [p for p in act.check(facts, a.version) if p.severity is Severity.ERROR]
        if errors:
            raise UpgradeRefused(node.name, errors)
        if "before" not in data:
            before = act.snapshot(host)  # the daemon must answer: its containers are checked
            data.update(previous=facts.installed, before=_snapshot_json(before),
                        phase="snapshot")
            self.state.save_data(rec.key, data)
        else:
            before = _snapshot_from(data["before"])
        previous = str(data["previous"])
        build = act.resolve(a.version, facts.candidates) or a.version
        data.update(phase="upgrade", build=build)
        self.state.save_data(rec.key, data)
        failure = ""
        try:
            step = act.upgrade(host, a.version, facts=facts)
            data.update(installSeconds=step.install_seconds,
                        daemonUnavailableSeconds=step.daemon_unavailable_seconds,
                        changed=step.changed or data.get("changed", False))
            verification = act.verify(host, before, a.version, checks)
            data["verifySeconds"] = verification.seconds
            if verification.ok:
                kept = len(before.running())
                data["phase"] = "done"
                return OperationState.SUCCEEDED, (
                    f"{what}: {previous} → {build}; {step.message}"
                    + (f" (install {step.install_seconds:.1f}s, daemon answering again after "
                       f"{step.daemon_unavailable_seconds:.2f}s)" if step.changed else "")
                    + f"; verified: {kept} container(s) running as before, same PID and shim"
                    + (" (settled after the process that began it died)" if phase else ""))
            failure = "; ".join(p.message for p in verification.problems
                                if p.severity is Severity.ERROR)
        except HostError as exc:
            failure = str(exc)
        if build == previous:
            data["phase"] = "done"
            return OperationState.FAILED, f"{what}: verification failed at {build}: {failure}"
        data.update(phase="rollback", failure=failure)
        self.state.save_data(rec.key, data)
        return self._roll_back(rec, act, host, data, what, resumed=False)

    def _roll_back(self, rec: OpRecord, act: ContainerdActuator, host: Host,
                   data: dict[str, Any], what: str, *, resumed: bool
                   ) -> tuple[OperationState, str]:
        previous = str(data["previous"])
        before = _snapshot_from(data["before"])
        why = f"{what}: {data.get('build')} failed verification: {data.get('failure')}"
        self._record(rec.cluster, "rollback", host.name, f"back to {previous}", True, rec.key)
        try:
            step, verification = act.rollback(host, previous, before)
        except HostError as exc:
            data["phase"] = "rollback-failed"
            return OperationState.FAILED, (f"{why}; the rollback to {previous} failed: {exc}. "
                                           "The host needs a person")
        data.update(phase="rolled-back" if verification.ok else "rollback-failed",
                    rollbackSeconds=step.seconds + verification.seconds)
        if verification.ok:
            return OperationState.FAILED, (
                f"{why}; rolled back to {previous}"
                + (" (finished after the process that began it died)" if resumed else "")
                + f", verified: {len(before.running())} container(s) running as before")
        bad = "; ".join(p.message for p in verification.problems if p.severity is Severity.ERROR)
        return OperationState.FAILED, (f"{why}; rolled back to {previous} but its verification "
                                       f"failed too: {bad}. The host needs a person")

    # -- etcd ------------------------------------------------------------------------------
    def _upgrade_etcd_member(self, cluster: str, a: UpgradeComponent
                             ) -> tuple[OperationState, str]:
        et = self._cluster(cluster).etcd
        assert et is not None
        act = self._etcd_actuator(cluster)
        here = next((o for o in act.health() if o.name == a.target), None)
        if here is None or here.version != a.version or not here.healthy:
            gate = act.gate(exclude=[a.target])
            if not gate.ok:
                return OperationState.FAILED, (
                    f"etcd member {a.target} not restarted: the other members must be healthy "
                    f"first: {'; '.join(gate.problems)}")
        step = act.upgrade_member(a.target, a.version,
                                  timeout=et.member_timeout.total_seconds())
        return OperationState.SUCCEEDED, f"etcd member {a.target}: {step.message}"

    def _snapshot_path(self, cluster: str, name: str) -> Path:
        et = self._cluster(cluster).etcd
        assert et is not None
        return Path(et.snapshot_dir) / f"{_safe(cluster)}-{_safe(name)}.db"

    def _etcd_snapshot(self, cluster: str, a: EtcdSnapshot, data: dict[str, Any]
                       ) -> tuple[OperationState, str]:
        snap = self._etcd_actuator(cluster).snapshot(self._snapshot_path(cluster, a.name))
        data.update(path=str(snap.path), sha256=snap.sha256, revision=snap.revision,
                    version=snap.version)
        return OperationState.SUCCEEDED, (
            f"etcd snapshot {snap.path} from {snap.taken_from} (etcd {snap.version}, revision "
            f"{snap.revision}, sha256 {snap.sha256[:12]}…) saved and verified: checksum, "
            "status and a trial restore")

    def _etcd_restore(self, cluster: str, a: EtcdRestore, data: dict[str, Any]
                      ) -> tuple[OperationState, str]:
        et = self._cluster(cluster).etcd
        assert et is not None
        taken = [r for r in self.state.operations(cluster)
                 if isinstance(r.action, EtcdSnapshot) and r.action.name == a.snapshot
                 and r.state is OperationState.SUCCEEDED and r.data.get("path")]
        path = Path(taken[-1].data["path"]) if taken else self._snapshot_path(cluster,
                                                                                a.snapshot)
        act = self._etcd_actuator(cluster)
        report = act.restore(path, a.version,
                             Path(et.restore_dir) / f"{_safe(cluster)}-{_safe(a.snapshot)}")
        new = report.cluster  # the actuator now describes the restored cluster; so will the
        # actuators of later processes (resume), from this record
        self.state.set_kv(f"etcd-restored/{cluster}", {
            "token": new.token, "dataDirs": {m.name: str(m.data_dir) for m in new.members}})
        data.update(path=str(path), token=new.token, keys=report.key_count)
        return OperationState.SUCCEEDED, (
            f"etcd restored from {path} into a new cluster of etcd {a.version} (token "
            f"{new.token}): {report.key_count} keys, as at the snapshot; data directories under "
            f"{Path(et.restore_dir)}")

