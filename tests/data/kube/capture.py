"""Capture the API objects that tests/test_kube_parse.py reads, from a real control plane.

    .venv/bin/python tests/data/kube/capture.py [VERSION]

Starts the test control plane (harness/controlplane.py: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok), creates the objects below, and writes what the
API server serves back (``metadata.managedFields`` dropped) to this directory:

* ``quantities.json``: each quantity text as a Pod's memory request, sent with a server-side
  dry run: the canonical form the API server stores, or its refusal;
* ``pods.json``: pods whose requests exercise the scheduler's arithmetic (sidecars, init
  containers, pod-level resources, RuntimeClass overhead, limits without requests), each with
  the requests **the real kube-scheduler** accepts: the pod fits a kwok node whose allocatable
  is exactly that CPU and memory, and stays Pending (``Insufficient cpu`` / ``Insufficient
  memory``) on nodes with one millicore or one byte less. The numbers come from the scheduler,
  not from pitstop; the script stops when pitstop's :func:`pitstop.kube.parse.pod_requests`
  disagrees with them, so no file is written that pitstop does not match;
* ``workloads.json``: a Deployment, a StatefulSet, a Job, a bare pod and a mirror pod, with
  their ReplicaSet: for controller references and workload names;
* ``nodes.json``: kwok nodes labelled as the managed providers label their pools.

Run it again when the pinned Kubernetes versions move (hack/k8s/build.sh); review the diff.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository: tests.k8s.controlplane
sys.path.insert(0, str(HERE.parents[2] / "src"))

from harness.controlplane import ControlPlane, default_version, kwok_node_manifest  # noqa: E402

from pitstop.kube.connect import connect  # noqa: E402
from pitstop.kube.parse import pod_requests  # noqa: E402

NS = "capture"
TOLERATE = [{"operator": "Exists"}]
IMAGE = "registry.example/app:1"

QUANTITIES = [
    "1", "0", "00", "2.", ".5", "0.5", "1.5", "+1", "1000m", "1500m", "100u", "1n", "0.9n",
    "1k", "1M", "1G", "1T", "1P", "1E", "2E", "1Ki", "1Mi", "1.5Gi", "0.5Ki", "129e6", "129E6",
    "1e3", "1E3", "1e+3", "1e-3", "12e-9", "1.5e2", "123456789012345678", "8Ei", "9Ei",
    "1.G", " 1", "1 ", ".", "+", "-0", "Mi", "e3",
    # quantities that validation refuses (requests may not be negative)
    "-1", "-0.5Gi",
    # not quantities
    "", "1e", "1Ki3", "1K", "1ee3", "1.5.3", "12 cores", "1m3", "0x10", "1,5", "1E1.5", "1.5e",
]

POD_CASES: list[tuple[str, dict[str, Any]]] = [
    ("one-container", {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}]}),
    ("sidecar-init-overhead", {
        "runtimeClassName": "pitstop-overhead",
        "initContainers": [
            {"name": "init-a", "resources": {"requests": {"cpu": "700m", "memory": "200Mi"}}},
            {"name": "proxy", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}},
            {"name": "init-b", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}],
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}]}),
    ("two-sidecars", {
        "initContainers": [
            {"name": "log", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
            {"name": "migrate", "resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}},
            {"name": "proxy", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "300m", "memory": "32Mi"}}}],
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
            {"name": "helper", "resources": {"requests": {"cpu": "0.1"}}}]}),
    ("pod-level-requests", {
        "resources": {"requests": {"cpu": "2", "memory": "1Gi"}},
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}),
    ("pod-level-cpu-only", {
        "resources": {"requests": {"cpu": "1500m"}},
        "initContainers": [
            {"name": "proxy", "restartPolicy": "Always",
             "resources": {"requests": {"memory": "100Mi"}}}],
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}}}]}),
    ("pod-level-limits", {
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}),
    ("pod-level-limits-only", {
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
        "containers": [{"name": "app"}]}),
    ("pod-level-limits-mixed", {
        "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}},
        "initContainers": [
            {"name": "proxy", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "100m"}}},
            {"name": "init", "resources": {"requests": {"cpu": "900m"}}}],
        "containers": [{"name": "app", "resources": {"limits": {"cpu": "200m"}}}]}),
    ("limits-only", {
        "containers": [
            {"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}},
            {"name": "side", "resources": {"limits": {"cpu": "1"},
                                          "requests": {"memory": "10Mi"}}}]}),
    ("decimal-exponent", {
        "runtimeClassName": "pitstop-overhead",
        "containers": [
            {"name": "app", "resources": {"requests": {"cpu": "0.25", "memory": "129e6"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1e-1", "memory": "1.5Gi"}}}]}),
    ("best-effort", {"containers": [{"name": "app"}]}),
]


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def _wait(pred: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def _apply(cp: ControlPlane, *docs: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def _node(name: str, labels: dict[str, str], cpu: str = "32", memory: str = "256Gi"
          ) -> dict[str, Any]:
    doc = kwok_node_manifest(name, kubelet_version="v1.35.4",
                             container_runtime_version="containerd://2.2.1")
    doc["metadata"]["labels"].update({"pitstop.dev/capture": name, **labels})
    doc["status"]["allocatable"] = {"cpu": cpu, "memory": memory, "pods": "10"}
    doc["status"]["capacity"] = {"cpu": cpu, "memory": memory, "pods": "10"}
    return doc


def _pod(name: str, spec: dict[str, Any], node: str) -> dict[str, Any]:
    spec = json.loads(json.dumps(spec))
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        c["image"] = IMAGE
    spec.update(nodeSelector={"pitstop.dev/capture": node}, tolerations=TOLERATE)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"case": name}},
            "spec": spec}


def capture_quantities(cp: ControlPlane) -> list[dict[str, Any]]:
    api = connect(str(cp.kubeconfig))
    out = []
    try:
        for text in QUANTITIES:
            body = _pod("q", {"containers": [
                {"name": "c", "resources": {"requests": {"memory": text}}}]}, "none")
            answer = api.request("POST", f"/api/v1/namespaces/{NS}/pods",
                                 query=[("dryRun", "All")], body=body)
            if answer.ok:
                served = answer.body["spec"]["containers"][0]["resources"]["requests"]["memory"]
                out.append({"text": text, "served": served})
            else:
                out.append({"text": text, "served": None, "status": answer.status,
                            "message": answer.message})
    finally:
        api.close()
    return out


def _node_ready(cp: ControlPlane, name: str) -> bool:
    conditions = cp.kubectl_json("get", "node", name)["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _scheduled(cp: ControlPlane, pod: str) -> tuple[bool, str]:
    obj = cp.kubectl_json("get", "pod", pod, "-n", NS)
    cond = next((c for c in obj["status"].get("conditions") or []
                 if c["type"] == "PodScheduled"), None)
    if obj["spec"].get("nodeName"):
        return True, ""
    if cond is not None and cond["status"] == "False" and cond.get("message"):
        return False, str(cond["message"])
    return False, ""


def capture_pods(cp: ControlPlane) -> list[dict[str, Any]]:
    out = []
    for case, spec in POD_CASES:
        probe = _pod(f"{case}-probe", spec, "none")
        served = json.loads(cp.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                                       input=json.dumps(probe)).stdout)
        want = pod_requests(served["spec"])
        cpu, mem = max(want.millicpu, 1), max(want.memory, 1)
        nodes = {"fit": (cpu, mem), "less-cpu": (cpu - 1, mem), "less-memory": (cpu, mem - 1)}
        _apply(cp, *(_node(f"cap-{case}-{k}", {}, f"{c}m", str(m))
                     for k, (c, m) in nodes.items()))
        names = [f"cap-{case}-{k}" for k in nodes]
        _wait(lambda names=names: all(_node_ready(cp, n) for n in names), f"the nodes of {case}")
        _apply(cp, *(_pod(f"{case}-{k}", spec, f"cap-{case}-{k}") for k in nodes))
        _wait(lambda case=case: _scheduled(cp, f"{case}-fit")[0],
              f"{case} to be scheduled on a node of exactly its requests")
        checks: dict[str, str] = {}
        for k, short in (("less-cpu", "Insufficient cpu"), ("less-memory", "Insufficient memory")):
            if (k == "less-cpu" and want.millicpu == 0) or (k == "less-memory"
                                                            and want.memory == 0):
                continue
            message = _wait(lambda case=case, k=k: _scheduled(cp, f"{case}-{k}")[1],
                            f"{case}-{k} to be refused")
            if short not in message:
                raise SystemExit(f"{case}: the scheduler does not agree with pitstop's "
                                 f"{want}: on {k} it says {message!r}")
            checks[k] = message
        pod = _clean(cp.kubectl_json("get", "pod", f"{case}-fit", "-n", NS))
        out.append({"case": case, "object": pod, "sent": _pod(case, spec, f"cap-{case}-fit"),
                    "scheduler": {"millicpu": want.millicpu, "memory": want.memory,
                                  "fits": f"cap-{case}-fit", "refused": checks}})
        print(f"pod {case}: {want}", flush=True)
    return out


def capture_workloads(cp: ControlPlane) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"tolerations": TOLERATE,
                         "nodeSelector": {"pitstop.dev/capture": "cap-general"},
                         "volumes": [{"name": "cache", "emptyDir": {}}],
                         "containers": [{"name": "web", "image": IMAGE}]}}
    node_uid = cp.kubectl_json("get", "node", "cap-general")["metadata"]["uid"]
    _apply(
        cp,
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": template}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "db", "namespace": NS},
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": {**template, "metadata": {"labels": {"app": "db"}}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": NS},
         "spec": {"template": {"metadata": {"labels": {"app": "migrate"}},
                               "spec": {**template["spec"], "restartPolicy": "Never"}}}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "debug", "namespace": NS, "labels": {"app": "debug"}},
         "spec": {**template["spec"], "volumes": []}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "kube-scheduler-cap-general", "namespace": NS,
                      "annotations": {"kubernetes.io/config.mirror": "capture"},
                      "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                           "name": "cap-general", "uid": node_uid,
                                           "controller": True}]},
         "spec": {"nodeName": "cap-general", "tolerations": TOLERATE,
                  "containers": [{"name": "s",
                                  "image": "registry.k8s.io/kube-scheduler:v1.35.4"}]}},
    )

    def running() -> list[dict[str, Any]] | None:
        pods = cp.kubectl_json("get", "pods", "-n", NS, "-l", "app")["items"]
        ready = [p for p in pods if p["status"].get("phase") in ("Running", "Succeeded")]
        return pods if len(ready) >= 4 else None

    pods = _wait(running, "the workloads' pods")
    pods.append(cp.kubectl_json("get", "pod", "kube-scheduler-cap-general", "-n", NS))
    rs = cp.kubectl_json("get", "replicasets", "-n", NS)["items"]
    return {"pods": [_clean(p) for p in pods], "replicasets": [_clean(r) for r in rs]}


NODE_CASES = [
    ("cap-general", {"pitstop.dev/pool": "general"}),
    ("cap-eks", {"eks.amazonaws.com/nodegroup": "ng-1",
                 "node.kubernetes.io/instance-type": "m5.large"}),
    ("cap-eksctl", {"alpha.eksctl.io/nodegroup-name": "ng-2"}),
    ("cap-gke", {"cloud.google.com/gke-nodepool": "default-pool"}),
    ("cap-aks", {"kubernetes.azure.com/agentpool": "nodepool1"}),
    ("cap-karpenter", {"karpenter.sh/nodepool": "spot"}),
    ("cap-instance", {"node.kubernetes.io/instance-type": "c6i.xlarge"}),
    ("cap-cp", {"node-role.kubernetes.io/control-plane": ""}),
    ("cap-master", {"node-role.kubernetes.io/master": ""}),
    ("cap-plain", {}),
    ("cap-both", {"pitstop.dev/pool": "mine", "cloud.google.com/gke-nodepool": "theirs",
                  "node-role.kubernetes.io/control-plane": ""}),
]


def capture_nodes(cp: ControlPlane) -> list[dict[str, Any]]:
    _apply(cp, *(_node(n, labels, "3500m", "15Gi") for n, labels in NODE_CASES))

    def ready() -> list[dict[str, Any]] | None:
        nodes = cp.kubectl_json("get", "nodes", "-l", "pitstop.dev/capture")["items"]
        mine = [n for n in nodes if n["metadata"]["name"] in dict(NODE_CASES)]
        ok = [n for n in mine if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in n["status"].get("conditions") or [])]
        return mine if len(ok) == len(NODE_CASES) else None

    return [_clean(n) for n in sorted(_wait(ready, "the kwok nodes"),
                                      key=lambda n: n["metadata"]["name"])]


def main() -> int:
    version = sys.argv[1] if len(sys.argv) > 1 else default_version()
    with ControlPlane(version) as cp:
        _apply(cp, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
               {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                "metadata": {"name": "pitstop-overhead"}, "handler": "runc",
                "overhead": {"podFixed": {"cpu": "10m", "memory": "16Mi"}}})
        _wait(lambda: cp.kubectl("get", "serviceaccount", "default", "-n", NS,
                                 check=False).returncode == 0, "the default service account")
        source = {"kubernetes": cp.git_version, "by": "tests/data/kube/capture.py",
                  "date": time.strftime("%Y-%m-%d")}
        nodes = capture_nodes(cp)
        docs = {
            "quantities.json": {"source": source, "quantities": capture_quantities(cp)},
            "nodes.json": {"source": source, "nodes": nodes},
            "workloads.json": {"source": source, **capture_workloads(cp)},
            "pods.json": {"source": source, "pods": capture_pods(cp)},
        }
        for name, doc in docs.items():
            (HERE / name).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
