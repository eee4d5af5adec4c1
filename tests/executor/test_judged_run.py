"""The canary judge in a rehearsal on the twin: the twin's series with a ``metricRegression``
on the canary nodes, the ``canary-judge`` gate after the canary node step (pass → proceed,
marginal → pause, fail → roll back), judged soaks (end early on a pass after ``min``, extend
while marginal up to ``max``, roll back on fail), and the judge's per-metric table in the HTML
report and the ``-o json`` result."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pitstop.cli.runs import report_data
from pitstop.executor.core import Executor
from pitstop.executor.judging import judgements, latest_judgements
from pitstop.model import UpgradePolicy
from pitstop.report.html import render_html

from .test_executor import TARGET, fleet_doc, run_on_twin

ALLOW = {"allowedIncrease": 0.10, "allowedDecrease": 0.10}


def _metrics(critical: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pod-startup-p99": {"direction": "increase", "effectSize": ALLOW},
        "kubelet-p99-latency": {"direction": "increase", "effectSize": ALLOW},
        "container-restarts": {"direction": "increase", "effectSize": ALLOW},
        "node-cpu-utilisation": {"direction": "either", "effectSize": ALLOW},
    }
    if critical is not None:
        out[critical]["critical"] = True
    return out


def _judge(critical: str | None = None, soak: dict[str, str] | None = None,
           metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"lookback": "2m",
                           "judge": {"metrics": metrics or _metrics(critical)}}
    if soak is not None:
        doc["soak"] = soak
    return doc


def _regression(signal: str, shift: float, after: str | None = None) -> dict[str, Any]:
    fault: dict[str, Any] = {"type": "metricRegression", "signal": signal, "shift": shift}
    if after is not None:
        fault["after"] = after
    return fault


def _canary_step(run: Any) -> str:
    return next(s.id for s in run.plan.steps if s.canary and str(s.phase) == "nodes")


def _audit(run: Any, action: str) -> list[dict[str, Any]]:
    lines = (run.path / "audit.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("action") == action]


class _JudgeTables(HTMLParser):
    """The rows of every ``table.judge`` of a page, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_table = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and "judge" in classes:
            self._in_table = True
        elif self._in_table and tag == "tr" and "judge-metric" in classes:
            self._row = []
        elif self._row is not None and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _report_rows(run: Any, twin: Any, result: Any) -> tuple[str, list[list[str]]]:
    page = render_html(report_data(run, twin, result, title="judged"))
    parser = _JudgeTables()
    parser.feed(page)
    return page, parser.rows


# -- the judge as the canary step's gate --------------------------------------------------------


def test_a_latency_regression_on_the_canary_fails_the_judge_and_rolls_back(
        tmp_path: Path) -> None:
    result, twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"canaryJudge": _judge("pod-startup-p99")},
        faults=[_regression("pod-startup-p99", 0.30)])
    assert result.status == "rolled-back", result.reason
    step = _canary_step(run)
    assert f"step {step}: canary-judge Failed" in result.reason, result.reason
    assert "critical metric pod-startup-p99 is High" in result.reason
    assert ("canary-judge", "Failed") in {(g.gate, g.phase) for g in run.journal.gates()}
    # the canary node is back at its old versions
    assert all(n.kubelet == "1.35.8" for n in twin.observe("c1").nodes)
    last = latest_judgements(run.journal)
    assert [(e["step"], e["judgement"]["verdict"]) for e in last] == [(step, "fail")]
    by_metric = {m["metric"]: m for m in last[0]["judgement"]["metrics"]}
    assert by_metric["pod-startup-p99"]["classification"] == "High"
    assert by_metric["pod-startup-p99"]["relativeChange"] > 0.10
    assert {m["classification"] for n, m in by_metric.items() if n != "pod-startup-p99"} == {
        "Pass"}
    # the HTML report carries the per-metric table
    page, rows = _report_rows(run, twin, result)
    assert 'id="judge"' in page
    table = {r[0]: r for r in rows}
    assert set(table) == set(_metrics())
    high = table["pod-startup-p99"]
    canary_n, baseline_n = (int(x) for x in high[2].split(" / "))
    assert (canary_n, baseline_n) == (by_metric["pod-startup-p99"]["canaryCount"],
                                      by_metric["pod-startup-p99"]["baselineCount"])
    assert canary_n > 0 and baseline_n > canary_n  # 1 canary node, 5 baseline nodes
    assert high[1] == "High" and ".." in high[6] and high[7].startswith("+")
    assert "pod-startup-p99: canary mean +" in high[8]
    assert float(high[4]) < 0.02  # p


