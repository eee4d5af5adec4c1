"""The HTML run report: what the markup says (unit tests) and what a real browser draws (headless
Chromium takes a screenshot and dumps the DOM after the page's script ran)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pitstop.report import render_html, write_report
from pitstop.report.html import MAX_NODE_ROWS, MAX_POINTS, downsample, format_clock

T0 = 1_795_000_000.0  # 2026-11-18, as a rehearsal on the twin would start
PAYLOAD = '<script>alert("owned")</script>'


def _steps_for(cluster: str, wave: str, start: float, nodes_status: str,
               n_nodes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """One cluster's steps and node bars: etcd, control plane, nodes two at a time, addons."""
    steps: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    t = start
    plan = [("etcd", "etcd", "3.5.15", "3.5.21", 240), ("control-plane", "kube-apiserver",
            "1.34.12", "1.35.8", 420), ("control-plane", "kube-controller-manager", "1.34.12",
            "1.35.8", 180), ("control-plane", "kube-scheduler", "1.34.12", "1.35.8", 150)]
    for i, (phase, comp, old, new, secs) in enumerate(plan):
        steps.append({"id": f"{cluster}/{i + 1:03d}", "wave": wave, "cluster": cluster,
                      "phase": phase, "component": comp, "from": old, "to": new,
                      "status": "done", "start": t, "end": t + secs,
                      "reason": f"{comp} one minor at a time"})
        t += secs + 30
    node_step = f"{cluster}/{len(plan) + 1:03d}"
    node_start = t
    for k in range(n_nodes):
        s = node_start + (k // 2) * 400 + (k % 2) * 25
        outcome = "done"
        if nodes_status == "rolled-back" and k == n_nodes - 2:
            outcome = "failed"
        nodes.append({"cluster": cluster, "node": f"{cluster}-node-{k + 1:02d}", "step": node_step,
                      "start": s, "end": s + 360, "outcome": outcome})
    t = node_start + ((n_nodes + 1) // 2) * 400
    if nodes_status == "rolled-back":
        for k in range(n_nodes - 3, n_nodes):
            nodes.append({"cluster": cluster, "node": f"{cluster}-node-{k + 1:02d}",
                          "step": node_step, "start": t + 20, "end": t + 300,
                          "outcome": "rollback"})
        t += 320
    steps.append({"id": node_step, "wave": wave, "cluster": cluster, "phase": "nodes",
                  "component": "kubelet", "from": "1.34.12", "to": "1.35.8",
                  "status": nodes_status, "start": node_start, "end": t,
                  "reason": "drain, upgrade, uncordon; batch of 2"})
    return steps, nodes, t + 30


def sample_run() -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    t = T0
    for cluster, wave, status, n in (("stage-eu-1", "canary", "done", 4),
                                     ("prod-eu-1", "europe", "done", 10),
                                     ("prod-us-1", "americas", "rolled-back", 8)):
        s, nd, t = _steps_for(cluster, wave, t, status, n)
        steps += s
        nodes += nd
    steps[1]["reason"] = PAYLOAD  # a hostile string in a step reason
    steps.append({"id": "prod-us-1/006", "wave": "americas", "cluster": "prod-us-1",
                  "phase": "addons", "component": "coredns", "from": "1.11.3", "to": "1.12.1",
                  "status": "pending", "start": None, "end": None, "reason": "after the nodes"})
    finished = t
    eu = {n["node"]: n for n in nodes if n["cluster"] == "prod-eu-1"}
    blocked_at = eu["prod-eu-1-node-10"]["start"] + 60
    nodes.append({"cluster": "prod-eu-1", "node": "prod-eu-1-node-11", "step": "prod-eu-1/005",
                  "start": blocked_at, "end": blocked_at + 300, "outcome": "blocked"})
    stall_at = eu["prod-eu-1-node-03"]["start"] + 20
    eu["prod-eu-1-node-03"]["end"] += 240  # the stalled drain made this node's upgrade longer

    def series(desired: int, dips: list[tuple[float, float, int]]) -> list[list[float]]:
        out = []
        tt = T0
        while tt <= finished:
            ready = desired
            for a, b, r in dips:
                if a <= tt < b:
                    ready = r
            out.append([tt, float(ready), float(desired)])
            tt += 30
        return out

    last = nodes[-5]["start"]
    availability = {
        "payments/ledger": series(3, [(stall_at - 20, stall_at + 300, 2),
                                      (T0 + 4000, T0 + 4300, 2)]),
        "web/frontend": series(6, [(T0 + 2500, T0 + 2800, 5)]),
        "search/indexer": series(4, [(last, last + 600, 2)]),
        "kube-system/coredns": series(2, [(T0 + 5200, T0 + 5350, 1)]),
    }
    return {
        "title": "Fleet to Kubernetes 1.35 <rehearsal>",
        "runId": "run-2026-11-18-7f3a",
        "status": "rolled-back",
        "reason": "gate slo-error-rate failed on prod-us-1: the wave was rolled back",
        "backend": "twin",
        "started": T0,
        "finished": finished,
        "target": {"kubernetes": "1.35.8", "containerd": "2.1.4", "etcd": "3.5.21"},
        "steps": steps,
        "nodes": nodes,
        "availability": availability,
        "pdbFloors": {"payments/ledger": 2, "web/frontend": 5, "search/indexer": 3,
                      "kube-system/coredns": 1},
        "gates": [
            {"step": "stage-eu-1/002", "gate": "apiserver-ready", "phase": "Successful",
             "message": "/readyz ok on 3 of 3 members", "at": T0 + 700},
            {"step": "prod-eu-1/005", "gate": "nodes-ready", "phase": "Inconclusive",
             "message": "1 node NotReady for 40 s; waiting", "at": T0 + 4200},
            {"step": "prod-us-1/005", "gate": "slo-error-rate", "phase": "Failed",
             "message": "5xx ratio 4.1% > 1% for 5 m", "at": finished - 400},
            {"step": "prod-us-1/005", "gate": "latency-p99", "phase": "Error",
             "message": "metrics backend timed out", "at": finished - 390},
        ],
        "rollbacks": ["prod-us-1: kubelet 1.35.8 → 1.34.12 on 3 nodes (slo-error-rate Failed)"],
        "stalls": [{"node": "prod-eu-1-node-03", "pods": ["payments/ledger-1"],
                    "pdbs": ["payments/ledger"], "at": stall_at, "seconds": 240.0}],
        "stories": [
            {"title": "The canary", "lines": ["stage-eu-1 went first and passed every gate."]},
            {"title": "Why americas rolled back",
             "lines": ["slo-error-rate failed after prod-us-1-node-07 came back.",
                       "pitstop returned the wave to its last known-good versions."]},
        ],
        "summary": {"makespanSeconds": finished - T0,
                    "minAvailability": {"payments/ledger": 2 / 3, "web/frontend": 5 / 6,
                                        "search/indexer": 0.5, "kube-system/coredns": 0.5},
                    "evictions": 212, "refusals429": 9},
    }


# ---------------------------------------------------------------------------------------------
# the markup


def test_strings_are_escaped() -> None:
    page = render_html(sample_run())
    assert PAYLOAD not in page
    assert html_escaped(PAYLOAD) in page
    assert page.count("<script>") == 1  # the page's own tooltip script, nothing else
    assert "Fleet to Kubernetes 1.35 &lt;rehearsal&gt;" in page
    assert "<rehearsal>" not in page


def html_escaped(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def test_one_rect_per_node_bar_coloured_by_outcome() -> None:
    data = sample_run()
    page = render_html(data)
    bars = re.findall(r'<rect class="nbar o-([a-z]+)', page)
    assert len(bars) == len(data["nodes"])
    assert Counter(bars) == Counter(n["outcome"] for n in data["nodes"])


def test_gate_error_and_failed_are_drawn_apart() -> None:
    page = render_html(sample_run())
    rows = re.findall(r'<tr class="gate g-([a-z]+)">.*?<span class="phase ph-([a-z]+)">'
                      r"(?:⚠ )?([A-Za-z]+)</span>", page)
    by_phase = {phase: (row_cls, span_cls) for row_cls, span_cls, phase in rows}
    assert by_phase["Error"] == ("error", "error")
    assert by_phase["Failed"] == ("failed", "failed")
    css = dict(re.findall(r"\.(ph-(?:error|failed))\{([^}]*)\}", page))
    assert css["ph-error"] != css["ph-failed"]
    assert "⚠ Error" in page


def test_status_header_and_sections() -> None:
    page = render_html(sample_run())
    assert '<span id="status" class="status st-rolled-back">rolled-back</span>' in page
    assert "run-2026-11-18-7f3a" in page and "virtual-time rehearsal" in page
    assert "<b>kubernetes</b> 1.35.8" in page
    for section in ("summary", "stories", "gantt-steps", "gantt-nodes", "availability", "gates",
                    "rollbacks", "stalls"):
        assert f'id="{section}"' in page
    assert page.count('class="avail-chart"') == 4
    assert page.count('class="floor"') == 4
    assert 'class="avail breach"' in page  # search/indexer fell under its PDB floor of 3
    assert "1 step(s) have not started" in page


def test_unknown_status_is_not_put_into_a_class() -> None:
    data = sample_run()
    data["status"] = 'x" onmouseover="alert(1)'
    page = render_html(data)
    assert 'class="status st-unknown"' in page
    assert 'onmouseover="alert(1)' not in page


def test_page_loads_nothing_from_outside() -> None:
    page = render_html(sample_run())
    for needle in ("http:", "https:", "src=", "<link", "url(", "@import", "//cdn"):
        assert needle not in page


def test_minimal_run_renders() -> None:
    page = render_html({"started": T0, "status": "paused"})
    assert "No steps." in page and "No node upgrades." in page
    assert "No availability samples." in page and "No gates were checked." in page


def test_format_clock() -> None:
    assert format_clock(0) == "0:00"
    assert format_clock(3725) == "1:02"
    assert format_clock(3725, with_seconds=True) == "1:02:05"
    assert format_clock(90_000) == "25:00"
    assert format_clock(-90) == "-0:01"


def test_axis_labels_are_relative_h_mm() -> None:
    page = render_html(sample_run())
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', page)
    assert ticks[0] == "0:00"
    assert all(re.fullmatch(r"\d+:\d\d", t) for t in ticks)
    assert "1:00" in ticks


def test_downsample_keeps_the_dip_and_the_ends() -> None:
    samples = [[T0 + i, 10.0, 10.0] for i in range(5000)]
    samples[2345][1] = 3.0
    out = downsample(samples)
    assert len(out) <= MAX_POINTS
    assert out[0] == (T0, 10.0, 10.0) and out[-1] == (T0 + 4999, 10.0, 10.0)
    assert (T0 + 2345, 3.0, 10.0) in out
    assert [s[0] for s in out] == sorted(s[0] for s in out)
    assert downsample(samples[:50]) == [tuple(s) for s in samples[:50]]


def test_large_run_is_capped() -> None:
    data = sample_run()
    nodes = [{"cluster": "big", "node": f"n{i:04d}", "step": "big/005", "start": T0 + i,
              "end": T0 + i + 300, "outcome": "done"} for i in range(1000)]
    nodes[990]["outcome"] = "failed"  # starts late, but trouble is always drawn
    data["nodes"] = nodes
    data["availability"] = {"big/app": [[T0 + i, 5.0 - (i == 7777), 5.0]
                                        for i in range(10_000)]}
    page = render_html(data)
    assert len(re.findall(r'<rect class="nbar ', page)) == MAX_NODE_ROWS
    assert 'o-failed' in page and ">n0990<" in page
    assert f"Showing {MAX_NODE_ROWS} of 1000 nodes" in page
    assert "600 node(s) not drawn (600 done)" in page
    (samples,) = re.findall(r'class="avail-chart"[^>]*data-samples="(\d+)"', page)
    assert int(samples) <= MAX_POINTS


def test_write_report(tmp_path: Path) -> None:
    out = write_report(tmp_path / "a" / "b" / "report.html", sample_run())
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ---------------------------------------------------------------------------------------------
# a real browser

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1400, 2000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed when missing (needs root, as CI and the dev machines are)."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail("chromium is not installed and this user cannot apt-get install it: "
                        "run the tests as root (they install it), or `apt-get install "
                        "chromium` first", pytrace=False)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                       timeout=1200, stdout=subprocess.DEVNULL)
    assert CHROMIUM.exists()
    return CHROMIUM


def _browser(chromium: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=90, check=False)


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit RGB(A) PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:  # Sub
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            cur = bytearray((a + b) & 0xFF for a, b in zip(cur, prev, strict=True))
        elif ftype == 3:  # Average
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 0xFF
        else:
            assert ftype == 0, f"bad filter {ftype}"
        rows.append(bytes(cur))
        prev = cur
    return width, height, rows, bpp


def _hex(colour: str) -> bytes:
    return bytes.fromhex(colour.lstrip("#"))


def test_browser_draws_the_report(chromium: Path, tmp_path: Path) -> None:
    page = write_report(tmp_path / "report.html", sample_run())
    shot = tmp_path / "report.png"
    r = _browser(chromium, tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                 page.as_uri())
    assert shot.exists(), r.stderr.decode(errors="replace")[-2000:]

    width, height, rows, bpp = _png_pixels(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    # not blank: most of the page's rows hold more than one colour
    varied = sum(1 for row in rows if row.count(row[:bpp]) * bpp != len(row))
    assert varied > height // 4, varied
    # and the colours of the page are there: the header's status, done and failed node bars
    colours: Counter[bytes] = Counter()
    for row in rows[::2]:
        colours.update(row[i:i + 3] for i in range(0, len(row), bpp * 2))
    for name, colour in (("rolled-back status", "#7c3aed"), ("done bars", "#16a34a"),
                         ("failed bars", "#dc2626")):
        assert colours[_hex(colour)] > 20, f"{name} ({colour}) not drawn"

    dom = _browser(chromium, tmp_path, "--dump-dom", page.as_uri())
    text = dom.stdout.decode()
    assert '<span id="status" class="status st-rolled-back">rolled-back</span>' in text
    assert re.search(r'<svg id="gantt-steps" class="gantt"', text)
    assert re.search(r'<svg id="gantt-nodes" class="gantt"', text)
    assert text.count('class="avail-chart"') == 4
    assert text.count('<rect class="nbar') == len(sample_run()["nodes"])
    # the tooltip script ran: every SVG <title> became a data-tip, only the page title is left
    assert "data-tip=" in text and text.count("<title>") == 1
