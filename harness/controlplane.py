"""A real, local Kubernetes control plane for tests.

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes) as
plain processes on 127.0.0.1 with free ports, from the binaries that ``hack/k8s/build.sh``
puts in ``${PITSTOP_CACHE:-/var/cache/pitstop}/k8s/v<version>/bin``.

Standard library only; certificates are made with the ``openssl`` command.

    with ControlPlane("1.36.3") as cp:
        cp.kubectl("get", "nodes")

Environment:
    PITSTOP_CACHE          cache root (default /var/cache/pitstop)
    PITSTOP_K8S_VERSION    version for ``ControlPlane()`` without one (default: newest pinned)
    PITSTOP_K8S_KEEP=1     keep the work directory (certs, logs, etcd data) after stop()
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "hack" / "k8s" / "build.sh"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the "kubernetes" Service
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)


class BinariesMissing(RuntimeError):
    """The control-plane binaries for a version have not been built."""


class ControlPlaneError(RuntimeError):
    """A component failed to start or become ready."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; the message carries its stderr."""

    def __init__(self, res: subprocess.CompletedProcess):
        super().__init__(res.returncode, res.args, res.stdout, res.stderr)

    def __str__(self) -> str:
        args = " ".join(map(str, self.cmd[3:]))
        return f"kubectl {args} exited {self.returncode}: {(self.stderr or '').strip()}"


def cache_root() -> Path:
    return Path(os.environ.get("PITSTOP_CACHE") or "/var/cache/pitstop") / "k8s"


def pinned_versions() -> list[str]:
    """The versions build.sh builds by default (read from the script: one source of truth)."""
    text = BUILD_SCRIPT.read_text()
    m = re.search(r'^K8S_VERSIONS_DEFAULT="([^"]+)"', text, re.M)
    if not m:
        raise RuntimeError(f"K8S_VERSIONS_DEFAULT not found in {BUILD_SCRIPT}")
    return m.group(1).split()


def default_version() -> str:
    env = os.environ.get("PITSTOP_K8S_VERSION")
    if env:
        return env.lstrip("v")
    return sorted(pinned_versions(), key=lambda v: tuple(int(x) for x in v.split(".")))[-1]


def bin_dir(version: str) -> Path:
    """The bin directory of a built version; raises BinariesMissing if it is incomplete."""
    version = version.lstrip("v")
    d = cache_root() / f"v{version}"
    missing = [b for b in BINARIES if not os.access(d / "bin" / b, os.X_OK)]
    if not (d / ".stamp").is_file() or not (d / "kwok-stages.yaml").is_file():
        missing.append(".stamp/kwok-stages.yaml")
    if missing:
        raise BinariesMissing(
            f"Kubernetes v{version} control-plane binaries are missing under {d} "
            f"({', '.join(missing)}). Build them first with: hack/k8s/build.sh {version}  "
            f"(cold build takes a while; see hack/k8s/README.md)"
        )
    return d / "bin"


def _die_with_parent() -> None:
    """preexec_fn: the kernel kills the child if the test process dies (Linux PR_SET_PDEATHSIG)."""
    # Best effort; stop() and atexit clean up as well.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


def _ec_key(path: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path), cwd=path.parent
    )
    path.chmod(0o600)


def _ca(pki: Path, name: str, cn: str) -> None:
    _ec_key(pki / f"{name}.key")
    _openssl(
        *("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}"),
        *("-days", "7", "-sha256", "-out", f"{name}.crt"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"),
        cwd=pki,
    )


def _signed_cert(pki: Path, name: str, subj: str, ext: str, ca: str = "ca") -> None:
    _ec_key(pki / f"{name}.key")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(ext)
    _openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-days", "7", "-sha256", "-extfile", f"{name}.ext"),
        *("-out", f"{name}.crt"),
        cwd=pki,
    )


