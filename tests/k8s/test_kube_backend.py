"""KubeBackend against the real control plane: credentials (kubeconfig contexts, exec plugins,
in-cluster), observations, the eviction API's answers, node patches and operations."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from harness.controlplane import ControlPlane, free_port

from pitstop.backend import (
    Backend,
    BackendError,
    EtcdSnapshot,
    EvictionResult,
    OperationState,
    UpgradeComponent,
)
from pitstop.kube import KubeBackend, KwokNodeUpgrader, connect
from pitstop.kube.connect import KubeApi
from pitstop.kube.inventory import take_inventory

from .kubelib import (
    POOL_LABEL,
    apply,
    bare_pod,
    daemonset,
    deployment,
    kwok_node,
    pdb,
    pods,
    wait_for,
    wait_settled,
)

pytestmark = pytest.mark.k8s
REPO = Path(__file__).resolve().parents[2]


def _whoami(api: KubeApi) -> str:
    answer = api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         body={"apiVersion": "authentication.k8s.io/v1",
                               "kind": "SelfSubjectReview"})
    assert answer.ok, answer
    return str(answer.body["status"]["userInfo"]["username"])


def _kubeconfig(cp: ControlPlane, path: Path, users: dict[str, dict[str, Any]],
                current: str, servers: dict[str, str] | None = None) -> Path:
    """A kubeconfig with one context per user (context = user name)."""
    ca = base64.b64encode((cp.pki / "ca.crt").read_bytes()).decode()
    servers = servers or {}
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": servers.get(name, cp.server),
                                                "certificate-authority-data": ca}}
                     for name in users],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}
                     for name in users],
    }
    path.write_text(json.dumps(doc))
    return path


def _admin_user(cp: ControlPlane) -> dict[str, str]:
    return {"client-certificate-data": base64.b64encode(
                (cp.pki / "admin.crt").read_bytes()).decode(),
            "client-key-data": base64.b64encode((cp.pki / "admin.key").read_bytes()).decode()}


def _service_account_token(cp: ControlPlane, ns: str, name: str) -> str:
    cp.kubectl("create", "serviceaccount", name, "-n", ns)
    cp.kubectl("create", "clusterrolebinding", f"{ns}-{name}", "--clusterrole=cluster-admin",
               f"--serviceaccount={ns}:{name}")
    return cp.kubectl("create", "token", name, "-n", ns, "--duration=10m").stdout.strip()


# -- credentials ------------------------------------------------------------------------------

def test_kubeconfig_contexts_choose_the_cluster(control_plane: ControlPlane,
                                                tmp_path: Path) -> None:
    cp = control_plane
    dead = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    path = _kubeconfig(cp, tmp_path / "config", {"good": _admin_user(cp),
                                                 "broken": _admin_user(cp)},
                       current="broken", servers={"broken": dead})
    good = KubeBackend(str(path), "good", KwokNodeUpgrader())
    assert good.cluster == "good"
    assert _whoami(good.api) == "pitstop-admin"
    assert good.observe("good").apiservers
    with pytest.raises(BackendError, match="not 'other'"):
        good.observe("other")  # never act on a cluster it was not pointed at
    current = KubeBackend(str(path), None, KwokNodeUpgrader())  # the current-context
    assert current.cluster == "broken"
    with pytest.raises(BackendError, match="no answer from the API server at " + dead):
        current.observe("broken")
    with pytest.raises(BackendError, match="no context 'missing'"):
        KubeBackend(str(path), "missing", KwokNodeUpgrader())
    # $KUBECONFIG, as kubectl reads it, when no path is given
    env = {"KUBECONFIG": str(path), "HOME": str(tmp_path)}
    assert connect(None, "good", environ=env).context == "good"


def test_a_token_that_cannot_be_sent_is_an_error_that_does_not_show_it(
        control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = control_plane
    path = _kubeconfig(cp, tmp_path / "config", {"bad": {"token": "s3cr3t-t0ken\nx"}},
                       current="bad")
    api = connect(str(path))
    try:
        with pytest.raises(BackendError) as err:
            api.request("GET", "/version")
    finally:
        api.close()
    text = str(err.value)
    assert f"the request to {cp.server} could not be sent" in text and "Fix:" in text
    assert "s3cr3t" not in text and "t0ken" not in text


EXEC_PLUGIN = textwrap.dedent("""\
    import json, os, sys
    mode, out, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(marker, "a") as f:
        f.write(os.environ.get("KUBERNETES_EXEC_INFO", "") + "\\n")
    status = json.load(open(out))
    print(json.dumps({"apiVersion": f"client.authentication.k8s.io/{mode}",
                      "kind": "ExecCredential", "status": status}))
