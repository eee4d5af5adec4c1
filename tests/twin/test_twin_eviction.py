"""The twin's eviction API: the answers of pkg/registry/core/pod/storage/eviction.go."""

from __future__ import annotations

from pathlib import Path

from pitstop.backend import EvictionResult, UpgradeComponent
from tests.twin.twinlib import C, fleet, node, pdb, pod, pods_of, twin, workload


def _web(tmp_path: Path, replicas: int = 3, **budget: object):
    f = fleet(workloads=[workload("web", replicas)], pdbs=[pdb("web", "web", **budget)])
    return twin(tmp_path, f)


def test_201_then_429_when_the_budget_is_spent_then_201_once_a_replacement_is_ready(
        tmp_path: Path) -> None:
    t = _web(tmp_path, maxUnavailable=1)
    obs = t.observe(C)
    a, b, _ = pods_of(obs, "web")
    assert obs.pdbs[0].disruptions_allowed == 1

    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED
    after = t.observe(C)
    assert pod(after, a.name).deleting
    assert after.pdbs[0].disruptions_allowed == 0
    assert t.evict(C, "default", b.name, b.uid) is EvictionResult.BUDGET_EXHAUSTED
    assert not pod(t.observe(C), b.name).deleting

    t.clock.sleep(60)  # replacement started (≤ 40 s) and the old pod terminated (≤ 30 s)
    assert t.observe(C).pdbs[0].disruptions_allowed == 1
    assert t.evict(C, "default", b.name, b.uid) is EvictionResult.EVICTED


def test_404_for_an_unknown_pod_or_a_replaced_uid(tmp_path: Path) -> None:
    t = _web(tmp_path, maxUnavailable=1)
    a = pods_of(t.observe(C), "web")[0]
    assert t.evict(C, "default", "no-such-pod", a.uid) is EvictionResult.GONE
    assert t.evict(C, "default", a.name, "another-uid") is EvictionResult.GONE
    assert not pod(t.observe(C), a.name).deleting


def test_500_when_two_budgets_select_the_pod(tmp_path: Path) -> None:
    f = fleet(workloads=[workload("web", 3)],
              pdbs=[pdb("one", "web", maxUnavailable=1), pdb("two", "web", maxUnavailable=2)])
    t = twin(tmp_path, f)
    a = pods_of(t.observe(C), "web")[0]
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.MULTIPLE_PDBS
    assert not pod(t.observe(C), a.name).deleting


def test_a_pod_without_budget_is_evicted(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(workloads=[workload("web", 1)]))
    a = pods_of(t.observe(C), "web")[0]
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED


def test_429_while_the_budget_status_lags_its_generation(tmp_path: Path) -> None:
    t = _web(tmp_path, maxUnavailable=1)
    a = pods_of(t.observe(C), "web")[0]
    t.edit_pdb(C, "default", "web", max_unavailable=2)
    status = t.observe(C).pdbs[0]
    assert status.observed_generation < status.generation
    assert status.disruptions_allowed == 2  # the budget would allow it…
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.BUDGET_EXHAUSTED  # …not yet
    t.clock.sleep(t.world.timings.pdb_sync[1])
    status = t.observe(C).pdbs[0]
    assert status.observed_generation == status.generation == 2
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED


def test_pending_pods_are_deleted_without_a_budget_check(tmp_path: Path) -> None:
    # Two nodes of 1 CPU; three 800m replicas: the third never fits and stays Pending.
    f = fleet([node("n0", cpu="1"), node("n1", cpu="1")], [workload("web", 3, cpu="800m")],
              [pdb("web", "web", maxUnavailable=0)])
    t = twin(tmp_path, f)
    web = pods_of(t.observe(C), "web")
    running = [p for p in web if p.phase == "Running"]
    pending = [p for p in web if p.phase == "Pending"]
    assert len(running) == 2 and len(pending) == 1 and pending[0].node is None
    assert t.evict(C, "default", running[0].name, running[0].uid) is \
        EvictionResult.BUDGET_EXHAUSTED
    assert t.evict(C, "default", pending[0].name, pending[0].uid) is EvictionResult.EVICTED


