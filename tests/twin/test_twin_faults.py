"""Fault injection: each kind of fault in a FaultScenario, and the scenario file itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.backend import EvictionResult, OperationState, UpgradeComponent
from pitstop.config import load_documents
from pitstop.errors import ConfigError
from pitstop.model import KINDS, FaultScenario, NodeNeverReady, ProcessCrash
from pitstop.twin import SimulatedCrash, Twin
from tests.twin.twinlib import C, faults, fleet, node, pdb, pods_of, settle, twin, workload

SCENARIO = """\
apiVersion: pitstop.dev/v1alpha1
kind: FaultScenario
metadata:
  name: bad-day
spec:
  faults:
  - type: nodeNeverReady
    pool: general
    count: 1
  - type: processCrash
    at: 10m
  - type: processCrash
    afterCalls: 3
"""


def _upgrade(t: Twin, n: str, component: str = "kubelet", version: str = "1.34.3",
             key: str | None = None) -> str:
    op = t.start(C, key or f"{n}-{component}-{version}", UpgradeComponent(n, component, version))
    settle(t, 400)
    return op.key


def test_a_scenario_file_is_validated_like_every_config_object() -> None:
    (scenario,) = load_documents(SCENARIO, "bad-day.yaml")
    assert isinstance(scenario, FaultScenario)
    first, crash, _ = scenario.spec.faults
    assert isinstance(first, NodeNeverReady) and (first.pool, first.count) == ("general", 1)
    assert isinstance(crash, ProcessCrash) and crash.at is not None
    assert crash.at.total_seconds() == 600
    assert KINDS["FaultScenario"] is FaultScenario  # `pitstop schema` lists it
    with pytest.raises(ConfigError, match="exactly one of nodes and pool"):
        load_documents(SCENARIO.replace("    pool: general", "    pool: general\n"
                                        "    nodes: [n0]"), "bad.yaml")
    with pytest.raises(ConfigError, match="exactly one of at and afterCalls"):
        load_documents(SCENARIO.replace("    at: 10m", "    at: 10m\n    afterCalls: 1"),
                       "bad.yaml")
    with pytest.raises(ConfigError, match="type"):
        load_documents(SCENARIO.replace("nodeNeverReady", "nodeOnFire"), "bad.yaml")


def test_a_fault_naming_an_unknown_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cluster 'elsewhere'"):
        twin(tmp_path, fleet(), scenario=faults({"type": "pdbNeverAllows",
                                                 "cluster": "elsewhere", "pdb": "a/b"}))


def test_a_named_node_never_returns_ready_after_its_upgrade(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(), scenario=faults({"type": "nodeNeverReady", "nodes": ["n1"]}))
    _upgrade(t, "n0")
    key = _upgrade(t, "n1")
    assert t.poll(C, key).state is OperationState.SUCCEEDED  # the upgrade itself worked
    t.clock.sleep(3600)
    obs = t.observe(C)
    assert [(n.name, n.ready, n.kubelet) for n in obs.nodes] == [
        ("n0", True, "1.34.3"), ("n1", False, "1.34.3"), ("n2", True, "1.34.2")]
    assert t.health(C).metrics["nodes_not_ready"] == 1


def test_a_pool_fault_picks_the_first_nodes_upgraded(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(), scenario=faults(
        {"type": "nodeNeverReady", "pool": "general", "count": 1, "component": "kubelet"}))
    _upgrade(t, "n2", "containerd", "2.1.5")  # another component: not the trigger
    _upgrade(t, "n2")  # the first kubelet upgrade of the pool: picked
    _upgrade(t, "n0")
    ready = {n.name: n.ready for n in t.observe(C).nodes}
    assert ready == {"n0": True, "n1": True, "n2": False}


def test_a_runtime_upgrade_fails_on_the_named_node(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(), scenario=faults(
        {"type": "runtimeUpgradeFails", "nodes": ["n1"], "message": "dpkg: error"}))
    good = _upgrade(t, "n0", "containerd", "2.1.5")
    bad = _upgrade(t, "n1", "containerd", "2.1.5")
    assert t.poll(C, good).state is OperationState.SUCCEEDED
    failed = t.poll(C, bad)
    assert (failed.state, failed.message) == (OperationState.FAILED, "dpkg: error")
    nodes = {n.name: (n.ready, n.runtime_version) for n in t.observe(C).nodes}
    assert nodes["n0"] == (True, "2.1.5") and nodes["n1"] == (True, "2.1.4")


def test_apiserver_latency_rises_after_a_control_plane_step(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(apiservers=3), scenario=faults(
        {"type": "apiserverLatency", "component": "kube-apiserver", "afterSteps": 1,
         "latencyMs": 2500}))
    _upgrade(t, "cp-1", "kube-controller-manager", "1.34.3")  # not the counted component
    baseline = t.health(C).apiserver_latency_ms
    assert baseline is not None and baseline < 100
    _upgrade(t, "cp-1", "kube-apiserver", "1.34.3")
    assert t.health(C).apiserver_latency_ms == 2500


def test_the_canary_error_rate_rises_while_an_upgraded_node_runs(tmp_path: Path) -> None:
    f = fleet(pools={"general": [node("g0"), node("g1")], "batch": [node("b0")]})
    t = twin(tmp_path, f, scenario=faults(
        {"type": "canaryErrorRate", "pool": "general", "errorRate": 0.2}))
    metrics = t.health(C).metrics
    assert metrics["error_rate"] == metrics["error_rate_baseline"] == 0.002
    _upgrade(t, "b0")  # another pool: no effect
    assert t.health(C).metrics["error_rate"] == 0.002
    _upgrade(t, "g1")
    assert t.health(C).metrics["error_rate"] == 0.2
    _upgrade(t, "g1", version="1.34.2")  # rolled back
    assert t.health(C).metrics["error_rate"] == 0.002


def test_a_pdb_that_never_allows_disruption(tmp_path: Path) -> None:
    f = fleet(workloads=[workload("web", 3)], pdbs=[pdb("web", "web", maxUnavailable=1)])
    free = twin(tmp_path, f, name="free.db")
    stuck = twin(tmp_path, f, name="stuck.db", scenario=faults(
        {"type": "pdbNeverAllows", "pdb": "default/web"}))
    for t, answer in ((free, EvictionResult.EVICTED), (stuck, EvictionResult.BUDGET_EXHAUSTED)):
        obs = t.observe(C)
        assert obs.pdbs[0].disruptions_allowed == (1 if t is free else 0)
        p = pods_of(obs, "web")[0]
        assert t.evict(C, p.namespace, p.name, p.uid) is answer
    stuck.clock.sleep(3600)
    assert stuck.observe(C).pdbs[0].disruptions_allowed == 0


def test_the_process_dies_at_a_virtual_time_once_even_across_processes(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(), scenario=faults({"type": "processCrash", "at": "100s"}))
    t.clock.sleep(60)
    with pytest.raises(SimulatedCrash):
        t.clock.sleep(60)
    assert t.clock.now() == 100  # it died at 100 s, mid-sleep
    t.close()
    again = Twin.open(tmp_path / "twin.db")
    assert again.clock.now() == 100
    again.clock.sleep(600)  # fired already: no second crash
    assert [e.kind for e in again.events()].count("process-crash") == 1


def test_the_process_dies_on_the_call_after_the_nth_destructive_call(tmp_path: Path) -> None:
    t = twin(tmp_path, fleet(), scenario=faults({"type": "processCrash", "afterCalls": 2}))
    t.cordon(C, "n0", "x")
    t.cordon(C, "n0", "x")  # no change: not destructive
    t.observe(C)
    t.cordon(C, "n1", "x")
    with pytest.raises(SimulatedCrash):
        t.observe(C)  # any call, even a read
    t.close()
    again = Twin.open(tmp_path / "twin.db")
    again.observe(C)
    again.cordon(C, "n2", "x")
    assert [e.subject for e in again.events(destructive=True)] == ["n0", "n1", "n2"]