def test_a_marginal_regression_pauses_with_the_judge_named(tmp_path: Path) -> None:
    # one of four equally weighted, non-critical metrics regresses: score 75 = marginal
    result, twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"canaryJudge": _judge("pod-startup-p99")},
        faults=[_regression("container-restarts", 0.30)])
    assert result.status == "paused", result.reason
    step = _canary_step(run)
    assert run.journal.step(step).status == "paused"
    assert result.reason.startswith(f"step {step}: gate inconclusive — canary-judge "
                                    "Inconclusive (judge marginal (pause): score 75"), result.reason
    last = latest_judgements(run.journal)
    assert last[0]["judgement"]["verdict"] == "marginal"
    assert last[0]["judgement"]["decision"] == "pause"
    assert {m["metric"]: m["classification"] for m in last[0]["judgement"]["metrics"]} == {
        "pod-startup-p99": "Pass", "kubelet-p99-latency": "Pass",
        "container-restarts": "High", "node-cpu-utilisation": "Pass"}
    # nothing rolled back: the canary stays upgraded, waiting for a person
    assert sorted(n.name for n in twin.observe("c1").nodes if n.kubelet == "1.36.5") == ["n0"]
    _, rows = _report_rows(run, twin, result)
    assert {r[0]: r[1] for r in rows}["container-restarts"] == "High"


def test_no_regression_passes_the_judge(tmp_path: Path) -> None:
    result, _, run = run_on_twin(tmp_path, fleet_doc(),
                                 policy_spec={"canaryJudge": _judge("pod-startup-p99")})
    assert result.status == "completed", result.reason
    last = latest_judgements(run.journal)
    assert [(e["step"], e["when"], e["judgement"]["verdict"]) for e in last] == [
        (_canary_step(run), "gate", "pass")]
    assert ("canary-judge", "Successful") in {(g.gate, g.phase) for g in run.journal.gates()}


def test_an_unknown_signal_is_an_error_not_a_failure(tmp_path: Path) -> None:
    metrics = {"no-such-signal": {"direction": "increase"}}
    result, _, run = run_on_twin(tmp_path, fleet_doc(),
                                 policy_spec={"canaryJudge": _judge(metrics=metrics)})
    phases = {(g.gate, g.phase) for g in run.journal.gates()}
    assert ("canary-judge", "Error") in phases and ("canary-judge", "Failed") not in phases
    assert "canary-judge Error" in result.reason, result.reason
    assert "the twin has no series for template 'no-such-signal'" in result.reason
    assert "pod-startup-p99" in result.reason  # the signals it knows are named
    assert latest_judgements(run.journal) == []  # no judgement was made


# -- judged soaks ------------------------------------------------------------------------------


def _soak_times(run: Any) -> list[tuple[float, str]]:
    return [(e["at"], e["judgement"]["verdict"]) for e in judgements(run.journal)
            if e["when"] == "soak"]


def test_a_judged_soak_ends_early_on_a_pass_once_its_minimum_passed(tmp_path: Path) -> None:
    soak = {"min": "5m", "max": "30m"}
    result, _, run = run_on_twin(tmp_path, fleet_doc(),
                                 policy_spec={"canaryJudge": _judge(soak=soak)})
    assert result.status == "completed", result.reason
    times = _soak_times(run)
    assert {v for _, v in times} == {"pass"}
    began, ended = times[0][0], times[-1][0]
    assert 300 <= ended - began < 1800  # at least min, well short of max
    assert ended - began < 300 + 60 + 1  # ended at the first judgement after min
    step = _canary_step(run)
    decided = [e for e in _audit(run, "soak-judged") if e["extra"].get("decision") == "proceed"]
    assert len(decided) == 1 and "soak ended early: canary judge pass" in decided[0]["reason"]
    assert "soak ended early" in run.journal.step(step).message


