"""End to end on TWO real control planes at once, through the command line only: one
kubeconfig with contexts ``east`` and ``west``, ``pitstop inventory`` of both, a plan whose one
wave holds both clusters, and ``pitstop apply --backend kube`` upgrading the kwok nodes of both
clusters in that wave at once (lanes, audit action ``wave-lanes``) with every PDB respected on
each cluster all along.

Each control plane is this test's own (real etcd, kube-apiserver, controller-manager,
scheduler and kwok): the inventory must see only this test's nodes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.controlplane import ControlPlane

from pitstop.config import load_files
from pitstop.executor.nodes import CORDON_ANNOTATION
from tests.runlib import journal, only_run

from .kubelib import (
    POOL_LABEL,
    PdbWatch,
    apply,
    daemonset,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    pod_ready,
    pods,
    running,
    wait_for,
    wait_settled,
)
from .test_apply_kube import OLD, _pitstop

pytestmark = pytest.mark.k8s
NS = "shop"
POOL = {POOL_LABEL: "apps"}
NODES_PER_CLUSTER = 3
REPLICAS = 3
EXPECTED_PODS = REPLICAS + NODES_PER_CLUSTER  # the Deployment's pods + one agent per node
CONTEXTS = ("east", "west")


def _populate(cp: ControlPlane, prefix: str) -> list[str]:
    """3 kwok nodes at kubelet OLD in pool apps, a Deployment of 3 under a PDB
    (maxUnavailable 1) and a DaemonSet; returns the node names once all is settled."""
    nodes = [kwok_node(f"{prefix}-{i}", labels=POOL, kubelet=OLD)
             for i in range(NODES_PER_CLUSTER)]
    apply(cp, nodes)
    names = [n["metadata"]["name"] for n in nodes]
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in names), 90,
             f"{prefix}: {names} Ready")
    cp.kubectl("create", "namespace", NS)
    apply(cp, [deployment(NS, "web", REPLICAS, POOL),
               pdb(NS, "web", {"app": "web"}, max_unavailable=1),
               daemonset(NS, "agent", POOL)])
    wait_settled(cp, NS, EXPECTED_PODS, timeout=180)
    return names


def _merged_kubeconfig(path: Path, planes: dict[str, ControlPlane]) -> None:
    """One kubeconfig holding every control plane's cluster, user and context, renamed after
    its context name (each ControlPlane's own kubeconfig names them all ``pitstop-test``)."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [],
                              "users": [], "contexts": [], "current-context": next(iter(planes))}
    for name, cp in planes.items():
        own = yaml.safe_load(cp.kubeconfig.read_text())
        (cluster,), (user,) = own["clusters"], own["users"]
        merged["clusters"].append({"name": name, "cluster": cluster["cluster"]})
        merged["users"].append({"name": f"{name}-admin", "user": user["user"]})
        merged["contexts"].append({"name": name, "context": {"cluster": name,
                                                             "user": f"{name}-admin"}})
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    path.chmod(0o600)


