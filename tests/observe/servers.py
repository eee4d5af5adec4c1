"""A real Jaeger (built by hack/jaeger/build.sh) and a real Prometheus (Debian's package) on
free loopback ports, for the telemetry tests; and a small fleet that finishes a run on the twin
in a few seconds."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
JAEGER_VERSION = os.environ.get("PITSTOP_JAEGER_VERSION", "1.76.0")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def until(what: str, probe: Callable[[], T | None], timeout: float = 60.0,
          every: float = 0.25) -> T:
    """Poll ``probe`` until it gives something; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = probe()
        except OSError as exc:  # not up yet
            last, got = exc, None
        if got is not None:
            return got
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error: {last})")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@dataclass
class Jaeger:
    otlp_url: str  # OTLP/HTTP base URL
    query_url: str  # the query service (HTTP API /api/...)
    log: Path

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        try:
            doc = get_json(f"{self.query_url}/api/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = doc.get("data") or []
        return data[0] if data else None

    def traces(self, service: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"service": service, "tags": json.dumps(tags),
                                    "limit": "100", "lookback": "1h"})
        return list(get_json(f"{self.query_url}/api/traces?{q}").get("data") or [])


def jaeger_binary() -> Path:
    cache = Path(os.environ.get("PITSTOP_CACHE", "/var/cache/pitstop"))
    path = cache / "jaeger" / f"v{JAEGER_VERSION}" / "bin" / "jaeger"
    if not path.is_file():
        pytest.fail(f"no Jaeger binary at {path}: run `bash hack/jaeger/build.sh` (it builds "
                    f"Jaeger v{JAEGER_VERSION} from the Go module proxy)")
    return path


@contextmanager
def running_jaeger(tmp: Path) -> Iterator[Jaeger]:
    """Jaeger all-in-one: an OTLP/HTTP receiver, traces in memory, the query API; nothing
    else listening (no collector self-metrics, no health check, no other receiver)."""
    otlp, query, grpc = free_port(), free_port(), free_port()
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"mem": {"memory": {"max_traces": 10000}}}},
            "jaeger_query": {"storage": {"traces": "mem"},
                             "http": {"endpoint": f"127.0.0.1:{query}"},
                             "grpc": {"endpoint": f"127.0.0.1:{grpc}"}},
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "mem"}},
    }
    cfg = tmp / "jaeger.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = tmp / "jaeger.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(jaeger_binary()), "--config", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    jaeger = Jaeger(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}", log)
    try:
        def up() -> bool | None:
            if proc.poll() is not None:
                pytest.fail(f"jaeger exited {proc.returncode}: {log.read_text()[-3000:]}")
            get_json(f"{jaeger.query_url}/api/services")
            with socket.create_connection(("127.0.0.1", otlp), timeout=1):
                return True
        until("jaeger answering on its query and OTLP ports", up)
        yield jaeger
    finally:
        _stop(proc, log)


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        doc = get_json(f"{self.url}/api/v1/query?{q}")
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])


@contextmanager
def running_prometheus(tmp: Path, target: str) -> Iterator[Prometheus]:
    """Debian's Prometheus scraping ``target`` (HOST:PORT, /metrics) every second."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        pytest.fail("no prometheus binary: `apt-get install prometheus` (scripts/test.sh does)")
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [{"job_name": "pitstop", "static_configs": [{"targets": [target]}]}],
    }))
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prom = Prometheus(f"http://127.0.0.1:{port}", log)
    try:
        def ready() -> bool | None:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited {proc.returncode}: {log.read_text()[-3000:]}")
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
                return True if r.status == 200 else None
        until("prometheus ready", ready)
        yield prom
    finally:
        _stop(proc, log)


def small_fleet(tmp: Path) -> list[str]:
    """The example fleet's staging cluster alone, its PDB fixed, under the example policy
    without approvals: ``-f`` arguments for a run that completes on the twin."""
    fleet = yaml.safe_load((EX / "fleet.yaml").read_text())
    fleet["spec"]["clusters"] = [c for c in fleet["spec"]["clusters"]
                                 if c["name"] == "staging-eu"]
    text = yaml.safe_dump(fleet).replace("maxUnavailable: 0", "maxUnavailable: 1")
    (tmp / "fleet.yaml").write_text(text)
    policy = yaml.safe_load((EX / "policy.yaml").read_text())
    policy["spec"].pop("approvals", None)
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    return ["-f", str(tmp / "fleet.yaml"), "-f", str(tmp / "policy.yaml"),
            "-f", str(EX / "target.yaml")]
