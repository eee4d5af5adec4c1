"""Preflight: placement, every finding code positive and negative, capacity packing."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitstop.catalog import (
    Catalog,
    EtcdForKubernetes,
    KnownBad,
    KubernetesRelease,
    RuntimeLine,
    SkewPolicy,
)
from pitstop.model import Fleet, Metadata, UpgradePolicy
from pitstop.preflight import (
    ClusterContext,
    Finding,
    Severity,
    check_capacity,
    place,
    run_preflight,
)
from pitstop.preflight.capacity import Bin, Item, first_fit_decreasing
from pitstop.versions import Minor, parse_version

NOW = datetime(2025, 6, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# A small catalog built in code, so the tests do not depend on the shipped data's figures.


def _m(text: str) -> Minor:
    return Minor.parse(text)


def _v(text: str) -> Any:
    return parse_version(text)


def make_catalog() -> Catalog:
    eol = {"1.28": date(2024, 10, 28), "1.29": date(2025, 2, 28), "1.30": date(2025, 6, 28),
           "1.31": date(2025, 10, 28), "1.32": date(2026, 2, 28), "1.33": date(2026, 6, 28)}
    releases = {
        _m(k): KubernetesRelease(_m(k), date(2023, 1, 1), d, _v(f"{k}.9"))
        for k, d in eol.items()
    }
    containerd = (
        RuntimeLine("containerd", _m("1.6"), _v("1.6.39"), date(2025, 3, 1),
                    {_m("1.29"): _v("1.6.28"), _m("1.30"): _v("1.6.28"),
                     _m("1.31"): _v("1.6.34")}),
        RuntimeLine("containerd", _m("1.7"), _v("1.7.28"), None,
                    {_m(k): _v(p) for k, p in (("1.29", "1.7.11"), ("1.30", "1.7.13"),
                                               ("1.31", "1.7.20"), ("1.32", "1.7.24"),
                                               ("1.33", "1.7.24"))}),
        RuntimeLine("containerd", _m("2.2"), _v("2.2.2"), None,
                    {_m(k): _v("2.2.0") for k in ("1.31", "1.32", "1.33")}),
    )
    return Catalog(
        skew=SkewPolicy(apiserver_max_spread=1, kubelet_max_older=3,
                        kubelet_legacy_before=_m("1.25"), kubelet_legacy_max_older=2,
                        kube_proxy_max_older=3, kube_proxy_max_skew_to_kubelet=3,
                        controllers_max_older=1, kubectl_max_spread=1,
                        kube_proxy_legacy_before=_m("1.25"), kube_proxy_legacy_max_older=2,
                        kube_proxy_legacy_max_skew_to_kubelet=2),
        kubernetes=releases,
        runtimes={"containerd": containerd},
        crio_tracks_kubernetes=True,
        etcd_lines={_m("3.5"): _v("3.5.21")},
        etcd_for_kubernetes={_m(k): EtcdForKubernetes(_v("3.5.16"), (_m("3.5"),), _v("3.5.0"))
                             for k in eol},
        known_bad=(
            KnownBad("etcd", _v("3.5.0"), _v("3.5.2"), (), "data inconsistency after a crash",
                     ("https://example.org/etcd-13766",)),
            KnownBad("containerd", None, None, (_v("2.2.0"),), "CRI plugin fails to start",
                     ("https://example.org/containerd-12612",),
                     condition="registry mirrors and config_path both set"),
        ),
        apis=(),
        coredns={},
        cni=(),
    )


CATALOG = make_catalog()
DEFAULT_POLICY = UpgradePolicy(metadata=Metadata(name="default"))


# ---------------------------------------------------------------------------------------------
# Fleet builders (camelCase dicts, validated by the model)


def node(name: str, *, cpu: Any = "4", memory: Any = "16Gi", pods: int | None = 110,
         kubelet: str = "1.31.4", runtime: str = "1.7.24", runtime_name: str = "containerd",
         **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name, "kubelet": kubelet,
        "containerRuntime": {"name": runtime_name, "version": runtime},
        **extra,
    }
    if cpu is not None or memory is not None or pods is not None:
        alloc = {"cpu": cpu, "memory": memory, "pods": pods}
        out["allocatable"] = {k: v for k, v in alloc.items() if v is not None}
    return out


def pool(name: str, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "nodes": nodes, **extra}


def cluster(*, name: str = "c1", pools: list[dict[str, Any]] | None = None,
            workloads: list[dict[str, Any]] | None = None,
            pdbs: list[dict[str, Any]] | None = None, apiserver: str = "1.31.4",
            etcd: str | None = None, **extra: Any) -> dict[str, Any]:
    cp: dict[str, Any] = {
        "apiServers": [{"name": "cp-1", "version": apiserver}],
        "controllerManager": {"version": apiserver},
        "scheduler": {"version": apiserver},
    }
    if etcd is not None:
        cp["etcd"] = {"version": etcd, "members": [{"name": "etcd-1"}, {"name": "etcd-2"}]}
    return {
        "name": name,
        "controlPlane": cp,
        "nodePools": pools if pools is not None else [
            pool("workers", [node(f"w{i}") for i in range(1, 4)])],
        "workloads": workloads or [],
        "podDisruptionBudgets": pdbs or [],
        **extra,
    }


def fleet(*clusters: dict[str, Any]) -> Fleet:
    return Fleet.model_validate({"metadata": {"name": "test"},
                                 "spec": {"clusters": list(clusters)}})


def policy(**pool_policy: Any) -> UpgradePolicy:
    return UpgradePolicy.model_validate({"metadata": {"name": "p"},
                                         "spec": {"pools": [pool_policy]}})


def deploy(name: str = "web", replicas: int = 3, *, ns: str = "shop", kind: str = "Deployment",
           labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "namespace": ns, "replicas": replicas,
            "labels": labels if labels is not None else {"app": name}, **extra}


def pdb(name: str = "web-pdb", *, ns: str = "shop", selector: Any = None,
        **budget: Any) -> dict[str, Any]:
    out = {"name": name, "namespace": ns, **budget}
    out["selector"] = {"matchLabels": {"app": "web"}} if selector is None else selector
    if selector == "null":
        out["selector"] = None
    return out


def run(fl: Fleet, pol: UpgradePolicy = DEFAULT_POLICY, now: datetime = NOW) -> list[Finding]:
    return run_preflight(fl, pol, CATALOG, now)


def codes(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


# ---------------------------------------------------------------------------------------------
# Placement


def test_spread_round_robin_over_schedulable_nodes_sorted_by_name() -> None:
    c = fleet(cluster(pools=[pool("workers", [node("w3"), node("w1"), node("w2",
                                                                          unschedulable=True)])],
                      workloads=[deploy(replicas=5)])).spec.clusters[0]
    pl = place(c)
    pods = pl.pods_of(c.workloads[0])
    assert [(p.name, p.node) for p in pods] == [
        ("shop/web-0", "w1"), ("shop/web-1", "w3"), ("shop/web-2", "w1"),
        ("shop/web-3", "w3"), ("shop/web-4", "w1")]
    assert [p.name for p in pl.pods_on("w3")] == ["shop/web-1", "shop/web-3"]


def test_explicit_nodes_daemonsets_and_control_plane_pools() -> None:
    c = fleet(cluster(pools=[
        pool("cp", [node("m1")], controlPlane=True),
        pool("workers", [node("w1"), node("w2", unschedulable=True)]),
        pool("gpu", [node("g1")]),
    ], workloads=[
        deploy("pinned", 9, nodes=["w2", "g1"]),
        deploy("agent", kind="DaemonSet"),
        deploy("gpu-agent", kind="DaemonSet", nodePool="gpu"),
        deploy("api", 3),
    ])).spec.clusters[0]
    pl = place(c)
    by = {w.name: [(p.name, p.node) for p in pl.pods_of(w)] for w in c.workloads}
    assert by["pinned"] == [("shop/pinned-0", "w2"), ("shop/pinned-1", "g1")]
    # DaemonSet: every node of the non-control-plane pools, cordoned ones too.
    assert [n for _, n in by["agent"]] == ["g1", "w1", "w2"]
    assert [n for _, n in by["gpu-agent"]] == ["g1"]
    # Spread skips the control-plane pool and the cordoned node.
    assert [n for _, n in by["api"]] == ["g1", "w1", "g1"]
    assert pl.pool_of("w2").name == "workers"


def test_pending_pods_when_no_schedulable_node() -> None:
    c = fleet(cluster(pools=[pool("workers", [node("w1", unschedulable=True)])],
                      workloads=[deploy(replicas=2)])).spec.clusters[0]
    assert [p.node for p in place(c).pods_of(c.workloads[0])] == [None, None]


def test_pdb_selection_null_empty_and_namespace() -> None:
    c = fleet(cluster(workloads=[deploy("web"), deploy("db"), deploy("web", ns="other")],
                      pdbs=[pdb("none", selector="null", maxUnavailable=1),
                            pdb("all", selector={}, maxUnavailable=1),
                            pdb("web", maxUnavailable=1)])).spec.clusters[0]
    pl = place(c)
    by = {b.name: [f"{w.namespace}/{w.name}" for w in pl.workloads_of_pdb(b)]
          for b in c.pod_disruption_budgets}
    assert by == {"none": [], "all": ["shop/web", "shop/db"], "web": ["shop/web"]}


# ---------------------------------------------------------------------------------------------
# pdb-blocks-drain


@pytest.mark.parametrize("budget", [
    {"maxUnavailable": 0},
    {"maxUnavailable": "0%"},
    {"minAvailable": 3},
    {"minAvailable": 5},
    {"minAvailable": "100%"},
    {"minAvailable": "90%"},  # 2.7 of 3 pods rounds up to 3, as the disruption controller does
])
def test_pdb_blocks_drain(budget: dict[str, Any]) -> None:
    found = codes(run(fleet(cluster(workloads=[deploy(replicas=3)],
                                    pdbs=[pdb(**budget)]))), "pdb-blocks-drain")
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.BLOCKING
    assert f.cluster == "c1"
    assert f.objects == ("shop/web-pdb", "shop/web-0", "shop/web-1", "shop/web-2")
    assert "shop/web-pdb" in f.message
    assert "shop/web-0" in f.message
    assert f.fix


@pytest.mark.parametrize("budget", [
    {"maxUnavailable": 1},
    {"maxUnavailable": "10%"},  # rounds up to 1
    {"minAvailable": 2},
    {"minAvailable": "50%"},
])
def test_pdb_that_allows_a_disruption_is_fine(budget: dict[str, Any]) -> None:
    found = run(fleet(cluster(workloads=[deploy(replicas=3)], pdbs=[pdb(**budget)])))
    assert codes(found, "pdb-blocks-drain") == []


def test_pdb_selecting_no_pod_blocks_nothing() -> None:
    found = run(fleet(cluster(workloads=[deploy(replicas=3)],
                              pdbs=[pdb(selector="null", maxUnavailable=0),
                                    pdb("other", selector={"matchLabels": {"app": "x"}},
                                        maxUnavailable=0)])))
    assert codes(found, "pdb-blocks-drain") == []


# ---------------------------------------------------------------------------------------------
# pdb-overlap


def test_pdb_overlap_names_both_budgets_and_pods() -> None:
    found = codes(run(fleet(cluster(
        workloads=[deploy(replicas=2), deploy("db", 2)],
        pdbs=[pdb("web-pdb", maxUnavailable=1), pdb("ns-pdb", selector={}, maxUnavailable=1)],
    ))), "pdb-overlap")
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.BLOCKING
    assert f.objects == ("shop/ns-pdb", "shop/web-pdb", "shop/web-0", "shop/web-1")


def test_disjoint_pdbs_do_not_overlap() -> None:
    found = run(fleet(cluster(
        workloads=[deploy(replicas=2), deploy("db", 2)],
        pdbs=[pdb("web-pdb", maxUnavailable=1),
              pdb("db-pdb", selector={"matchLabels": {"app": "db"}}, maxUnavailable=1)])))
    assert codes(found, "pdb-overlap") == []


# ---------------------------------------------------------------------------------------------
# single-replica-no-pdb


def test_single_replica_without_pdb_warns() -> None:
    found = codes(run(fleet(cluster(workloads=[deploy("api", 1), deploy("db", 1,
                                                                        kind="StatefulSet")]))),
                  "single-replica-no-pdb")
    assert [f.objects for f in found] == [("shop/api", "shop/api-0"), ("shop/db", "shop/db-0")]
    assert all(f.severity is Severity.WARNING for f in found)


@pytest.mark.parametrize("workload", [
    deploy("web", 2), deploy("web", 1, kind="Job"), deploy("web", 1, kind="DaemonSet")])
def test_single_replica_negative(workload: dict[str, Any]) -> None:
    assert codes(run(fleet(cluster(workloads=[workload]))), "single-replica-no-pdb") == []


def test_single_replica_with_pdb_is_not_single_replica_no_pdb() -> None:
    found = run(fleet(cluster(workloads=[deploy("web", 1)], pdbs=[pdb(maxUnavailable=1)])))
    assert codes(found, "single-replica-no-pdb") == []


# ---------------------------------------------------------------------------------------------
# empty-dir-data, unreplicated-pod


def test_empty_dir_blocks_by_default_and_warns_with_delete_flag() -> None:
    fl = fleet(cluster(workloads=[deploy("cache", 2, emptyDir=True)]))
    blocking = codes(run(fl), "empty-dir-data")
    assert [(f.severity, f.objects) for f in blocking] == [
        (Severity.BLOCKING, ("shop/cache-0", "shop/cache-1"))]
    warned = codes(run(fl, policy(deleteEmptyDirData=True)), "empty-dir-data")
    assert [f.severity for f in warned] == [Severity.WARNING]
    assert "lost" in warned[0].message


def test_empty_dir_negative() -> None:
    fl = fleet(cluster(workloads=[deploy("cache", 2),
                                  deploy("agent", kind="DaemonSet", emptyDir=True)]))
    assert codes(run(fl), "empty-dir-data") == []


def test_unreplicated_pod() -> None:
    fl = fleet(cluster(workloads=[deploy("debug", 1, kind="Pod"), deploy("web", 2)]))
    found = codes(run(fl), "unreplicated-pod")
    assert [(f.severity, f.objects) for f in found] == [(Severity.BLOCKING, ("shop/debug",))]
    forced = codes(run(fl, policy(forceAfterDrainTimeout=True)), "unreplicated-pod")
    assert [f.severity for f in forced] == [Severity.WARNING]
    assert codes(run(fleet(cluster(workloads=[deploy("web", 2)]))), "unreplicated-pod") == []


# ---------------------------------------------------------------------------------------------
# capacity


def _cap(fl: Fleet, pol: UpgradePolicy = DEFAULT_POLICY) -> list[Finding]:
    return [f for f in run(fl, pol) if f.code.startswith("capacity-")]


def test_capacity_fits() -> None:
    # 3 nodes of 4 CPU, one 1-CPU pod each: draining one leaves 3 CPU free on each of the others.
    assert _cap(fleet(cluster(workloads=[deploy(replicas=3, requests={"cpu": "1"})]))) == []


def test_capacity_shortfall_names_the_pods_that_do_not_fit() -> None:
    # 3 nodes of 2 CPU, 6 pods of 1 CPU: every node is full, draining w1 strands web-0 and web-3.
    fl = fleet(cluster(pools=[pool("workers", [node(f"w{i}", cpu="2") for i in (1, 2, 3)])],
                       workloads=[deploy(replicas=6, requests={"cpu": "1", "memory": "1Gi"})]))
    found = _cap(fl)
    assert len(found) == 1
    f = found[0]
    assert (f.code, f.severity) == ("capacity-shortfall", Severity.BLOCKING)
    assert f.objects == ("shop/web-0", "shop/web-3", "w1")
    assert "shop/web-0" in f.message
    assert "shop/web-3" in f.message
    assert "2 CPU" in f.message
    assert "2Gi" in f.message
    assert "2 pod slot" in f.message
    assert "maxSurge" in f.fix


def test_capacity_memory_and_pod_slots_count() -> None:
    mem = fleet(cluster(pools=[pool("workers", [node(f"w{i}", memory="4Gi") for i in (1, 2)])],
                        workloads=[deploy(replicas=2, requests={"memory": "3Gi"})]))
    assert [f.objects for f in _cap(mem)] == [("shop/web-0", "w1")]
    slots = fleet(cluster(pools=[pool("workers", [node(f"w{i}", pods=1) for i in (1, 2)])],
                          workloads=[deploy(replicas=2)]))
    assert [f.objects for f in _cap(slots)] == [("shop/web-0", "w1")]


def test_capacity_picks_the_busiest_nodes() -> None:
    # w2 carries the big pod: draining it is the worst case, and the big pod fits nowhere.
    fl = fleet(cluster(pools=[pool("workers", [node(f"w{i}", cpu="4") for i in (1, 2, 3)])],
                       workloads=[deploy("small", 2, requests={"cpu": "1"}, nodes=["w1", "w3"]),
                                  deploy("big", 1, requests={"cpu": "3500m"}, nodes=["w2"])]))
    found = _cap(fl)
    assert [f.objects for f in found] == [("shop/big-0", "w2")]
    assert "3500m CPU" in found[0].message


def test_capacity_percentages_round_down() -> None:
    # Each of 3 nodes (4 CPU) runs one 2-CPU pod. maxUnavailable rounds down as in Kubernetes:
    # 66% of 3 = 1.98 → 1 node: the pod fits on a neighbour. 67% of 3 = 2.01 → 2 nodes: two pods
    # need 4 CPU, one node offers 2.
    fl = fleet(cluster(workloads=[deploy(replicas=3, requests={"cpu": "2"})]))
    assert _cap(fl, policy(maxUnavailable="66%")) == []
    found = _cap(fl, policy(maxUnavailable="67%"))
    assert len(found) == 1

def test_replace_with_surge_makes_it_fit() -> None:
    # 3 nodes, each full with two 1-CPU pods and a 100m DaemonSet pod.
    nodes = [node(f"w{i}", cpu="2100m") for i in (1, 2, 3)]
    full = fleet(cluster(pools=[pool("workers", nodes)],
                         workloads=[deploy(replicas=6, requests={"cpu": "1"}),
                                    deploy("agent", kind="DaemonSet",
                                           requests={"cpu": "100m"})]))
    assert len(_cap(full)) == 1
    assert _cap(full, policy(strategy="replace", maxSurge=1, maxUnavailable=0)) == []
    # A surge node of the same size still carries the DaemonSet pod: 1 surge for 2 drained
    # nodes' worth of pods is not enough.
    assert len(_cap(full, policy(strategy="replace", maxSurge=1, maxUnavailable=2))) == 1


def test_capacity_respects_node_pool_and_control_plane() -> None:
    pools = [pool("cp", [node("m1", cpu="64")], controlPlane=True),
             pool("a", [node("a1", cpu="2"), node("a2", cpu="2")]),
             pool("b", [node("b1", cpu="8")])]
    pinned = fleet(cluster(pools=pools, workloads=[
        deploy(replicas=4, requests={"cpu": "1"}, nodePool="a")]))
    found = _cap(pinned)
    assert [f.objects for f in found] == [("shop/web-0", "shop/web-2", "a1")]
    # Unpinned pods may go to pool b (never to the control-plane pool).
    free = fleet(cluster(pools=pools, workloads=[
        deploy(replicas=4, requests={"cpu": "1"}, nodes=["a1", "a1", "a2", "a2"])]))
    assert _cap(free) == []
    only_cp = fleet(cluster(pools=[pools[0], pools[1]], workloads=[
        deploy(replicas=4, requests={"cpu": "1"}, nodes=["a1", "a1", "a2", "a2"])]))
    assert len(_cap(only_cp)) == 1


def test_capacity_pinned_and_free_pods_from_one_node() -> None:
    # a1 is drained: api (any pool) goes to a2 first (name order), then batch (pool a only)
    # still finds room on a2; b1 must be seen as pool b, never as a target for batch.
    pools = [pool("a", [node("a1", cpu="4"), node("a2", cpu="4")]),
             pool("b", [node("b1", cpu="16")])]
    ok = fleet(cluster(pools=pools, workloads=[
        deploy("api", 1, requests={"cpu": "2"}, nodes=["a1"]),
        deploy("batch", 1, requests={"cpu": "1"}, nodePool="a", nodes=["a1"])]))
    assert _cap(ok) == []
    short = fleet(cluster(pools=pools, workloads=[
        deploy("api", 1, requests={"cpu": "3"}, nodes=["a1"]),
        deploy("batch", 1, requests={"cpu": "2"}, nodePool="a", nodes=["a1"])]))
    assert [f.objects for f in _cap(short)] == [("shop/batch-0", "a1")]


def test_capacity_cordoned_nodes_are_not_targets() -> None:
    fl = fleet(cluster(pools=[pool("workers", [node("w1", cpu="2"), node("w2", cpu="8",
                                                                          unschedulable=True)])],
                       workloads=[deploy(replicas=2, requests={"cpu": "1"}, nodes=["w1", "w1"])]))
    assert [f.objects for f in _cap(fl)] == [("shop/web-0", "shop/web-1", "w1")]


def test_capacity_unknown_nodes_are_unlimited_and_reported() -> None:
    fl = fleet(cluster(pools=[pool("workers", [node("w1", cpu=None, memory=None, pods=None),
                                               node("w2", cpu="1")])],
                       workloads=[deploy(replicas=2, requests={"cpu": "1"},
                                         nodes=["w2", "w2"])]))
    found = _cap(fl)
    assert [(f.code, f.severity, f.objects) for f in found] == [
        ("capacity-unknown", Severity.INFO, ("w1",))]


def test_capacity_falls_back_to_capacity_field() -> None:
    n1 = node("w1", cpu=None, memory=None, pods=None, capacity={"cpu": "1"})
    fl = fleet(cluster(pools=[pool("workers", [n1, node("w2", cpu="4")])],
                       workloads=[deploy(replicas=2, requests={"cpu": "1"},
                                         nodes=["w2", "w2"])]))
    found = _cap(fl)
    assert [f.objects for f in found] == [("shop/web-1", "w2")]


def test_check_capacity_runs_alone() -> None:
    c = fleet(cluster(workloads=[deploy(replicas=3, requests={"cpu": "1"})])).spec.clusters[0]
    assert check_capacity(ClusterContext(c, DEFAULT_POLICY, CATALOG, NOW)) == []


# ---------------------------------------------------------------------------------------------
# first-fit-decreasing against a plain reference, and an exhaustive check on tiny inputs


def reference_ffd(items: list[Item], bins: list[Bin]) -> list[str | None]:
    tc = sum(i.cpu for i in items) or 1
    tm = sum(i.memory for i in items) or 1
    order = sorted(range(len(items)),
                   key=lambda k: (-(items[k].cpu / tc + items[k].memory / tm), items[k].name))
    free = [[b.cpu, b.memory, b.pods] for b in bins]
    out: list[str | None] = [None] * len(items)
    for k in order:
        it = items[k]
        for j, b in enumerate(bins):
            ok = b.pool == it.pool if it.pool is not None else not b.control_plane
            if ok and free[j][0] >= it.cpu and free[j][1] >= it.memory and free[j][2] >= 1:
                free[j][0] -= it.cpu
                free[j][1] -= it.memory
                free[j][2] -= 1
                out[k] = b.name
                break
    return out


def exhaustive_fits(items: list[Item], bins: list[Bin]) -> bool:
    for choice in itertools.product(range(len(bins)), repeat=len(items)):
        free = [[b.cpu, b.memory, b.pods] for b in bins]
        ok = True
        for it, j in zip(items, choice, strict=True):
            b = bins[j]
            if (b.pool != it.pool if it.pool is not None else b.control_plane):
                ok = False
                break
            free[j][0] -= it.cpu
            free[j][1] -= it.memory
            free[j][2] -= 1
            if min(free[j]) < 0:
                ok = False
                break
        if ok:
            return True
    return False


POOLS = st.sampled_from([None, "a", "b"])
item_st = st.builds(lambda c, m, p: (c * 250, m * 512, p), st.integers(0, 12),
                    st.integers(0, 8), POOLS)
bin_st = st.builds(lambda c, m, p, pool: (c * 500, m * 1024, p, pool), st.integers(0, 12),
                   st.integers(0, 8), st.integers(0, 4), st.sampled_from(["a", "b", "cp"]))


def _make(raw_items: list[Any], raw_bins: list[Any]) -> tuple[list[Item], list[Bin]]:
    items = [Item(f"p{i}", c, m, p) for i, (c, m, p) in enumerate(raw_items)]
    bins = [Bin(f"n{j}", pool, pool == "cp", c, m, p) for j, (c, m, p, pool) in
            enumerate(raw_bins)]
    return items, bins


@settings(max_examples=300, deadline=None)
@given(st.lists(item_st, max_size=12), st.lists(bin_st, max_size=8))
def test_first_fit_equals_reference(raw_items: list[Any], raw_bins: list[Any]) -> None:
    items, bins = _make(raw_items, raw_bins)
    expected = reference_ffd(items, copy.deepcopy(bins))
    got = first_fit_decreasing(items, iter(bins))
    assert [b.name if b is not None else None for b in got] == expected
    assert all(b.cpu >= 0 and b.memory >= 0 and b.pods >= 0 for b in bins)


@settings(max_examples=150, deadline=None)
@given(st.lists(item_st, max_size=5), st.lists(bin_st, min_size=1, max_size=4))
def test_first_fit_placement_is_feasible(raw_items: list[Any], raw_bins: list[Any]) -> None:
    items, bins = _make(raw_items, raw_bins)
    # First fit never claims a fit that does not exist (it places pods for real).
    if all(b is not None for b in first_fit_decreasing(items, iter(copy.deepcopy(bins)))):
        assert exhaustive_fits(items, bins)


# ---------------------------------------------------------------------------------------------
# versions: end-of-life, runtime support, known-bad, skew


def test_end_of_life_apiserver_and_kubelets() -> None:
    fl = fleet(cluster(apiserver="1.30.2", pools=[pool("workers", [
        node("w1", kubelet="1.30.2"), node("w2", kubelet="1.28.3", runtime="1.7.13")])]))
    found = codes(run(fl, now=datetime(2025, 7, 1, tzinfo=UTC)), "end-of-life")
    assert [f.objects for f in found] == [("cp-1", "w1"), ("w2",)]
    assert "1.28" in found[1].message
    assert "2024-10-28" in found[1].message
    assert "1.31 or newer" in found[0].fix
    assert all(f.severity is Severity.WARNING for f in found)
    # On the day of the end of life it is still supported.
    assert [f.objects for f in codes(run(fl, now=datetime(2025, 6, 28, 23, tzinfo=UTC)),
                                     "end-of-life")] == [("w2",)]


def test_end_of_life_containerd_line() -> None:
    fl = fleet(cluster(pools=[pool("workers", [node("w1", runtime="1.6.36"), node("w2")])]))
    found = codes(run(fl), "end-of-life")
    assert [f.objects for f in found] == [("w1",)]
    assert "containerd 1.6" in found[0].message
    assert "1.7" in found[0].fix
    assert codes(run(fleet(cluster())), "end-of-life") == []


def test_end_of_life_containerd_fix_suggests_only_a_line_that_supports_the_kubelet() -> None:
    # containerd 1.6 is past its end of life; 1.7 is supported but serves Kubernetes 1.29+
    fl = fleet(cluster(apiserver="1.29.4", pools=[pool("workers", [
        node("w1", kubelet="1.28.3", runtime="1.6.39"),
        node("w2", kubelet="1.29.4", runtime="1.6.39")])]))
    (found,) = [f for f in codes(run(fl), "end-of-life") if "containerd" in f.message]
    assert "containerd 1.6" in found.message and found.objects == ("w1", "w2")
    assert "Upgrade containerd to containerd 1.7 (1.7.28) on the nodes with kubelet 1.29," in (
        found.fix)
    assert ("No containerd line that is still supported supports kubelet 1.28 (they serve "
            "Kubernetes 1.29–1.33), so on w1 the kubelet must move first") in found.fix
    only_new = fleet(cluster(apiserver="1.29.4", pools=[pool("workers", [
        node("w2", kubelet="1.29.4", runtime="1.6.39")])]))
    (f2,) = [f for f in codes(run(only_new), "end-of-life") if "containerd" in f.message]
    assert f2.fix == ("Upgrade containerd to containerd 1.7 (1.7.28), one release line at a "
                      "time, draining each node.")


def test_end_of_life_fix_on_the_shipped_catalog_never_advises_an_unsupporting_line() -> None:
    """The issue's case: containerd 1.6 under kubelet 1.24 in late 2026, when 1.6 and 1.7 are
    past their end of life and 2.0 (the next line) does not support Kubernetes 1.24."""
    from pitstop.catalog import load_catalog

    cat = load_catalog()
    fl = fleet(cluster(apiserver="1.24.17", pools=[pool("workers", [
        node("w1", kubelet="1.24.17", runtime="1.6.39")])]))
    now = datetime(2026, 11, 26, tzinfo=UTC)
    found = [f for f in run_preflight(fl, DEFAULT_POLICY, cat, now)
             if f.code == "end-of-life" and "containerd" in f.message]
    assert len(found) == 1
    assert "containerd 2.0" not in found[0].fix, found[0].fix
    assert "the kubelet must move first" in found[0].fix


def test_known_bad_runtime_fix_names_no_patch_that_drops_the_kubelet() -> None:
    # containerd 2.2.0 is known-bad; its line's latest, 2.2.2, supports 1.31-1.33 only
    fl = fleet(cluster(apiserver="1.31.4", pools=[pool("workers", [
        node("w1", kubelet="1.30.2", runtime="2.2.0")])]))
    (found,) = codes(run(fl), "known-bad-running")
    assert "such as 2.2.2" not in found.fix
    assert "2.2.2, does not support kubelet 1.30" in found.fix


def test_runtime_unsupported_and_unknown() -> None:
    fl = fleet(cluster(pools=[pool("workers", [
        node("w1", runtime="1.7.13"),                 # 1.31 needs 1.7.20
        node("w2", runtime="1.7.24"),                 # fine
        node("w3", runtime="3.0.0"),                  # unknown line
        node("w4", runtime_name="cri-o", runtime="1.31.1"),
        node("w5", runtime_name="cri-o", runtime="1.30.4"),
    ])]))
    found = run(fl)
    bad = codes(found, "runtime-unsupported")
    assert [(f.objects, f.severity) for f in bad] == [
        (("w1",), Severity.WARNING), (("w5",), Severity.WARNING)]
    assert "1.7.20" in bad[0].fix
    unknown = codes(found, "runtime-unknown")
    assert [(f.objects, f.severity) for f in unknown] == [(("w3",), Severity.INFO)]
    # runtime-unsupported is not reported a second time as a skew violation
    assert codes(found, "skew-violation") == []


def test_known_bad_running() -> None:
    fl = fleet(cluster(etcd="3.5.1", pools=[pool("workers", [node("w1", runtime="2.2.0"),
                                                            node("w2")])]))
    found = codes(run(fl), "known-bad-running")
    assert [f.objects for f in found] == [("etcd-1", "etcd-2"), ("w1",)]
    assert "data inconsistency" in found[0].message
    assert "3.5.21" in found[0].fix
    assert "registry mirrors" in found[1].message
    assert "https://example.org/containerd-12612" in found[1].fix
    clean = fleet(cluster(etcd="3.5.3"))
    assert codes(run(clean), "known-bad-running") == []


def test_skew_violation() -> None:
    newer_kubelet = fleet(cluster(apiserver="1.31.2", pools=[pool("workers", [
        node("w1", kubelet="1.32.1")])]))
    found = codes(run(newer_kubelet), "skew-violation")
    assert [(f.severity, f.objects) for f in found] == [(Severity.BLOCKING, ("w1",))]
    assert "kubelet" in found[0].message
    assert found[0].fix
    assert codes(run(fleet(cluster())), "skew-violation") == []


def test_unsupported_etcd_is_a_warning_merged_over_members() -> None:
    report = run(fleet(cluster(etcd="3.4.20")))
    assert codes(report, "skew-violation") == []
    found = codes(report, "etcd-unsupported")
    assert [f.objects for f in found] == [("etcd-1", "etcd-2")]
    assert found[0].severity is Severity.WARNING and "etcd=" in found[0].fix


# ---------------------------------------------------------------------------------------------
# the whole run


def test_findings_sorted_blocking_first_then_cluster_and_code() -> None:
    fl = fleet(
        cluster(name="b", workloads=[deploy("api", 1), deploy("debug", 1, kind="Pod")]),
        cluster(name="a", workloads=[deploy("api", 1)], pdbs=[
            pdb(selector={"matchLabels": {"app": "api"}}, maxUnavailable=0)]),
    )
    found = run(fl)
    keys = [(f.severity, f.cluster, f.code) for f in found]
    assert keys == [
        (Severity.BLOCKING, "a", "pdb-blocks-drain"),
        (Severity.BLOCKING, "b", "unreplicated-pod"),
        (Severity.WARNING, "b", "single-replica-no-pdb"),
    ]
    assert all(f.source == "preflight" for f in found)


def test_shipped_catalog_smoke() -> None:
    from pitstop.catalog import load_catalog

    fl = fleet(cluster(workloads=[deploy(replicas=3, requests={"cpu": "500m"})],
                       pdbs=[pdb(maxUnavailable=0)]))
    found = run_preflight(fl, DEFAULT_POLICY, load_catalog(), NOW)
    assert [f.code for f in found if f.blocking] == ["pdb-blocks-drain"]


def test_many_nodes() -> None:
    """10,000 nodes: capacity is judged per pool without a shortfall (speed: bench/)."""

    def big(i: int) -> dict[str, Any]:
        return cluster(name=f"c{i}", pools=[
            pool("cp", [node("m1")], controlPlane=True),
            pool("workers", [node(f"w{j:04d}", cpu="8") for j in range(400)])],
            workloads=[deploy(replicas=60, requests={"cpu": "1", "memory": "1Gi"}),
                       deploy("agent", ns="kube-system", kind="DaemonSet",
                              requests={"cpu": "100m"})],
            pdbs=[pdb(maxUnavailable="10%")])
    fl = fleet(*(big(i) for i in range(25)))  # 10,000 nodes
    found = run(fl, policy(maxUnavailable="20%"))
    assert codes(found, "capacity-shortfall") == []


def test_healthy_fleet_has_no_findings() -> None:
    fl = fleet(cluster(workloads=[deploy(replicas=3, requests={"cpu": "500m"})],
                       pdbs=[pdb(maxUnavailable=1)], etcd="3.5.21"))
    assert run(fl) == []
