"""Smoke test: the real control plane schedules and runs a Deployment on kwok nodes."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.k8s

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "smoke", "namespace": "default"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "smoke"}},
        "template": {
            "metadata": {"labels": {"app": "smoke"}},
            "spec": {
                "nodeSelector": {"type": "kwok"},
                "tolerations": [
                    {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "containers": [{"name": "app", "image": "registry.example/smoke:1"}],
            },
        },
    },
}


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_version_endpoint_reports_built_version(control_plane):
    info = control_plane.get("/version")
    assert info["gitVersion"] == control_plane.git_version
    assert info["minor"] == control_plane.version.split(".")[1]
    client = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == control_plane.git_version
    assert client["serverVersion"]["gitVersion"] == control_plane.git_version


def test_deployment_runs_on_kwok_nodes(control_plane):
    cp = control_plane
    nodes = cp.add_kwok_nodes(3)

    def nodes_ready():
        items = cp.kubectl_json("get", "nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", [])
            )
        }
        return set(nodes) <= ready

    _wait(nodes_ready, 60, "3 kwok nodes Ready")

    cp.kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))

    def pods_running():
        pods = cp.kubectl_json("get", "pods", "-n", "default", "-l", "app=smoke")["items"]
        running = [
            p for p in pods if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")
        ]
        return running if len(running) == 3 else None

    pods = _wait(pods_running, 120, "3 smoke pods Running")
    for p in pods:
        assert p["spec"]["nodeName"] in nodes
        # created by the real controller-manager (ReplicaSet owner), bound by the real scheduler
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert p["spec"].get("schedulerName") == "default-scheduler"
    _wait(
        lambda: (
            cp.kubectl_json("get", "deployment", "smoke", "-n", "default")["status"].get(
                "availableReplicas"
            )
            == 3
        ),
        60,
        "deployment available",
    )
    # kwok keeps the nodes' heartbeat leases
    leases = cp.kubectl_json("get", "leases", "-n", "kube-node-lease")["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= set(nodes)
