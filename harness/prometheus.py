"""A real Prometheus for tests and benchmarks: Debian's ``prometheus`` binary on a free
loopback port, a temporary data directory, scraping itself and a small HTTP server whose
``/metrics`` the test writes (:class:`MetricsServer`), every second, with an alerting rule on a
metric the test controls (:data:`ALERT`, firing while ``pitstop_test_alert_trigger > 0``).

Also a TLS reverse proxy in front of it (:class:`AuthProxy`) that demands a bearer token, for
testing ``caFile`` and ``bearerTokenFile`` against a real TLS handshake, and the certificates
it needs (:func:`make_ca`). Every wait is bounded; a missing binary fails with what to install.
"""

from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
BINARY = "/usr/bin/prometheus"
ALERT = "PitstopTestAlert"
SCRAPE_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.25) -> T:
    """``pred()`` once it is truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = pred()
        except Exception as exc:  # not ready yet: keep the last reason
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {last!r})")
        time.sleep(interval)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


@dataclass
class MetricsServer:
    """Serves ``/metrics`` in the Prometheus text format. :meth:`set` fixes a series' value;
    :meth:`grow` makes a counter grow by ``per_scrape`` each time it is scraped (so ``rate``
    sees traffic)."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    growth: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None

    @staticmethod
    def _key(name: str, labels: Mapping[str, str] | None) -> tuple[str, tuple[tuple[str, str],
                                                                           ...]]:
        return name, tuple(sorted((labels or {}).items()))

    def set(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        with self.lock:
            key = self._key(name, labels)
            self.values[key] = value
            self.growth.pop(key, None)

    def grow(self, name: str, per_scrape: float, labels: Mapping[str, str] | None = None) -> None:
        with self.lock:
            key = self._key(name, labels)
            self.values.setdefault(key, 0.0)
            self.growth[key] = per_scrape

    def remove(self, name: str) -> None:
        with self.lock:
            for key in [k for k in self.values if k[0] == name]:
                self.values.pop(key)
                self.growth.pop(key, None)

    def render(self) -> str:
        with self.lock:
            for key, step in self.growth.items():
                self.values[key] += step
            return "".join(f"{name}{_labels(dict(labels))} {value!r}\n"
                           for (name, labels), value in sorted(self.values.items()))

    def start(self) -> MetricsServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.render().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class Prometheus:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    metrics: MetricsServer
    log: Path

    def api(self, path: str, **params: str) -> Any:
        """A GET on the API, parsed (for the test's own checks; the code under test is never
        used to verify itself)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as r:
            return json.load(r)

    def value_now(self, promql: str) -> float | None:
        result = self.api("/api/v1/query", query=promql)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> list[str]:
        alerts = self.api("/api/v1/alerts")["data"]["alerts"]
        return [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]


def _config(metrics_port: int, rules: Path) -> str:
    return f"""global:
  scrape_interval: {SCRAPE_S}s
  evaluation_interval: {SCRAPE_S}s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:PORT"]}}]
  - job_name: pitstop-test
    static_configs: [{{targets: ["127.0.0.1:{metrics_port}"]}}]
"""


_RULES = f"""groups:
  - name: pitstop-test
    interval: {SCRAPE_S}s
    rules:
      - alert: {ALERT}
        expr: pitstop_test_alert_trigger > 0
        labels: {{severity: critical, team: upgrades}}
        annotations: {{summary: the test raised it}}
"""


@contextmanager
def running_prometheus(workdir: Path, timeout_s: float = 60.0) -> Iterator[Prometheus]:
    """Prometheus (module docstring) until the block ends; stopped and its data removed."""
    binary = shutil.which("prometheus") or BINARY
    if not Path(binary).is_file():
        raise RuntimeError("the telemetry tests need a real Prometheus: install Debian's "
                           "package (apt-get install prometheus; scripts/test.sh does) so that "
                           f"{BINARY} exists")
    workdir.mkdir(parents=True, exist_ok=True)
    metrics = MetricsServer().start()
    port = free_port()
    rules = workdir / "rules.yml"
    rules.write_text(_RULES)
    config = workdir / "prometheus.yml"
    config.write_text(_config(metrics.port, rules).replace("PORT", str(port)))
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
             f"--web.console.templates={workdir}", f"--web.console.libraries={workdir}"],
            stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}", port, proc, metrics, log)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited ({proc.returncode}):\n"
                                     + log.read_text()[-3000:])
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)

        try:
            wait_for(ready, timeout_s, "prometheus ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        # the test's target is scraped: its series exist
        wait_for(lambda: prom.value_now('up{job="pitstop-test"}') == 1.0, timeout_s,
                 "prometheus scrapes the test's /metrics")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        metrics.stop()


# -- TLS and a bearer token ---------------------------------------------------------------------

def make_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1: (ca.pem,
    server.pem, server-key.pem) in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class AuthProxy:
    """HTTPS on a free loopback port, forwarding GETs to ``upstream`` when the request carries
    ``Authorization: Bearer <token>``; 401 otherwise. ``seen`` holds every Authorization header
    it received."""

    upstream: str
    token: str
    cert: Path
    key: Path
    seen: list[str] = field(default_factory=list)
    port: int = 0
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> AuthProxy:
        owner = self
        up = urllib.parse.urlsplit(self.upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                owner.seen.append(auth)
                if auth != f"Bearer {owner.token}":
                    self.send_response(401)
                    body = b"unauthorized\n"
                else:
                    conn = http.client.HTTPConnection(up.hostname or "", up.port, timeout=10)
                    conn.request("GET", self.path)
                    answer = conn.getresponse()
                    body = answer.read()
                    self.send_response(answer.status)
                    conn.close()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
