"""The ``HostInventory`` object: where the machines of a fleet are and how pitstop reaches them.

A :class:`~pitstop.model.fleet.Fleet` says *what* runs (versions, pools, workloads); a host
inventory says *where*: per cluster, per node, the SSH address (or ``local: true`` for this
machine), the login, the files holding the client key and the known host keys, whether commands
that need root go through ``sudo -n``, how the runtime daemon is restarted, extra verification
commands; and for etcd, the members with their URLs and data directories, the binaries of each
version, and how member processes are controlled. ``pitstop apply --backend hosts -f
hosts.yaml`` reads it; ``pitstop plan`` accepts it and ignores it.

It never holds a secret: keys are named by the path of their file (a value that looks like key
material is refused), passwords have no field (unknown fields are refused), and sudo is only
ever ``sudo -n`` (no password prompt). Node names are the Fleet's node names, etcd member
names the Fleet's etcd member names.

.. code-block:: yaml

    apiVersion: pitstop.dev/v1alpha1
    kind: HostInventory
    metadata: {name: lab}
    spec:
      clusters:
      - name: lab
        ssh: {user: root, identityFile: /etc/pitstop/id_ed25519,
              knownHostsFile: /etc/pitstop/known_hosts}
        nodes:
        - name: node-a
          address: 10.0.0.7
          packageManager: auto        # apt | dnf | auto (from /etc/os-release)
          runtime:
            control: {type: systemd, unit: containerd}
          verify:
          - {name: app-answers, command: "curl -fsS http://127.0.0.1:8080/healthz"}
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pitstop.model.common import API_VERSION, Duration, Metadata, SpecModel, repeated
from pitstop.model.limits import MAX_PARALLELISM, MAX_QUANTITY
from pitstop.model.names import (
    ClusterName,
    EtcdMemberName,
    HostAddress,
    LoginName,
    NodeName,
    PlainName,
)
from pitstop.versions import VersionError, parse_version

__all__ = [
    "EtcdClientTls",
    "HostCluster",
    "HostEtcd",
    "HostEtcdMember",
    "HostInventory",
    "HostInventorySpec",
    "HostNode",
    "HostRuntime",
    "LocalProcessMembers",
    "ProcessDaemonControl",
    "SshAccess",
    "SystemdDaemonControl",
    "VerifyCommand",
]

_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@][-A-Za-z0-9:_.\\@]*$")
_URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$", re.IGNORECASE)


def _a_url(value: str) -> str:
    if len(value) > 2048 or _URL_RE.match(value) is None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"{shown!r} is not an etcd URL: write http://HOST:PORT or "
                         "https://HOST:PORT. Fix: e.g. https://10.0.0.1:2379")
    return value


def _a_path(value: str | None) -> str | None:
    if value is not None and ("PRIVATE KEY" in value or "\n" in value):
        raise ValueError("this looks like key material: give the path of the key file; "
                         "pitstop never stores keys in configuration")
    return value


def _no_key_in_flags(value: list[str]) -> list[str]:
    for flag in value:
        _a_path(flag)
    return value


class SshAccess(SpecModel):
    """How to log in over SSH: key authentication, host key checked against ``knownHostsFile``
    (an unknown host is refused, never trusted on first use)."""

    user: LoginName = "root"
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: str | None = Field(default=None, description="path of the private key file")
    known_hosts_file: str | None = Field(default=None,
                                         description="path of an OpenSSH known_hosts file")
    connect_timeout: Duration = timedelta(seconds=15)

    no_key_material = field_validator("identity_file", "known_hosts_file")(_a_path)


class SystemdDaemonControl(SpecModel):
    """The runtime daemon is a systemd unit (``systemctl restart``)."""

    type: Literal["systemd"] = "systemd"
    unit: str = Field(default="containerd", min_length=1, max_length=255)

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if _UNIT_RE.match(value) is None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(f"{shown!r} is not a systemd unit name (letters, digits and "
                             "':', '_', '.', '\\', '@', '-'; not starting with '-'). Fix: write "
                             "the unit as systemctl shows it, e.g. containerd")
        return value


class ProcessDaemonControl(SpecModel):
    """The runtime daemon is a plain process (hosts without systemd): stopped by its pid file
    (after its command line is checked), started again detached with ``setsid``, with these
    root and state directories (the socket and config are the runtime's)."""

    type: Literal["process"]
    root: str = Field(min_length=1)
    state: str = Field(min_length=1)
    pid_file: str = Field(min_length=1)
    log_file: str = Field(min_length=1)
    binary: str = Field(default="containerd", min_length=1)


DaemonControlSpec = Annotated[SystemdDaemonControl | ProcessDaemonControl,
                              Field(discriminator="type")]


# Defaults of a ``docker`` runtime (Debian's docker.io): the fields left unset take these.
_DOCKER_DEFAULTS = {"package": "docker.io", "socket": "/run/docker.sock",
                    "config": "/etc/docker/daemon.json"}


class HostRuntime(SpecModel):
    """The container runtime on a host: containerd (default) or Docker Engine (``name:
    docker``: package ``docker.io``, socket ``/run/docker.sock``, config
    ``/etc/docker/daemon.json``, systemd unit ``docker``, process binary ``dockerd`` unless
    set; with process control, ``root`` is dockerd's ``--data-root`` and ``state`` its
    ``--exec-root``)."""

    name: Literal["containerd", "docker"] = "containerd"
    package: str = Field(default="containerd", min_length=1)
    socket: str = Field(default="/run/containerd/containerd.sock", min_length=1)
    config: str = Field(default="/etc/containerd/config.toml", min_length=1)
    control: DaemonControlSpec = Field(default_factory=SystemdDaemonControl)
    install_timeout: Duration = timedelta(minutes=15)
    ready_timeout: Duration = timedelta(seconds=60)

    @model_validator(mode="before")
    @classmethod
    def _docker_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("name") != "docker":
            return data
        out = {**_DOCKER_DEFAULTS, **data}
        control = out.get("control")
        if control is None:
            out["control"] = {"type": "systemd", "unit": "docker"}
        elif isinstance(control, dict):
            key, value = (("unit", "docker") if control.get("type", "systemd") == "systemd"
                          else ("binary", "dockerd"))
            out["control"] = {key: value, **control}
        return out


class VerifyCommand(SpecModel):
    """An extra post-upgrade check run on the host after the runtime's own verification:
    exit 0 passes; anything else fails the upgrade, which is then rolled back."""

    name: PlainName
    command: str = Field(min_length=1, description="a shell command, run with sh -c")
    timeout: Duration = timedelta(seconds=60)
    sudo: bool = False


class HostNode(SpecModel):
    name: NodeName = Field(description="the node's name in the Fleet")
    address: HostAddress | None = Field(default=None, description="SSH address (name or IP)")
    local: bool = Field(default=False, description="this machine: commands run without SSH")
    ssh: SshAccess | None = Field(default=None, description="overrides the cluster's ssh")
    sudo: bool = Field(default=True, description="run root commands with sudo -n when the "
                       "login user is not root; false: never use sudo")
    package_manager: Literal["auto", "apt", "dnf"] = Field(
        default="auto", description="how packages are managed on the host: apt (Debian, "
        "Ubuntu), dnf (RHEL, CentOS Stream, Fedora and rebuilds), or auto: read from the "
        "host's /etc/os-release (ID/ID_LIKE); a host that is neither is refused")
    runtime: HostRuntime = Field(default_factory=HostRuntime)
    verify: list[VerifyCommand] = Field(default_factory=list)

    @model_validator(mode="after")
    def _address_or_local(self) -> HostNode:
        if self.local == (self.address is not None):
            raise ValueError(f"node {self.name!r}: set exactly one of address and local")
        return self


class LocalProcessMembers(SpecModel):
    """etcd members run as processes of the machine pitstop runs on (pid files, metadata and
    logs in ``runDir``)."""

    type: Literal["local-process"] = "local-process"
    run_dir: str = Field(min_length=1)


class HostEtcdMember(SpecModel):
    name: EtcdMemberName = Field(description="the member's name in the Fleet")
    client_url: Annotated[str, AfterValidator(_a_url)]
    peer_url: Annotated[str, AfterValidator(_a_url)]
    data_dir: str = Field(min_length=1)
    extra_flags: list[str] = Field(
        default_factory=list, description="this member's own etcd flags, after the cluster's "
        "extraFlags (e.g. its --cert-file/--key-file and --peer-cert-file/--peer-key-file)")

    no_key_material = field_validator("extra_flags")(_no_key_in_flags)


class EtcdClientTls(SpecModel):
    """How pitstop reaches members whose client URLs are ``https://``: the CA file that signed
    their server certificates and, when they run with ``--client-cert-auth``, a client
    certificate and its key. Paths of files on the machine pitstop runs on (etcdctl reads
    them); the key's content is never read by pitstop, nor stored, logged or audited."""

    ca_file: str = Field(min_length=1, description="PEM CA bundle that verifies the members' "
                         "server certificates (etcdctl --cacert)")
    cert_file: str | None = Field(default=None, description="PEM client certificate "
                                  "(etcdctl --cert), for members with --client-cert-auth")
    key_file: str | None = Field(default=None, description="path of the client certificate's "
                                 "private key file (etcdctl --key)")

    no_key_material = field_validator("ca_file", "cert_file", "key_file")(_a_path)

    @model_validator(mode="after")
    def _pair(self) -> EtcdClientTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("certFile and keyFile go together: set both (a client certificate "
                             "and its key) or neither")
        return self


class HostEtcd(SpecModel):
    token: str = Field(min_length=1, description="the cluster token (--initial-cluster-token)")
    members: list[HostEtcdMember] = Field(min_length=1)
    binaries: dict[str, str] = Field(
        min_length=1, description="etcd version -> directory holding etcd and etcdctl "
        "(and etcdutl for 3.5+)")
    ctl_version: str | None = Field(default=None, description="whose etcdctl answers queries; "
                                    "default: the newest")
    quota_backend_bytes: int = Field(default=2 * 1024**3, ge=1, le=MAX_QUANTITY)
    extra_flags: list[str] = Field(
        default_factory=list, description="etcd flags of every member, passed unchanged at "
        "every start (e.g. --trusted-ca-file, --client-cert-auth, --peer-trusted-ca-file, "
        "--peer-client-cert-auth)")
    client_tls: EtcdClientTls | None = Field(
        default=None, description="how pitstop reaches https:// client URLs (etcdctl "
        "--cacert/--cert/--key); required when they are https")
    control: LocalProcessMembers
    snapshot_dir: str = Field(min_length=1)
    restore_dir: str = Field(min_length=1, description="where restored data directories go")
    member_timeout: Duration = timedelta(seconds=60)

    @field_validator("binaries")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        for v in value:
            try:
                parse_version(v)
            except VersionError as exc:
                raise ValueError(f"binaries: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HostEtcd:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"etcd member names repeat: {names}")
        if self.ctl_version is not None and self.ctl_version not in self.binaries:
            raise ValueError(f"ctlVersion {self.ctl_version} has no binaries entry")
        https = [m.name for m in self.members if m.client_url.lower().startswith("https://")]
        if https and self.client_tls is None:
            raise ValueError(f"the clientUrl of {', '.join(https)} is https: set clientTls "
                             "(caFile, and certFile/keyFile when the members use "
                             "--client-cert-auth) so that pitstop can verify them")
        if self.client_tls is not None and len(https) != len(self.members):
            plain = [m.name for m in self.members if m.name not in https]
            raise ValueError(f"clientTls is set but the clientUrl of {', '.join(plain)} is not "
                             "https://: use https:// client URLs, or remove clientTls")
        return self


class HostCluster(SpecModel):
    name: ClusterName = Field(description="the cluster's name in the Fleet")
    ssh: SshAccess | None = Field(default=None, description="default SSH access of its nodes")
    nodes: list[HostNode] = Field(default_factory=list)
    etcd: HostEtcd | None = None

    @model_validator(mode="after")
    def _check(self) -> HostCluster:
        dup = repeated(n.name for n in self.nodes)
        if dup:
            raise ValueError(f"node names repeat: {dup}")
        for n in self.nodes:
            if n.local:
                continue
            access = self.ssh_for(n)
            if access is None or not access.identity_file or not access.known_hosts_file:
                raise ValueError(f"node {n.name!r}: SSH needs identityFile and knownHostsFile "
                                 "(on the node's or the cluster's ssh)")
        return self

    def ssh_for(self, node: HostNode) -> SshAccess | None:
        return node.ssh or self.ssh

    def node(self, name: str) -> HostNode | None:
        return next((n for n in self.nodes if n.name == name), None)


class HostInventorySpec(SpecModel):
    parallelism: int = Field(default=10, ge=1, le=MAX_PARALLELISM,
                             description="hosts contacted at once")
    clusters: list[HostCluster] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> HostInventorySpec:
        dup = repeated(c.name for c in self.clusters)
        if dup:
            raise ValueError(f"cluster names repeat: {dup}")
        return self


class HostInventory(SpecModel):
    api_version: Literal["pitstop.dev/v1alpha1"] = API_VERSION
    kind: Literal["HostInventory"] = "HostInventory"
    metadata: Metadata
    spec: HostInventorySpec

    def cluster(self, name: str) -> HostCluster | None:
        return next((c for c in self.spec.clusters if c.name == name), None)

    @classmethod
    def example_json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema(by_alias=True)