def test_a_deleting_pod_is_evicted_again_without_a_budget_check_and_logged_as_no_change(
        tmp_path: Path) -> None:
    t = _web(tmp_path, maxUnavailable=1)
    a = pods_of(t.observe(C), "web")[0]
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED
    evictions = [e for e in t.events(source="call") if e.kind == "evict"]
    assert [e.destructive for e in evictions] == [True, False]


def _unready_first_pod(tmp_path: Path, policy: str, min_available: int):
    f = fleet(workloads=[workload("web", 3)],
              pdbs=[pdb("web", "web", minAvailable=min_available,
                        unhealthyPodEvictionPolicy=policy)])
    t = twin(tmp_path, f)
    a = pods_of(t.observe(C), "web")[0]
    t.start(C, "k", UpgradeComponent(a.node or "", "kubelet", "1.34.3"))  # its node restarts
    assert not pod(t.observe(C), a.name).ready
    return t, a


def test_an_unready_pod_may_go_while_the_budget_is_healthy(tmp_path: Path) -> None:
    t, a = _unready_first_pod(tmp_path, "IfHealthyBudget", 2)
    status = t.observe(C).pdbs[0]
    assert (status.current_healthy, status.desired_healthy, status.disruptions_allowed) == (2, 2,
                                                                                            0)
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED


def test_an_unready_pod_waits_when_the_budget_is_unhealthy_unless_always_allow(
        tmp_path: Path) -> None:
    t, a = _unready_first_pod(tmp_path / "a", "IfHealthyBudget", 3)
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.BUDGET_EXHAUSTED
    t, a = _unready_first_pod(tmp_path / "b", "AlwaysAllow", 3)
    assert t.evict(C, "default", a.name, a.uid) is EvictionResult.EVICTED


def test_budget_status_rounds_percentages_up_like_the_disruption_controller(
        tmp_path: Path) -> None:
    f = fleet(workloads=[workload("a", 3), workload("b", 3), workload("c", 3)],
              pdbs=[pdb("a", "a", minAvailable="50%"), pdb("b", "b", maxUnavailable="50%"),
                    pdb("c", "c", minAvailable=1)])
    t = twin(tmp_path, f)
    status = {p.name: (p.expected_pods, p.desired_healthy, p.disruptions_allowed)
              for p in t.observe(C).pdbs}
    # minAvailable 50% of 3 → 2 needed; maxUnavailable 50% of 3 → 2 may go, 1 needed.
    assert status == {"a": (3, 2, 1), "b": (3, 1, 2), "c": (3, 1, 2)}


def test_a_match_expressions_budget_is_seen_and_kept(tmp_path: Path) -> None:
    """matchExpressions select for the twin's disruption controller and in its observation
    alike: the budget covers the web pods (and not the api pods), and holds them."""
    budget = pdb("web-expr", "web", maxUnavailable=1)
    budget["selector"] = {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web"]},
        {"key": "canary", "operator": "DoesNotExist"}]}
    t = twin(tmp_path, fleet(workloads=[workload("web", 3), workload("api", 2)],
                             pdbs=[budget]))
    obs = t.observe(C)
    (b,) = obs.pdbs
    web, api = pods_of(obs, "web"), pods_of(obs, "api")
    assert all(b.selects(p.namespace, p.labels) for p in web)
    assert not any(b.selects(p.namespace, p.labels) for p in api)
    assert b.expected_pods == 3 and b.disruptions_allowed == 1
    assert t.evict(C, "default", web[0].name, web[0].uid) is EvictionResult.EVICTED
    assert t.evict(C, "default", web[1].name, web[1].uid) is EvictionResult.BUDGET_EXHAUSTED
    assert t.evict(C, "default", api[0].name, api[0].uid) is EvictionResult.EVICTED