def test_a_judged_soak_extends_while_marginal_then_pauses_at_its_maximum(
        tmp_path: Path) -> None:
    # the regression begins 4 minutes after the canary's upgrade: the gate passes, the soak
    # turns marginal
    soak = {"min": "5m", "max": "15m"}
    result, twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"canaryJudge": _judge("pod-startup-p99", soak)},
        faults=[_regression("container-restarts", 0.30, after="4m")])
    assert result.status == "paused", result.reason
    step = _canary_step(run)
    assert result.reason.startswith(f"step {step}: canary judge marginal after 900s of soak "
                                    "(min 300s, max 900s)"), result.reason
    assert latest_judgements(run.journal)[0]["judgement"]["verdict"] == "marginal"
    times = _soak_times(run)
    assert times[0][1] == "pass" and times[-1][1] == "marginal"
    assert times[-1][0] - times[0][0] == pytest.approx(900, abs=1)
    extended = _audit(run, "soak-extended")
    assert extended and all("canary judge marginal" in e["reason"] for e in extended)
    assert run.journal.step(step).status == "paused"
    # resume: the step's work is not redone; its gates run again and judge the canary, now
    # marginal from the start, so the run pauses at the gate
    upgrades = [a for a in run.journal.actions(step) if a.kind == "upgrade"]
    again = Executor(run, twin).execute()
    assert again.status == "paused", again.reason
    assert again.reason.startswith(f"step {step}: gate inconclusive — canary-judge "
                                   "Inconclusive (judge marginal"), again.reason
    assert [a for a in run.journal.actions(step) if a.kind == "upgrade"] == upgrades


def test_a_judged_soak_rolls_back_on_fail(tmp_path: Path) -> None:
    soak = {"min": "5m", "max": "15m"}
    result, twin, run = run_on_twin(
        tmp_path, fleet_doc(), policy_spec={"canaryJudge": _judge("pod-startup-p99", soak)},
        faults=[_regression("pod-startup-p99", 0.30, after="4m")])
    assert result.status == "rolled-back", result.reason
    assert "canary judge fail after" in result.reason, result.reason
    assert ("canary-judge", "Successful") in {(g.gate, g.phase) for g in run.journal.gates()}
    assert _soak_times(run)[-1][1] == "fail"
    assert all(n.kubelet == "1.35.8" for n in twin.observe("c1").nodes)


# -- the policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(("judge", "needle"), [
    ({"judge": {"metrics": {}}}, "judge.metrics is empty"),
    ({"soak": {"min": "10m", "max": "5m"}, "judge": {"metrics": _metrics()}},
     "is below min"),
    ({"lookback": "1m", "step": "2m", "judge": {"metrics": _metrics()}},
     "step is longer than lookback"),
])
def test_a_canary_judge_policy_that_cannot_work_is_refused(judge: dict[str, Any],
                                                           needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        UpgradePolicy.model_validate({"metadata": {"name": "p"},
                                      "spec": {"canaryJudge": judge}})


# -- the command line --------------------------------------------------------------------------


def test_rehearse_o_json_carries_the_judgement_per_metric(tmp_path: Path) -> None:
    files = {"fleet.yaml": fleet_doc(),
             "policy.yaml": {"apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
                             "metadata": {"name": "p"},
                             "spec": {"canaryJudge": _judge("pod-startup-p99")}},
             "target.yaml": {"apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradeTarget",
                             "metadata": {"name": "t"}, "spec": {"versions": TARGET}},
             "faults.yaml": {"apiVersion": "pitstop.dev/v1alpha1", "kind": "FaultScenario",
                             "metadata": {"name": "f"},
                             "spec": {"faults": [_regression("pod-startup-p99", 0.3)]}}}
    for name, doc in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(doc))
    r = subprocess.run(
        [sys.executable, "-m", "pitstop", "rehearse", "-f", str(tmp_path / "fleet.yaml"), "-f",
         str(tmp_path / "policy.yaml"), "-f", str(tmp_path / "target.yaml"), "--faults",
         str(tmp_path / "faults.yaml"), "--runs-dir", str(tmp_path / "runs"), "--now",
         "2026-11-30T08:00:00+00:00", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False)
    doc = json.loads(r.stdout)
    assert doc["status"] == "rolled-back", r.stdout + r.stderr
    (entry,) = doc["judgements"]
    assert entry["when"] == "gate" and entry["judgement"]["verdict"] == "fail"
    metric = next(m for m in entry["judgement"]["metrics"] if m["metric"] == "pod-startup-p99")
    assert metric["classification"] == "High" and metric["canaryCount"] > 0
    assert set(metric) >= {"u", "p", "effect", "interval", "baselineCount", "reason"}
    page = Path(doc["report"]).read_text()
    assert 'class="list judge"' in page and "pod-startup-p99" in page
