"""``pitstop inventory``, ``pitstop drift`` and the least-privilege RBAC, against the real
control plane (harness/controlplane.py): kwok nodes, real controllers and scheduler.

Everything here lives on nodes named ``inv-*`` (labelled ``pitstop.dev/inventory-test``), in
namespace ``inv``, or in kube-system objects named below; the module removes them at the end so
that other tests of the session see the cluster as before.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.controlplane import REPO_ROOT, ControlPlane, kwok_node_manifest

from pitstop.config import load_files
from pitstop.kube.connect import connect
from pitstop.kube.inventory import (
    CONTEXT_LABEL,
    image_findings,
    image_uses,
    inventory,
    take_inventory,
)
from pitstop.model import ApiObjectRef, Cluster, Fleet

pytestmark = pytest.mark.k8s

NS = "inv"
MARK = "pitstop.dev/inventory-test"
DIGEST = "sha256:" + "ab" * 32
WEB_IMAGE = f"registry.example/shop/web@{DIGEST}"
DB_IMAGE = "registry.example/shop/db:15.4"
TOLERATE_ALL = [{"operator": "Exists"}]


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _node(name: str, labels: dict[str, str], *, kubelet: str = "v1.36.3",
          runtime: str = "containerd://2.2.9", taints: list[dict[str, str]] | None = None,
          unschedulable: bool = False) -> dict[str, Any]:
    doc = kwok_node_manifest(name, kubelet_version=kubelet, container_runtime_version=runtime)
    doc["metadata"]["labels"].update({MARK: "true", **labels})
    doc["spec"]["taints"] += taints or []
    if unschedulable:
        doc["spec"]["unschedulable"] = True
    # a recent kubelet leaves kubeProxyVersion empty: kube-proxy's version is its pod's
    doc["status"]["nodeInfo"]["kubeProxyVersion"] = ""
    doc["status"]["nodeInfo"]["osImage"] = "Ubuntu 24.04.1 LTS"
    doc["status"]["allocatable"] = {"cpu": "31500m", "memory": "250Gi", "pods": "110"}
    return doc


def _apply(cp: ControlPlane, *docs: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def _pod_template(app: str, image: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeSelector": {"pitstop.dev/pool": "general"},
            "tolerations": TOLERATE_ALL,
            "containers": [{"name": app, "image": image}],
            **spec,
        },
    }


def _daemonset(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": name}},
            "template": {
                "metadata": {"labels": {"k8s-app": name}},
                "spec": {"nodeSelector": {MARK: "true"}, "tolerations": TOLERATE_ALL,
                         "containers": [{"name": name, "image": image}]},
            },
        },
    }


def _mirror_pod(cp: ControlPlane, component: str, image: str, node: str) -> dict[str, Any]:
    """A pod shaped like the kubelet's mirror of a kubeadm static pod (owned by its Node)."""
    uid = cp.kubectl_json("get", "node", node)["metadata"]["uid"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{component}-{node}", "namespace": "kube-system",
            "labels": {"component": component, "tier": "control-plane"},
            "annotations": {"kubernetes.io/config.mirror": "inventory-test"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid,
                                 "controller": True}],
        },
        "spec": {"nodeName": node, "tolerations": TOLERATE_ALL,
                 "containers": [{"name": component, "image": image}]},
    }