CLIENT_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=clientAuth\n"
)


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, client certs, front-proxy CA/cert and service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    _ca(pki, "ca", "pitstop-test-ca")
    sans = ",".join(
        [
            *("DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default"),
            *("DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local"),
            *("IP:127.0.0.1", f"IP:{SERVICE_IP}"),
        ]
    )
    _signed_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n",
    )
    for name, subj in (
        ("admin", "/O=system:masters/CN=pitstop-admin"),
        ("controller-manager", "/CN=system:kube-controller-manager"),
        ("scheduler", "/CN=system:kube-scheduler"),
    ):
        _signed_cert(pki, name, subj, CLIENT_EXT)
    # Front proxy (aggregation layer), as kubeadm sets it up: its own CA and client cert.
    _ca(pki, "front-proxy-ca", "pitstop-test-front-proxy-ca")
    _signed_cert(
        pki, "front-proxy-client", "/CN=front-proxy-client", CLIENT_EXT, ca="front-proxy-ca"
    )
    _ec_key(pki / "sa.key")
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path, user: str, cert: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "pitstop-test",
                "cluster": {"server": server, "certificate-authority-data": b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{cert}.crt"),
                    "client-key-data": b64(pki / f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "pitstop-test", "context": {"cluster": "pitstop-test", "user": user}}
        ],
        "current-context": "pitstop-test",
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is valid YAML
    path.chmod(0o600)


