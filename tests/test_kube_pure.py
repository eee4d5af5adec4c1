"""The cluster-free parts of pitstop.kube: drift between two fleets, quantities, images, pod
requests, cluster names. The live parts are tested against a real control plane in
tests/k8s/test_inventory.py."""

from __future__ import annotations

from pathlib import Path

from pitstop.config import load_files
from pitstop.kube.drift import fleet_drift
from pitstop.kube.inventory import (
    _bytes,
    _millis,
    _pod_requests,
    cluster_name_for,
    split_image,
)
from pitstop.model import Fleet

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "pitstop" / "examples" / "fleet.yaml"


def _fleet() -> Fleet:
    fleet = load_files([EXAMPLE]).fleet
    assert fleet is not None
    return fleet


def test_identical_fleets_do_not_drift() -> None:
    assert fleet_drift(_fleet(), _fleet()) == []


def test_drift_names_each_difference() -> None:
    declared = _fleet()
    doc = declared.model_dump(by_alias=True, mode="json", exclude_none=True)
    c = doc["spec"]["clusters"][1]
    name = c["name"]
    c["controlPlane"]["apiServers"][0]["version"] = "v1.99.0"  # v prefix: compared as versions
    pool = c["nodePools"][0]
    gone = pool["nodes"].pop()["name"]
    pool["nodes"][0]["kubelet"] = "1.20.1"
    live = Fleet.model_validate(doc)
    found = {(d.what, d.subject) for d in fleet_drift(declared, live)}
    assert {("kube-apiserver", c["controlPlane"]["apiServers"][0]["name"]),
            ("node", gone), ("kubelet", pool["nodes"][0]["name"]),
            ("pool-size", pool["name"])} == found
    assert all(d.cluster == name for d in fleet_drift(declared, live))
    missing = fleet_drift(declared, live, [(name, "elsewhere")])
    assert [(d.what, d.live) for d in missing] == [("cluster", None)]


def test_quantities() -> None:
    assert [_millis(q) for q in ("100m", "2", "0.5", "1500u", "1e-1")] == [100, 2000, 500, 2, 100]
    assert [_bytes(q) for q in ("128Mi", "1G", "129e6", "1.5Ki", "100")] == [
        128 * 2**20, 10**9, 129 * 10**6, 1536, 100]


def test_images() -> None:
    assert split_image("registry.k8s.io:5000/kube-proxy:v1.36.2") == (
        "registry.k8s.io:5000/kube-proxy", "v1.36.2", "")
    assert split_image("quay.io/cilium/cilium:v1.16.1@sha256:ab") == (
        "quay.io/cilium/cilium", "v1.16.1", "sha256:ab")
    assert split_image("busybox") == ("busybox", "", "")


def test_pod_requests_count_sidecars_init_containers_and_overhead() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}},
                       {"resources": {"requests": {"cpu": "100m"}}}],
        "initContainers": [
            {"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            {"resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},  # runs alone first
        ],
        "overhead": {"cpu": "10m"},
    }
    q = _pod_requests(spec)
    assert (q.millicpu, q.memory_bytes) == (1060, 100 * 2**20)
    assert _pod_requests({"containers": [{}]}).cpu is None


def test_cluster_names_from_contexts() -> None:
    arn = "arn:aws:eks:eu-west-1:123456789012:cluster/Prod_EU"
    assert cluster_name_for(arn) == "arn-aws-eks-eu-west-1-123456789012-cluster-prod-eu"
    assert cluster_name_for("a", ["a", "a-2"]) == "a-3"