GENERAL = ["inv-gen-0", "inv-gen-1"]
ALL_NODES = [*GENERAL, "inv-mem-0", "inv-cp-0", "inv-it-0"]
KUBE_SYSTEM_PODS = ["kube-apiserver-inv-cp-0", "kube-scheduler-inv-cp-0", "etcd-inv-cp-0"]
LAST_APPLIED_OLD = json.dumps({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
                               "metadata": {"name": "web", "namespace": NS}})


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Any:
    cp = control_plane
    _apply(
        cp,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        *(_node(n, {"pitstop.dev/pool": "general"}) for n in GENERAL),
        _node("inv-mem-0", {"eks.amazonaws.com/nodegroup": "mem"}, kubelet="v1.35.4",
              runtime="cri-o://1.35.1", unschedulable=True,
              taints=[{"key": "dedicated", "value": "mem", "effect": "NoSchedule"}]),
        _node("inv-cp-0", {"node-role.kubernetes.io/control-plane": ""},
              taints=[{"key": "node-role.kubernetes.io/control-plane",
                       "effect": "NoSchedule"}]),
        _node("inv-it-0", {"node.kubernetes.io/instance-type": "m5.large"}),
    )
    _apply(
        cp,
        *(_mirror_pod(cp, c, img, "inv-cp-0") for c, img in (
            ("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.36.3"),
            ("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.36.2"),
            ("etcd", "registry.k8s.io/etcd:3.6.8-0"))),
        _daemonset("kube-proxy", "registry.k8s.io/kube-proxy:v1.36.2"),
        _daemonset("calico-node", "docker.io/calico/node:v3.30.2"),
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": "kube-system"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "inv-coredns"}},
                  "template": _pod_template("inv-coredns",
                                            "registry.k8s.io/coredns/coredns:v1.14.2")}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": NS},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": _pod_template(
                      "web", WEB_IMAGE,
                      volumes=[{"name": "cache", "emptyDir": {}}],
                      initContainers=[{"name": "proxy", "image": "registry.example/proxy:1.2",
                                       "restartPolicy": "Always",
                                       "resources": {"requests": {"cpu": "50m",
                                                                  "memory": "32Mi"}}}],
                      containers=[{"name": "web", "image": WEB_IMAGE,
                                   "resources": {"requests": {"cpu": "250m",
                                                              "memory": "128Mi"}}}])}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "db", "namespace": NS},
         "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": _pod_template("db", DB_IMAGE)}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "lone", "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "lone"}},
                  "template": _pod_template("lone", "registry.example/lone:3")}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": NS},
         "spec": {"template": _pod_template("migrate", "registry.example/migrate:7",
                                            restartPolicy="Never")}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": NS,
                                                          "labels": {"app": "debug"}},
         "spec": {"nodeName": "inv-gen-1", "tolerations": TOLERATE_ALL,
                  "containers": [{"name": "sh", "image": "registry.example/toolbox:latest"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": "web", "namespace": NS},
         "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": "db", "namespace": NS},
         "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "db"}},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
    )
    # web was applied long ago through an API version removed since: its last-applied
    # annotation still says so (what Pluto finds). kubectl apply would rewrite the annotation,
    # so it is set the way it was left behind.
    cp.kubectl("annotate", "--overwrite", "deployment", "web", "-n", NS,
               f"kubectl.kubernetes.io/last-applied-configuration={LAST_APPLIED_OLD}")

    def settled() -> bool:
        pods = cp.kubectl_json("get", "pods", "-n", NS)["items"]
        running = {p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"}
        ds = cp.kubectl_json("get", "daemonsets", "-n", "kube-system")["items"]
        job = cp.kubectl_json("get", "job", "migrate", "-n", NS)
        done = any(c["type"] == "Complete" and c["status"] == "True"
                   for c in job.get("status", {}).get("conditions", []))
        return (sum(n.startswith("web-") for n in running) == 3
                and {"db-0", "db-1", "debug"} <= running
                and sum(n.startswith("lone-") for n in running) == 1
                and all(d["status"].get("numberReady") == len(ALL_NODES) for d in ds
                        if d["metadata"]["name"] in ("kube-proxy", "calico-node"))
                and done)

    _wait(settled, 90, "the inventory test's workloads to run")
    yield cp
    cp.kubectl("delete", "namespace", NS, "--wait=false")
    cp.kubectl("delete", "-n", "kube-system", "daemonset/kube-proxy", "daemonset/calico-node",
               "deployment/coredns", *(f"pod/{p}" for p in KUBE_SYSTEM_PODS),
               "--ignore-not-found", "--wait=false")
    cp.kubectl("delete", "nodes", "-l", MARK, "--ignore-not-found", "--wait=false")


def _cluster(fleet: Fleet) -> Cluster:
    assert len(fleet.spec.clusters) == 1
    return fleet.spec.clusters[0]


def _pitstop(*args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                         text=True, timeout=120, check=False, cwd=REPO_ROOT)
    if check_rc is not None:
        assert res.returncode == check_rc, (res.returncode, res.stdout[-3000:], res.stderr)
    return res


# ---------------------------------------------------------------------------------------------


def test_inventory_snapshot(cluster: ControlPlane) -> None:
    c = _cluster(inventory(["pitstop-test"], str(cluster.kubeconfig)))
    assert c.name == "pitstop-test" and c.labels[CONTEXT_LABEL] == "pitstop-test"

    # pools: pitstop.dev/pool, then the EKS label, the control-plane role, the instance type
    pools = {p.name: p for p in c.node_pools}
    assert [n.name for n in pools["general"].nodes] == GENERAL
    assert pools["general"].labels == {"pitstop.dev/pool": "general"}
    assert [n.name for n in pools["mem"].nodes] == ["inv-mem-0"]
    assert pools["control-plane"].control_plane and not pools["general"].control_plane
    assert [n.name for n in pools["control-plane"].nodes] == ["inv-cp-0"]
    assert [n.name for n in pools["m5.large"].nodes] == ["inv-it-0"]

    nodes = {n.name: n for _, n in c.all_nodes()}
    mem = nodes["inv-mem-0"]
    assert (mem.kubelet, mem.container_runtime.name, mem.container_runtime.version) == (
        "1.35.4", "cri-o", "1.35.1")
    assert mem.unschedulable and not nodes["inv-gen-0"].unschedulable
    assert mem.labels["taint.pitstop.dev/dedicated"] == "mem:NoSchedule"
    assert mem.labels["taint.pitstop.dev/kwok.x-k8s.io/node"] == "fake:NoSchedule"
    gen = nodes["inv-gen-0"]
    assert (gen.kubelet, gen.container_runtime.version) == ("1.36.3", "2.2.9")
    assert gen.kube_proxy == "1.36.2"  # from the kube-proxy pod's image, not nodeInfo
    assert (gen.os, gen.kernel) == ("Ubuntu 24.04.1 LTS", "6.12.0-kwok")
    assert gen.capacity is not None and gen.allocatable is not None
    assert (gen.capacity.millicpu, gen.capacity.memory_bytes, gen.capacity.pods) == (
        32000, 256 * 2**30, 110)
    assert (gen.allocatable.millicpu, gen.allocatable.memory_bytes) == (31500, 250 * 2**30)

    # control plane: instances from the (mirror) pods' images; the controller-manager runs
    # outside pods here, so it takes the API server's version
    cp = c.control_plane
    assert [(a.name, a.version) for a in cp.api_servers] == [("inv-cp-0", "1.36.3")]
    assert (cp.scheduler.version, cp.scheduler.instances) == ("1.36.2", ["inv-cp-0"])
    assert (cp.controller_manager.version, cp.controller_manager.instances) == ("1.36.3", [])
    assert cp.etcd is not None and cp.etcd.version == "3.6.8"
    assert [m.name for m in cp.etcd.members] == ["inv-cp-0"]
    assert c.provider == "kubeadm" and not cp.managed

    # workloads
    w = {(x.kind, x.namespace, x.name): x for x in c.workloads}
    web = w[("Deployment", NS, "web")]
    assert web.replicas == 3 and web.labels == {"app": "web"}
    assert (web.requests.millicpu, web.requests.memory_bytes) == (300, 160 * 2**20)
    assert web.empty_dir and web.node_pool == "general"
    assert len(web.nodes) == 3 and set(web.nodes) <= set(GENERAL)
    assert web.images == ["registry.example/proxy:1.2", WEB_IMAGE]
    db = w[("StatefulSet", NS, "db")]
    assert db.replicas == 2 and len(db.nodes) == 2 and not db.empty_dir
    assert w[("ReplicaSet", NS, "lone")].replicas == 1
    assert not any(k == "ReplicaSet" and n.startswith("web-") for k, _, n in w)
    assert w[("Job", NS, "migrate")].replicas == 0  # completed by kwok: no active pod
    assert w[("Pod", NS, "debug")].nodes == ["inv-gen-1"]
    for ds in ("kube-proxy", "calico-node"):
        assert sorted(w[("DaemonSet", "kube-system", ds)].nodes) == sorted(ALL_NODES)
    assert not any(n in KUBE_SYSTEM_PODS for _, _, n in w)  # mirror pods are no workloads

    pdbs = {b.name: b for b in c.pod_disruption_budgets if b.namespace == NS}
    assert pdbs["web"].min_available == 2 and pdbs["web"].max_unavailable is None
    assert pdbs["web"].selector is not None
    assert pdbs["web"].selector.match_labels == {"app": "web"}
    assert pdbs["db"].max_unavailable == "50%"
    assert pdbs["db"].unhealthy_pod_eviction_policy == "AlwaysAllow"

    addons = {(a.name, a.kind, a.version) for a in c.addons}
    assert {("coredns", "dns", "1.14.2"), ("calico", "cni", "3.30.2"),
            ("kube-proxy", "other", "1.36.2")} <= addons

    assert ApiObjectRef(api_version="extensions/v1beta1", kind="Deployment", name="web",
                        namespace=NS, source="last-applied") in c.api_usage

    uses = {u.image: u for u in image_uses(c)}
    assert uses[WEB_IMAGE].digest_pinned and not uses[DB_IMAGE].digest_pinned
    assert uses[DB_IMAGE].workloads == (f"StatefulSet {NS}/db",)
    (finding,) = image_findings(Fleet(metadata={"name": "x"}, spec={"clusters": [c]}))
    assert finding.code == "image-not-digest-pinned"
    assert f"StatefulSet {NS}/db" in finding.objects


def _mine(c: Cluster) -> tuple[Any, ...]:
    """The parts of a snapshot this module owns (other tests may come and go meanwhile)."""
    return ([n for _, n in c.all_nodes() if n.labels.get(MARK)],
            [w for w in c.workloads if w.namespace == NS],
            [b for b in c.pod_disruption_budgets if b.namespace == NS],
            c.control_plane, c.addons, [r for r in c.api_usage if r.namespace == NS])


def test_lists_are_paginated(cluster: ControlPlane) -> None:
    small = take_inventory(["pitstop-test"], str(cluster.kubeconfig), page_size=2)
    full = take_inventory(["pitstop-test"], str(cluster.kubeconfig))
    nodes = sum(len(p.nodes) for p in _cluster(small.fleet).node_pools)
    pods_here = len(cluster.kubectl_json("get", "pods", "-n", NS)["items"])
    assert nodes >= len(ALL_NODES) and pods_here >= 7
    pages = small.clusters[0].pages
    assert pages["/api/v1/nodes"] == math.ceil(nodes / 2)
    assert pages["/api/v1/pods"] >= math.ceil((pods_here + len(ALL_NODES) * 2) / 2)
    assert full.clusters[0].pages["/api/v1/nodes"] == 1
    assert full.clusters[0].pages["/api/v1/pods"] == 1
    # every page was read: the small-page snapshot is the same as the one-page snapshot
    assert _mine(_cluster(small.fleet)) == _mine(_cluster(full.fleet))
    assert len(_mine(_cluster(small.fleet))[0]) == len(ALL_NODES)


def test_cli_snapshot_validates_and_plans(cluster: ControlPlane, tmp_path: Path) -> None:
    out = tmp_path / "fleet.yaml"
    res = _pitstop("inventory", "--kubeconfig", str(cluster.kubeconfig), "--out", str(out))
    assert "pitstop-test:" in res.stderr and "image-not-digest-pinned" in res.stderr
    doc = yaml.safe_load(out.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("pitstop.dev/v1alpha1", "Fleet")
    assert "ok  Fleet/inventory: 1 clusters" in _pitstop("validate", "-f", str(out)).stdout
    as_json = _pitstop("inventory", "--kubeconfig", str(cluster.kubeconfig), "-o", "json").stdout
    assert json.loads(as_json)["spec"]["clusters"][0]["name"] == "pitstop-test"

    # the snapshot feeds the planner: one minor up, with findings from what was read live
    res = _pitstop("plan", "-f", str(out), "--target", "kubernetes=1.37.2", "-o", "json",
                   check_rc=None)
    assert res.returncode in (0, 1), res.stderr
    plan = json.loads(res.stdout)
    codes = {(f["code"], o) for f in plan["findings"] for o in f["objects"]}
    assert ("removed-api-in-use", f"Deployment {NS}/web (last-applied)") in codes
    assert ("unreplicated-pod", f"{NS}/debug") in codes
    assert ("empty-dir-data", f"{NS}/web-0") in codes
    assert ("end-of-life", "inv-gen-0") in codes
    # the CRI-O node read live cannot run kubelet 1.37: the planner says so and stops
    assert any(f["code"] == "no-safe-plan" and "cri-o 1.35.1 in pool mem" in f["message"]
               for f in plan["findings"])
    assert res.returncode == 1 and not plan["reachable"]  # blocked by those findings


def _sa_kubeconfig(cp: ControlPlane, path: Path, token: str) -> None:
    admin = json.loads(cp.kubeconfig.read_text())
    admin_cluster = admin["clusters"][0]
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [admin_cluster],
        "users": [admin["users"][0], {"name": "pitstop-sa", "user": {"token": token}}],
        "contexts": [admin["contexts"][0],
                     {"name": "pitstop-sa", "context": {"cluster": admin_cluster["name"],
                                                         "user": "pitstop-sa"}}],
        "current-context": "pitstop-sa",
    }
    path.write_text(json.dumps(cfg))
    path.chmod(0o600)


def test_least_privilege_role(cluster: ControlPlane, tmp_path: Path) -> None:
    cp = cluster
    cp.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / "rbac" / "pitstop.yaml"))
    token = cp.kubectl("create", "token", "pitstop", "-n", "pitstop-system",
                       "--duration=10m").stdout.strip()
    kc = tmp_path / "sa.kubeconfig"
    _sa_kubeconfig(cp, kc, token)

    def can_i(*args: str) -> str:
        res = subprocess.run([str(cp.bin / "kubectl"), "--kubeconfig", str(kc), "auth",
                              "can-i", *args], capture_output=True, text=True, check=False)
        return res.stdout.strip()

    assert can_i("get", "secrets", "-A") == "no"
    assert can_i("list", "secrets", "-n", NS) == "no"
    assert can_i("get", "configmaps", "-A") == "no"
    assert can_i("delete", "deployments", "-n", NS) == "no"
    assert can_i("list", "nodes") == "yes" and can_i("patch", "nodes") == "yes"
    assert can_i("create", "pods", "--subresource=eviction", "-n", NS) == "yes"
    assert can_i("get", "/version") == "yes" and can_i("get", "/readyz") == "yes"

    # an actual GET of Secrets with the token: 403
    api = connect(str(kc), "pitstop-sa")
    try:
        answer = api.request("GET", "/api/v1/namespaces/default/secrets")
        assert answer.status == 403, answer
        assert api.request("GET", "/api/v1/secrets").status == 403
    finally:
        api.close()

    # pitstop inventory works with that token alone, and with two contexts at once
    out = tmp_path / "fleet.yaml"
    res = _pitstop("inventory", "--kubeconfig", str(kc), "--out", str(out))
    assert "API usage not read for" in res.stderr  # other kinds: optional role, and said so
    fleet = load_files([out]).fleet
    assert fleet is not None
    sa = _cluster(fleet)
    assert sa.name == "pitstop-sa"
    assert {"inv-gen-0", "inv-mem-0"} <= {n.name for _, n in sa.all_nodes()}
    assert any(w.name == "web" and w.namespace == NS for w in sa.workloads)
    assert any(r.name == "web" for r in sa.api_usage)  # Deployments are readable
    both = _pitstop("inventory", "--kubeconfig", str(kc), "--context", "pitstop-test",
                    "--context", "pitstop-sa", "-o", "json").stdout
    assert [c["name"] for c in json.loads(both)["spec"]["clusters"]] == [
        "pitstop-test", "pitstop-sa"]


