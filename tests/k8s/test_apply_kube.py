"""End to end on a real control plane, through the command line only: ``pitstop inventory``
reads a 20-node kwok cluster (two pools; Deployments with PDBs, a StatefulSet with a PDB,
DaemonSets), ``pitstop apply --backend kube`` upgrades its kubelets to the apiserver's
version — and is killed with SIGKILL in the middle of a drain — and ``pitstop resume``
finishes the run.

PDBs are checked two ways all along: the disruption controller's status
(``currentHealthy >= desiredHealthy``), and, independently of that controller, by counting
the Ready, not-deleting pods each budget selects against the floor its spec sets.

The cluster is this module's own (not the session's): the kill must not leave anything for
other tests to trip on, and the inventory must see only this test's nodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness.controlplane import ControlPlane

from pitstop.executor.nodes import CORDON_ANNOTATION
from tests.runlib import journal

from .kubelib import (
    POOL_LABEL,
    PdbWatch,
    ReadyFloorWatch,
    apply,
    daemonset,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    pod_ready,
    pods,
    statefulset,
    wait_for,
    wait_settled,
)

pytestmark = pytest.mark.k8s
OLD = "1.35.4"
PITSTOP = [sys.executable, "-m", "pitstop.cli.main"]
NS = "shop"
APPS = {POOL_LABEL: "apps"}
DATA = {POOL_LABEL: "data"}
# (kind, name, replicas, pool, PDB: ("min", n) | ("max", n))
WORKLOADS: list[tuple[str, str, int, dict[str, str], tuple[str, int]]] = [
    ("Deployment", "web", 8, APPS, ("max", 1)),
    ("Deployment", "api", 4, APPS, ("min", 3)),
    ("Deployment", "cache", 4, DATA, ("max", 1)),
    ("StatefulSet", "db", 3, DATA, ("min", 2)),
]
N_APPS, N_DATA = 12, 8
EXPECTED_PODS = sum(w[2] for w in WORKLOADS) + N_APPS + N_DATA  # + one agent per node


def _pitstop(cp: ControlPlane, *args: str,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PITSTOP, *args], capture_output=True, text=True, timeout=timeout,
                          env={**cp.env(), "PITSTOP_DEBUG": ""}, check=False)


def _mid_drain(run: Path, canary: str) -> str | None:
    """A node past the canary with an eviction on record and no node-done: being drained
    (every action of a node's job is journaled with the node as its target)."""
    rows = journal(run, "SELECT target, kind FROM actions ORDER BY seq")
    done = {t for t, k in rows if k == "node-done"}
    upgrading = {t for t, k in rows if k == "upgrade"}
    for t, k in rows:
        if k == "evict" and t != canary and t not in done and t not in upgrading:
            return str(t)
    return None


def test_apply_upgrades_twenty_nodes_through_the_cli_and_resumes_after_sigkill(
        own_cluster: ControlPlane, tmp_path: Path) -> None:
    cp = own_cluster
    version = cp.version
    nodes = [kwok_node(f"apps-{i:02d}", labels=APPS, kubelet=OLD) for i in range(N_APPS)]
    nodes += [kwok_node(f"data-{i:02d}", labels=DATA, kubelet=OLD) for i in range(N_DATA)]
    apply(cp, nodes)
    names = [n["metadata"]["name"] for n in nodes]
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in names), 90,
             "20 kwok nodes Ready")
    cp.kubectl("create", "namespace", NS)
    docs: list[dict[str, Any]] = []
    for kind, name, replicas, pool, (how, n) in WORKLOADS:
        make = deployment if kind == "Deployment" else statefulset
        docs.append(make(NS, name, replicas, pool))
        docs.append(pdb(NS, name, {"app": name}, **(
            {"min_available": n} if how == "min" else {"max_unavailable": n})))
    docs += [daemonset(NS, "agent-apps", APPS), daemonset(NS, "agent-data", DATA)]
    apply(cp, docs)
    wait_settled(cp, NS, EXPECTED_PODS, timeout=180)

    # 1. the live cluster as a Fleet, by the real CLI
    fleet = tmp_path / "fleet.yaml"
    res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
    assert res.returncode == 0, res.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("""apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: kwok-e2e}
spec:
  gateTiming:                 # shorter analyses than the built-in ones (canary: 3 × 60 s)
    canary: {interval: PT5S, count: 2}
    node-health: {interval: PT2S, count: 2}
    workload-availability: {interval: PT3S, count: 2}
  pools:
    - pools: [apps]
      strategy: in-place
      maxUnavailable: 2
      canaryNodes: 1
      canarySoak: PT0S
      soak: PT0S
      drainTimeout: PT4M
    - pools: [data]
      strategy: in-place
      maxUnavailable: 1
      canaryNodes: 1
      canarySoak: PT0S
      soak: PT0S
      drainTimeout: PT4M
""")
    common = ["-f", str(fleet), "-f", str(policy), "--target", f"kubernetes={version}"]
    res = _pitstop(cp, "plan", *common, "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    plan = json.loads(res.stdout)
    node_steps = [s for s in plan["steps"] if s["action"] == "upgrade-nodes"]
    assert node_steps and all(s["action"] == "upgrade-nodes" for s in plan["steps"])
    assert sorted(t for s in node_steps for t in s["targets"]) == sorted(names)
    assert node_steps[0]["canary"] and len(node_steps[0]["targets"]) == 1
    canary = node_steps[0]["targets"][0]

    # 2. apply, killed with SIGKILL in the middle of a drain after the canary
    runs = tmp_path / "runs"
    replicas = {w[1]: w[2] for w in WORKLOADS}
    with PdbWatch(cp, [NS]) as status_watch, ReadyFloorWatch(cp, NS, replicas) as ready_watch:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [*PITSTOP, "apply", *common, "--backend", "kube", "--kubeconfig",
             str(cp.kubeconfig), "-y", "--runs-dir", str(runs), "--poll-interval", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**cp.env(), "PITSTOP_DEBUG": "1"})
        killed_on: str | None = None
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
                killed_on = _mid_drain(dirs[0], canary) if dirs else None
                if killed_on:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.1)
        finally:
            out = proc.communicate(timeout=60)[0]
        assert killed_on is not None, f"never saw a drain past the canary to kill:\n{out}"
        assert proc.returncode == -signal.SIGKILL, out
        took_apply = time.monotonic() - t0
        run = next(runs.iterdir())
        steps = dict(journal(run, "SELECT step_id, status FROM steps"))
        assert "running" in steps.values(), steps

        # 3. resume finishes it
        t0 = time.monotonic()
        res = _pitstop(cp, "resume", str(run), "--poll-interval", "1", timeout=900)
        took_resume = time.monotonic() - t0
        assert res.returncode == 0, res.stdout + res.stderr
    assert status_watch.samples > 100 and status_watch.violations == [], \
        status_watch.violations[:5]
    assert ready_watch.samples > 100 and ready_watch.violations == [], ready_watch.violations[:5]

    # every node at the target, Ready, schedulable, no cordon mark left
    for name in names:
        node = cp.get(f"/api/v1/nodes/{name}")
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == f"v{version}", (name, info)
        assert node_ready(node) and not node["spec"].get("unschedulable"), name
        assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {}), name
    # every pod Running and Ready, as many as before
    wait_settled(cp, NS, EXPECTED_PODS, timeout=120)
    assert all(pod_ready(p) for p in pods(cp, NS))

    # the journal: the canary was cordoned, upgraded and done before any other node was
    # cordoned; the node being drained at the kill was finished by the resume, once
    rows = journal(run, "SELECT target, kind, outcome FROM actions ORDER BY seq")
    cordons = [t for t, k, _ in rows if k == "cordon"]
    assert cordons[0] == canary
    canary_done = next(i for i, (t, k, _) in enumerate(rows) if k == "node-done" and t == canary)
    first_other = next(i for i, (t, k, _) in enumerate(rows) if k == "cordon" and t != canary)
    assert canary_done < first_other
    done = [t for t, k, _ in rows if k == "node-done"]
    assert sorted(done) == sorted(names), "every node finished exactly once"
    upgrades = [t for t, k, _ in rows if k == "upgrade"]
    assert killed_on in upgrades
    evictions = sum(1 for _, k, o in rows if k == "evict" and o in ("evicted",
                                                                    "settled-accepted"))
    assert evictions >= sum(w[2] for w in WORKLOADS)  # every replica moved at least once

    status = json.loads(_pitstop(cp, "status", str(run), "-o", "json").stdout)
    assert status["status"] == "completed", status
    verify = _pitstop(cp, "audit", "verify", str(run))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"\napply --backend kube, 20 kwok nodes: {took_apply:.0f} s to the kill, resume "
          f"{took_resume:.0f} s; killed mid-drain of {killed_on}, resumed "
          f"to completion; {evictions} evictions; PDB samples {status_watch.samples} (status) "
          f"+ {ready_watch.samples} (pod count), 0 violations")


