"""Prometheus gates against a real Prometheus (harness/prometheus.py): PrometheusSource's
instant, range and alert calls; TLS with a CA file and a bearer-token file through a real
HTTPS proxy; a query that breaks is Error, never Failed; empty answers as ``emptyResult``
says; templates filled with the step's node sets; the provider through ``evaluate_gates`` on
the twin deciding Successful, Failed and Inconclusive; alerts firing and clearing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness.prometheus import ALERT, AuthProxy, Prometheus, free_port, make_ca, wait_for

from pitstop.backend.metrics import MetricQuery, MetricQueryError
from pitstop.executor.gating import evaluate_gates
from pitstop.gates import Decision, Phase
from pitstop.gates.promql import blocking_alerts, fill, node_regex, step_fills, template
from pitstop.model import CustomGate, Fleet
from pitstop.planner.plan import Change, Step, StepAction
from pitstop.planner.plan import Phase as PlanPhase
from pitstop.telemetry import PrometheusEndpoint, PrometheusSource
from pitstop.twin import Twin
from tests.executor.test_executor import fleet_doc
from tests.telemetry.backends import WithoutMetrics

WAIT_S = 30.0  # every wait for a scrape or a rule evaluation (1s each) is bounded by this


def source(prom: Prometheus, **kw: Any) -> PrometheusSource:
    return PrometheusSource({"c1": PrometheusEndpoint(prom.url, **kw)})


def q(promql: str) -> MetricQuery:
    return MetricQuery(promql)


def scraped(prom: Prometheus, promql: str, want: float) -> None:
    """Wait until the real Prometheus (asked directly) answers ``want``."""
    wait_for(lambda: prom.value_now(promql) == want, WAIT_S, f"{promql} == {want}")


# -- the source --------------------------------------------------------------------------------


def test_instant_query_reads_samples_with_their_labels(prometheus: Prometheus) -> None:
    prometheus.metrics.set("pitstop_gauge", 3.5, {"node": "n1"})
    prometheus.metrics.set("pitstop_gauge", 7.0, {"node": "n2"})
    scraped(prometheus, 'pitstop_gauge{node="n2"}', 7.0)
    samples = source(prometheus).instant("c1", q("pitstop_gauge"), time.time())
    got = {s.labels["node"]: s.value for s in samples}
    assert got == {"n1": 3.5, "n2": 7.0}
    assert all(s.labels["job"] == "pitstop-test" for s in samples)


def test_range_query_reads_points_oldest_first(prometheus: Prometheus) -> None:
    prometheus.metrics.set("pitstop_range", 2.0)
    scraped(prometheus, "pitstop_range", 2.0)
    now = time.time()
    series = source(prometheus).range("c1", q("pitstop_range"), now - 3, now, 1.0)
    assert len(series) == 1
    times = [t for t, _ in series[0].points]
    assert times == sorted(times) and len(times) >= 1
    assert series[0].points[-1][1] == 2.0


@pytest.mark.parametrize(("promql", "says"), [
    ("sum(rate(pitstop_gauge[5m]", "bad_data"),  # a syntax error: Prometheus says so
    ("1 + 1", "is a scalar, not a vector"),  # a scalar is not a gate's vector
    ("vector(0) / vector(0)", "NaN"),  # 0/0: cannot tell
])
def test_a_query_that_breaks_raises_metric_query_error(prometheus: Prometheus, promql: str,
                                                       says: str) -> None:
    with pytest.raises(MetricQueryError) as err:
        source(prometheus).instant("c1", q(promql), time.time())
    assert says in str(err.value)
    assert f"prometheus {prometheus.url} (cluster c1)" in str(err.value)


def test_nothing_listening_and_no_endpoint_are_errors_naming_them() -> None:
    port = free_port()
    with pytest.raises(MetricQueryError, match="cannot reach it: ConnectError"):
        PrometheusSource({"c1": PrometheusEndpoint(f"http://127.0.0.1:{port}",
                                                   timeout_s=2)}).instant("c1", q("up"), 0)
    with pytest.raises(MetricQueryError, match=r"cluster c9: no Prometheus endpoint.*Fix"):
        PrometheusSource({}).instant("c9", q("up"), 0)


def test_http_status_timeout_and_oversized_answers_are_errors(
        prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import pitstop.telemetry.prometheus as module

    # a path prefix where none is served: Prometheus answers 404
    with pytest.raises(MetricQueryError, match="HTTP 404"):
        PrometheusSource({"c1": PrometheusEndpoint(prometheus.url + "/nope")}).instant(
            "c1", q("up"), time.time())
    # a listener that never answers: the timeout bounds the call
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(MetricQueryError, match=r"no answer within 0.5s \(timeout\)"):
            PrometheusSource({"c1": PrometheusEndpoint(f"http://127.0.0.1:{port}",
                                                       timeout_s=0.5)}).instant(
                "c1", q("up"), time.time())
    # an answer above the bound is not read to its end
    monkeypatch.setattr(module, "MAX_ANSWER_BYTES", 64)
    with pytest.raises(MetricQueryError, match="the answer is larger than"):
        source(prometheus).instant("c1", q("up"), time.time())


def test_ca_file_and_bearer_token_file_through_a_real_tls_proxy(
        prometheus: Prometheus, tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path / "right", "right")
    other_ca, _, _ = make_ca(tmp_path / "wrong", "wrong")
    proxy = AuthProxy(prometheus.url, "s3cr3t-token-1", cert, key).start()
    try:
        token = tmp_path / "token"
        token.write_text("s3cr3t-token-1\n")
        good = PrometheusSource({"c1": PrometheusEndpoint(proxy.url, str(token), str(ca))})
        assert good.instant("c1", q('up{job="prometheus"}'), time.time())[0].value == 1.0
        assert proxy.seen[-1] == "Bearer s3cr3t-token-1"
        # the file is read at every call: a rotated token is sent at once
        token.write_text("s3cr3t-token-2\n")
        with pytest.raises(MetricQueryError, match="HTTP 401") as err:
            good.instant("c1", q("up"), time.time())
        assert proxy.seen[-1] == "Bearer s3cr3t-token-2"
        assert "s3cr3t" not in str(err.value)
        # a server certificate the CA did not sign is refused before anything is sent
        asked = len(proxy.seen)
        wrong = PrometheusSource({"c1": PrometheusEndpoint(proxy.url, str(token),
                                                           str(other_ca))})
        with pytest.raises(MetricQueryError, match="CERTIFICATE_VERIFY_FAILED"):
            wrong.instant("c1", q("up"), time.time())
        assert len(proxy.seen) == asked
        token.unlink()
        with pytest.raises(MetricQueryError, match="cannot read bearerTokenFile"):
            good.instant("c1", q("up"), time.time())
    finally:
        proxy.stop()


def test_alerts_lists_firing_alerts_and_drops_them_when_cleared(prometheus: Prometheus) -> None:
    src = source(prometheus)
    gates = [("hold", (ALERT,), {"severity": "critical"}, {})]
    prometheus.metrics.set("pitstop_test_alert_trigger", 1.0)
    wait_for(lambda: ALERT in prometheus.firing(), WAIT_S, "the alert fires")
    firing = [a for a in src.alerts("c1") if a.name == ALERT]
    assert firing and firing[0].labels["team"] == "upgrades"
    assert firing[0].active_at is not None and firing[0].active_at > 0
    blocked = blocking_alerts(src.alerts("c1"), gates)
    assert [m.alert.name for m in blocked] == [ALERT] and "gate hold" in blocked[0].text
    # a selector that does not match does not block
    assert not blocking_alerts(src.alerts("c1"), [("other", (ALERT,), {"severity": "info"},
                                                   {})])
    prometheus.metrics.set("pitstop_test_alert_trigger", 0.0)
    wait_for(lambda: ALERT not in prometheus.firing(), WAIT_S, "the alert clears")
    assert not blocking_alerts(src.alerts("c1"), gates)


# -- templates and fills -----------------------------------------------------------------------


def test_node_names_are_escaped_so_a_dot_matches_only_a_dot(prometheus: Prometheus) -> None:
    prometheus.metrics.set("pitstop_node_metric", 1.0, {"node": "n-1.a"})
    prometheus.metrics.set("pitstop_node_metric", 5.0, {"node": "n-1xa"})
    scraped(prometheus, 'pitstop_node_metric{node="n-1xa"}', 5.0)
    promql = fill('max(pitstop_node_metric{node=~"{nodes}"})', {"nodes": node_regex(["n-1.a"])})
    samples = source(prometheus).instant("c1", q(promql), time.time())
    assert [s.value for s in samples] == [1.0]
    # no node at all matches nothing (not every series)
    none = fill('pitstop_node_metric{node=~"{nodes}"}', {"nodes": node_regex([])})
    assert source(prometheus).instant("c1", q(none), time.time()) == ()


def _twin(tmp: Path) -> Twin:
    doc = fleet_doc(nodes=4)
    doc["spec"]["clusters"][0]["nodePools"][0]["nodes"][0]["kubelet"] = "1.36.5"  # n0 done
    return Twin.create(Fleet.model_validate(doc), seed=1, state_path=tmp / "twin.sqlite",
                       start=time.time())


def _node_step(targets: tuple[str, ...] = ("n1",)) -> Step:
    return Step(id="c1/010-nodes", wave="w", cluster="c1", phase=PlanPhase.NODES,
                action=StepAction.UPGRADE_NODES, component="kubelet", from_version="1.35.8",
                to_version="1.36.5", targets=targets, reason="test",
                changes=(Change("kubelet", "1.35.8", "1.36.5"),), pool="p")


def test_canary_and_baseline_are_the_pools_upgraded_and_other_nodes(tmp_path: Path) -> None:
    twin = _twin(tmp_path)
    fills = step_fills(_node_step(), ["n1"], twin.observe("c1"))
    assert fills == {"cluster": "c1", "nodes": "n1", "canary": "n0", "baseline": "n1|n2|n3"}


def test_restarts_template_counts_only_pods_on_the_canary_nodes(
        prometheus: Prometheus, tmp_path: Path) -> None:
    m = prometheus.metrics
    for pod, node in (("web-a", "n0"), ("web-b", "n2")):
        m.set("kube_pod_info", 1.0, {"namespace": "a", "pod": pod, "node": node})
        m.grow("kube_pod_container_status_restarts_total", 1.0,
               {"namespace": "a", "pod": pod, "container": "c"})
    twin = _twin(tmp_path)
    fills = step_fills(_node_step(), ["n1"], twin.observe("c1"))
    t = template("container-restarts-upgraded")
    promql = fill(t.promql, fills)
    assert 'node=~"n0"' in promql
    # n0's pod restarts once a scrape; n2's (the baseline) are left out
    wait_for(lambda: (prometheus.value_now(promql) or 0) > 0, WAIT_S, "restarts counted")
    only_canary = prometheus.value_now(promql)
    everything = prometheus.value_now(
        "sum(increase(kube_pod_container_status_restarts_total[10m]))")
    assert only_canary is not None and everything is not None and only_canary < everything


# -- the provider through evaluate_gates -------------------------------------------------------


class WithMetrics:
    """The twin, with a Prometheus source as its ``metrics`` (what the command line gives a
    real backend): everything else is the twin's."""

    def __init__(self, twin: Twin, metrics: PrometheusSource) -> None:
        self._twin = twin
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._twin, name)


