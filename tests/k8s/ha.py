"""A real HA Kubernetes control plane for tests: one etcd, two kube-apiserver instances behind a
TCP load balancer, a leader-electing kube-controller-manager and kube-scheduler, and kwok.

Each instance lives on its own "host": a loopback address (127.0.0.2, 127.0.0.3, …) and its own
hostname (a UTS namespace, ``unshare --uts``), so each apiserver publishes its own identity Lease
(``kubernetes.io/hostname`` = the instance name) with its own
``kubernetes.io/peer-advertise-address`` (the ``UnknownVersionInteroperabilityProxy`` feature
gate, alpha in 1.35 and beta from 1.36, publishes that annotation; no ``--peer-ca-file``, so no
peer proxying). The load balancer forwards the admin's, the controllers' and kwok's
connections to an apiserver whose ``/readyz`` answered ok last (an haproxy-style health check),
else to any that accepts the connection.

Every component runs under a **supervisor** (``sup/supervise.sh``), as systemd would run it:
the supervisor starts the binary found in the bin directory named by ``sup/<component>@
<instance>.bin`` and starts it again whenever it exits. ``upgrade_script()`` writes the small
script an operator would supply to pitstop's control-plane command hook: point the instance at
another version's bin directory and stop the running process; the supervisor restarts it from
the new binary.

    with HaControlPlane("1.35.4") as ha:
        ha.kubectl("get", "leases", "-n", "kube-system")
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.controlplane import (
    SERVICE_CIDR,
    SERVICE_IP,
    BinariesMissing,
    ControlPlane,
    ControlPlaneError,
    _signed_cert,
    _terminate,
    bin_dir,
    cache_root,
    free_port,
    make_pki,
    write_kubeconfig,
)

__all__ = ["BinariesMissing", "HaControlPlane", "LoadBalancer"]

SUPERVISOR = r"""#!/bin/sh
# supervise.sh NAME PROGRAM ARGS...: run PROGRAM from the bin directory in $dir/NAME.bin and
# start it again whenever it exits (as systemd's Restart=always would).
dir=$(dirname "$0"); name=$1; prog=$2; shift 2
child=
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 0' TERM INT
while :; do
  bin=$(cat "$dir/$name.bin")
  "$bin/$prog" "$@" &
  child=$!
  echo "$child" > "$dir/$name.pid"
  echo "$(date +%s.%N) start $child $bin" >> "$dir/$name.events"
  wait "$child"
  echo "$(date +%s.%N) exit $?" >> "$dir/$name.events"
  sleep 0.2