def test_drift(cluster: ControlPlane, tmp_path: Path) -> None:
    cp = cluster
    _apply(cp, *(_node(f"inv-drift-{i}", {"pitstop.dev/pool": "drift"}) for i in range(2)),
           {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "drift", "namespace": NS},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}}})
    kc = str(cp.kubeconfig)
    declared = tmp_path / "declared.yaml"
    _pitstop("inventory", "--kubeconfig", kc, "--out", str(declared))
    assert "no drift" in _pitstop("drift", "-f", str(declared), "--kubeconfig", kc).stdout

    # the kubelet of one node is upgraded, another node is removed, a PDB is loosened
    cp.kubectl("patch", "node", "inv-drift-0", "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": {"nodeInfo": {"kubeletVersion": "v1.36.4"}}}))
    cp.kubectl("delete", "node", "inv-drift-1")
    cp.kubectl("patch", "pdb", "drift", "-n", NS, "--type=merge",
               "-p", json.dumps({"spec": {"maxUnavailable": 2}}))

    res = _pitstop("drift", "-f", str(declared), "--kubeconfig", kc, "-o", "json", check_rc=1)
    doc = json.loads(res.stdout)
    assert doc["drift"] is True
    found = {(d["what"], d["subject"]): (d["declared"], d["live"]) for d in doc["differences"]}
    assert found == {
        ("kubelet", "inv-drift-0"): ("1.36.3", "1.36.4"),
        ("node", "inv-drift-1"): ("in pool drift", None),
        ("pool-size", "drift"): ("2 nodes", "1 nodes"),
        ("pdb", f"{NS}/drift"): ("maxUnavailable=1 selector={app=db}",
                                 "maxUnavailable=2 selector={app=db}"),
    }
    table = _pitstop("drift", "-f", str(declared), "--kubeconfig", kc, check_rc=1).stdout
    assert "kubelet inv-drift-0: declared 1.36.3, live 1.36.4" in table
    assert "node inv-drift-1: declared in pool drift, gone from the live cluster" in table


