"""pitstop's own telemetry against real backends: an `apply` on the twin sends its trace to a
real Jaeger and the test reads it back through Jaeger's query API (one trace for the run,
spans nested run → wave → step → node job); its `/metrics` is scraped by a real Prometheus
and read back through PromQL; `--log-format json` lines; the W3C trace context a launched
node or control-plane command gets in its environment."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from pitstop.kube.command import command_status, launch
from pitstop.observe.api import activate
from pitstop.observe.session import Session, TelemetryOptions, run_trace_id

from .servers import (
    EX,
    Jaeger,
    free_port,
    running_jaeger,
    running_prometheus,
    small_fleet,
    until,
)

NOW = "2026-11-30T07:00:00+00:00"


def pitstop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r.get("refType") == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def test_an_apply_sends_one_trace_nested_run_wave_step_node_job_with_json_logs(
        tmp_path: Path) -> None:
    with running_jaeger(tmp_path) as jaeger:
        res = pitstop("apply", *small_fleet(tmp_path), "-y", "--runs-dir",
                      str(tmp_path / "runs"), "--now", NOW, "-o", "json",
                      "--otlp-endpoint", jaeger.otlp_url, "--log-format", "json")
        assert res.returncode == 0, res.stdout + res.stderr
        doc = json.loads(res.stdout)
        run_id = doc["runId"]
        assert doc["status"] == "completed" and doc["steps"]["done"] == doc["steps"]["total"]

        # every log line is one JSON object with the run id and the run's trace id
        lines = res.stderr.splitlines()
        logs = [json.loads(line) for line in lines]
        assert len(logs) == len(lines) and len(logs) > doc["steps"]["total"]
        trace_ids = {entry["trace_id"] for entry in logs}
        assert {entry["run_id"] for entry in logs} == {run_id} and len(trace_ids) == 1
        (trace_id,) = trace_ids
        assert trace_id == f"{run_trace_id(run_id):032x}"
        events = Counter(entry["event"] for entry in logs)
        assert events["step-done"] == doc["steps"]["done"] and events["run-completed"] == 1

        trace = until("the run's trace in jaeger", lambda: _complete(jaeger, trace_id, events))
        # one trace for the run: the only trace with its run id
        found = until("the run's trace by its run id tag", lambda: jaeger.traces(
            "pitstop", {"pitstop.run_id": run_id}) or None)
        assert [t["traceID"] for t in found] == [trace_id]

    spans = trace["spans"]
    by_id = {s["spanID"]: s for s in spans}
    assert all(_tags(s).get("pitstop.run_id") == run_id for s in spans)
    names = Counter(s["operationName"] for s in spans)
    (run,) = [s for s in spans if s["operationName"] == "run"]
    assert _parent(run) is None and _tags(run)["pitstop.status"] == "completed"
    waves = [s for s in spans if s["operationName"] == "wave"]
    steps = [s for s in spans if s["operationName"] == "step"]
    jobs = [s for s in spans if s["operationName"] == "node job"]
    assert waves and all(_parent(w) == run["spanID"] for w in waves)
    assert len(steps) == doc["steps"]["done"]
    assert all(by_id[_parent(s)]["operationName"] == "wave" for s in steps)  # type: ignore[index]
    assert {_tags(s)["pitstop.step"] for s in steps} == {
        e["subject"] for e in (json.loads(x) for x in lines) if e["event"] == "step-done"}
    assert len(jobs) == events["node-done"] > 0
    assert all(by_id[_parent(j)]["operationName"] == "step" for j in jobs)  # type: ignore[index]
    # a node job's backend calls (cordon, evict, start, ...) are its children
    job_ids = {j["spanID"] for j in jobs}
    cordons = [s for s in spans if s["operationName"] == "backend cordon"]
    assert cordons and all(_parent(c) in job_ids for c in cordons)
    assert names["gates"] == doc["steps"]["done"]
    assert all(by_id[_parent(g)]["operationName"] == "step"  # type: ignore[index]
               for g in spans if g["operationName"] == "gates")
    assert trace["processes"][run["processID"]]["serviceName"] == "pitstop"


def _complete(jaeger: Jaeger, trace_id: str, events: Counter[str]) -> dict[str, Any] | None:
    """The trace once every step and node job span has arrived (export is in batches)."""
    trace = jaeger.trace(trace_id)
    if trace is None:
        return None
    names = Counter(s["operationName"] for s in trace["spans"])
    done = (names["run"] == 1 and names["step"] == events["step-done"]
            and names["node job"] == events["node-done"])
    return trace if done else None


def test_prometheus_scrapes_an_apply_and_promql_reads_its_metrics(tmp_path: Path) -> None:
    port = free_port()
    with running_prometheus(tmp_path, f"127.0.0.1:{port}") as prom:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitstop", "apply", *small_fleet(tmp_path), "-y",
             "--runs-dir", str(tmp_path / "runs"), "--now", NOW, "-o", "json",
             "--metrics-address", str(port), "--metrics-linger", "6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        assert proc.returncode == 0, out + err
        assert f"metrics: http://127.0.0.1:{port}/metrics" in err
        doc = json.loads(out)
        done = doc["steps"]["done"]

        def value(promql: str) -> float | None:
            result = prom.query(promql)
            return float(result[0]["value"][1]) if result else None

        # range functions skip the stale markers written once the target went away
        until("a scrape of the finished run", lambda: value(
            'max_over_time(pitstop_runs{status="completed"}[10m])'))
        assert value('max_over_time(up{job="pitstop"}[10m])') == 1
        assert value('max_over_time(pitstop_runs{status="completed"}[10m])') == 1
        assert value('max_over_time(pitstop_runs{status="running"}[10m])') is not None
        assert value('sum(max_over_time(pitstop_step_duration_seconds_count'
                     '{outcome="done"}[10m]))') == done
        jobs = value("sum(max_over_time(pitstop_node_job_duration_seconds_count[10m]))")
        assert jobs is not None and jobs > 0
        evicted = value('max_over_time(pitstop_evictions_total{answer="evicted"}[10m])')
        assert evicted is not None and evicted > 0
        verdicts = prom.query("max_over_time(pitstop_gate_verdicts_total[10m])")
        assert verdicts and {r["metric"]["verdict"] for r in verdicts} == {"Successful"}
        assert value("max_over_time(pitstop_rollbacks_total[10m])") == 0
        calls = value('sum(max_over_time(pitstop_backend_calls_total{method="observe"}[10m]))')
        assert calls is not None and calls > 0


def test_a_launched_command_gets_the_trace_context_of_the_call(tmp_path: Path) -> None:
    """kube/command.py's launch is where node and control-plane commands are started: the
    command's environment carries TRACEPARENT of the span current at launch, and that span is
    in the run's trace in Jaeger."""
    env_file = tmp_path / "env.txt"
    with running_jaeger(tmp_path) as jaeger:
        session = Session("run-traceparent", TelemetryOptions(otlp_endpoint=jaeger.otlp_url))
        session.open()
        try:
            with activate(session), session.span("backend start", node="n1") as span:
                data = launch(tmp_path / "ops", "kubelet-n1", [
                    "/bin/sh", "-c", f"env > {env_file}"], time.time(), "the test command")
                assert isinstance(span, object)
                trace_id, span_id = session.span_ids()
        finally:
            session.close()
        until("the command's exit", lambda: command_status(data, time.time(), time.time(),
                                                           60.0).state == "exited" or None)
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                   if "=" in line)
        assert env["TRACEPARENT"] == f"00-{trace_id}-{span_id}-01"
        trace = until("the span in jaeger", lambda: jaeger.trace(trace_id))
        assert span_id in {s["spanID"] for s in trace["spans"]}
    # not tracing: no TRACEPARENT (the environment is pitstop's own)
    plain = tmp_path / "plain.txt"
    data = launch(tmp_path / "ops", "kubelet-n2", ["/bin/sh", "-c", f"env > {plain}"],
                  time.time(), "the test command")
    until("the command's exit", lambda: command_status(data, time.time(), time.time(),
                                                       60.0).state == "exited" or None)
    assert "TRACEPARENT=" not in plain.read_text()