def test_apply_refuses_a_plan_of_versions_that_no_longer_run(own_cluster: ControlPlane,
                                                             tmp_path: Path) -> None:
    """The fleet says a node runs 1.34.0; it runs something else: nothing is created or
    changed, and the message says what differs and what to do."""
    cp = own_cluster
    apply(cp, [kwok_node("stale-0", labels={POOL_LABEL: "stale"}, kubelet=OLD)])
    wait_for(lambda: node_ready(cp.get("/api/v1/nodes/stale-0")), 60, "stale-0 Ready")
    try:
        fleet = tmp_path / "fleet.yaml"
        res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
        assert res.returncode == 0, res.stderr
        text = fleet.read_text()
        assert f"kubelet: {OLD}" in text
        fleet.write_text(text.replace(f"kubelet: {OLD}", "kubelet: 1.35.0"))
        runs = tmp_path / "runs"
        res = _pitstop(cp, "apply", "-f", str(fleet), "--target", f"kubernetes={cp.version}",
                       "--backend", "kube", "--kubeconfig", str(cp.kubeconfig), "-y",
                       "--runs-dir", str(runs))
        assert res.returncode == 1, res.stdout + res.stderr
        assert "differ from the fleet this plan was made from" in res.stderr
        assert "kubelet stale-0: declared 1.35.0, live 1.35.4" in res.stderr
        assert "pitstop inventory" in res.stderr and "Traceback" not in res.stderr
        assert not runs.exists() or not any(runs.iterdir())
        node = cp.get("/api/v1/nodes/stale-0")
        assert not node["spec"].get("unschedulable")

        # a context that is not in the kubeconfig: a clear error, nothing made
        res = _pitstop(cp, "apply", "-f", str(fleet), "--target", f"kubernetes={cp.version}",
                       "--backend", "kube", "--kubeconfig", str(cp.kubeconfig), "-y",
                       "--context", "nowhere", "--runs-dir", str(runs))
        assert res.returncode in (1, 2), res.stdout + res.stderr
        assert "nowhere" in res.stderr and "Traceback" not in res.stderr
        assert not runs.exists() or not any(runs.iterdir())
    finally:
        cp.kubectl("delete", "node", "stale-0", "--ignore-not-found", check=False)