def test_unreachable_cluster_is_bad_input(tmp_path: Path) -> None:
    kc = tmp_path / "nowhere.kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1",
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "x", "user": {"token": base64.b64encode(b"t").decode()}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "current-context": "x"}))
    res = _pitstop("inventory", "--kubeconfig", str(kc), check_rc=2)
    assert "pitstop: error" in res.stderr and "Traceback" not in res.stderr


def test_a_server_password_is_not_echoed(tmp_path: Path) -> None:
    kc = tmp_path / "password.kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "x", "cluster": {"server": "https://admin:PASS@127.0.0.1:1",
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "x", "user": {"token": "t0ken-never-shown"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "current-context": "x"}))
    fleet = yaml.safe_load((REPO_ROOT / "src" / "pitstop" / "examples" / "fleet.yaml").read_text())
    fleet["spec"]["clusters"] = fleet["spec"]["clusters"][:1]
    declared = tmp_path / "fleet.yaml"
    declared.write_text(yaml.safe_dump(fleet))
    for args in (["inventory", "--kubeconfig", str(kc)],
                 ["drift", "-f", str(declared), "--kubeconfig", str(kc), "--context", "x"]):
        res = _pitstop(*args, check_rc=2)
        assert "no answer from the API server at https://admin:***@127.0.0.1:1" in res.stderr
        assert "PASS" not in res.stderr + res.stdout and "t0ken" not in res.stderr
        assert "Traceback" not in res.stderr