def test_a_bad_metrics_address_is_bad_input(tmp_path: Path) -> None:
    res = pitstop("apply", *small_fleet(tmp_path), "-y", "--runs-dir", str(tmp_path / "r"),
                  "--now", NOW, "--metrics-address", "127.0.0.1:http")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--metrics-address" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()
    with socket.socket() as taken:  # a port something else listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = pitstop("apply", *small_fleet(tmp_path), "-y", "--runs-dir",
                      str(tmp_path / "r"), "--now", NOW, "--metrics-address", str(port))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot serve metrics" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()  # refused before a run was made


def test_apply_and_resume_of_one_run_share_its_trace(tmp_path: Path) -> None:
    """The example fleet pauses for approvals in production: the apply and the resume after
    the approvals are two processes, two `run` spans, one trace."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text((EX / "fleet.yaml").read_text().replace("maxUnavailable: 0",
                                                             "maxUnavailable: 1"))
    runs = tmp_path / "runs"
    with running_jaeger(tmp_path) as jaeger:
        first = pitstop("apply", "-f", str(fleet), "-f", str(EX / "policy.yaml"), "-f",
                        str(EX / "target.yaml"), "-y", "--runs-dir", str(runs), "--now", NOW,
                        "-o", "json", "--otlp-endpoint", jaeger.otlp_url)
        assert first.returncode == 4, first.stdout + first.stderr  # paused: approvals
        doc = json.loads(first.stdout)
        run_dir, step = doc["runDir"], doc["reason"].split("--step ")[1].split()[0]
        for who in ("sre-leads", "change-board"):
            got = pitstop("approve", run_dir, "--step", step, "--as", who)
            assert got.returncode == 0, got.stdout + got.stderr
        second = pitstop("resume", run_dir, "-o", "json", "--otlp-endpoint", jaeger.otlp_url)
        assert second.returncode in (0, 4), second.stdout + second.stderr
        done = json.loads(second.stdout)["steps"]["done"]
        assert done > doc["steps"]["done"]
        trace_id = f"{run_trace_id(doc['runId']):032x}"

        def both() -> dict[str, Any] | None:
            trace = jaeger.trace(trace_id)
            if trace is None:
                return None
            names = Counter(s["operationName"] for s in trace["spans"])
            return trace if names["run"] == 2 and names["step"] == done else None

        trace = until("both processes' spans in the run's trace", both)
    runs_spans = [s for s in trace["spans"] if s["operationName"] == "run"]
    assert all(_parent(s) is None for s in runs_spans)
    assert {_tags(s)["pitstop.status"] for s in runs_spans} >= {"paused"}
    assert all(_tags(s)["pitstop.run_id"] == doc["runId"] for s in trace["spans"])


def test_an_unreachable_collector_changes_neither_the_run_nor_the_log_format(
        tmp_path: Path) -> None:
    """Nothing listens on the endpoint: the run completes as it would, and the SDK's
    complaints are JSON lines of the log like every other line."""
    res = pitstop("apply", *small_fleet(tmp_path), "-y", "--runs-dir", str(tmp_path / "runs"),
                  "--now", NOW, "-o", "json", "--log-format", "json",
                  "--otlp-endpoint", f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["status"] == "completed"
    logs = [json.loads(line) for line in res.stderr.splitlines()]
    warned = [e for e in logs if e["event"] == "telemetry"]
    assert warned and {e["level"] for e in warned} <= {"warning", "error"}
    assert {e["run_id"] for e in logs} == {json.loads(res.stdout)["runId"]}


def test_clusters_worked_on_at_once_nest_their_steps_under_the_wave(tmp_path: Path) -> None:
    """One wave of all three example clusters, no limit: each cluster runs in a lane (a
    thread of its own), and its steps' spans are still children of the wave's span."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text((EX / "fleet.yaml").read_text().replace("maxUnavailable: 0",
                                                             "maxUnavailable: 1"))
    policy = yaml.safe_load((EX / "policy.yaml").read_text())
    policy["spec"].pop("approvals", None)
    policy["spec"]["waves"] = [{"name": "all", "clusters": {"matchLabels": {}}}]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    with running_jaeger(tmp_path) as jaeger:
        res = pitstop("apply", "-f", str(fleet), "-f", str(tmp_path / "policy.yaml"), "-f",
                      str(EX / "target.yaml"), "-y", "--runs-dir", str(tmp_path / "runs"),
                      "--now", NOW, "-o", "json", "--otlp-endpoint", jaeger.otlp_url)
        assert res.returncode == 0, res.stdout + res.stderr
        doc = json.loads(res.stdout)
        assert len(doc["clusters"]) == 3
        audit = [json.loads(line) for line in
                 (Path(doc["runDir"]) / "audit.jsonl").read_text().splitlines()]
        assert any(a.get("action") == "wave-lanes" for a in audit)  # in lanes, at once
        trace_id = f"{run_trace_id(doc['runId']):032x}"

        def complete() -> dict[str, Any] | None:
            trace = jaeger.trace(trace_id)
            names = Counter(s["operationName"] for s in (trace or {}).get("spans", []))
            return trace if names["step"] == doc["steps"]["done"] else None

        trace = until("the run's trace in jaeger", complete)
    spans = trace["spans"]
    by_id = {s["spanID"]: s for s in spans}
    (wave,) = [s for s in spans if s["operationName"] == "wave"]
    steps = [s for s in spans if s["operationName"] == "step"]
    assert {_tags(s)["pitstop.cluster"] for s in steps} == set(doc["clusters"])
    assert all(_parent(s) == wave["spanID"] for s in steps)
    jobs = [s for s in spans if s["operationName"] == "node job"]
    assert jobs and all(by_id[_parent(j)]["operationName"] == "step"  # type: ignore[index]
                        for j in jobs)
