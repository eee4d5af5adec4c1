"""Node upgrades on the real control plane with kwok nodes.

In place, through the executor: a Fleet snapshot of the live cluster (written here by hand:
``pitstop inventory`` is not this test's subject), a plan from ``make_plan`` (canary node first),
and ``Executor`` over ``KubeBackend`` — the real scheduler places the evicted pods' replacements,
the real controllers make them, the real disruption controller keeps the budgets, and every
PDB is sampled all along.

Replace, through the backend's primitives: AddNode at the target version, cordon and drain the
old node with the shared ``Drainer``, RemoveNode. (The executor runs a ``replace`` step like an
in-place one today — it never calls AddNode/RemoveNode — so this flow is driven here.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness.controlplane import ControlPlane

from pitstop.backend import AddNode, OperationState, RemoveNode
from pitstop.catalog import load_catalog
from pitstop.drain import BackendEvictions, Drainer, DrainOptions, DrainState
from pitstop.executor.core import Executor
from pitstop.executor.nodes import CORDON_ANNOTATION
from pitstop.executor.run import create_run
from pitstop.kube import KubeBackend, KwokNodeUpgrader, pod_readiness_metrics
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan

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
    quiet_cluster,
    statefulset,
    wait_for,
    wait_settled,
)

pytestmark = pytest.mark.k8s
OLD_KUBELET = "1.35.4"  # one minor behind the apiserver: allowed skew, so the plan has node steps


def _fleet(cp: ControlPlane, backend: KubeBackend, pool: str, ns: str,
           workloads: list[dict[str, Any]], budgets: list[dict[str, Any]]) -> Fleet:
    """The live cluster as a Fleet, by hand: versions and nodes as the API reports them."""
    version = cp.get("/version")["gitVersion"].removeprefix("v")
    obs = backend.observe(backend.cluster)
    nodes = [{"name": n.name, "kubelet": n.kubelet, "kubeProxy": n.kube_proxy,
              "containerRuntime": {"name": n.runtime, "version": n.runtime_version},
              "allocatable": {"cpu": f"{n.allocatable_millicpu}m",
                              "memory": str(n.allocatable_memory),
                              "pods": n.allocatable_pods}}
             for n in obs.nodes if n.pool == pool]
    return Fleet.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "kwok"},
        "spec": {"clusters": [{
            "name": backend.cluster, "environment": "staging",
            "controlPlane": {"apiServers": [{"name": k, "version": v}
                                            for k, v in obs.apiservers.items()],
                             "controllerManager": {"version": obs.controller_manager},
                             "scheduler": {"version": obs.scheduler}},
            "nodePools": [{"name": pool, "labels": {POOL_LABEL: pool}, "nodes": nodes}],
            "workloads": workloads, "podDisruptionBudgets": budgets}]}}), version


def test_in_place_upgrade_through_the_executor(control_plane: ControlPlane, scratch: Any,
                                               tmp_path: Path) -> None:
    cp = control_plane
    quiet_cluster(cp)
    pool = {POOL_LABEL: "blue"}
    names = scratch.add_nodes([kwok_node(f"up-blue-{i}", labels=pool, kubelet=OLD_KUBELET)
                               for i in range(4)])
    ns = scratch.namespace("upgrade")
    apply(cp, [deployment(ns, "web", 4, pool), statefulset(ns, "db", 3, pool),
               daemonset(ns, "agent", pool),
               pdb(ns, "web", {"app": "web"}, max_unavailable=1),
               pdb(ns, "db", {"app": "db"}, min_available=2)])
    wait_settled(cp, ns, 4 + 3 + 4)
    before = {p["metadata"]["uid"] for p in pods(cp, ns)}

    backend_args = {"metrics": pod_readiness_metrics}
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(restart_seconds=1.0),
                          **backend_args)
    fleet, version = _fleet(cp, backend, "blue", ns, [
        {"kind": "Deployment", "name": "web", "namespace": ns, "replicas": 4,
         "labels": {"app": "web"}, "nodePool": "blue", "requests": {"cpu": "100m"}},
        {"kind": "StatefulSet", "name": "db", "namespace": ns, "replicas": 3,
         "labels": {"app": "db"}, "nodePool": "blue", "requests": {"cpu": "100m"}},
        {"kind": "DaemonSet", "name": "agent", "namespace": ns, "labels": {"app": "agent"},
         "nodePool": "blue", "requests": {"cpu": "10m"}}],
        [{"name": "web", "namespace": ns, "maxUnavailable": 1,
          "selector": {"matchLabels": {"app": "web"}}},
         {"name": "db", "namespace": ns, "minAvailable": 2,
          "selector": {"matchLabels": {"app": "db"}}}])
    policy = UpgradePolicy.model_validate({"metadata": {"name": "kwok"}, "spec": {"pools": [{
        "pools": ["blue"], "strategy": "in-place", "maxUnavailable": 1, "canaryNodes": 1,
        "soak": "PT0S", "canarySoak": "PT0S", "drainTimeout": "PT2M"}]}})
    target = UpgradeTarget.model_validate({"spec": {"versions": {"kubernetes": version}}})
    plan = make_plan(fleet, target, policy, load_catalog(), now=datetime.now(UTC))
    assert [s.action for s in plan.steps] == ["upgrade-nodes", "upgrade-nodes"], plan.findings
    canary = plan.steps[0]
    assert canary.canary and canary.targets == ("up-blue-0",)
    assert plan.steps[1].targets == ("up-blue-1", "up-blue-2", "up-blue-3")

    run = create_run(tmp_path, plan, policy, {backend.cluster: {"name": backend.cluster}},
                     {"kind": "kube", "kubeconfig": str(cp.kubeconfig), "state": "kube.json"})
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(restart_seconds=1.0),
                          state_file=run.path / "kube.json", **backend_args)
    t0 = time.monotonic()
    with PdbWatch(cp, [ns]) as watch:
        result = Executor(run, backend, poll_s=1.0).execute()
    took = time.monotonic() - t0
    assert result.status == "completed", result.reason
    assert watch.samples > 50 and watch.violations == [], watch.violations[:5]

    for name in names:
        node = cp.get(f"/api/v1/nodes/{name}")
        info = node["status"]["nodeInfo"]
        assert (info["kubeletVersion"], info["kubeProxyVersion"]) == (f"v{version}",) * 2
        assert node_ready(node) and not node["spec"].get("unschedulable")
        assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {})
    # canary first: up-blue-0 was cordoned, upgraded and uncordoned before any other node
    order = [(c.kind, c.subject) for c in backend.calls if c.kind in ("cordon", "uncordon")]
    assert order[:2] == [("cordon", "up-blue-0"), ("uncordon", "up-blue-0")], order
    assert [s for k, s in order if k == "cordon"] == names
    # the pods moved for real: evicted, recreated elsewhere, every one Running and Ready
    evictions = [c for c in backend.calls if c.kind == "evict" and c.destructive]
    assert len(evictions) >= 7  # every web and db pod sat on one of the four nodes
    wait_settled(cp, ns, 4 + 3 + 4)
    after = pods(cp, ns)
    assert all(pod_ready(p) for p in after)
    assert len(before & {p["metadata"]["uid"] for p in after}) <= 4  # only agents may remain
    print(f"\nin-place upgrade of 4 nodes: {took:.0f}s, {len(evictions)} evictions, "
          f"{watch.samples} PDB samples, 0 violations")


def test_replace_pool_adds_drains_and_removes(control_plane: ControlPlane, scratch: Any,
                                              tmp_path: Path) -> None:
    cp = control_plane
    pool = {POOL_LABEL: "green"}
    old = scratch.add_nodes([kwok_node(f"up-green-{i}", labels=pool, kubelet="1.36.2")
                             for i in range(2)])
    ns = scratch.namespace("replace")
    apply(cp, [deployment(ns, "api", 3, pool), daemonset(ns, "agent", pool),
               pdb(ns, "api", {"app": "api"}, min_available=2)])
    wait_settled(cp, ns, 3 + 2)
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(),
                          state_file=tmp_path / "kube.json")
    c = backend.cluster

    def finish(key: str, action: Any) -> None:
        op = backend.start(c, key, action)
        while op.state is OperationState.RUNNING:
            time.sleep(0.5)
            op = backend.poll(c, key)
        assert op.state is OperationState.SUCCEEDED, op.message

    with PdbWatch(cp, [ns]) as watch:
        for i, node in enumerate(old):
            new = f"up-green-new-{i}"
            scratch.nodes.append(new)
            add = AddNode(pool="green", name=new, kubelet="1.36.3", runtime="containerd",
                          runtime_version="2.2.9")
            finish(f"replace/{new}", add)
            assert backend.start(c, f"replace/{new}", add).state is OperationState.SUCCEEDED
            backend.cordon(c, node, "replace")
            drainer = Drainer(BackendEvictions(backend, c), node,
                              DrainOptions(timeout_s=120, retry_interval_s=2),
                              started=backend.clock.now())
            while drainer.advance(backend.observe(c)).state is DrainState.RUNNING:
                time.sleep(0.5)
            assert drainer.status.state is DrainState.DONE, drainer.status.message
            finish(f"replace/{node}/remove", RemoveNode(node))
    assert watch.violations == [], watch.violations[:5]
    obs = backend.observe(c)
    green = sorted((n.name, n.kubelet, n.ready) for n in obs.nodes if n.pool == "green")
    assert green == [("up-green-new-0", "1.36.3", True), ("up-green-new-1", "1.36.3", True)]
    new_node = cp.get("/api/v1/nodes/up-green-new-0")  # made like its pool's nodes
    assert new_node["metadata"]["labels"][POOL_LABEL] == "green"
    assert new_node["status"]["allocatable"]["cpu"] == "32"

    def placed() -> bool:
        live = [(p["metadata"]["labels"]["app"], p["spec"].get("nodeName")) for p in pods(cp, ns)
                if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]
        on_new = [x for x in live if str(x[1]).startswith("up-green-new-")]
        agents = sorted(node for app, node in on_new if app == "agent")
        api = [node for app, node in on_new if app == "api"]
        return agents == ["up-green-new-0", "up-green-new-1"] and len(api) == 3
    # the DaemonSet pods of the removed nodes are the pod garbage collector's (orphans)
    wait_for(placed, 60, "3 api pods and 2 agents Running and Ready on the new nodes")
