"""pitstop.kube.parse: API objects to observations (pure functions; the k8s tests cover the
same against the real API)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pitstop.kube.parse import (
    node_observation,
    parse_quantity,
    pdb_observation,
    pod_observation,
    runtime_of,
    short_version,
    workload_index,
)


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), ("1.5", Decimal("1.5")),
    ("256Gi", Decimal(256 * 2**30)), ("1k", Decimal(1000)), ("1e3", Decimal(1000)),
    ("64Mi", Decimal(64 * 2**20)), ("100M", Decimal(10**8)),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("12 cores")


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


def _node(labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "n1", "labels": labels},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "False"}],
                       "allocatable": {"cpu": "3500m", "memory": "8Gi", "pods": "58"},
                       "nodeInfo": {"kubeletVersion": "v1.34.2", "kubeProxyVersion": "",
                                    "containerRuntimeVersion": "containerd://1.7.27"}}}


def test_node_pool_falls_back_to_provider_labels_then_roles() -> None:
    assert node_observation(_node({"pool": "x"}), "pool").pool == "x"
    assert node_observation(_node({"cloud.google.com/gke-nodepool": "gp"}), "pool").pool == "gp"
    assert node_observation(_node({"node-role.kubernetes.io/control-plane": ""}),
                            "pool").pool == "control-plane"
    n = node_observation(_node({}), "pool")
    assert (n.pool, n.ready, n.unschedulable, n.kubelet, n.kube_proxy, n.runtime,
            n.runtime_version) == ("default", False, True, "1.34.2", None, "containerd", "1.7.27")
    assert (n.allocatable_millicpu, n.allocatable_memory, n.allocatable_pods) == (
        3500, 8 * 2**30, 58)


def test_pod_owner_requests_and_deletion() -> None:
    rs = [{"metadata": {"namespace": "a", "name": "web-5d8f", "ownerReferences": [
        {"kind": "Deployment", "name": "web", "controller": True}]}}]
    pod = {"metadata": {"namespace": "a", "name": "web-5d8f-x", "uid": "u1",
                        "deletionTimestamp": "2026-01-01T00:00:00Z",
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f",
                                             "controller": True}]},
           "spec": {"nodeName": "n1", "volumes": [{"name": "v", "emptyDir": {}}],
                    "containers": [{"resources": {"requests": {"cpu": "100m",
                                                               "memory": "1Gi"}}},
                                   {"resources": {"requests": {"cpu": "150m"}}}],
                    "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]},
           "status": {"phase": "Running"}}
    p = pod_observation(pod, workload_index(rs), now=1767225610.0)
    assert (p.owner_kind, p.owner_name, p.workload) == ("ReplicaSet", "web-5d8f", "a/web")
    assert (p.millicpu, p.memory, p.empty_dir, p.ready) == (1000, 2**30, True, False)
    assert p.deleting and p.deleting_for == pytest.approx(10.0)
    # an owner reference that is not the controller is no controller (kubectl's reading)
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    assert pod_observation(pod, {}, now=0).owner_kind is None


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