def _evaluate(prometheus: Prometheus, tmp: Path, **gate: Any) -> tuple[Decision, Phase, str]:
    twin = _twin(tmp)
    spec = {"name": "prom", "phases": ["nodes"], "interval": "1s", "count": 2, **gate}
    outcome = evaluate_gates(WithMetrics(twin, source(prometheus)),  # type: ignore[arg-type]
                             _node_step(), ["n1"], 1.0, [CustomGate.model_validate(spec)])
    status = outcome.gates[-1]
    return outcome.decision, status.status, status.message


def test_prometheus_gate_successful_failed_and_inconclusive(
        prometheus: Prometheus, tmp_path: Path) -> None:
    prometheus.metrics.set("pitstop_error_ratio", 0.03)
    scraped(prometheus, "pitstop_error_ratio", 0.03)
    query = {"query": "pitstop_error_ratio"}
    ok = _evaluate(prometheus, tmp_path / "a", **query, successCondition="result < 0.05")
    bad = _evaluate(prometheus, tmp_path / "b", **query, failureCondition="result > 0.02")
    unsure = _evaluate(prometheus, tmp_path / "c", **query, successCondition="result < 0.01",
                       failureCondition="result > 0.05")
    assert ok[:2] == (Decision.PROCEED, Phase.SUCCESSFUL)
    assert bad[:2] == (Decision.ROLLBACK, Phase.FAILED)
    assert "prom = 0.03: failure condition 'result > 0.02' holds" in bad[2]
    assert unsure[:2] == (Decision.PAUSE, Phase.INCONCLUSIVE)


