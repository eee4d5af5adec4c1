"""Drain stalls in the run report: the drains that waited on a PodDisruptionBudget, taken from
the journal of a rehearsal on the twin and checked against the twin's own event log."""

from __future__ import annotations

from pathlib import Path

from pitstop.cli.runs import describe_stalls, report_data
from pitstop.report import render_html
from pitstop.twin.timings import TwinTimings

from .test_executor import fleet_doc, run_on_twin


def test_a_drain_held_by_a_pdb_is_reported_with_its_pods_budget_and_duration(
        tmp_path: Path) -> None:
    # 4 web pods on 2 nodes, at most 1 unavailable: each drain evicts 2+ pods at once, the
    # budget takes one, the others wait until the replacement is Ready
    doc = fleet_doc(nodes=2, workloads=[
        {"kind": "Deployment", "name": "web", "namespace": "a", "replicas": 4,
         "labels": {"app": "web"}, "requests": {"cpu": "500m"}}])
    result, twin, run = run_on_twin(tmp_path, doc)
    assert result.status == "completed", result.reason
    data = report_data(run, twin, result, title="stalls")
    stalls = data["stalls"]
    assert {s["node"] for s in stalls} == {"n0", "n1"}, stalls
    startup_min = TwinTimings().pod_startup[0]
    calls = twin.events(source="call")
    for s in stalls:
        assert s["pdbs"] == ["a/web"], s
        assert s["pods"] and all(p.startswith("a/web-") for p in s["pods"]), s
        # a refused pod waits at least for a replacement to start (the twin's shortest
        # startup), and the stall ends when the twin accepted the last refused pod's eviction
        assert s["seconds"] >= startup_min, s
        accepted = [e.time for e in calls if e.kind == "evict" and e.destructive
                    and e.subject in s["pods"]]
        assert len(accepted) == len(s["pods"]), (s, accepted)
        assert abs(s["at"] + s["seconds"] - max(accepted)) < 1e-6, (s, accepted)
    assert stalls == sorted(stalls, key=lambda s: -s["seconds"])
    line = describe_stalls(stalls)
    assert line.startswith("2 drain(s) waited") and "a/web" in line and stalls[0]["node"] in line
    html = render_html(data)
    assert "Drain stalls (2)" in html and "a/web" in html


def test_no_stall_when_the_budget_never_refuses(tmp_path: Path) -> None:
    # one web pod per node and a budget of one: the executor admits a node only when the
    # budget can take its pods, so no eviction is refused
    doc = fleet_doc(nodes=4, workloads=[
        {"kind": "Deployment", "name": "web", "namespace": "a", "replicas": 2,
         "labels": {"app": "web"}, "requests": {"cpu": "500m"}}])
    result, twin, run = run_on_twin(tmp_path, doc)
    assert result.status == "completed", result.reason
    data = report_data(run, twin, result, title="no stalls")
    refused = [a for a in run.journal.actions() if a.kind == "evict"
               and a.outcome == "budget-exhausted"]
    assert data["stalls"] == [] and not refused
    assert describe_stalls(data["stalls"]) == "no drain waited on a PodDisruptionBudget"