done
"""

UPGRADE_SCRIPT = r"""#!/bin/sh
# upgrade-cp INSTANCE COMPONENT VERSION: what an operator's script does on the host of
# INSTANCE (here: every "host" is a supervisor on this machine). Point the component at the
# binaries of VERSION, then restart it and return once the old process is gone.
set -eu
inst=$1; comp=$2; ver=$3
sup=@SUP@
name="$comp@$inst"
[ -f "$sup/$name.bin" ] || { echo "no $comp runs on $inst" >&2; exit 2; }
new=@CACHE@/v$ver/bin
[ -x "$new/$comp" ] || { echo "no $comp binary for $ver in $new" >&2; exit 3; }
echo "$new" > "$sup/$name.bin.tmp"
mv "$sup/$name.bin.tmp" "$sup/$name.bin"
pid=$(cat "$sup/$name.pid")
echo "restarting $name (pid $pid) from $new"
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
echo "stopped $pid; the supervisor starts $comp $ver"
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LoadBalancer:
    """A TCP load balancer on 127.0.0.1 in front of the apiservers, with a /readyz health check
    every 0.5 s: a new connection goes to a ready backend (round robin), else to any backend
    that accepts it."""

    def __init__(self, backends: list[tuple[str, int]], ssl_ctx: ssl.SSLContext) -> None:
        self.backends = backends
        self.ready = dict.fromkeys(backends, False)
        self._ssl = ssl_ctx
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._next = 0
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._check, daemon=True)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _check(self) -> None:
        while not self._stop.is_set():
            for host, port in self.backends:
                try:
                    with urllib.request.urlopen(f"https://{host}:{port}/readyz",
                                                context=self._ssl, timeout=1) as r:
                        self.ready[(host, port)] = r.status == 200
                except (OSError, urllib.error.URLError):
                    self.ready[(host, port)] = False
            self._stop.wait(0.5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._next += 1
        order = self.backends[self._next % len(self.backends):] + \
            self.backends[:self._next % len(self.backends)]
        order = [b for b in order if self.ready[b]] + [b for b in order if not self.ready[b]]
        upstream = None
        for b in order:
            try:
                upstream = socket.create_connection(b, timeout=1)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.close()


@dataclass
class HaControlPlane(ControlPlane):
    """``ControlPlane``'s API (``kubectl``, ``get``, ``add_kwok_nodes``, ``kubeconfig``) over
    an HA control plane. ``instances`` names the apiserver hosts; the controller-manager and
    the scheduler run on the first."""

    instances: tuple[str, ...] = ("cp-a", "cp-b")
    leader_lease_s: int = 6
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)  # instance -> ip, port
    lb: LoadBalancer | None = None

    # -- public API --------------------------------------------------------------------
    @property
    def sup(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "sup"

    def url(self, instance: str) -> str:
        host, port = self.addresses[instance]
        return f"https://{host}:{port}"

    def component_url(self, component: str) -> str:
        port = self.ports["controller_manager" if component == "kube-controller-manager"
                          else "scheduler"]
        return f"https://{self.addresses[self.instances[0]][0]}:{port}"

    def get_at(self, base: str, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET ``base + path`` as the admin; (status, body text); (0, error) without answer."""
        try:
            with urllib.request.urlopen(base + path, context=self._ssl(), timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (OSError, urllib.error.URLError) as e:
            return 0, str(e)

    def version_at(self, instance: str) -> str:
        status, body = self.get_at(self.url(instance), "/version")
        return json.loads(body)["gitVersion"].removeprefix("v") if status == 200 else ""

    def build_version(self, component: str) -> str:
        """A controller-manager's or scheduler's own version, from its ``/metrics``
        (``kubernetes_build_info``)."""
        status, body = self.get_at(self.component_url(component), "/metrics")
        for line in body.splitlines() if status == 200 else []:
            if line.startswith("kubernetes_build_info{"):
                return line.split('git_version="v', 1)[1].split('"', 1)[0]
        return ""

    def upgrade_script(self) -> Path:
        path = self.sup / "upgrade-cp"
        path.write_text(UPGRADE_SCRIPT.replace("@SUP@", str(self.sup)).replace(
            "@CACHE@", str(cache_root())))
        path.chmod(0o755)
        return path

    def events(self, component: str, instance: str) -> list[tuple[float, str]]:
        """The supervisor's log for one instance: (time, "start …"/"exit …")."""
        try:
            lines = (self.sup / f"{component}@{instance}.events").read_text().splitlines()
        except OSError:
            return []
        return [(float(ln.split(" ", 1)[0]), ln.split(" ", 1)[1]) for ln in lines if ln]

    # -- internals ---------------------------------------------------------------------
    def _stop_procs(self) -> None:
        """Supervisors first (their trap stops the component), then each component process
        named in the supervisors' pid files, still before etcd: an apiserver whose etcd is
        gone takes long to stop. Nothing is left running."""
        supervised = [p for p in self.procs if "@" in p.name]
        for p in reversed(supervised):
            _terminate(p.popen)
        pids = []
        for f in self.sup.glob("*.pid") if self.workdir is not None else []:
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(f.read_text().strip()))
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.2)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.procs = [p for p in self.procs if p not in supervised]
        if self.lb is not None:
            self.lb.close()
            self.lb = None
        super()._stop_procs()

    def _supervised(self, instance: str, component: str, args: list[str]) -> object:
        name = f"{component}@{instance}"
        (self.sup / f"{name}.bin").write_text(str(self.bin) + "\n")
        return self._spawn(name, ["unshare", "--uts", "sh", "-c",
                                  'hostname "$0" && exec "$@"', instance,
                                  str(self.sup / "supervise.sh"), name, component, *args])

    def _start(self) -> None:
        if shutil.which("unshare") is None or os.geteuid() != 0:
            raise ControlPlaneError("HaControlPlane needs root and unshare(1) (util-linux): "
                                    "each instance runs in its own UTS namespace")
        t0 = time.monotonic()
        assert self.workdir is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        self.sup.mkdir(exist_ok=True)
        (self.sup / "supervise.sh").write_text(SUPERVISOR)
        (self.sup / "supervise.sh").chmod(0o755)
        pki = self.pki
        make_pki(pki)
        self.addresses = {inst: (f"127.0.0.{i + 2}", free_port())
                          for i, inst in enumerate(self.instances)}
        ips = [h for h, _ in self.addresses.values()]
        sans = ",".join(["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default",
                         "DNS:kubernetes.default.svc", "IP:127.0.0.1", f"IP:{SERVICE_IP}",
                         *(f"IP:{ip}" for ip in ips)])
        serving = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,"
                   f"keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")
        _signed_cert(pki, "apiserver", "/CN=kube-apiserver", serving)  # every host's address
        _signed_cert(pki, "components", "/CN=control-plane-components", serving)
        for name in ("etcd_client", "etcd_peer", "controller_manager", "scheduler"):
            self.ports[name] = free_port()
        ssl_ctx = self._ssl()
        self.lb = LoadBalancer(list(self.addresses.values()), ssl_ctx)
        self.server = f"https://127.0.0.1:{self.lb.port}"
        write_kubeconfig(self.kubeconfig, self.server, pki, "pitstop-admin", "admin")
        kcm_kc = self.workdir / "controller-manager.kubeconfig"
        sched_kc = self.workdir / "scheduler.kubeconfig"
        write_kubeconfig(kcm_kc, self.server, pki, "system:kube-controller-manager",
                         "controller-manager")
        write_kubeconfig(sched_kc, self.server, pki, "system:kube-scheduler", "scheduler")

        ec, ep = self.ports["etcd_client"], self.ports["etcd_peer"]
        etcd = self._spawn("etcd", [
            str(self.bin / "etcd"), "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ec}",
            f"--advertise-client-urls=http://127.0.0.1:{ec}",
            f"--listen-peer-urls=http://127.0.0.1:{ep}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ep}",
            f"--initial-cluster=default=http://127.0.0.1:{ep}", "--initial-cluster-state=new",
            "--log-level=warn"])

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{ec}/health", timeout=5) as r:
                return bool(json.loads(r.read()).get("health") == "true")

        self._wait(etcd, "etcd /health", etcd_healthy)
        for inst, (host, port) in self.addresses.items():
            proc = self._supervised(inst, "kube-apiserver", [
                f"--etcd-servers=http://127.0.0.1:{ec}", f"--bind-address={host}",
                f"--advertise-address={host}", f"--secure-port={port}",
                f"--cert-dir={self.workdir / ('apiserver-certs-' + inst)}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                "--endpoint-reconciler-type=none",
                "--feature-gates=UnknownVersionInteroperabilityProxy=true",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--allow-privileged=true", "--profiling=false",
                # close watches at SIGTERM: otherwise the HTTP server waits for its
                # connections to go idle, up to 60 s, before the process exits
                "--shutdown-watch-termination-grace-period=2s"])
            url = f"https://{host}:{port}"
            self._wait(proc, f"kube-apiserver {inst} /readyz",
                       lambda url=url: self.get_at(url, "/readyz")[0] == 200)
        first_host = self.addresses[self.instances[0]][0]
        lease = [f"--leader-elect-lease-duration={self.leader_lease_s}s",
                 f"--leader-elect-renew-deadline={max(2, self.leader_lease_s - 2)}s",
                 "--leader-elect-retry-period=1s"]
        kcm = self._supervised(self.instances[0], "kube-controller-manager", [
            f"--kubeconfig={kcm_kc}", f"--authentication-kubeconfig={kcm_kc}",
            f"--authorization-kubeconfig={kcm_kc}", f"--bind-address={first_host}",
            f"--secure-port={self.ports['controller_manager']}",
            f"--tls-cert-file={pki / 'components.crt'}",
            f"--tls-private-key-file={pki / 'components.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=true", "--leader-elect=true", *lease,
            "--profiling=false"])
        sched = self._supervised(self.instances[0], "kube-scheduler", [
            f"--kubeconfig={sched_kc}", f"--authentication-kubeconfig={sched_kc}",
            f"--authorization-kubeconfig={sched_kc}", f"--bind-address={first_host}",
            f"--secure-port={self.ports['scheduler']}",
            f"--tls-cert-file={pki / 'components.crt'}",
            f"--tls-private-key-file={pki / 'components.key'}",
            "--leader-elect=true", *lease, "--profiling=false"])
        kwok = self._spawn("kwok", [
            str(self.bin / "kwok"), f"--kubeconfig={self.kubeconfig}",
            f"--config={self.bin.parent / 'kwok-stages.yaml'}", "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40", "--node-ip=127.0.0.1"])
        for proc, comp in ((kcm, "kube-controller-manager"), (sched, "kube-scheduler")):
            self._wait(proc, f"{comp} /healthz",
                       lambda comp=comp: self.get_at(self.component_url(comp),
                                                     "/healthz")[0] == 200)

        def leases_held() -> bool:
            got = self.kubectl_json("get", "leases", "-n", "kube-system")["items"]
            held = {i["metadata"]["name"]: i["spec"].get("holderIdentity") for i in got}
            ids = [i for i in got if (i["metadata"].get("labels") or {}).get(
                "apiserver.kubernetes.io/identity") == "kube-apiserver"]
            return bool(held.get("kube-controller-manager") and held.get("kube-scheduler")
                        and len(ids) == len(self.instances))

        self._wait(kcm, "leader-election and identity Leases", leases_held)

        def default_sa() -> bool:
            return self.kubectl("get", "serviceaccount", "default", "-n", "default",
                                check=False).returncode == 0

        self._wait(kcm, "ServiceAccount default/default", default_sa)
        time.sleep(0.5)
        if kwok.popen.poll() is not None:
            raise ControlPlaneError(f"kwok exited with {kwok.popen.returncode}; log {kwok.log}:"
                                    f"\n{kwok.tail()}")
        self.startup_seconds = time.monotonic() - t0


def new_ha(version: str = "1.35.4", **kw: object) -> HaControlPlane:
    """An HaControlPlane in a fresh work directory (binaries must be built: BinariesMissing)."""
    bin_dir(version)
    return HaControlPlane(version, **kw)  # its own work directory, removed by stop()


def wait_ready(ha: HaControlPlane, instance: str, version: str, timeout: float = 120) -> float:
    """Wait until ``instance`` answers /readyz at ``version``; the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ha.version_at(instance) == version and ha.get_at(ha.url(instance), "/readyz")[0] == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"kube-apiserver {instance} not ready at {version} after {timeout:.0f}s "
                         f"(reports {ha.version_at(instance) or 'nothing'})")


def run_hook(script: Path, instance: str, component: str, version: str) -> str:
    """Run the operator's upgrade script by hand (as a person would: a manual rollback)."""
    res = subprocess.run([str(script), instance, component, version], capture_output=True,
                         text=True, timeout=120, check=True)
    return res.stdout