# --------------------------------------------------------------------------- processes


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    version: str = field(default_factory=default_version)
    workdir: Path | None = None
    keep: bool = field(default_factory=lambda: os.environ.get("PITSTOP_K8S_KEEP") == "1")
    start_timeout: float = 120.0

    def __post_init__(self) -> None:
        self.version = self.version.lstrip("v")
        self.bin = bin_dir(self.version)  # raises BinariesMissing
        self._owns_workdir = self.workdir is None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="pitstop-k8s-"))
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.ports: dict[str, int] = {}
        self.procs: list[_Proc] = []
        self.server = ""
        self.startup_seconds: float | None = None

    # -- public API --------------------------------------------------------------------

    @property
    def git_version(self) -> str:
        return f"v{self.version}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ):
        """Run the built kubectl against this cluster; returns CompletedProcess (text)."""
        res = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise KubectlError(res)
        return res

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def get(self, path: str) -> dict:
        """GET an API path (e.g. /version) as the admin user; returns the decoded JSON."""
        with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=10) as r:
            return json.loads(r.read())

    def add_kwok_nodes(self, count: int, prefix: str = "kwok-node-") -> list[str]:
        names = [f"{prefix}{i}" for i in range(count)]
        docs = [kwok_node_manifest(n, kubelet_version=self.git_version) for n in names]
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )
        return names

    def start(self) -> None:
        if self.procs:
            raise ControlPlaneError("already started")
        atexit.register(self.stop)
        for attempt in (1, 2):
            try:
                self._start()
                return
            except ControlPlaneError as e:
                # free_port() can race with another process taking the port: retry once.
                if attempt == 1 and "address already in use" in str(e):
                    self._stop_procs()
                    continue
                self._dump_logs_hint()
                self.stop()
                raise
            except BaseException:
                self._dump_logs_hint()
                self.stop()
                raise

    def stop(self) -> None:
        """Stop every component (reverse start order); no process is left behind."""
        self._stop_procs()
        atexit.unregister(self.stop)
        if self._owns_workdir and not self.keep and self.workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------

    def _stop_procs(self) -> None:
        for p in reversed(self.procs):
            _terminate(p.popen)
        self.procs = []

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as fh:
            popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # own process group: clean kill
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl(2)
            )
        proc = _Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait(self, proc: _Proc, what: str, check, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}; "
                    f"log {proc.log}:\n{proc.tail()}"
                )
            try:
                if check():
                    return
            except Exception as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.25)
        raise ControlPlaneError(
            f"timed out waiting for {what} ({last}); log {proc.log}:\n{proc.tail()}"
        )

    def _healthz(self, port: int) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert of kcm/scheduler
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=5
        ) as r:
            return r.status == 200

    def _start(self) -> None:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # fresh on a retried start
        make_pki(self.pki)
        for name in ("etcd_client", "etcd_peer", "apiserver", "controller_manager", "scheduler"):
            self.ports[name] = free_port()
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, self.server, self.pki, "pitstop-admin", "admin")
        kcm_kc = self.workdir / "controller-manager.kubeconfig"
        sched_kc = self.workdir / "scheduler.kubeconfig"
        write_kubeconfig(
            kcm_kc, self.server, self.pki, "system:kube-controller-manager", "controller-manager"
        )
        write_kubeconfig(sched_kc, self.server, self.pki, "system:kube-scheduler", "scheduler")

        # etcd
        ec, ep = self.ports["etcd_client"], self.ports["etcd_peer"]
        etcd = self._spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ec}",
                f"--advertise-client-urls=http://127.0.0.1:{ec}",
                f"--listen-peer-urls=http://127.0.0.1:{ep}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ep}",
                f"--initial-cluster=default=http://127.0.0.1:{ep}",
                "--initial-cluster-state=new",
                "--log-level=warn",
            ],
        )

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{ec}/health", timeout=5) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait(etcd, "etcd /health", etcd_healthy)

        # kube-apiserver
        pki = self.pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ec}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # The apiserver advertises 127.0.0.1, which Endpoints validation refuses
                # (loopback); nothing routes Service traffic here, so default/kubernetes
                # is left without endpoints.
                "--endpoint-reconciler-type=none",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )

        def apiserver_ready() -> bool:
            req = urllib.request.Request(self.server + "/readyz")
            try:
                with urllib.request.urlopen(req, context=self._ssl(), timeout=5) as r:
                    return r.status == 200
            except urllib.error.HTTPError:
                return False

        self._wait(apiserver, "kube-apiserver /readyz", apiserver_ready)

        # kube-controller-manager
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller_manager']}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        # kube-scheduler
        sched = self._spawn(
            "kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        # kwok: manages every node; kwokctl's default stages for the binary runtime
        kwok = self._spawn(
            "kwok",
            [
                str(self.bin / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.bin.parent / 'kwok-stages.yaml'}",
                "--manage-all-nodes=true",
                "--node-lease-duration-seconds=40",
                "--node-ip=127.0.0.1",
            ],
        )
        self._wait(
            kcm,
            "kube-controller-manager /healthz",
            lambda: self._healthz(self.ports["controller_manager"]),
        )
        self._wait(sched, "kube-scheduler /healthz", lambda: self._healthz(self.ports["scheduler"]))

        # Ready for workloads: the controller-manager has made the default ServiceAccount
        # (pods are refused without it) and kwok is still running.
        def default_sa() -> bool:
            return (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            )

        self._wait(kcm, "ServiceAccount default/default", default_sa)
        time.sleep(0.5)
        if kwok.popen.poll() is not None:
            raise ControlPlaneError(
                f"kwok exited with {kwok.popen.returncode}; log {kwok.log}:\n{kwok.tail()}"
            )
        self.startup_seconds = time.monotonic() - t0

    def _dump_logs_hint(self) -> None:
        self.keep = True  # keep the logs of a failed start
        print(f"pitstop control plane failed to start; logs kept in {self.logs}")


def _terminate(popen: subprocess.Popen, grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


def kwok_node_manifest(
    name: str,
    kubelet_version: str = "fake",
    container_runtime_version: str = "containerd://2.2.0",
) -> dict:
    """A fake Node as kwok's documentation writes it (tainted so only tolerating pods land).

    kwok's node-initialize stage keeps the nodeInfo given here, so inventory code sees these
    kubelet/runtime versions.
    """
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {
            "taints": [{"effect": "NoSchedule", "key": "kwok.x-k8s.io/node", "value": "fake"}]
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": container_runtime_version,
                "kernelVersion": "6.12.0-kwok",
                "kubeProxyVersion": kubelet_version,
                "kubeletVersion": kubelet_version,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "kwok fake node",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def main(argv: list[str] | None = None) -> int:
    """python3 -m tests.k8s.controlplane [VERSION]: run a cluster until Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("version", nargs="?", default=None)
    ap.add_argument("--nodes", type=int, default=3, help="kwok nodes to create")
    args = ap.parse_args(argv)
    cp = ControlPlane(args.version or default_version())
    cp.start()
    try:
        if args.nodes:
            cp.add_kwok_nodes(args.nodes)
        print(f"Kubernetes {cp.git_version} up in {cp.startup_seconds:.1f}s at {cp.server}")
        print(f"export KUBECONFIG={cp.kubeconfig}   # logs: {cp.logs}; Ctrl-C stops")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(p.popen.poll() is None for p in cp.procs):
            time.sleep(1)
        print("a component exited; stopping")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cp.stop()


if __name__ == "__main__":
    raise SystemExit(main())