def test_a_range_gate_reduces_its_points(prometheus: Prometheus, tmp_path: Path) -> None:
    prometheus.metrics.set("pitstop_ranged", 4.0)
    scraped(prometheus, "pitstop_ranged", 4.0)
    decided = _evaluate(prometheus, tmp_path, query="pitstop_ranged",
                        range={"window": "3s", "step": "1s"}, reduce="max",
                        failureCondition="result >= 4")
    assert decided[:2] == (Decision.ROLLBACK, Phase.FAILED)


def test_a_broken_query_is_error_not_failed(prometheus: Prometheus, tmp_path: Path) -> None:
    decision, phase, message = _evaluate(prometheus, tmp_path, query="sum(rate(x[5m]",
                                         failureCondition="result > 0",
                                         consecutiveErrorLimit=0)
    assert phase is Phase.ERROR and decision is Decision.ROLLBACK
    assert "query failed" in message and "bad_data" in message


@pytest.mark.parametrize(("empty", "phase"), [
    ("error", Phase.ERROR), ("zero", Phase.SUCCESSFUL), ("fail", Phase.FAILED)])
def test_an_empty_answer_is_what_empty_result_says(prometheus: Prometheus, tmp_path: Path,
                                                   empty: str, phase: Phase) -> None:
    _, got, message = _evaluate(prometheus, tmp_path, query="pitstop_never_served",
                                emptyResult=empty, failureCondition="result > 0",
                                consecutiveErrorLimit=0)
    assert got is phase, message


