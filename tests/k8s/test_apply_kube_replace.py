"""``pitstop apply --backend kube`` with the ``replace`` strategy, through the command line:
surge a node at the target version (kwok), wait for it Ready, cordon and drain an old node
(policy/v1 evictions; the real scheduler places the replacements, the real disruption
controller keeps the budget), delete it; the canary node first. A module-private control plane:
the inventory must see only this test's nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.controlplane import ControlPlane

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
    wait_for,
    wait_settled,
)
from .test_apply_kube import _pitstop

pytestmark = pytest.mark.k8s
OLD = "1.35.4"
NS = "green"
POOL = {POOL_LABEL: "green"}


def test_replace_pool_through_the_cli(own_cluster: ControlPlane, tmp_path: Path) -> None:
    cp = own_cluster
    old = [f"green-{i}" for i in range(3)]
    apply(cp, [kwok_node(n, labels=POOL, kubelet=OLD) for n in old])
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in old), 60,
             "3 kwok nodes Ready")
    cp.kubectl("create", "namespace", NS)
    apply(cp, [deployment(NS, "api", 4, POOL), daemonset(NS, "agent", POOL),
               pdb(NS, "api", {"app": "api"}, min_available=3)])
    wait_settled(cp, NS, 4 + 3)

    fleet = tmp_path / "fleet.yaml"
    res = _pitstop(cp, "inventory", "--kubeconfig", str(cp.kubeconfig), "--out", str(fleet))
    assert res.returncode == 0, res.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("""apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: replace}
spec:
  gateTiming:
    canary: {interval: PT3S, count: 2}
    node-health: {interval: PT2S, count: 2}
    workload-availability: {interval: PT2S, count: 2}
  pools:
    - pools: [green]
      strategy: replace
      maxSurge: 1
      maxUnavailable: 0
      canaryNodes: 1
      canarySoak: PT0S
      soak: PT0S
      drainTimeout: PT3M
""")
    common = ["-f", str(fleet), "-f", str(policy), "--target", f"kubernetes={cp.version}"]
    res = _pitstop(cp, "plan", *common, "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    steps = json.loads(res.stdout)["steps"]
    assert {s["strategy"] for s in steps} == {"replace"} and steps[0]["canary"]
    canary = steps[0]["targets"][0]

    runs = tmp_path / "runs"
    with PdbWatch(cp, [NS]) as status_watch, \
            ReadyFloorWatch(cp, NS, {"api": 4}) as ready_watch:
        res = _pitstop(cp, "apply", *common, "--backend", "kube", "--kubeconfig",
                       str(cp.kubeconfig), "-y", "--runs-dir", str(runs), "--poll-interval",
                       "1", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert status_watch.violations == [] and ready_watch.violations == [], (
        status_watch.violations[:3], ready_watch.violations[:3])

    nodes = {n["metadata"]["name"]: n for n in cp.get("/api/v1/nodes")["items"]}
    assert not set(old) & set(nodes), "the old nodes are deleted"
    assert len(nodes) == 3
    for n in nodes.values():
        assert n["status"]["nodeInfo"]["kubeletVersion"] == f"v{cp.version}"
        assert n["metadata"]["labels"][POOL_LABEL] == "green" and node_ready(n)
        assert not n["spec"].get("unschedulable")

    def placed() -> bool:
        live = [p for p in pods(cp, NS) if pod_ready(p)
                and not p["metadata"].get("deletionTimestamp")]
        return (sum(1 for p in live if p["metadata"]["labels"]["app"] == "api") == 4
                and all(p["spec"]["nodeName"] in nodes for p in live))
    # DaemonSet pods of deleted nodes are the pod garbage collector's (orphans)
    wait_for(placed, 90, "4 api pods Running and Ready, every pod on a new node")

    run = next(runs.iterdir())
    rows = journal(run, "SELECT target, kind FROM actions ORDER BY seq")
    cordons = [t for t, k in rows if k == "cordon"]
    assert cordons[0] == canary and sorted(cordons) == sorted(old)
    kinds = [k for _, k in rows]
    assert kinds.index("replace-add") < kinds.index("cordon"), kinds[:8]
    status = json.loads(_pitstop(cp, "status", str(run), "-o", "json").stdout)
    assert status["status"] == "completed", status
