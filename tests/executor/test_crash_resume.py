"""Crash test: a real `pitstop apply` process on the twin is SIGKILLed — at every journal
position of a multi-hop node step, and at hundreds of random points of whole runs — and
`pitstop resume` after each kill reaches the same final state as an uninterrupted run, with no
destructive action repeated (checked from the twin's event log and the journal) and the audit
chain intact.

The node steps here are multi-hop (containerd 2.1 → 2.2 → kubelet 1.36 → containerd 2.3 in one
drain): a resume between "first node of the step done" and "step done" must judge the live
skew from where each node is, not replay the whole step on nodes already at the target.

Every-position kills use the journal's failpoint (``PITSTOP_FAILPOINT=journal-write:STEP:N``,
:mod:`pitstop.store.sqlite`): the process SIGKILLs itself just before its N-th write about
that step — before an intent (the effect not made), before an outcome (made, not recorded), or
before an audit record about the step (so also between its step-done record and its done
status, where a resume used to refuse the run as damaged).
Random kills come from outside, once the journal holds a chosen number of actions.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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
             "containerRuntime": {"name": "containerd", "version": "2.1.5"},
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
# the every-position run: one apiserver, two nodes, one multi-hop node step
SMALL = {
    "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "crash-small"},
    "spec": {"clusters": [{
        "name": "c1", "environment": "staging",
        "controlPlane": {
            "apiServers": [{"name": "cp-0", "version": "1.35.8"}],
            "controllerManager": {"version": "1.35.8"}, "scheduler": {"version": "1.35.8"}},
        "nodePools": [{"name": "p", "nodes": [
            {"name": f"n{i}", "kubelet": "1.35.8",
             "containerRuntime": {"name": "containerd", "version": "2.1.5"},
             "allocatable": {"cpu": "8", "memory": "32Gi", "pods": 110}} for i in range(2)]}],
        "workloads": [
            {"kind": "Deployment", "name": "web", "namespace": "a", "replicas": 2,
             "labels": {"app": "web"}, "requests": {"cpu": "500m", "memory": "1Gi"}}],
        "podDisruptionBudgets": [
            {"name": "web", "namespace": "a", "maxUnavailable": 1,
             "selector": {"matchLabels": {"app": "web"}}}]}]},
}
SMALL_POLICY = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
                "metadata": {"name": "p"},
                "spec": {"pools": [{"maxUnavailable": 1, "canaryNodes": 0}]}}
SMALL_TARGET = "kubernetes=1.36.5,containerd=2.3.7"
SMALL_STEP = "c1/004-pool-p-1.36.5"
NOW = "2026-11-30T08:00:00+00:00"
RANDOM_KILLS = 200
WORKERS = 2  # episodes are independent processes; the machine has two cores


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


def _files(tmp: Path, fleet: dict[str, Any] = FLEET, policy: dict[str, Any] = POLICY,
           target: str = TARGET) -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    return ["-f", str(tmp / "fleet.yaml"), "-f", str(tmp / "policy.yaml"), "--target", target]


def _apply(files: list[str], runs: Path) -> list[str]:
    return [*_pitstop(), "apply", *files, "-y", "--runs-dir", str(runs), "--now", NOW]


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
    twin.close()
    return nodes, apiservers


def _no_repeats(run: Path) -> None:
    twin = Twin.open(run / "twin.sqlite")
    calls = twin.events(source="call")
    twin.close()
    starts = Counter(e.subject for e in calls if e.kind == "start" and e.destructive)
    assert all(n == 1 for n in starts.values()), [k for k, n in starts.items() if n > 1]
    # an accepted eviction is never sent again for the same pod (uid)
    evicted: set[str] = set()
    for e in calls:
        if e.kind in ("evict", "delete"):
            assert e.uid not in evicted, f"pod {e.subject} ({e.uid}) evicted again after it went"
            if e.destructive:
                evicted.add(e.uid)
    db = sqlite3.connect(run / "journal.sqlite")
    try:
        # every operation finished once, and started under one journal row
        done = Counter(r[0] for r in db.execute(
            "SELECT target FROM actions WHERE kind = 'operation-done' AND outcome = 'succeeded'"))
        started = Counter(r[0] for r in db.execute(
            "SELECT json_extract(detail, '$.key') FROM actions WHERE kind IN "
            "('operation', 'upgrade', 'replace-add', 'replace-remove')"))
    finally:
        db.close()
    assert all(n == 1 for n in done.values()), [k for k, n in done.items() if n > 1]
    assert all(n == 1 for n in started.values()), [k for k, n in started.items() if n > 1]


def _audit_ok(run: Path) -> None:
    audit = subprocess.run([*_pitstop(), "audit", "verify", str(run)], capture_output=True,
                           text=True, check=False)
    assert audit.returncode == 0, audit.stderr


def _resume_to_end(run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_pitstop(), "resume", str(run)], capture_output=True, text=True,
                          timeout=300, check=False)


def _baseline(tmp: Path, files: list[str], clusters: tuple[str, ...]
              ) -> tuple[Path, tuple[dict[str, tuple[str, str, bool, bool]], dict[str, str]]]:
    base = tmp / "base"
    r = subprocess.run(_apply(files, base), capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    base_run = only_run(base)
    expected = _final(base_run, clusters)
    assert all(v[0] == "1.36.5" and v[1] == "2.3.7" and v[2] and not v[3]
               for v in expected[0].values()), expected
    _no_repeats(base_run)
    return base_run, expected


def test_sigkill_at_every_journal_write_of_a_multi_hop_step(tmp_path: Path) -> None:
    """Kill at each journal write of the node step (containerd 2.1.5 → 2.1.9 → 2.2.9 →
    kubelet/kube-proxy 1.36.5 → containerd 2.3.7 on two nodes, one at a time), resume, and
    compare with the uninterrupted run — including every kill after the first node is done,
    where resume used to pause for good on an invented skew violation."""
    files = _files(tmp_path / "in", SMALL, SMALL_POLICY, SMALL_TARGET)
    base_run, expected = _baseline(tmp_path, files, ("c1",))
    rows = journal(base_run, "SELECT count(*), sum(outcome IS NOT NULL) FROM actions WHERE "
                   "step_id = ?", SMALL_STEP)
    audited = sum(1 for line in (base_run / "audit.jsonl").read_text().splitlines()
                  if json.loads(line).get("subject") == SMALL_STEP)
    assert audited >= 2, audited  # at least step-start and step-done
    # intents, outcomes, running + done, and the audit records about the step: a kill between
    # the step's last two writes (its step-done record and its done status) is one of them
    writes = int(rows[0][0]) + int(rows[0][1]) + 2 + audited
    changes = journal(base_run, "SELECT count(*) FROM actions WHERE step_id = ? AND kind = "
                      "'upgrade'", SMALL_STEP)[0][0]
    assert changes == 10, changes  # five changes on each of two nodes: the step is multi-hop

    def episode(n: int) -> tuple[int, str]:
        runs = tmp_path / f"at{n}"
        env = {**os.environ, "PITSTOP_FAILPOINT": f"journal-write:{SMALL_STEP}:{n}"}
        first = subprocess.run(_apply(files, runs), env=env, capture_output=True, text=True,
                               timeout=300, check=False)
        if first.returncode == 0:
            return n, "not reached"  # the step has fewer writes in this run
        assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
        run = only_run(runs)
        last = journal(run, "SELECT kind, target, outcome FROM actions ORDER BY seq DESC "
                       "LIMIT 1")
        r = _resume_to_end(run)
        assert r.returncode == 0, f"killed before write {n} (last: {last}): {r.stdout}{r.stderr}"
        assert _final(run) == expected, n
        _no_repeats(run)
        _audit_ok(run)
        return n, "killed"

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = dict(pool.map(episode, range(1, writes + 3)))
    killed = [n for n, o in outcomes.items() if o == "killed"]
    # every write of the step in the uninterrupted run was a kill point (timing may add or
    # drop an eviction retry in another run, so allow a small difference at the end)
    assert len(killed) >= writes - 4, (len(killed), writes, outcomes)
    assert killed == list(range(1, len(killed) + 1)), killed


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    """At least 200 SIGKILLs at random journal positions over many runs of a fleet with an etcd
    hop, three apiservers and a multi-hop node pool (canary first)."""
    _sigkill_then_resume(tmp_path, _files(tmp_path / "in"), ("c1",), RANDOM_KILLS, 20261126)


def test_sigkill_while_two_clusters_run_at_once_then_resume(tmp_path: Path) -> None:
    """The same with two clusters in one wave worked on at once (lanes): every resume ends as
    the uninterrupted run did, with no destructive action repeated."""
    _sigkill_then_resume(tmp_path, _files(tmp_path / "in", _two_clusters()), ("c1", "c2"), 10,
                         7)


def _sigkill_then_resume(tmp_path: Path, files: list[str], clusters: tuple[str, ...],
                         kills_wanted: int, seed: int) -> None:
    base_run, expected = _baseline(tmp_path, files, clusters)
    total = _actions(base_run)
    assert total > 100, total
    if len(clusters) > 1:  # the clusters were worked on at once, not one after another
        assert '"wave-lanes"' in (base_run / "audit.jsonl").read_text()
    rng = random.Random(seed)
    chains = [sorted(rng.sample(range(1, total), 5)) for _ in range(kills_wanted // 5 + 8)]

    def chain(i: int) -> int:
        runs = tmp_path / f"crash{i}"
        cmd = _apply(files, runs)
        kills = 0
        for point in chains[i]:
            if _kill_at(cmd, runs, point):
                kills += 1
            cmd = [*_pitstop(), "resume", str(only_run(runs))]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        run = only_run(runs)
        assert _final(run, clusters) == expected
        _no_repeats(run)
        _audit_ok(run)
        return kills

    kills = 0
    with ThreadPoolExecutor(WORKERS) as pool:
        for n in pool.map(chain, range(len(chains))):
            kills += n
    assert kills >= kills_wanted, kills