""")


def test_exec_credential_plugins_token_and_client_certificate(
        control_plane: ControlPlane, scratch: Any, tmp_path: Path) -> None:
    cp = control_plane
    ns = scratch.namespace("exec-auth")
    token = _service_account_token(cp, ns, "pitstop-exec")
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    cert_status = tmp_path / "cert.json"  # v1: a client certificate (the admin's)
    cert_status.write_text(json.dumps({
        "clientCertificateData": (cp.pki / "admin.crt").read_text(),
        "clientKeyData": (cp.pki / "admin.key").read_text()}))
    token_status = tmp_path / "token.json"  # v1beta1: a bearer token that expires
    token_status.write_text(json.dumps({"token": token,
                                        "expirationTimestamp": "2099-01-01T00:00:00Z"}))
    marker = tmp_path / "calls"

    def user(mode: str, status: Path) -> dict[str, Any]:
        return {"exec": {"apiVersion": f"client.authentication.k8s.io/{mode}",
                         "command": sys.executable,
                         "args": [str(plugin), mode, str(status), str(marker)],
                         "interactiveMode": "Never", "provideClusterInfo": True}}

    path = _kubeconfig(cp, tmp_path / "config", {"cert": user("v1", cert_status),
                                                 "token": user("v1beta1", token_status)},
                       current="cert")
    by_cert = KubeBackend(str(path), "cert", KwokNodeUpgrader())
    by_token = KubeBackend(str(path), "token", KwokNodeUpgrader())
    assert _whoami(by_cert.api) == "pitstop-admin"
    assert _whoami(by_token.api) == f"system:serviceaccount:{ns}:pitstop-exec"
    assert by_token.observe("token").nodes == by_cert.observe("cert").nodes
    infos = [json.loads(line) for line in marker.read_text().splitlines()]
    assert {i["apiVersion"] for i in infos} == {"client.authentication.k8s.io/v1",
                                                "client.authentication.k8s.io/v1beta1"}
    assert all(i["spec"]["cluster"]["server"] == cp.server for i in infos)  # provideClusterInfo
    # kubectl accepts the same file: the plugins speak the real protocol
    assert cp.kubectl("--context", "token", "auth", "whoami", "-o", "json",
                      "--kubeconfig", str(path)).returncode == 0


def test_in_cluster_service_account(control_plane: ControlPlane, scratch: Any,
                                    tmp_path: Path) -> None:
    cp = control_plane
    ns = scratch.namespace("in-cluster")
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(_service_account_token(cp, ns, "pitstop"))
    (sa_dir / "ca.crt").write_bytes((cp.pki / "ca.crt").read_bytes())
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": cp.server.rsplit(":", 1)[1],
           "HOME": str(tmp_path)}  # no ~/.kube/config there, and no $KUBECONFIG
    backend = KubeBackend(None, None, KwokNodeUpgrader(),
                          api=connect(None, None, in_cluster_dir=sa_dir, environ=env))
    assert backend.cluster == "in-cluster"
    assert _whoami(backend.api) == f"system:serviceaccount:{ns}:pitstop"
    assert backend.observe("in-cluster").apiservers
    with pytest.raises(BackendError, match="no Kubernetes credentials"):
        connect(None, None, in_cluster_dir=sa_dir, environ={"HOME": str(tmp_path)})


# -- observations -----------------------------------------------------------------------------

def test_observe_reads_nodes_pods_pdbs_and_versions(control_plane: ControlPlane,
                                                    scratch: Any) -> None:
    cp = control_plane
    slot = {"pitstop-test/slot": "observe"}
    scratch.add_nodes([
        kwok_node("obs-blue", labels={**slot, POOL_LABEL: "blue"}, kubelet="1.35.4",
                  runtime="2.2.9"),
        kwok_node("obs-eks", labels={**slot, "eks.amazonaws.com/nodegroup": "ng-1"}),
    ])
    ns = scratch.namespace("observe")
    held = bare_pod(ns, "held", "obs-blue")
    held["metadata"]["finalizers"] = ["pitstop.dev/test-hold"]  # stays deleting
    apply(cp, [deployment(ns, "web", 2, slot), deployment(ns, "tmp", 1, slot, empty_dir=True),
               daemonset(ns, "agent", slot), bare_pod(ns, "static", "obs-eks", mirror=True),
               held, pdb(ns, "web", {"app": "web"}, max_unavailable=1),
               {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "by-expr", "namespace": ns},
                "spec": {"minAvailable": 1, "selector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web", "tmp"]},
                    {"key": "tier", "operator": "DoesNotExist"}]}}}])
    wait_settled(cp, ns, 2 + 1 + 2 + 1 + 1, healthy_pdbs=False)
    cp.kubectl("delete", "pod", "held", "-n", ns, "--wait=false")
    try:
        time.sleep(1.2)
        backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
        obs = backend.observe(backend.cluster)
        blue, eks = obs.node("obs-blue"), obs.node("obs-eks")
        assert blue is not None and eks is not None
        assert (blue.pool, blue.kubelet, blue.kube_proxy, blue.runtime, blue.runtime_version,
                blue.ready, blue.unschedulable) == ("blue", "1.35.4", "1.35.4", "containerd",
                                                    "2.2.9", True, False)
        assert (blue.allocatable_millicpu, blue.allocatable_memory, blue.allocatable_pods) == (
            32000, 256 * 2**30, 110)
        assert eks.pool == "ng-1" and eks.kubelet == "1.36.3"
        mine = {p.name: p for p in obs.pods if p.namespace == ns}
        web = [p for p in mine.values() if p.labels.get("app") == "web"]
        assert len(web) == 2
        assert all(p.owner_kind == "ReplicaSet" and p.workload == f"{ns}/web" and p.ready
                   and p.phase == "Running" and (p.millicpu, p.memory) == (100, 64 * 2**20)
                   for p in web)
        tmp = next(p for p in mine.values() if p.labels.get("app") == "tmp")
        assert tmp.empty_dir and tmp.workload == f"{ns}/tmp"
        agents = [p for p in mine.values() if p.owner_kind == "DaemonSet"]
        assert {p.node for p in agents} == {"obs-blue", "obs-eks"}
        assert {p.workload for p in agents} == {f"{ns}/agent"}
        assert mine["static"].mirror and mine["static"].owner_kind is None
        assert mine["held"].deleting and mine["held"].deleting_for >= 1.0
        assert mine["held"].workload == f"{ns}/held"
        budget = next(b for b in obs.pdbs if b.key == f"{ns}/web")
        assert (budget.selector, budget.max_unavailable, budget.min_available) == (
            {"app": "web"}, 1, None)
        assert (budget.current_healthy, budget.desired_healthy, budget.expected_pods,
                budget.disruptions_allowed) == (2, 1, 2, 1)
        assert budget.observed_generation == budget.generation == 1
        # matchExpressions select what the disruption controller counts (expectedPods)
        expr = next(b for b in obs.pdbs if b.key == f"{ns}/by-expr")
        assert expr.selector == {} and len(expr.match_expressions) == 2
        chosen = sorted(p.name for p in mine.values() if expr.selects(p.namespace, p.labels))
        assert len(chosen) == expr.expected_pods == 3, (chosen, expr)
        assert not expr.selects("other", {"app": "web"})
        assert not expr.selects(ns, {"app": "web", "tier": "x"})
        # control plane: one apiserver (its identity lease), controllers assumed at its version
        assert list(obs.apiservers.values()) == [cp.version]
        assert obs.controller_manager == obs.scheduler == cp.version
        # paginated LISTs: one item per page gives the same answer as the default page size
        api = backend.api
        first = api.request("GET", "/api/v1/pods", query=[("limit", 1)])
        assert first.body["metadata"].get("continue")
        names = sorted(p["metadata"]["name"] for p in api.list("/api/v1/pods", limit=1))
        assert names == sorted(p["metadata"]["name"] for p in api.list("/api/v1/pods"))
        assert len(names) >= 7
    finally:
        cp.kubectl("patch", "pod", "held", "-n", ns, "--type=merge",
                   "-p", '{"metadata":{"finalizers":null}}', check=False)


def test_observation_and_inventory_count_a_pod_alike(control_plane: ControlPlane,
                                                     scratch: Any) -> None:
    """A pod with a restartable init container (a sidecar), an init container that runs beside
    it, and a RuntimeClass overhead: the backend's observation (the executor's capacity
    admission) and the inventory (the planner's preflight) count the scheduler's numbers.
    Before one vocabulary, the observation left the sidecar out and the inventory, reading the
    pod template, the overhead the RuntimeClass admission adds to the pod."""
    cp = control_plane
    slot = {"pitstop-test/slot": "agree"}
    scratch.add_nodes([kwok_node("agree-0", labels={**slot, POOL_LABEL: "agree"})])
    ns = scratch.namespace("agree")
    runtime_class = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                     "metadata": {"name": "pitstop-agree"}, "handler": "runc",
                     "overhead": {"podFixed": {"cpu": "10m", "memory": "16Mi"}}}
    web = deployment(ns, "web", 2, slot)
    spec = web["spec"]["template"]["spec"]
    spec["runtimeClassName"] = "pitstop-agree"
    spec["initContainers"] = [
        {"name": "proxy", "image": "registry.example/proxy:1", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}},
        {"name": "migrate", "image": "registry.example/migrate:1",
         "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}]
    spec["containers"][0]["resources"] = {"requests": {"cpu": "250m", "memory": "128Mi"}}
    apply(cp, [runtime_class])
    try:
        apply(cp, [web])
        wait_settled(cp, ns, 2)
        assert all(p["spec"]["overhead"] == {"cpu": "10m", "memory": "16Mi"}
                   for p in pods(cp, ns))  # the admission added it to the pods, not the template
        # containers 250m + sidecar 50m = 300m, the init container beside the sidecar 1050m:
        # 1050m; memory 128Mi + 32Mi = 160Mi; plus the overhead
        want = (1050 + 10, (160 + 16) * 2**20)
        backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
        try:
            observed = {(p.millicpu, p.memory) for p in backend.observe(backend.cluster).pods
                        if p.namespace == ns}
        finally:
            backend.close()
        (cluster,) = take_inventory([], str(cp.kubeconfig)).fleet.spec.clusters
        (workload,) = [w for w in cluster.workloads if w.namespace == ns]
        assert observed == {want}
        assert (workload.requests.millicpu, workload.requests.memory_bytes) == want
    finally:
        cp.kubectl("delete", "runtimeclass", "pitstop-agree", "--ignore-not-found",
                   "--wait=false", check=False)


def test_controller_versions_from_static_pods(control_plane: ControlPlane,
                                              scratch: Any) -> None:
    """kubeadm runs the controller-manager and scheduler as static pods whose image tag is
    their version; the backend reads it (here: a pod shaped like kubeadm's, bound to a kwok
    node)."""
    cp = control_plane
    scratch.add_nodes([kwok_node("obs-cp", labels={"pitstop-test/slot": "cp"})])
    pod = bare_pod("kube-system", "kube-scheduler-obs-cp", "obs-cp", mirror=True)
    pod["metadata"]["labels"] = {"component": "kube-scheduler", "tier": "control-plane"}
    pod["spec"]["containers"][0]["image"] = "registry.k8s.io/kube-scheduler:v1.35.4"
    apply(cp, [pod])
    try:
        backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
        obs = backend.observe(backend.cluster)
        assert obs.scheduler == "1.35.4"
        assert obs.controller_manager == cp.version  # no static pod: the apiserver's
    finally:
        cp.kubectl("delete", "pod", "-n", "kube-system", "kube-scheduler-obs-cp",
                   "--wait=false")


# -- mutations --------------------------------------------------------------------------------

def test_eviction_api_answers(control_plane: ControlPlane, scratch: Any) -> None:
    cp = control_plane
    slot = {"pitstop-test/slot": "evict"}
    scratch.add_nodes([kwok_node("ev-a", labels=slot), kwok_node("ev-b", labels=slot)])
    ns = scratch.namespace("evict")
    apply(cp, [deployment(ns, "free", 1, slot), deployment(ns, "held", 2, slot),
               deployment(ns, "twice", 1, slot),
               pdb(ns, "held", {"app": "held"}, min_available=2),
               pdb(ns, "twice-a", {"app": "twice"}, max_unavailable=1),
               pdb(ns, "twice-b", {"app": "twice"}, max_unavailable=1)])
    wait_settled(cp, ns, 4, healthy_pdbs=False)
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    c = backend.cluster
    by_app = {p["metadata"]["labels"]["app"]: p["metadata"] for p in pods(cp, ns)}
    free, held, twice = by_app["free"], by_app["held"], by_app["twice"]
    assert backend.evict(c, ns, held["name"], held["uid"]) is EvictionResult.BUDGET_EXHAUSTED
    assert backend.evict(c, ns, twice["name"], twice["uid"]) is EvictionResult.MULTIPLE_PDBS
    assert backend.evict(c, ns, free["name"], "not-its-uid") is EvictionResult.GONE  # 409
    assert backend.evict(c, ns, free["name"], free["uid"]) is EvictionResult.EVICTED
    wait_for(lambda: free["uid"] not in {p["metadata"]["uid"] for p in pods(cp, ns)}, 30,
             "the evicted pod gone")
    assert backend.evict(c, ns, free["name"], free["uid"]) is EvictionResult.GONE  # 404
    backend.delete_pod(c, ns, held["name"], "not-its-uid")  # a precondition miss: nothing
    assert held["uid"] in {p["metadata"]["uid"] for p in pods(cp, ns)}
    assert [(x.kind, x.destructive) for x in backend.calls] == [
        ("evict", False), ("evict", False), ("evict", False), ("evict", True), ("evict", False),
        ("delete", False)]
    # 403 from a namespace being deleted, for a pod a finalizer keeps
    doomed = scratch.namespace("evict-doomed")
    pod = bare_pod(doomed, "stuck", "ev-a")
    pod["metadata"]["finalizers"] = ["pitstop.dev/test-hold"]
    apply(cp, [pod])
    uid = cp.kubectl_json("get", "pod", "stuck", "-n", doomed)["metadata"]["uid"]
    cp.kubectl("delete", "namespace", doomed, "--wait=false")
    try:
        wait_for(lambda: backend.evict(c, doomed, "stuck", uid)
                 is EvictionResult.TERMINATING_NAMESPACE, 30, "403 NamespaceTerminating")
    finally:
        cp.kubectl("patch", "pod", "stuck", "-n", doomed, "--type=merge",
                   "-p", '{"metadata":{"finalizers":null}}', check=False)


def test_cordon_uncordon_annotate(control_plane: ControlPlane, scratch: Any) -> None:
    cp = control_plane
    scratch.add_nodes([kwok_node("cordon-a", labels={"pitstop-test/slot": "cordon"})])
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    assert isinstance(backend, Backend)  # the executor's protocol, checked at run time
    c = backend.cluster

    def node() -> dict[str, Any]:
        return cp.get("/api/v1/nodes/cordon-a")

    backend.cordon(c, "cordon-a", "test")
    backend.cordon(c, "cordon-a", "test")  # already cordoned: no change
    assert node()["spec"]["unschedulable"] is True
    backend.annotate(c, "cordon-a", "pitstop.dev/cordoned", "run r step s")
    assert node()["metadata"]["annotations"]["pitstop.dev/cordoned"] == "run r step s"
    backend.annotate(c, "cordon-a", "pitstop.dev/cordoned", None)
    assert "pitstop.dev/cordoned" not in node()["metadata"]["annotations"]
    backend.uncordon(c, "cordon-a")
    assert not node()["spec"].get("unschedulable")
    assert [(x.kind, x.destructive) for x in backend.calls] == [
        ("cordon", True), ("cordon", False), ("annotate", False), ("annotate", False),
        ("uncordon", True)]
    with pytest.raises(BackendError, match="not found"):
        backend.cordon(c, "no-such-node", "test")


POLL_ELSEWHERE = textwrap.dedent("""\
    import json, sys, time
    from pitstop.backend import UpgradeComponent
    from pitstop.kube import KubeBackend, KwokNodeUpgrader
    kubeconfig, state, key = sys.argv[1:4]
    b = KubeBackend(kubeconfig, None, KwokNodeUpgrader(restart_seconds=1.0), state_file=state)
    op = b.start(b.cluster, key, UpgradeComponent("op-a", "kubelet", "1.36.3"))
    first = str(op.state)
    while op.state == "running":
        time.sleep(0.3)
        op = b.poll(b.cluster, key)
    print(json.dumps({"first": first, "final": str(op.state), "started": op.started,
                      "destructive": sum(c.destructive for c in b.calls)}))
""")


def test_node_operations_are_idempotent_and_survive_the_process(
        control_plane: ControlPlane, scratch: Any, tmp_path: Path) -> None:
    cp = control_plane
    scratch.add_nodes([kwok_node("op-a", labels={"pitstop-test/slot": "ops",
                                                 POOL_LABEL: "ops"}, kubelet="1.35.4")])
    state = tmp_path / "ops.json"
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(restart_seconds=1.0),
                          state_file=state)
    c = backend.cluster
    action = UpgradeComponent("op-a", "kubelet", "1.36.3")
    op = backend.start(c, "run/step/op-a/0/kubelet", action)
    assert op.state is OperationState.RUNNING
    again = backend.start(c, "run/step/op-a/0/kubelet", action)
    assert again.started == op.started  # the same operation, not a second one
    with pytest.raises(BackendError, match="another action"):
        backend.start(c, "run/step/op-a/0/kubelet", UpgradeComponent("op-a", "kubelet", "1.36.2"))
    # another process picks the operation up from the state file and polls it to the end
    out = subprocess.run([sys.executable, "-c", POLL_ELSEWHERE, str(cp.kubeconfig), str(state),
                          "run/step/op-a/0/kubelet"], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                         timeout=60)
    result = json.loads(out.stdout)
    assert result == {"first": "running", "final": "succeeded", "started": op.started,
                      "destructive": 0}
    node = cp.get("/api/v1/nodes/op-a")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert node["status"]["nodeInfo"]["kubeProxyVersion"] == "v1.35.4"  # not asked to move
    assert backend.poll(c, "run/step/op-a/0/kubelet").state is OperationState.SUCCEEDED
    assert sum(x.destructive for x in backend.calls) == 1  # one start, in all
    # what cannot apply fails at once, as a value
    crio = backend.start(c, "k2", UpgradeComponent("op-a", "cri-o", "1.36.0"))
    assert crio.state is OperationState.FAILED and "runs containerd" in crio.message
    gone = backend.start(c, "k3", UpgradeComponent("no-such-node", "kubelet", "1.36.3"))
    assert gone.state is OperationState.FAILED and "not found" in gone.message
    snap = backend.start(c, "k4", EtcdSnapshot("before"))
    assert snap.state is OperationState.FAILED and "host or provider" in snap.message
    with pytest.raises(BackendError, match="no operation"):
        backend.poll(c, "never-started")