def test_an_empty_answer_is_an_error_by_default(prometheus: Prometheus, tmp_path: Path) -> None:
    _, got, message = _evaluate(prometheus, tmp_path, query="pitstop_never_served",
                                failureCondition="result > 0", consecutiveErrorLimit=0)
    assert got is Phase.ERROR and "answer is empty (emptyResult: error)" in message


def test_a_template_gate_with_its_default_and_an_overridden_threshold(
        prometheus: Prometheus, tmp_path: Path) -> None:
    m = prometheus.metrics
    m.grow("apiserver_request_total", 90.0, {"code": "200", "verb": "GET"})
    m.grow("apiserver_request_total", 10.0, {"code": "503", "verb": "GET"})
    ratio = fill(template("apiserver-5xx-ratio").promql, {})
    wait_for(lambda: abs((prometheus.value_now(ratio) or 0) - 0.1) < 1e-6, WAIT_S,
             "a 5xx ratio of 0.1")
    default = _evaluate(prometheus, tmp_path / "a", template="apiserver-5xx-ratio")
    relaxed = _evaluate(prometheus, tmp_path / "b", template="apiserver-5xx-ratio",
                        failureCondition="result > 0.2")
    assert default[1] is Phase.FAILED and "failure condition 'result > 0.01'" in default[2]
    assert relaxed[1] is Phase.SUCCESSFUL


def test_no_metric_source_is_an_error_naming_what_to_configure(tmp_path: Path) -> None:
    twin = _twin(tmp_path)
    gate = CustomGate.model_validate({"name": "prom", "query": "up", "phases": ["nodes"],
                                      "failureCondition": "result < 1",
                                      "consecutiveErrorLimit": 0})
    outcome = evaluate_gates(WithoutMetrics(twin), _node_step(), ["n1"], 1.0,  # type: ignore[arg-type]
                             [gate])
    status = outcome.gates[-1]
    assert status.status is Phase.ERROR
    assert "telemetry.prometheus.url" in status.message