def test_apply_upgrades_the_nodes_of_two_clusters_at_once(tmp_path: Path) -> None:
    with running() as east, running() as west:
        assert east.version == west.version
        version = east.version
        planes = {"east": east, "west": west}
        names = {ctx: _populate(cp, ctx) for ctx, cp in planes.items()}
        every_node = sorted(n for ns in names.values() for n in ns)

        kc = tmp_path / "merged.kubeconfig"
        _merged_kubeconfig(kc, planes)

        # 1. both clusters as one Fleet, by the real CLI
        fleet_file = tmp_path / "fleet.yaml"
        res = _pitstop(east, "inventory", "--kubeconfig", str(kc), "--context", "east",
                       "--context", "west", "--out", str(fleet_file))
        assert res.returncode == 0, res.stdout + res.stderr
        fleet = load_files([fleet_file]).fleet
        assert fleet is not None
        clusters = {c.name: c for c in fleet.spec.clusters}
        assert sorted(clusters) == ["east", "west"], sorted(clusters)
        # The inventory leaves `environment` at its default (production) for both, so the
        # default policy (no waves) puts them in one wave; nothing is edited in the YAML.
        assert {c.environment for c in clusters.values()} == {"production"}
        for ctx in CONTEXTS:
            assert sorted(n.name for _, n in clusters[ctx].all_nodes()) == names[ctx]

        # 2. the plan: one wave holding both clusters, node steps only
        policy = tmp_path / "policy.yaml"
        policy.write_text("""apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: kwok-two-clusters}
spec:
  gateTiming:                 # shorter analyses than the built-in ones (canary: 3 × 60 s)
    canary: {interval: PT5S, count: 2}
    node-health: {interval: PT2S, count: 2}
    workload-availability: {interval: PT3S, count: 2}
  pools:
    - pools: [apps]
      strategy: in-place
      maxUnavailable: 1
      canaryNodes: 1
      canarySoak: PT0S
      soak: PT0S
      drainTimeout: PT4M
""")
        common = ["-f", str(fleet_file), "-f", str(policy), "--target",
                  f"kubernetes={version}"]
        res = _pitstop(east, "plan", *common, "-o", "json")
        assert res.returncode == 0, res.stdout + res.stderr
        plan = json.loads(res.stdout)
        assert [sorted(w["clusters"]) for w in plan["waves"]] == [["east", "west"]], \
            plan["waves"]
        assert plan["steps"] and all(s["action"] == "upgrade-nodes" for s in plan["steps"])
        assert {s["cluster"] for s in plan["steps"]} == {"east", "west"}
        assert sorted(t for s in plan["steps"] for t in s["targets"]) == every_node

        # 3. apply to both at once, PDBs watched on each cluster all along
        runs = tmp_path / "runs"
        with PdbWatch(east, [NS]) as east_watch, PdbWatch(west, [NS]) as west_watch:
            t0 = time.monotonic()
            res = _pitstop(east, "apply", *common, "--backend", "kube", "--kubeconfig",
                           str(kc), "--context", "east=east", "--context", "west=west", "-y",
                           "--runs-dir", str(runs), "--poll-interval", "1", timeout=900)
            took = time.monotonic() - t0
        assert res.returncode == 0, res.stdout + res.stderr
        for ctx, watch in (("east", east_watch), ("west", west_watch)):
            assert watch.samples > 20 and watch.violations == [], (ctx, watch.samples,
                                                                   watch.violations[:5])

        # every node of both clusters at the target, Ready, schedulable, no cordon mark left
        for ctx, cp in planes.items():
            for name in names[ctx]:
                node = cp.get(f"/api/v1/nodes/{name}")
                info = node["status"]["nodeInfo"]
                assert info["kubeletVersion"] == f"v{version}", (ctx, name, info)
                assert node_ready(node) and not node["spec"].get("unschedulable"), (ctx, name)
                assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {}), \
                    (ctx, name)
            wait_settled(cp, NS, EXPECTED_PODS, timeout=120)
            assert all(pod_ready(p) for p in pods(cp, NS))

        # the audit log: the wave ran its two clusters in lanes
        run = only_run(runs)
        audit = [json.loads(line)
                 for line in (run / "audit.jsonl").read_text().splitlines()]
        lanes = [r for r in audit if r["action"] == "wave-lanes"]
        assert len(lanes) == 1, [r["action"] for r in audit]
        assert sorted(lanes[0]["extra"]["clusters"]) == ["east", "west"], lanes[0]
        verify = _pitstop(east, "audit", "verify", str(run))
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # the journal: every node done once, and the two clusters' node work overlapped
        rows = journal(run, "SELECT target, kind, intent_at FROM actions ORDER BY seq")
        done = sorted(t for t, k, _ in rows if k == "node-done")
        assert done == every_node, "every node finished exactly once"

        def span(ctx: str) -> tuple[float, float]:
            ours = [(k, at) for t, k, at in rows if str(t).startswith(f"{ctx}-")]
            first_cordon = min(at for k, at in ours if k == "cordon")
            last_done = max(at for k, at in ours if k == "node-done")
            return first_cordon, last_done

        (e0, e1), (w0, w1) = span("east"), span("west")
        assert e0 < w1 and w0 < e1, (
            f"no overlap: east {e0:.1f}..{e1:.1f}, west {w0:.1f}..{w1:.1f}")
        overlap = min(e1, w1) - max(e0, w0)
        outcomes = journal(run, "SELECT outcome FROM actions WHERE kind = 'evict'")
        evicted = sum(1 for (o,) in outcomes if o in ("evicted", "settled-accepted"))
        refused = len(outcomes) - evicted
        print(f"\napply --backend kube, 2 clusters × {NODES_PER_CLUSTER} kwok nodes in one "
              f"wave: {took:.0f} s wall; east nodes {e1 - e0:.0f} s, west nodes "
              f"{w1 - w0:.0f} s, overlapping {overlap:.0f} s; {evicted} evictions ({refused} "
              f"refused and retried); PDB samples {east_watch.samples} (east) + "
              f"{west_watch.samples} (west), 0 violations")
