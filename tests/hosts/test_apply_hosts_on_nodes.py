"""``pitstop apply --backend hosts+kube``: the estate's host is also a node of a real
Kubernetes cluster (a kwok node of the same name on a real control plane). Its containerd is
upgraded on the host, over SSH, while the node is cordoned and drained through the API
server: the pods on it are evicted under their PDB and the real scheduler puts their
replacements on the other node; then the node is uncordoned.

The catalog: the only containerd with two apt builds on this machine is Debian's 1.6.20, and
the containerd project does not list 1.6 for Kubernetes 1.36 (the control plane built here).
The test therefore runs with a catalog override directory (``--catalog``, the documented way
to amend the catalog) whose runtimes table lists 1.6.20 for 1.36 — a stated fiction about
compatibility, so that the subject here, who does what between the hosts and the API, can be
tested on real parts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from harness.controlplane import ControlPlane

from pitstop.executor.nodes import CORDON_ANNOTATION
from tests.k8s.kubelib import (
    POOL_LABEL,
    PdbWatch,
    apply,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    pod_ready,
    pods,
    wait_for,
    wait_settled,
)
from tests.runlib import journal, only_run

from .estate import Estate, installed_version
from .runtime_fixtures import figure
from .test_apply_hosts import container_untouched, events
from .test_containerd import PidWatch

CATALOG = Path(__file__).resolve().parents[2] / "src" / "pitstop" / "catalog" / "data"
NS = "on-hosts"


def _pitstop(cp: ControlPlane, *args: str, timeout: float = 300
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=timeout, env=cp.env(), check=False)


def _lab_catalog(tmp: Path, est: Estate, minor: str) -> Path:
    doc = yaml.safe_load((CATALOG / "runtimes.yaml").read_text())
    line = next(ln for ln in doc["containerd"]["lines"] if ln["line"] == "1.6")
    line["supports"][minor] = est.from_version.split("~")[0]
    out = tmp / "lab-catalog"
    out.mkdir()
    (out / "runtimes.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _files(tmp: Path, est: Estate, cp: ControlPlane, *, no_drain: bool) -> list[str]:
    c = est.containerd
    v = cp.version
    fleet = {
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "lab"},
        "spec": {"clusters": [{
            "name": "lab", "environment": "test",
            "controlPlane": {"apiServers": [{"name": "cp-1", "version": v}],
                             "controllerManager": {"version": v}, "scheduler": {"version": v}},
            "nodePools": [
                {"name": "hosts", "labels": {POOL_LABEL: "hosts"}, "nodes": [{
                    "name": "node-a", "kubelet": v, "kubeProxy": v,
                    "containerRuntime": {"name": "containerd", "version": est.from_version}}]},
                {"name": "spare", "labels": {POOL_LABEL: "spare"}, "nodes": [{
                    "name": "node-b", "kubelet": v, "kubeProxy": v,
                    "containerRuntime": {"name": "containerd", "version": est.to_version}}]}],
            "workloads": [{"kind": "Deployment", "name": "web", "namespace": NS, "replicas": 3,
                           "labels": {"app": "web"}, "requests": {"cpu": "100m"}}],
            "podDisruptionBudgets": [{"name": "web", "namespace": NS, "maxUnavailable": 1,
                                      "selector": {"matchLabels": {"app": "web"}}}]}]}}
    policy = {
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
        "metadata": {"name": "lab"},
        "spec": {"pools": [{"pools": ["*"], "canaryNodes": 0, "soak": "0s", "canarySoak": "0s",
                            "runtimePatchWithoutDrain": no_drain}],
                 "gateTiming": {"node-health": {"interval": "PT2S"},
                                "workload-availability": {"interval": "PT2S"}}}}
    node = {"name": "node-a", "address": "127.0.0.1",
            "ssh": {"user": "root", "port": est.sshd.port,
                    "identityFile": str(est.sshd.client_key),
                    "knownHostsFile": str(est.sshd.known_hosts)},
            "runtime": {"socket": c.address, "config": c.config,
                        "control": {"type": "process", "root": str(c.dir / "root"),
                                    "state": str(c.dir / "state"), "pidFile": c.pid_file,
                                    "logFile": c.log}}}
    hosts = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
             "metadata": {"name": "lab"},
             "spec": {"clusters": [{"name": "lab", "nodes": [node]}]}}
    out: list[str] = []
    for name, doc in (("fleet", fleet), ("policy", policy), ("hosts", hosts)):
        p = tmp / f"{name}.yaml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        out += ["-f", str(p)]
    return out


def _nodes_and_pods(cp: ControlPlane, est: Estate) -> None:
    """node-a (the host) and node-b (kwok only), each reporting its runtime as a kubelet
    would; three web pods, all on node-a to begin with (node-b is cordoned until then)."""
    for name in ("node-a", "node-b"):
        cp.kubectl("delete", "node", name, "--ignore-not-found", check=False)
    cp.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", check=False,
               timeout=120)
    a = kwok_node("node-a", labels={POOL_LABEL: "hosts"}, kubelet=cp.version,
                  runtime=est.from_version)
    b = kwok_node("node-b", labels={POOL_LABEL: "spare"}, kubelet=cp.version,
                  runtime=est.to_version, unschedulable=True)
    apply(cp, [a, b])
    wait_for(lambda: all(node_ready(cp.get(f"/api/v1/nodes/{n}")) for n in ("node-a", "node-b")),
             60, "node-a and node-b Ready")
    cp.kubectl("create", "namespace", NS)
    web = deployment(NS, "web", 3, {})
    web["spec"]["template"]["spec"]["nodeSelector"] = {}
    apply(cp, [web, pdb(NS, "web", {"app": "web"}, max_unavailable=1)])
    wait_settled(cp, NS, 3)
    assert {p["spec"]["nodeName"] for p in pods(cp, NS)} == {"node-a"}
    cp.kubectl("uncordon", "node-b")


def _web_nodes(cp: ControlPlane) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in pods(cp, NS):
        if pod_ready(p) and not p["metadata"].get("deletionTimestamp"):
            out[p["spec"]["nodeName"]] = out.get(p["spec"]["nodeName"], 0) + 1
    return out


def test_runtime_on_the_host_drain_through_the_api(at_start: Estate, own_cluster: ControlPlane,
                                                   tmp_path: Path) -> None:
    est, cp, c = at_start, own_cluster, at_start.containerd
    _nodes_and_pods(cp, est)
    files = _files(tmp_path, est, cp, no_drain=False)
    catalog = _lab_catalog(tmp_path, est, cp.version.rsplit(".", 1)[0])
    common = [*files, "--target", f"containerd={est.to_version}", "--catalog", str(catalog)]
    plan = _pitstop(cp, "plan", *common, "-o", "json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    steps = json.loads(plan.stdout)["steps"]
    assert [(s["action"], s["targets"], s["strategy"]) for s in steps] == [
        ("upgrade-nodes", ["node-a"], "in-place")]

    runs = tmp_path / "runs"
    with PidWatch(c.container_pid, c.container_start) as watch, PdbWatch(cp, [NS]) as budgets:
        t0 = time.monotonic()
        r = _pitstop(cp, "apply", *common, "--backend", "hosts+kube", "--kubeconfig",
                     str(cp.kubeconfig), "--context", "lab=pitstop-test", "-y", "--runs-dir",
                     str(runs), "--poll-interval", "1")
        took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    # on the host: the new build, the container untouched throughout
    assert installed_version() == est.to_version and c.revision() == est.to_version
    container_untouched(est)
    assert watch.gaps() == [], watch.gaps()
    # in the cluster: the pods were evicted under the PDB and run on node-b; node-a is back
    assert budgets.samples > 10 and budgets.violations == [], budgets.violations[:5]
    wait_settled(cp, NS, 3)
    assert _web_nodes(cp) == {"node-b": 3}
    node = cp.get("/api/v1/nodes/node-a")
    assert not node["spec"].get("unschedulable")
    assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {})
    # the journal: cordon, evictions, the upgrade, node done — in that order
    run = only_run(runs)
    kinds = [k for (k,) in journal(run, "SELECT kind FROM actions ORDER BY seq")]
    assert kinds.index("cordon") < kinds.index("evict") < kinds.index("upgrade")
    assert kinds[-2:] == ["node-done", "final-check"]  # the fleet checked at the end
    evicted = journal(run, "SELECT outcome FROM actions WHERE kind = 'evict'")
    assert sum(1 for (o,) in evicted if o in ("evicted", "settled-accepted")) == 3
    log = [e.kind for e in events(run)]
    assert "install" in log and "daemon-restart" in log
    assert "cordon" not in log, "the cordon went to the API server, not to the host record"
    r = _pitstop(cp, "audit", "verify", str(run))
    assert r.returncode == 0, r.stdout + r.stderr
    figure("apply --backend hosts+kube (drain via API, containerd over SSH): wall time",
           f"{took:.1f} s, 3 pods evicted under their PDB, container downtime "
           f"{sum(watch.gaps()):.3f} s")


def test_runtime_patch_without_drain_when_the_policy_allows(at_start: Estate,
                                                           own_cluster: ControlPlane,
                                                           tmp_path: Path) -> None:
    """runtimePatchWithoutDrain: a patch build is restarted in place — the node is not
    cordoned and no pod is evicted — since containers survive the daemon restart."""
    est, cp, c = at_start, own_cluster, at_start.containerd
    _nodes_and_pods(cp, est)
    cp.kubectl("cordon", "node-b")  # nowhere to go: a drain could not finish
    files = _files(tmp_path, est, cp, no_drain=True)
    catalog = _lab_catalog(tmp_path, est, cp.version.rsplit(".", 1)[0])
    common = [*files, "--target", f"containerd={est.to_version}", "--catalog", str(catalog)]
    uids = {p["metadata"]["uid"] for p in pods(cp, NS)}
    runs = tmp_path / "runs"
    with PidWatch(c.container_pid, c.container_start) as watch:
        r = _pitstop(cp, "apply", *common, "--backend", "hosts+kube", "--kubeconfig",
                     str(cp.kubeconfig), "--context", "lab=pitstop-test", "-y", "--runs-dir",
                     str(runs), "--poll-interval", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert installed_version() == est.to_version
    container_untouched(est)
    assert watch.gaps() == []
    assert {p["metadata"]["uid"] for p in pods(cp, NS)} == uids, "no pod was evicted"
    kinds = [k for (k,) in journal(only_run(runs), "SELECT kind FROM actions ORDER BY seq")]
    assert "cordon" not in kinds and "evict" not in kinds and "upgrade" in kinds
    seen: Any = cp.get("/api/v1/nodes/node-a")
    assert not seen["spec"].get("unschedulable")