def test_apply_refuses_control_plane_steps_without_a_hook_or_with_a_bad_one(
        own_cluster: ControlPlane, tmp_path: Path) -> None:
    """A fleet one minor behind on the control plane: without --control-plane-command the
    plan is refused before anything is read or made; a template with an unknown placeholder
    is bad input (exit 2); with a good one, the stale-plan check still holds (the live
    apiserver runs the newer version)."""
    cp = own_cluster
    fleet = tmp_path / "fleet.yaml"
    res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
    assert res.returncode == 0, res.stderr
    text = fleet.read_text()
    assert f"version: {cp.version}" in text
    # the whole cluster one minor behind (nodes included: whatever earlier tests left here)
    fleet.write_text(text.replace(cp.version, "1.35.4"))
    runs = tmp_path / "runs"
    base = ["apply", "-f", str(fleet), "--target", f"kubernetes={cp.version}", "--backend",
            "kube", "--kubeconfig", str(cp.kubeconfig), "-y", "--runs-dir", str(runs)]

    res = _pitstop(cp, *base)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "--control-plane-command" in res.stderr and "kube-apiserver" in res.stderr
    res = _pitstop(cp, *base, "--control-plane-command", "/usr/local/sbin/up {instanc}")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "{instanc}" in res.stderr and "placeholder" in res.stderr
    res = _pitstop(cp, *base, "--control-plane-command", "/usr/local/sbin/up {instance}",
                   "--control-plane-address", "kube-apiserver=http://x")
    assert res.returncode == 2 and "COMPONENT/INSTANCE" in res.stderr, res.stderr
    res = _pitstop(cp, *base, "--control-plane-command",
                   "/bin/true {instance} {component} {version}")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "differ from the fleet this plan was made from" in res.stderr
    assert "Traceback" not in res.stderr
    assert not runs.exists() or not any(runs.iterdir())
