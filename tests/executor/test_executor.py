"""The executor on the twin: safety at every simulated event, faults, approvals, windows,
pause/abort, and the audit trail."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitstop.audit import verify
from pitstop.catalog import load_catalog
from pitstop.errors import RunRefused
from pitstop.executor.approvals import approve_step
from pitstop.executor.core import Executor, RunResult
from pitstop.executor.integrity import records
from pitstop.executor.nodes import CORDON_ANNOTATION
from pitstop.executor.run import create_run, open_run
from pitstop.model import FaultScenario, Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.twin import Twin

CAT = load_catalog()
START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
TARGET = {"kubernetes": "1.36.5", "containerd": "2.3.7"}


def fleet_doc(nodes: int = 6, workloads: list[dict[str, Any]] | None = None,
              pdbs: list[dict[str, Any]] | None = None, env: str = "staging") -> dict[str, Any]:
    return {"apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "t"},
            "spec": {"clusters": [{
                "name": "c1", "environment": env,
                "controlPlane": {
                    "apiServers": [{"name": f"cp-{i}", "version": "1.35.8"} for i in range(3)],
                    "controllerManager": {"version": "1.35.8"},
                    "scheduler": {"version": "1.35.8"},
                    "etcd": {"version": "3.6.6", "members": [{"name": "e0"}]}},
                "nodePools": [{"name": "p", "nodes": [
                    {"name": f"n{i}", "kubelet": "1.35.8",
                     "containerRuntime": {"name": "containerd", "version": "2.2.9"},
                     "allocatable": {"cpu": "8", "memory": "32Gi", "pods": 110}}
                    for i in range(nodes)]}],
                "workloads": workloads if workloads is not None else [
                    {"kind": "Deployment", "name": "web", "namespace": "a", "replicas": 4,
                     "labels": {"app": "web"}, "requests": {"cpu": "500m"}}],
                "podDisruptionBudgets": pdbs if pdbs is not None else [
                    {"name": "web", "namespace": "a", "maxUnavailable": 1,
                     "selector": {"matchLabels": {"app": "web"}}}]}]}}


def run_on_twin(tmp: Path, fleet_d: dict[str, Any], policy_spec: dict[str, Any] | None = None,
                faults: list[dict[str, Any]] | None = None, seed: int = 1,
                watch: list[Any] | None = None) -> tuple[RunResult, Twin, Any]:
    fleet = Fleet.model_validate(fleet_d)
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"},
                                           "spec": policy_spec or {}})
    target = UpgradeTarget.model_validate({"spec": {"versions": TARGET}})
    plan = make_plan(fleet, target, policy, CAT, now=START)
    assert plan.steps, plan.findings
    run = create_run(tmp, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": seed})
    fs = FaultScenario.model_validate({"metadata": {"name": "f"},
                                       "spec": {"faults": faults}}) if faults else None
    twin = Twin.create(fleet, seed=seed, state_path=run.path / "twin.sqlite", faults=fs,
                       start=START.timestamp())
    if watch is not None:
        twin.subscribe(lambda: watch.extend(twin.check_invariants()))
    return Executor(run, twin).execute(), twin, run


def _nodes(twin: Twin) -> dict[str, Any]:
    return {n.name: n for n in twin.observe("c1").nodes}


def test_clean_run_completes_safely_and_audits(tmp_path: Path) -> None:
    seen: list[Any] = []
    result, twin, run = run_on_twin(tmp_path, fleet_doc(), watch=seen)
    assert result.status == "completed", result.reason
    assert not seen, seen[:3]
    for n in _nodes(twin).values():
        assert (n.kubelet, n.runtime_version, n.ready, n.unschedulable) == (
            "1.36.5", "2.3.7", True, False)
        assert CORDON_ANNOTATION not in n.annotations
    assert verify(run.path / "audit.jsonl").ok
    assert {s.status for s in run.journal.steps()} == {"done"}


def test_pdb_that_never_allows_pauses_with_the_blocker_named(tmp_path: Path) -> None:
    result, twin, _run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"pools": [{"drainTimeout": "10m"}]},
        faults=[{"type": "pdbNeverAllows", "pdb": "a/web"}])
    assert result.status == "paused"
    assert "a/web" in result.reason and "stays cordoned" in result.reason
    cordoned = [n for n in _nodes(twin).values() if n.unschedulable]
    assert len(cordoned) == 1
    assert "paused" in cordoned[0].annotations[CORDON_ANNOTATION]
    assert not twin.check_invariants()


def test_canary_breach_rolls_the_wave_back(tmp_path: Path) -> None:
    result, twin, _ = run_on_twin(
        tmp_path, fleet_doc(),
        faults=[{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.3}])
    assert result.status == "rolled-back", result.reason
    assert "canary-analysis" in result.reason and "Failed" in result.reason
    nodes = _nodes(twin)
    # the canary node went back to its last known-good versions; no other node was touched
    assert {(n.kubelet, n.runtime_version) for n in nodes.values()} == {("1.35.8", "2.2.9")}
    assert not any(n.unschedulable for n in nodes.values())


def test_runtime_upgrade_failure_rolls_back(tmp_path: Path) -> None:
    result, twin, _ = run_on_twin(
        tmp_path, fleet_doc(),
        faults=[{"type": "runtimeUpgradeFails", "nodes": ["n1"]}])
    assert result.status == "rolled-back", result.reason
    assert "n1" in result.reason and "failed" in result.reason
    assert all(not n.unschedulable for n in _nodes(twin).values())


def test_approval_pauses_then_resumes(tmp_path: Path) -> None:
    policy = {"approvals": [{"environment": "production", "required": 2,
                             "approvers": ["alice", "bob"]}]}
    result, twin, run = run_on_twin(tmp_path, fleet_doc(env="production"), policy_spec=policy)
    assert result.status == "paused" and "2 approval(s)" in result.reason
    first = run.plan.steps[0].id
    with pytest.raises(RunRefused, match="alice, bob"):  # not an allowed approver: refused
        approve_step(run, first, "mallory")
    assert run.journal.approvals(first) == []
    approve_step(run, first, "alice")
    again = Executor(run, twin).execute()
    assert again.status == "paused" and "has 1: alice" in again.reason
    approve_step(run, first, "bob")
    assert Executor(run, twin).execute().status == "completed"


def test_approvals_count_only_with_their_audit_record(tmp_path: Path) -> None:
    """Approvals written into the journal by hand (no audit record, or another record's seq)
    do not count: the step stays paused, and the pause names them as not counted."""
    policy = {"approvals": [{"environment": "production", "required": 2,
                             "approvers": ["alice", "bob"]}]}
    result, twin, run = run_on_twin(tmp_path, fleet_doc(env="production"), policy_spec=policy)
    assert result.status == "paused"
    first = run.plan.steps[0].id
    start = next(r for r in records(run) if r["action"] == "run-start")
    run.journal.approve(first, "alice", 0.0, 0, "")
    run.journal.approve(first, "bob", 0.0, int(start["seq"]), str(start["hash"]))
    again = Executor(run, twin).execute()
    assert again.status == "paused", again.reason
    assert "has 0" in again.reason and "not counted: alice, bob" in again.reason
    assert all(s.status != "done" for s in run.journal.steps())


def test_no_step_starts_outside_the_window(tmp_path: Path) -> None:
    policy = {"maintenanceWindows": [{"name": "nights", "start": "22:00", "duration": "3h",
                                      "timeZone": "Europe/Berlin"}]}
    result, _, run = run_on_twin(tmp_path, fleet_doc(), policy_spec=policy)
    assert result.status == "completed"
    for s in run.journal.steps():
        t = datetime.fromtimestamp(s.started, UTC)
        local = t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        assert local.hour >= 22 or local.hour < 1, (s.step_id, local)


def test_pause_request_is_honoured_and_resume_finishes(tmp_path: Path) -> None:
    fleet = Fleet.model_validate(fleet_doc())
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    run = create_run(tmp_path, plan, policy, {"c1": {}}, {"kind": "twin"})
    twin = Twin.create(fleet, seed=2, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    run.journal.set("request", "pause")
    run.journal.set("request_reason", "change freeze called")
    # a pause requested before the run started is cleared by starting it: ask mid-run instead
    ex = Executor(run, twin)
    calls = {"n": 0}

    def ask_pause() -> None:
        calls["n"] += 1
        if calls["n"] == 40:
            run.journal.set("request", "pause")
    run.journal.set("request", "")
    twin.subscribe(ask_pause)
    r = ex.execute()
    assert r.status == "paused" and "change freeze called" in r.reason
    assert Executor(run, twin).execute().status == "completed"


def test_abort_is_final(tmp_path: Path) -> None:
    result, twin, run = run_on_twin(tmp_path, fleet_doc(), policy_spec={
        "approvals": [{"environment": "staging"}]})
    assert result.status == "paused"
    run.journal.set("request", "abort")
    run.journal.set("request_reason", "wrong target")
    r = Executor(run, twin).execute()
    assert r.status == "aborted" and r.reason == "wrong target"
    assert Executor(run, twin).execute().status == "aborted"


FAULTS = st.sampled_from([
    None,
    [{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.5}],
    [{"type": "runtimeUpgradeFails", "pool": "p", "count": 1}],
    [{"type": "nodeNeverReady", "pool": "p", "count": 1}],
    [{"type": "pdbNeverAllows", "pdb": "a/w0"}],
])


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], Any, int]:
    nodes = draw(st.integers(3, 7))
    workloads, pdbs = [], []
    for i in range(draw(st.integers(1, 3))):
        replicas = draw(st.integers(2, 5))
        kind = draw(st.sampled_from(["Deployment", "StatefulSet"]))
        workloads.append({"kind": kind, "name": f"w{i}", "namespace": "a",
                          "replicas": replicas, "labels": {"app": f"w{i}"},
                          "requests": {"cpu": draw(st.sampled_from(["250m", "1", "2"]))}})
        if draw(st.booleans()):
            budget = (({"maxUnavailable": draw(st.integers(1, replicas - 1))})
                      if draw(st.booleans()) else
                      {"minAvailable": draw(st.integers(1, replicas - 1))})
            pdbs.append({"name": f"w{i}", "namespace": "a", **budget,
                         "selector": {"matchLabels": {"app": f"w{i}"}}})
    if draw(st.booleans()):
        workloads.append({"kind": "DaemonSet", "name": "agent", "namespace": "kube-system",
                          "labels": {"app": "agent"}, "requests": {"cpu": "100m"}})
    pool = {"strategy": draw(st.sampled_from(["in-place", "replace"])),
            "maxUnavailable": draw(st.integers(1, 3)), "maxSurge": 1,
            "canaryNodes": draw(st.integers(0, 1)), "drainTimeout": "20m"}
    faults = draw(FAULTS)
    if faults and faults[0]["type"] == "pdbNeverAllows" and not any(
            p["name"] == "w0" for p in pdbs):
        faults = None
    return (fleet_doc(nodes, workloads, pdbs), {"pools": [pool]}, faults,
            draw(st.integers(1, 1000)))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario())
def test_safety_invariant_at_every_event(tmp_path_factory: Any,
                                         case: tuple[dict[str, Any], dict[str, Any], Any, int]
                                         ) -> None:
    fleet_d, policy_spec, faults, seed = case
    tmp = tmp_path_factory.mktemp("run")
    seen: list[Any] = []
    result, twin, run = run_on_twin(tmp, fleet_d, policy_spec, faults, seed, watch=seen)
    # no workload ever below its PDB minimum (no policy here allows force)
    assert not seen, seen[:3]
    nodes = _nodes(twin)
    if result.status == "completed":
        assert faults is None or faults[0]["type"] != "pdbNeverAllows"
        for n in nodes.values():
            assert (n.kubelet, n.runtime_version, n.unschedulable) == ("1.36.5", "2.3.7",
                                                                       False)
    else:
        # never an unexplained half-done state: a reason, and every cordoned node says why
        assert result.status in ("paused", "rolled-back"), result
        assert result.reason
        for n in nodes.values():
            if n.unschedulable:
                assert CORDON_ANNOTATION in n.annotations, n
    assert verify(run.path / "audit.jsonl").ok


def test_custom_metric_gate_rolls_back(tmp_path: Path) -> None:
    gate = {"name": "error-budget", "metric": "error_rate", "condition": "result <= 0.01",
            "phases": ["nodes"], "interval": "30s", "count": 2}
    result, _twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"gates": [gate], "pools": [{"canaryNodes": 0}]},
        faults=[{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.05}])
    assert result.status == "rolled-back", result.reason
    assert "error-budget" in result.reason
    phases = {(g.gate, g.phase) for g in run.journal.gates()}
    assert ("error-budget", "Failed") in phases


def test_custom_gate_on_a_missing_metric_is_an_error_not_a_failure(tmp_path: Path) -> None:
    gate = {"name": "p99", "metric": "latency_p99_ms", "condition": "result < 500",
            "phases": ["control-plane"], "count": 1}
    result, _, run = run_on_twin(tmp_path, fleet_doc(), policy_spec={"gates": [gate]})
    assert result.status == "rolled-back"
    assert ("p99", "Error") in {(g.gate, g.phase) for g in run.journal.gates()}


def test_replace_strategy_surges_new_nodes_and_removes_old(tmp_path: Path) -> None:
    seen: list[Any] = []
    result, twin, _run = run_on_twin(
        tmp_path, fleet_doc(nodes=4),
        policy_spec={"pools": [{"strategy": "replace", "maxSurge": 2, "maxUnavailable": 0}]},
        watch=seen)
    assert result.status == "completed", result.reason
    assert not seen
    nodes = _nodes(twin)
    assert len(nodes) == 4 and not {"n0", "n1", "n2", "n3"} & set(nodes)
    assert all(n.kubelet == "1.36.5" and n.runtime_version == "2.3.7" and n.ready
               and not n.unschedulable for n in nodes.values())
    starts = [e for e in twin.events(source="call") if e.kind == "start" and e.destructive]
    assert sum(1 for e in starts if "/add" in e.subject) == 4
    assert sum(1 for e in starts if "/remove" in e.subject) == 4
    pods = twin.observe("c1").pods
    assert all(p.node in nodes for p in pods if p.phase == "Running")


def test_replace_strategy_rolls_back_on_the_replacements(tmp_path: Path) -> None:
    result, twin, _ = run_on_twin(
        tmp_path, fleet_doc(nodes=4),
        policy_spec={"pools": [{"strategy": "replace", "maxSurge": 1, "maxUnavailable": 0}]},
        faults=[{"type": "canaryErrorRate", "cluster": "c1", "errorRate": 0.4}])
    assert result.status == "rolled-back", result.reason
    assert {(n.kubelet, n.runtime_version) for n in _nodes(twin).values()} == {
        ("1.35.8", "2.2.9")}


def test_force_only_when_the_policy_allows_and_only_after_the_timeout(tmp_path: Path) -> None:
    result, _twin, run = run_on_twin(
        tmp_path, fleet_doc(),
        policy_spec={"pools": [{"drainTimeout": "10m", "forceAfterDrainTimeout": True}]},
        faults=[{"type": "pdbNeverAllows", "pdb": "a/web"}])
    assert result.status == "completed", result.reason
    forced = [a for a in run.journal.actions() if a.kind == "force"]
    assert forced and all(a.outcome == "forced" for a in forced)
    # each force came no earlier than the drain timeout after its node's cordon
    for f in forced:
        cordon = next(a for a in run.journal.actions(f.step_id)
                      if a.kind == "cordon" and a.target == f.target)
        assert f.intent_at - cordon.intent_at >= 600


def test_gate_timing_of_the_policy_sets_how_built_in_gates_measure(tmp_path: Path) -> None:
    def canary_measurements(sub: str, spec: dict[str, Any]) -> tuple[int, float]:
        result, _twin, run = run_on_twin(tmp_path / sub, fleet_doc(), policy_spec=spec)
        assert result.status == "completed", result.reason
        canary = next(s for s in run.plan.steps if s.canary)
        rec = next(r for r in run.journal.steps() if r.step_id == canary.id)
        n = sum(1 for g in run.journal.gates() if g.step_id == canary.id
                and g.gate == "canary-analysis")
        assert rec.started is not None and rec.finished is not None
        return n, rec.finished - rec.started

    default_n, default_s = canary_measurements("default", {})
    n, took = canary_measurements("timed", {"gateTiming": {
        "canary": {"interval": "PT10S", "count": 2}}})
    assert (default_n, n) == (3, 2)
    assert took < default_s  # two measurements 10 s apart: done sooner than three


def test_gate_timing_names_a_built_in_gate_or_is_refused() -> None:
    from pitstop.config import load_documents
    from pitstop.errors import ConfigError

    text = ("apiVersion: pitstop.dev/v1alpha1\nkind: UpgradePolicy\nmetadata: {name: p}\n"
            "spec:\n  gateTiming:\n    canry: {count: 2}\n")
    try:
        load_documents(text, "policy.yaml")
    except ConfigError as exc:
        msg = str(exc)
    else:
        raise AssertionError("a misspelt gate kind was accepted")
    assert "policy.yaml:6" in msg and "gateTiming" in msg and "canary" in msg, msg


def test_a_pause_during_a_wave_soak_keeps_the_rest_of_the_soak(tmp_path: Path) -> None:
    # two waves (staging, then production) with a 2 h soak after staging; a pause asked
    # while the soak runs; after resume the production wave starts no earlier than the soak's
    # end (the soak is not cut short by the pause, nor started again from zero)
    doc = fleet_doc()
    prod = copy.deepcopy(doc["spec"]["clusters"][0])
    prod["name"], prod["environment"] = "c2", "production"
    for n in prod["nodePools"][0]["nodes"]:
        n["name"] = f"c2-{n['name']}"
    doc["spec"]["clusters"].append(prod)
    fleet = Fleet.model_validate(doc)
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {"waves": [
        {"name": "stg", "clusters": {"matchLabels": {"environment": "staging"}},
         "soak": "2h"},
        {"name": "prod", "clusters": {"matchLabels": {"environment": "production"}}}]}})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    run = create_run(tmp_path, plan, policy, {c.name: c.full_labels for c in
                                              fleet.spec.clusters}, {"kind": "twin"})
    twin = Twin.create(fleet, seed=2, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    ex = Executor(run, twin)

    def pause_in_soak(action: str, info: dict[str, Any]) -> None:
        if action == "wave-soak":
            run.journal.set("request", "pause")

    ex.on_event = pause_in_soak
    r = ex.execute()
    assert r.status == "paused", r.reason
    stg_end = max(s.finished for s in run.journal.steps()
                  if s.step_id.startswith("c1/") and s.finished is not None)
    assert not any(s.started for s in run.journal.steps() if s.step_id.startswith("c2/"))
    twin.clock.sleep(600)  # ten minutes pass while paused
    done = Executor(open_run(run.path), twin).execute()
    assert done.status == "completed", done.reason
    prod_start = min(s.started for s in run.journal.steps()
                     if s.step_id.startswith("c2/") and s.started is not None)
    assert prod_start >= stg_end + 2 * 3600, (prod_start - stg_end) / 3600
    assert prod_start < stg_end + 2 * 3600 + 600 + 120, (prod_start - stg_end) / 3600
