"""The cluster-free parts of pitstop.kube: drift between two fleets, images, a workload's
requests, cluster names. The live parts are tested against a real control plane in
tests/k8s/test_inventory.py; the JSON vocabulary (quantities, pod requests, pools) in
tests/test_kube_parse.py."""

from __future__ import annotations

from pathlib import Path

from pitstop.config import load_files
from pitstop.kube.drift import fleet_drift
from pitstop.kube.inventory import _requests, cluster_name_for, split_image
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


def test_images() -> None:
    assert split_image("registry.k8s.io:5000/kube-proxy:v1.36.2") == (
        "registry.k8s.io:5000/kube-proxy", "v1.36.2", "")
    assert split_image("quay.io/cilium/cilium:v1.16.1@sha256:ab") == (
        "quay.io/cilium/cilium", "v1.16.1", "sha256:ab")
    assert split_image("busybox") == ("busybox", "", "")


def test_a_workload_requests_what_its_largest_pod_does_else_its_template() -> None:
    template = {
        "containers": [{"resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}}],
        "initContainers": [{"restartPolicy": "Always",
                            "resources": {"requests": {"cpu": "50m"}}}],
    }
    q = _requests(template, [])  # no pods: the template, as the API server would default it
    assert (q.millicpu, q.memory_bytes, q.cpu, q.memory) == (250, 100 * 2**20, "250m", "100Mi")
    # pods: the API server added the RuntimeClass overhead; during a rollout the larger counts
    old = {"spec": {**template, "overhead": {"cpu": "10m", "memory": "1Mi"}}}
    new = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}]}}
    q = _requests(template, [old, new])
    assert (q.millicpu, q.memory_bytes) == (1000, 101 * 2**20)
    assert _requests({"containers": [{}]}, []).cpu is None


def test_cluster_names_from_contexts() -> None:
    arn = "arn:aws:eks:eu-west-1:123456789012:cluster/Prod_EU"
    assert cluster_name_for(arn) == "arn-aws-eks-eu-west-1-123456789012-cluster-prod-eu"
    assert cluster_name_for("a", ["a", "a-2"]) == "a-3"

