"""Crash test: a real `pitstop apply` process on the twin is SIGKILLed at many random points;
`pitstop resume` after each kill reaches the same final state as an uninterrupted run, and no
destructive action is repeated (checked from the twin's event log and the journal)."""

from __future__ import annotations

import copy
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pitstop.twin import Twin
from tests.runlib import journal, only_run

FLEET = {
    "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "crash"},
    "spec": {"clusters": [{
        "name": "c1", "environment": "staging",
        "controlPlane": {
            "apiServers": [{"name": f"cp-{i}", "version": "1.35.8"} for i in range(3)],
            "controllerManager": {"version": "1.35.8"}, "scheduler": {"version": "1.35.8"},
            "etcd": {"version": "3.6.6", "members": [{"name": f"e{i}"} for i in range(3)]}},
        "nodePools": [{"name": "p", "nodes": [
            {"name": f"n{i}", "kubelet": "1.35.8",
             "containerRuntime": {"name": "containerd", "version": "2.2.9"},
             "allocatable": {"cpu": "8", "memory": "32Gi", "pods": 110}} for i in range(6)]}],
        "workloads": [
            {"kind": "Deployment", "name": "web", "namespace": "a", "replicas": 6,
             "labels": {"app": "web"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
            {"kind": "StatefulSet", "name": "db", "namespace": "a", "replicas": 3,
             "labels": {"app": "db"}, "requests": {"cpu": "1", "memory": "2Gi"}},
            {"kind": "DaemonSet", "name": "agent", "namespace": "kube-system",
             "labels": {"app": "agent"}}],
        "podDisruptionBudgets": [
            {"name": "web", "namespace": "a", "minAvailable": 5,
             "selector": {"matchLabels": {"app": "web"}}},
            {"name": "db", "namespace": "a", "maxUnavailable": 1,
             "selector": {"matchLabels": {"app": "db"}}}]}]},
}
POLICY = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
          "metadata": {"name": "p"},
          "spec": {"pools": [{"maxUnavailable": 2, "canaryNodes": 1, "soak": "1m",
                              "canarySoak": "2m"}]}}
TARGET = "kubernetes=1.36.5,containerd=2.3.7,etcd=3.6.8"
NOW = "2026-11-30T08:00:00+00:00"
KILLS = 50


def _pitstop() -> list[str]:
    return [sys.executable, "-m", "pitstop"]


def _two_clusters() -> dict[str, Any]:
    """FLEET with a second cluster like c1: both staging, so one wave works on them at once."""
    doc = copy.deepcopy(FLEET)
    c2 = copy.deepcopy(doc["spec"]["clusters"][0])
    c2["name"] = "c2"
    for n in c2["nodePools"][0]["nodes"]:
        n["name"] = f"c2-{n['name']}"
    doc["spec"]["clusters"].append(c2)
    return doc


def _files(tmp: Path, fleet: dict[str, Any] = FLEET) -> list[str]:
    (tmp / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    (tmp / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    return ["-f", str(tmp / "fleet.yaml"), "-f", str(tmp / "policy.yaml"), "--target", TARGET]


def _actions(run: Path) -> int:
    try:
        rows = journal(run, "SELECT count(*) FROM actions", timeout=1)
    except sqlite3.Error:  # locked by the writer this instant: not there yet
        return 0
    return int(rows[0][0]) if rows else 0


def _kill_at(cmd: list[str], runs: Path, at_action: int) -> bool:
    """Start ``cmd``; SIGKILL it once its journal holds ``at_action`` actions. True if killed
    (False: it finished first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        run = next((p for p in runs.iterdir() if p.is_dir()), None) if runs.exists() else None
        if run is not None and _actions(run) >= at_action:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
        pytest.fail("a pitstop process ran for 120 s without finishing")
    return False


def _final(run: Path, clusters: tuple[str, ...] = ("c1",),
           ) -> tuple[dict[str, tuple[str, str, bool, bool]], dict[str, str]]:
    twin = Twin.open(run / "twin.sqlite")
    nodes: dict[str, tuple[str, str, bool, bool]] = {}
    apiservers: dict[str, str] = {}
    for c in clusters:
        obs = twin.observe(c)
        nodes.update({n.name: (n.kubelet, n.runtime_version, n.ready, n.unschedulable)
                      for n in obs.nodes})
        apiservers.update({f"{c}/{k}": v for k, v in dict(obs.apiservers).items()})
    return nodes, apiservers


def _no_repeats(run: Path) -> None:
    twin = Twin.open(run / "twin.sqlite")
    calls = twin.events(source="call")
    starts = Counter(e.subject for e in calls if e.kind == "start" and e.destructive)
    assert all(n == 1 for n in starts.values()), [k for k, n in starts.items() if n > 1]
    # an accepted eviction is never sent again for the same pod (uid)
    evicted: set[str] = set()
    for e in calls:
        if e.kind in ("evict", "delete"):
            assert e.uid not in evicted, f"pod {e.subject} ({e.uid}) evicted again after it went"
            if e.destructive:
                evicted.add(e.uid)
    # the journal: every operation finished once
    db = sqlite3.connect(run / "journal.sqlite")
    done = Counter(r[0] for r in db.execute(
        "SELECT target FROM actions WHERE kind = 'operation-done' AND outcome = 'succeeded'"))
    assert all(n == 1 for n in done.values()), [k for k, n in done.items() if n > 1]


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    _sigkill_then_resume(tmp_path, _files(tmp_path), ("c1",), KILLS, 20261126)


def test_sigkill_while_two_clusters_run_at_once_then_resume(tmp_path: Path) -> None:
    """The same with two clusters in one wave worked on at once (lanes): every resume ends as
    the uninterrupted run did, with no destructive action repeated."""
    _sigkill_then_resume(tmp_path, _files(tmp_path, _two_clusters()), ("c1", "c2"), 10, 7)


def _sigkill_then_resume(tmp_path: Path, files: list[str], clusters: tuple[str, ...],
                         kills_wanted: int, seed: int) -> None:
    base = tmp_path / "base"
    r = subprocess.run([*_pitstop(), "apply", *files, "-y", "--runs-dir", str(base),
                        "--now", NOW], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    base_run = only_run(base)
    total = _actions(base_run)
    assert total > 100, total
    expected = _final(base_run, clusters)
    assert all(v[0] == "1.36.5" and v[1] == "2.3.7" and v[2] and not v[3]
               for v in expected[0].values())
    _no_repeats(base_run)

    if len(clusters) > 1:  # the clusters were worked on at once, not one after another
        assert '"wave-lanes"' in (base_run / "audit.jsonl").read_text()
    rng = random.Random(seed)
    kills = 0
    runs_done = 0
    while kills < kills_wanted:
        runs = tmp_path / f"crash{runs_done}"
        points = sorted(rng.sample(range(1, total), 5))
        cmd = [*_pitstop(), "apply", *files, "-y", "--runs-dir", str(runs), "--now", NOW]
        for point in points:
            if _kill_at(cmd, runs, point):
                kills += 1
            cmd = [*_pitstop(), "resume", str(only_run(runs))]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        run = only_run(runs)
        assert _final(run, clusters) == expected
        _no_repeats(run)
        audit = subprocess.run([*_pitstop(), "audit", "verify", str(run)], capture_output=True,
                               text=True, check=False)
        assert audit.returncode == 0, audit.stderr
        runs_done += 1
    assert kills >= kills_wanted
