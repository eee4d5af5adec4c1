"""pitstop.kube.parse, the Kubernetes JSON vocabulary: pure functions, tested on objects
captured from a real API server (tests/data/kube/, made by tests/data/kube/capture.py) and on
hand-made cases for what a capture cannot show (rounding, caps, PDB selectors)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pitstop.kube.parse import (
    DEFAULT_POOL_LABELS,
    Requests,
    controller_ref,
    is_mirror,
    is_ready,
    millicpu,
    node_observation,
    node_pool,
    parse_quantity,
    pdb_observation,
    pod_observation,
    pod_requests,
    pod_workload,
    pool_label_order,
    quantity_value,
    runtime_of,
    short_version,
    uses_empty_dir,
    workload_index,
)

DATA = Path(__file__).resolve().parent / "data" / "kube"


def _data(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text())
    return doc


QUANTITIES = _data("quantities.json")["quantities"]
PODS = _data("pods.json")["pods"]
NODES = {n["metadata"]["name"]: n for n in _data("nodes.json")["nodes"]}
WORKLOADS = _data("workloads.json")


# -- quantities, against what the API server made of each text --------------------------------

def _milli_up(q: Fraction) -> Fraction:
    """A ResourceList value as the API server stores it: rounded up to a milli
    (SetDefaults_ResourceList)."""
    return Fraction(math.ceil(q * 1000), 1000)


@pytest.mark.parametrize("case", [q for q in QUANTITIES if q["served"] is not None],
                         ids=lambda q: repr(q["text"]))
def test_a_quantity_the_api_server_accepts_has_the_value_it_stores(case: dict[str, Any]) -> None:
    assert _milli_up(parse_quantity(case["text"])) == parse_quantity(case["served"])


@pytest.mark.parametrize("case", [q for q in QUANTITIES if q.get("status") == 400],
                         ids=lambda q: repr(q["text"]))
def test_a_text_the_api_server_cannot_decode_is_no_quantity(case: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(case["text"])


@pytest.mark.parametrize("case", [q for q in QUANTITIES if q.get("status") == 422],
                         ids=lambda q: repr(q["text"]))
def test_a_quantity_only_validation_refuses_still_parses(case: dict[str, Any]) -> None:
    assert parse_quantity(case["text"]) < 0  # negative: the grammar takes it, requests do not


def test_the_capture_covers_every_kind_of_quantity() -> None:
    served = {q["text"] for q in QUANTITIES if q["served"] is not None}
    assert {"129e6", "1E3", "1e-3", "1.5Gi", "1E", "9Ei", ".5", "1.G", "Mi"} <= served
    assert sum(q.get("status") == 400 for q in QUANTITIES) >= 8
    assert sum(q.get("status") == 422 for q in QUANTITIES) >= 1


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Fraction(1, 2)), ("2", 2), ("1.5", Fraction(3, 2)), ("256Gi", 256 * 2**30),
    ("1k", 1000), ("1e3", 1000), ("1E3", 1000), ("1E", 10**18), ("12e-3", Fraction(12, 1000)),
    ("-1.5Ki", -1536), ("+.5", Fraction(1, 2)), ("1.", 1), ("0.1n", Fraction(1, 10**9)),
    ("9Ei", 2**63 - 1), ("64Mi", 64 * 2**20), ("100M", 10**8), ("", None), ("1e", None),
])
def test_quantities(text: str, value: Fraction | int | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="not a Kubernetes quantity"):
            parse_quantity(text)
    else:
        assert parse_quantity(text) == value


def test_cpu_and_memory_are_counted_rounded_up() -> None:
    assert [millicpu(q) for q in ("100m", "2", "0.5", "1500u", "1e-1", "1u", "1n")] == [
        100, 2000, 500, 2, 100, 1, 1]
    assert [quantity_value(q) for q in ("128Mi", "1G", "129e6", "1.5Ki", "100", "500m")] == [
        128 * 2**20, 10**9, 129 * 10**6, 1536, 100, 1]


# -- pod requests, against the real scheduler -------------------------------------------------

@pytest.mark.parametrize("case", PODS, ids=lambda c: c["case"])
def test_pod_requests_are_what_the_scheduler_fits(case: dict[str, Any]) -> None:
    want = Requests(case["scheduler"]["millicpu"], case["scheduler"]["memory"])
    served = case["object"]
    assert pod_requests(served["spec"]) == want
    obs = pod_observation(served, {}, now=0.0)
    assert (obs.millicpu, obs.memory) == want
    # the same spec before the API server defaulted it, as a workload's template reads (the
    # RuntimeClass overhead is the admission's: a template has none)
    sent = {**case["sent"]["spec"], "overhead": served["spec"].get("overhead")}
    assert pod_requests(sent) == want


def test_the_scheduler_refused_one_millicore_and_one_byte_less() -> None:
    for case in PODS:
        refused = case["scheduler"]["refused"]
        if case["scheduler"]["millicpu"]:
            assert "Insufficient cpu" in refused["less-cpu"], case["case"]
        if case["scheduler"]["memory"]:
            assert "Insufficient memory" in refused["less-memory"], case["case"]
    assert {c["case"] for c in PODS} >= {"sidecar-init-overhead", "pod-level-requests",
                                        "pod-level-limits-only", "limits-only"}


def test_sidecars_count_beside_the_containers_and_before_later_init_containers() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}},
                       {"resources": {"requests": {"cpu": "100m"}}}],
        "initContainers": [
            {"resources": {"requests": {"cpu": "400m"}}},  # alone: no sidecar started yet
            {"restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            {"resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},  # beside the sidecar
        ],
        "overhead": {"cpu": "10m"},
    }
    assert pod_requests(spec) == Requests(1050 + 10, 100 * 2**20)
    assert pod_requests({"containers": [{}]}) == Requests(0, 0)
    pod_level = {**spec, "resources": {"requests": {"memory": "1Gi"}}}
    assert pod_requests(pod_level) == Requests(1060, 2**30)  # cpu still from the containers


# -- nodes and pools --------------------------------------------------------------------------

POOLS = {"cap-general": "general", "cap-eks": "ng-1", "cap-eksctl": "ng-2",
         "cap-gke": "default-pool", "cap-aks": "nodepool1", "cap-karpenter": "spot",
         "cap-instance": "c6i.xlarge", "cap-cp": "control-plane", "cap-master": "control-plane",
         "cap-plain": "default", "cap-both": "mine"}


@pytest.mark.parametrize(("node", "pool"), POOLS.items())
def test_pool_of_a_captured_node(node: str, pool: str) -> None:
    obj = NODES[node]
    assert node_pool(obj["metadata"]["labels"])[0] == pool
    assert node_observation(obj, "pitstop.dev/pool").pool == pool


def test_the_labels_asked_for_come_first_then_the_defaults() -> None:
    labels = NODES["cap-both"]["metadata"]["labels"]
    assert node_pool(labels) == ("mine", "pitstop.dev/pool")
    assert node_pool(labels, ["cloud.google.com/gke-nodepool"]) == (
        "theirs", "cloud.google.com/gke-nodepool")
    assert node_pool(NODES["cap-eks"]["metadata"]["labels"], ["team"]) == (
        "ng-1", "eks.amazonaws.com/nodegroup")  # no `team` label: the defaults decide
    assert pool_label_order(["team", "pitstop.dev/pool"]) == (
        "team", *DEFAULT_POOL_LABELS)


def test_a_captured_kwok_node_observed() -> None:
    n = node_observation(NODES["cap-eks"], "pitstop.dev/pool")
    assert (n.ready, n.unschedulable, n.kubelet, n.kube_proxy, n.runtime, n.runtime_version) == (
        True, False, "1.35.4", "1.35.4", "containerd", "2.2.1")
    assert (n.allocatable_millicpu, n.allocatable_memory, n.allocatable_pods) == (
        3500, 15 * 2**30, 10)
    assert is_ready(NODES["cap-eks"])


def test_a_node_with_no_status_yet() -> None:
    n = node_observation({"metadata": {"name": "n1", "labels": {}}, "spec": {}}, "pool")
    assert (n.pool, n.ready, n.kubelet, n.runtime, n.allocatable_millicpu) == (
        "default", False, "", "", 0)


# -- workloads, owners, mirror pods -----------------------------------------------------------

def _pods() -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in WORKLOADS["pods"]}


def test_captured_pods_belong_to_their_workloads() -> None:
    deployments = workload_index(WORKLOADS["replicasets"])
    assert set(deployments.values()) == {"web"}
    found = {name: pod_workload(p, deployments) for name, p in _pods().items()}
    web = [n for n in found if n.startswith("web-")]
    assert len(web) == 1 and found[web[0]] == "capture/web"
    assert controller_ref(_pods()[web[0]])["kind"] == "ReplicaSet"  # type: ignore[index]
    assert found["db-0"] == "capture/db"
    assert [found[n] for n in found if n.startswith("migrate-")] == ["capture/migrate"]
    assert found["debug"] == "capture/debug" and controller_ref(_pods()["debug"]) is None
    # without the ReplicaSets, a Deployment's pod is its ReplicaSet's
    assert pod_workload(_pods()[web[0]], {}).startswith("capture/web-")


def test_mirror_pods_emptydir_and_readiness() -> None:
    pods = _pods()
    mirror = pods["kube-scheduler-cap-general"]
    assert is_mirror(mirror) and controller_ref(mirror)["kind"] == "Node"  # type: ignore[index]
    assert not any(is_mirror(p) for n, p in pods.items() if n != mirror["metadata"]["name"])
    web = next(p for n, p in pods.items() if n.startswith("web-"))
    assert uses_empty_dir(web["spec"]) and not uses_empty_dir(pods["debug"]["spec"])
    assert is_ready(web) and is_ready(pods["debug"])
    not_ready = {**web, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert not is_ready(not_ready) and not is_ready({"metadata": {}})
    obs = pod_observation(mirror, {}, now=0.0)
    assert obs.mirror and obs.owner_kind == "Node"


def test_pod_owner_and_deletion() -> None:
    pod = {"metadata": {"namespace": "a", "name": "web-5d8f-x", "uid": "u1",
                        "deletionTimestamp": "2026-01-01T00:00:00Z",
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f",
                                             "controller": True}]},
           "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    p = pod_observation(pod, {("a", "web-5d8f"): "web"}, now=1767225610.0)
    assert (p.owner_kind, p.owner_name, p.workload, p.ready) == (
        "ReplicaSet", "web-5d8f", "a/web", False)
    assert p.deleting and p.deleting_for == pytest.approx(10.0)
    # an owner reference that is not the controller is no controller (kubectl's reading)
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    assert pod_observation(pod, {}, now=0).owner_kind is None


# -- versions ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("v1.36.3", "1.36.3"), ("v1.29.3-eks-adc7111", "1.29.3"), ("v1.29.1-gke.1589017", "1.29.1"),
    ("1.35.4", "1.35.4"), ("kwok-v0.8.0", "kwok-v0.8.0"),
])
def test_versions_lose_their_v_and_provider_suffix(text: str, want: str) -> None:
    assert short_version(text) == want


def test_runtimes() -> None:
    assert runtime_of("containerd://2.2.0") == ("containerd", "2.2.0")
    assert runtime_of("cri-o://1.30.1") == ("cri-o", "1.30.1")
    assert runtime_of("docker://24.0.7") == ("docker", "24.0.7")
    assert runtime_of("") == ("", "")


# -- PDBs -------------------------------------------------------------------------------------

def test_pdb_selector_and_status() -> None:
    b = pdb_observation({"metadata": {"namespace": "a", "name": "web", "generation": 3},
                         "spec": {"maxUnavailable": "25%", "selector": {}},
                         "status": {"observedGeneration": 2, "currentHealthy": 3,
                                    "desiredHealthy": 3, "expectedPods": 4}})
    assert (b.selector, b.max_unavailable, b.min_available, b.disruptions_allowed,
            b.observed_generation, b.generation) == ({}, "25%", None, 0, 2, 3)
    assert pdb_observation({"metadata": {"namespace": "a", "name": "none"},
                            "spec": {"minAvailable": 1}}).selector is None


def test_pdb_match_expressions_select_as_kubernetes_does() -> None:
    b = pdb_observation({"metadata": {"namespace": "a", "name": "e"},
                         "spec": {"minAvailable": 1, "selector": {
                             "matchLabels": {"team": "x"},
                             "matchExpressions": [
                                 {"key": "app", "operator": "In", "values": ["web", "api"]},
                                 {"key": "canary", "operator": "DoesNotExist"},
                                 {"key": "zone", "operator": "NotIn", "values": ["z9"]},
                                 {"key": "tier", "operator": "Exists"}]}}})
    ok = {"team": "x", "app": "api", "tier": "fe"}
    assert b.selects("a", ok)
    assert b.selects("a", {**ok, "zone": "z1"})
    assert not b.selects("b", ok)  # another namespace
    for bad in ({**ok, "team": "y"}, {**ok, "app": "db"}, {**ok, "canary": "1"},
                {**ok, "zone": "z9"}, {k: v for k, v in ok.items() if k != "tier"}):
        assert not b.selects("a", bad), bad
