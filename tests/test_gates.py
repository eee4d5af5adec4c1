"""Gates (pitstop.gates): conditions, analysis semantics, and the built-in checks.

Observations are built directly: they are the backend's plain frozen values, not mocks."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from pitstop.backend.api import (
    ClusterObservation,
    EtcdMemberObservation,
    HealthSignals,
    NodeObservation,
    PdbObservation,
    PodObservation,
)
from pitstop.errors import PitstopError
from pitstop.gates import (
    PROMETHEUS,
    PROVIDERS,
    THRESHOLD,
    CheckResult,
    Condition,
    ConditionError,
    Decision,
    GateContext,
    Measurement,
    MetricRun,
    MetricSpec,
    Phase,
    Reading,
    UnknownGateKind,
    addon_rolled_out,
    apiserver_health,
    assess,
    canary_vs_baseline,
    decide,
    etcd_health,
    judge,
    judge_reading,
    nodes_ready,
    pods_pending,
    provider_for,
    run_verdict,
    track_pending,
    workloads_available,
)
from pitstop.planner.plan import Change, Gate, Step
from pitstop.planner.plan import Phase as PlanPhase

S, F, INC, E = Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR
R, P = Phase.RUNNING, Phase.PENDING


# -- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "true_for", "false_for"), [
    ("result <= 0.01", [0.0, 0.01, -5], [0.011, 1]),
    ("result < 1", [0.99], [1, 2]),
    ("result > 1", [1.5], [1]),
    ("result >= 0.99 && result <= 1.0", [0.99, 1.0], [0.98, 1.01]),
    ("result < 0 || result > 100", [-1, 101], [0, 50, 100]),
    ("0.5 < result", [0.6], [0.5, 0.4]),
    ("-1 >= result", [-1, -2], [0]),
    ("result == 3", [3.0], [3.1]),
    ("result != 3", [2], [3]),
    ("!(result > 100 || result < 0)", [0, 100], [-0.1, 100.1]),
    ("! result > 1", [1], [2]),
    ("result > 1e-3 and result < 2.5E2", [1, 249], [0.001, 250]),
    ("not result > 5", [5], [6]),
    ("result > 1 || result < -1 && result > -2", [2, -1.5], [-3, 0]),  # && binds tighter
    ("(result > 1 || result < -1) && result > -2", [2, -1.5], [-3, 0]),
    ("  result   <=   .5  ", [0.5], [0.6]),
])
def test_condition_good(text: str, true_for: list[float], false_for: list[float]) -> None:
    c = Condition.parse(text)
    assert [c.holds(v) for v in true_for] == [True] * len(true_for)
    assert [c.holds(v) for v in false_for] == [False] * len(false_for)
    assert str(c) == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("   ", "is empty"),
    ("result <== 1", "unexpected character '=' at column 10 (did you mean '=='?)"),
    ("result = 1", "unexpected character '=' at column 8"),
    ("result & 1", "did you mean '&&'?"),
    ("result | 1", "did you mean '||'?"),
    ("result < 1;", "unexpected character ';' at column 11"),
    ("value < 1", "unknown name 'value' at column 1"),
    ("result < inf", "unknown name 'inf' at column 10"),
    ("__import__ > 1", "unknown name '__import__' at column 1"),
    ("__import__('os') > 1", "unexpected character \"'\" at column 12"),
    ("1 < 2", "compares two numbers"),
    ("result < result", "compares result with itself"),
    ("0 < result < 1", "found '<' at column 12"),
    ("(result < 1", "expected ')', found the end at column 12"),
    ("result < 1)", "found ')' at column 11"),
    ("result", "expected a comparison operator"),
    ("result 1", "found '1' at column 8"),
    ("result <", "expected 'result' or a number, found the end"),
    ("result < 1 &&", "found the end"),
    ("&& result < 1", "found '&&' at column 1"),
    ("result < - result", "a number after the sign"),
    ("result < 1e999", "a finite number, found '1e999'"),
])
def test_condition_bad(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as err:
        Condition.parse(text)
    assert message in str(err.value)
    assert isinstance(err.value, PitstopError) and isinstance(err.value, ValueError)


def test_chained_comparison_explains_the_fix() -> None:
    with pytest.raises(ConditionError, match="join them with '&&'"):
        Condition.parse("0 < result < 1")


# -- assess ------------------------------------------------------------------------------------


def spec(success: str | None = None, failure: str | None = None, /, **kw: int) -> MetricSpec:
    return MetricSpec(
        "error-rate", interval_s=10, count=kw.pop("count", 3),
        success=Condition.parse(success) if success else None,
        failure=Condition.parse(failure) if failure else None, **kw)


@pytest.mark.parametrize(("success", "failure", "value", "phase"), [
    ("result <= 0.01", "result > 0.05", 0.0, S),
    ("result <= 0.01", "result > 0.05", 0.1, F),
    ("result <= 0.01", "result > 0.05", 0.03, INC),  # neither holds
    ("result <= 0.01", None, 0.03, F),  # only success: missing it fails
    (None, "result > 0.05", 0.03, S),  # only failure: not failing succeeds
    (None, "result > 0.05", 0.06, F),
    (None, None, 123.0, S),  # no conditions: any value
    ("result >= 0", "result >= 0", 1.0, F),  # both hold: failure wins
    ("result <= 0.01", "result > 0.05", None, E),
    ("result <= 0.01", "result > 0.05", math.nan, E),
    ("result <= 0.01", "result > 0.05", RuntimeError("prometheus: 503"), E),
    (None, None, None, E),
])
def test_assess(success: str | None, failure: str | None,
                value: float | BaseException | None, phase: Phase) -> None:
    assert assess(spec(success, failure), value) is phase


def test_measurement_rejects_run_phases() -> None:
    with pytest.raises(ValueError, match="not Running"):
        Measurement(1.0, Phase.RUNNING, 0.0)


@pytest.mark.parametrize("kw", [{"count": 0}, {"failure_limit": -1},
                                {"consecutive_error_limit": -1}])
def test_metric_spec_validates(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="error-rate"):
        spec("result < 1", **kw)


# -- metric runs -------------------------------------------------------------------------------


def run_of(values: list[float | None], **kw: int) -> MetricRun:
    run = MetricRun(spec("result <= 0.01", "result > 0.05", **kw), started=100.0)
    for i, v in enumerate(values):
        run.measure(v, at=100.0 + 10 * i)
    return run


@pytest.mark.parametrize(("values", "kw", "status"), [
    ([], {}, P),
    ([0.0], {}, R),
    ([0.0, 0.0, 0.0], {}, S),
    ([0.0, 0.1], {}, F),  # failure_limit 0: the first failure fails, before count
    ([0.1, 0.0, 0.0], {"failure_limit": 1}, S),
    ([0.1, 0.1], {"failure_limit": 1}, F),
    ([0.03], {}, INC),  # inconclusive_limit 0
    ([0.03, 0.0, 0.0], {"inconclusive_limit": 1}, S),
    ([None, None, None, None], {}, R),  # 4 errors in a row: at the limit, still running
    ([None, None, None, None, None], {}, E),  # 5 > consecutive_error_limit 4
    ([None, None], {"consecutive_error_limit": 1}, E),
    ([None, 0.0, None, 0.0, None, 0.0], {"consecutive_error_limit": 1}, S),  # never 2 in a row
    ([0.0, 0.0, None], {}, R),  # errors do not count towards count
])
def test_metric_run_status(values: list[float | None], kw: dict[str, int],
                           status: Phase) -> None:
    assert run_of(values, **kw).status() is status


def test_metric_run_counters_and_schedule() -> None:
    run = run_of([0.0, None, 0.03], inconclusive_limit=1, count=3)
    assert (run.successful, run.failed, run.inconclusive, run.errors) == (1, 0, 1, 1)
    assert run.consecutive_errors == 0 and run.count == 2
    assert run.status() is R
    assert run.next_at() == 120.0 + 10
    run.measure(None, at=130.0)
    assert run.consecutive_errors == 1
    assert run.measure(0.0, at=140.0).phase is S
    assert run.status() is S and run.next_at() is None
    with pytest.raises(ValueError, match="already concluded"):
        run.measure(0.0, at=150.0)
    assert MetricRun(run.spec, started=7.0).next_at() == 7.0


def test_metric_run_messages_and_result() -> None:
    run = run_of([0.0, 0.1])
    m = run.measurements[-1]
    assert m.phase is F and m.value == 0.1
    assert m.message == "error-rate = 0.1: failure condition 'result > 0.05' holds"
    result = run.result()
    assert (result.name, result.phase, result.value) == ("error-rate", F, 0.1)
    assert "failed 1/limit 0" in result.message
    broken = MetricRun(spec("result < 1"))
    assert broken.measure(RuntimeError("connection refused"), 0.0).message == (
        "error-rate: query failed: connection refused")


def test_check_results_feed_a_metric_run() -> None:
    run = MetricRun(spec(count=2))
    run.record(CheckResult("x", S, 1.0, "ok").measurement(0.0))
    assert run.add_result(S, 1.0, 10.0, "ok") is S


# -- verdict and decision ----------------------------------------------------------------------


@pytest.mark.parametrize(("statuses", "verdict"), [
    ([], S),
    ([S, S], S),
    ([S, R], R),
    ([R, P], P),
    ([P, INC], INC),
    ([INC, E], E),
    ([E, F], F),
    ([F, S, E, INC, R, P], F),
    ([S, E], E),
])
def test_run_verdict(statuses: list[Phase], verdict: Phase) -> None:
    assert run_verdict(statuses) is verdict


@pytest.mark.parametrize(("verdict", "decision"), [
    (S, Decision.PROCEED), (R, Decision.WAIT), (P, Decision.WAIT), (INC, Decision.PAUSE),
    (E, Decision.ROLLBACK), (F, Decision.ROLLBACK),
])
def test_decide(verdict: Phase, decision: Decision) -> None:
    assert decide(verdict) is decision


def test_judge_keeps_errors_apart_from_failures() -> None:
    j = judge([CheckResult("etcd-health", F, 1.0, "no leader"),
               CheckResult("apiserver-health", E, None, "cannot tell: no latency"),
               CheckResult("nodes-ready", S, 0.0, "fine")])
    assert (j.verdict, j.decision) == (F, Decision.ROLLBACK)
    assert j.failed == ("etcd-health: no leader",)
    assert j.errors == ("apiserver-health: cannot tell: no latency",)
    assert j.message == ("rollback: unhealthy (1 failed): etcd-health: no leader | check errors, "
                         "not health failures (1): apiserver-health: cannot tell: no latency")
    only_error = judge([CheckResult("apiserver-health", E, None, "no latency")])
    assert only_error.decision is Decision.ROLLBACK
    assert "unhealthy" not in only_error.message and "check errors" in only_error.message
    paused = judge([CheckResult("canary", INC, 0.03, "neither holds")])
    assert paused.decision is Decision.PAUSE and paused.message.startswith("pause: inconclusive")
    assert judge([]).message == "proceed: no gates"
    assert judge([CheckResult("a", S, 1.0, "")]).message == "proceed: 1 gate(s) passed"


# -- observations ------------------------------------------------------------------------------


def node(name: str, *, ready: bool = True, cordoned: bool = False, kubelet: str = "v1.34.2",
         proxy: str | None = "v1.34.2", runtime: str = "containerd",
         rv: str = "2.1.4") -> NodeObservation:
    return NodeObservation(name=name, pool="workers", ready=ready, unschedulable=cordoned,
                           kubelet=kubelet, kube_proxy=proxy, runtime=runtime,
                           runtime_version=rv)


def pod(name: str, workload: str, *, labels: dict[str, str] | None = None, ns: str = "shop",
        phase: str = "Running", ready: bool = True, node_name: str | None = "n1",
        deleting: bool = False) -> PodObservation:
    return PodObservation(namespace=ns, name=name, uid=f"uid-{name}", node=node_name,
                          phase=phase, ready=ready, labels=labels or {}, owner_kind="ReplicaSet",
                          owner_name=name.rsplit("-", 1)[0], workload=f"{ns}/{workload}",
                          deleting=deleting)


def pdb(name: str, selector: dict[str, str] | None, current: int, desired: int, *,
        ns: str = "shop", generation: int = 1, observed: int = 1) -> PdbObservation:
    return PdbObservation(namespace=ns, name=name, selector=selector, min_available=desired,
                          max_unavailable=None, disruptions_allowed=max(0, current - desired),
                          current_healthy=current, desired_healthy=desired,
                          expected_pods=current, observed_generation=observed,
                          generation=generation)


def cluster(*, nodes: tuple[NodeObservation, ...] = (), pods: tuple[PodObservation, ...] = (),
            pdbs: tuple[PdbObservation, ...] = (), time: float = 1000.0) -> ClusterObservation:
    return ClusterObservation(cluster="prod", time=time, apiservers={"cp1": "1.34.2"},
                              controller_manager="1.34.2", scheduler="1.34.2", etcd=(),
                              nodes=nodes, pods=pods, pdbs=pdbs)


def member(name: str, *, healthy: bool = True, leader: bool = False, index: int = 500,
           db: int = 100, quota: int = 1000,
           alarms: tuple[str, ...] = ()) -> EtcdMemberObservation:
    return EtcdMemberObservation(name=name, version="3.5.21", healthy=healthy, leader=leader,
                                 raft_index=index, db_size=db, quota=quota, alarms=alarms)


def signals(*, ok: dict[str, bool] | None = None, latency: float | None = 50.0,
            etcd: tuple[EtcdMemberObservation, ...] = (),
            metrics: dict[str, float] | None = None) -> HealthSignals:
    return HealthSignals(time=1000.0, apiserver_ok={"cp1": True, "cp2": True} if ok is None
                         else ok, apiserver_latency_ms=latency, etcd=etcd,
                         metrics=metrics or {})


HEALTHY_ETCD = (member("e1", leader=True, index=510), member("e2", index=509), member("e3"))


# -- nodes-ready -------------------------------------------------------------------------------

WANT = {"kubelet": "1.34.2", "containerd": "2.1.4"}


def test_nodes_ready_all_done() -> None:
    obs = cluster(nodes=(node("n1"), node("n2"), node("n3", kubelet="v1.33.5")))
    r = nodes_ready(obs, ["n1", "n2"], WANT)
    assert (r.name, r.phase, r.value) == ("nodes-ready", S, 0.0)
    assert r.message == "2 node(s) Ready, uncordoned, at containerd 2.1.4, kubelet 1.34.2"


def test_nodes_ready_names_each_problem() -> None:
    obs = cluster(nodes=(node("n1", ready=False), node("n2", cordoned=True),
                         node("n3", kubelet="v1.33.5"), node("n4", runtime="cri-o", rv="1.34.1"),
                         node("n5")))
    r = nodes_ready(obs, ["n1", "n2", "n3", "n4", "n5", "gone"], WANT)
    assert (r.phase, r.value) == (F, 5.0)
    assert r.message == ("n1: not Ready; n2: cordoned; n3: kubelet v1.33.5 (want 1.34.2); "
                         "n4: runs cri-o, not containerd; gone: not in the cluster")


def test_nodes_ready_unreported_version_is_an_error() -> None:
    # kube-proxy unreported (recent kubelets leave kubeProxyVersion empty) counts at the
    # kubelet's version; with no kubelet version either, nothing can be told
    obs = cluster(nodes=(node("n1", proxy=None), node("n2", kubelet="", proxy=None)))
    r = nodes_ready(obs, ["n1", "n2"], {"kubelet": "1.34.2", "kube-proxy": "1.34.2"})
    assert r.phase is E
    assert r.message == ("cannot tell: n2: no kube-proxy version reported; "
                         "n2: no kubelet version reported")
    assert nodes_ready(obs, ["n1"], {"kube-proxy": "1.34.2"}).phase is S
    # with evidence of ill health as well, it is Failed, and the gap is still mentioned
    obs = cluster(nodes=(node("n1", kubelet="", proxy=None, ready=False),))
    r = nodes_ready(obs, ["n1"], {"kube-proxy": "1.34.2"})
    assert r.phase is F and "also unreadable" in r.message


def test_nodes_ready_runtime_key_and_unknown_component() -> None:
    obs = cluster(nodes=(node("n1", runtime="cri-o", rv="1.34.1"),))
    assert nodes_ready(obs, ["n1"], {"runtime": "1.34.1"}).phase is S
    assert nodes_ready(obs, ["n1"], {"etcd": "3.5.21"}).phase is E
    assert nodes_ready(obs, [], WANT).message == "no nodes to check"


# -- workloads-available -----------------------------------------------------------------------


def test_workloads_available_names_workloads_below_their_pdb_floor() -> None:
    pods = (pod("web-a", "web", labels={"app": "web"}), pod("web-b", "web", labels={"app": "web"}),
            pod("db-0", "db", labels={"app": "db"}), pod("cache-0", "cache", labels={"app": "c"}))
    obs = cluster(pods=pods, pdbs=(pdb("web", {"app": "web"}, current=1, desired=2),
                                   pdb("db", {"app": "db"}, current=1, desired=1),
                                   pdb("cache", {"app": "c"}, current=1, desired=1, ns="other")))
    r = workloads_available(obs)
    assert (r.phase, r.value) == (F, 1.0)
    assert r.message == "shop/web: 1 healthy < 2 required (PDB shop/web)"


def test_workloads_available_edge_cases() -> None:
    ok = workloads_available(cluster(pdbs=(pdb("web", {"app": "web"}, 3, 2),)))
    assert ok.phase is S and ok.message == "1 PDB(s) at or above their minimum"
    assert workloads_available(cluster()).message == "no PDBs: no minimum to hold"
    empty = workloads_available(cluster(pdbs=(pdb("web", {"app": "web"}, 0, 2),)))
    assert empty.phase is F and empty.message.startswith("no pods selected")
    stale = workloads_available(cluster(pdbs=(pdb("web", {}, 0, 2, generation=2),)))
    assert stale.phase is E and "not yet observed for generation 2" in stale.message


# -- pods-pending ------------------------------------------------------------------------------


def test_pods_pending_tracks_ages_across_observations() -> None:
    first = cluster(time=1000.0, pods=(pod("web-a", "web", phase="Pending", node_name=None),
                                       pod("web-b", "web")))
    since = track_pending(first, {})
    assert since == {"uid-web-a": 1000.0}
    later = cluster(time=1400.0, pods=(
        pod("web-a", "web", phase="Pending", node_name=None),
        pod("web-c", "web", phase="Pending", node_name=None),
        pod("old-x", "old", phase="Pending", deleting=True)))
    since = track_pending(later, since)
    assert since == {"uid-web-a": 1000.0, "uid-web-c": 1400.0}
    r = pods_pending(later, 300, since=since)
    assert (r.phase, r.value) == (F, 400.0)
    assert r.message == "shop/web-a Pending for 400s (limit 300s)"
    assert pods_pending(later, 500, since=since).phase is S
    assert pods_pending(cluster(), 300, since={}).message == "no pods Pending"


# -- apiserver-health --------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "phase", "message"), [
    ({}, S, "2 apiserver(s) healthy, latency 50 ms (limit 200 ms)"),
    ({"latency": 250.0}, F, "latency 250 ms > 200 ms"),
    ({"ok": {"cp1": True, "cp2": False}}, F, "cp2: health check failing"),
    ({"latency": None}, E, "cannot tell: no apiserver latency reported"),
    ({"latency": math.nan}, E, "cannot tell: no apiserver latency reported"),
    ({"ok": {}}, E, "cannot tell: no apiserver health reported"),
    ({"ok": {"cp1": False}, "latency": None}, F,
     "cp1: health check failing (also unreadable: no apiserver latency reported)"),
])
def test_apiserver_health(kw: dict[str, object], phase: Phase, message: str) -> None:
    r = apiserver_health(signals(**kw), 200.0)  # type: ignore[arg-type]
    assert (r.name, r.phase, r.message) == ("apiserver-health", phase, message)


# -- etcd-health -------------------------------------------------------------------------------


def test_etcd_healthy() -> None:
    r = etcd_health(signals(etcd=HEALTHY_ETCD), previous_raft_index=400)
    assert (r.phase, r.value) == (S, 510.0)
    assert r.message == "3 member(s) healthy, leader e1, raft index 510"
    assert etcd_health(signals(etcd=HEALTHY_ETCD), previous_raft_index=None).phase is S


@pytest.mark.parametrize(("members", "previous", "message"), [
    ((member("e1", leader=True), member("e2", healthy=False)), None, "e2: unhealthy"),
    ((member("e1"), member("e2")), None, "no leader"),
    ((member("e1", leader=True), member("e2", leader=True)), None,
     "2 members claim to lead (e1, e2)"),
    ((member("e1", leader=True, index=500),), 500, "raft index did not advance (500 → 500)"),
    ((member("e1", leader=True, alarms=("NOSPACE",)),), None, "e1: alarm NOSPACE"),
    ((member("e1", leader=True, db=800, quota=1000),), None,
     "e1: database 800 bytes is 80% of its quota 1000"),
])
def test_etcd_unhealthy(members: tuple[EtcdMemberObservation, ...], previous: int | None,
                        message: str) -> None:
    r = etcd_health(signals(etcd=members), previous)
    assert (r.phase, r.message) == (F, message)


def test_etcd_missing_signals_are_errors() -> None:
    assert etcd_health(signals(etcd=()), None).phase is E
    r = etcd_health(signals(etcd=(member("e1", leader=True, quota=0),)), None)
    assert (r.phase, r.message) == (E, "cannot tell: e1: no quota reported")
    assert etcd_health(signals(etcd=(member("e1", leader=True, db=799),)), None).phase is S


# -- custom metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize(("metrics", "kw", "phase", "ratio"), [
    ({"error_rate": 0.01, "error_rate_baseline": 0.01}, {}, S, 1.0),
    ({"error_rate": 0.03, "error_rate_baseline": 0.01}, {}, F, 3.0),
    ({"error_rate": 0.02, "error_rate_baseline": 0.01}, {}, S, 2.0),  # at the limit
    ({"error_rate": 0.0, "error_rate_baseline": 0.0}, {}, S, 1.0),
    ({"error_rate": 0.0001, "error_rate_baseline": 0.0}, {}, F, math.inf),
    ({"error_rate": 0.0001, "error_rate_baseline": 0.0}, {"min_baseline": 0.001}, S, 0.1),
    ({"error_rate": 0.05, "control": 0.05}, {"baseline": "control"}, S, 1.0),
    ({"error_rate": 0.05}, {}, E, None),
    ({"error_rate_baseline": 0.05}, {}, E, None),
    ({"error_rate": -1.0, "error_rate_baseline": 0.05}, {}, E, None),
])
def test_canary_vs_baseline(metrics: dict[str, float], kw: dict[str, object], phase: Phase,
                            ratio: float | None) -> None:
    r = canary_vs_baseline(signals(metrics=metrics), "error_rate", 2.0, **kw)  # type: ignore[arg-type]
    assert (r.name, r.phase) == ("canary-vs-baseline:error_rate", phase)
    assert r.value == (pytest.approx(ratio) if ratio is not None else None)


def test_canary_error_names_the_missing_signal() -> None:
    r = canary_vs_baseline(signals(metrics={"error_rate": 0.05}), "error_rate", 2.0)
    assert r.message == "cannot tell: no error_rate_baseline reported"


# -- addon-rolled-out --------------------------------------------------------------------------


def test_addon_rolled_out() -> None:
    obs = ClusterObservation(cluster="prod", time=1.0, apiservers={}, controller_manager="",
                             scheduler="", etcd=(), nodes=(), pods=(), pdbs=(),
                             addons={"coredns": "v1.12.1"})
    ok = addon_rolled_out(obs, "coredns", "1.12.1")
    assert (ok.phase, ok.message, ok.problems) == (S, "coredns reports v1.12.1", 0)
    behind = addon_rolled_out(obs, "coredns", "1.12.2")
    assert (behind.phase, behind.message, behind.problems) == (
        F, "coredns reports v1.12.1, want 1.12.2", 1)
    # an add-on the backend does not report cannot be judged: Error, not Failed
    unread = addon_rolled_out(obs, "cilium", "1.18.1")
    assert (unread.phase, unread.message) == (E, "cannot tell: no version reported for cilium")


# -- readings and the one analysis path --------------------------------------------------------


def test_a_reading_is_a_value_or_an_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        Reading(1.0, error="broke")
    assert Reading.broken("x") == Reading(error="x")


@pytest.mark.parametrize(("reading", "phase", "message"), [
    (Reading(0.03, label="error_rate"), INC,
     "error_rate = 0.03: neither 'result <= 0.01' nor 'result > 0.05' holds"),
    (Reading(0.0), S, "error-rate = 0: success condition 'result <= 0.01' holds"),
    (Reading(0.1, "3 pods not Ready"), F, "3 pods not Ready"),  # evidence explains itself
    (Reading.broken("cannot tell: no error_rate reported"), E,
     "cannot tell: no error_rate reported"),
    (Reading(math.nan, "stale evidence", label="error_rate"), E,
     "error_rate: the value is not a number (the check broke)"),
    (Reading(), E, "error-rate: no value (the check broke)"),
])
def test_judge_reading(reading: Reading, phase: Phase, message: str) -> None:
    m = judge_reading(spec("result <= 0.01", "result > 0.05"), reading, 5.0)
    assert (m.phase, m.message, m.at) == (phase, message, 5.0)
    assert m.value == (reading.value if phase is not E else None)


def test_metric_run_takes_readings() -> None:
    run = MetricRun(spec("result <= 0.01", "result > 0.05", count=2))
    assert run.take(Reading(0.0), 0.0).phase is S
    assert run.take(Reading.broken("no data"), 10.0).phase is E
    assert run.status() is R and run.consecutive_errors == 1
    assert run.take(Reading(0.03), 20.0).phase is INC
    assert run.status() is INC


# -- providers ---------------------------------------------------------------------------------


def step(kind: str = "node", *, targets: tuple[str, ...] = ("n1",),
         changes: tuple[Change, ...] = (Change("kubelet", "1.33.5", "1.34.2"),),
         to: str = "1.34.2") -> Step:
    return Step(id="prod/001-x", wave="w", cluster="prod", phase=PlanPhase.NODES,
                action="upgrade-pool", component=kind, from_version="1.33.5", to_version=to,
                targets=targets, reason="test", changes=changes)


def context(*, obs: ClusterObservation | None = None, sig: HealthSignals | None = None,
            st: Step | None = None, params: dict[str, str] | None = None,
            memo: dict[str, object] | None = None) -> GateContext:
    s = st or step()
    return GateContext(gate="g", step=s, targets=s.targets, now=1000.0, observation=obs,
                       health=sig, params=params or {}, memo=memo if memo is not None else {})


def judged(kind: str, ctx: GateContext) -> Measurement:
    p = provider_for(kind)
    return judge_reading(p.defaults.spec(kind), p.measure(ctx), ctx.now)


def test_built_in_providers_keep_their_checks_verdicts_and_messages() -> None:
    sick = cluster(nodes=(node("n1", ready=False, kubelet="v1.34.2"),))
    m = judged("node-health", context(obs=sick))
    assert (m.phase, m.message, m.value) == (F, "n1: not Ready", 1.0)
    fine = judged("node-health", context(obs=cluster(nodes=(node("n1"),))))
    assert (fine.phase, fine.value) == (S, 0.0)
    assert fine.message == "1 node(s) Ready, uncordoned, at kubelet 1.34.2"
    unread = judged("node-health", context(obs=cluster(nodes=(node("n1", kubelet=""),))))
    assert (unread.phase, unread.message) == (E, "cannot tell: n1: no kubelet version reported")
    slow = judged("apiserver-health", context(sig=signals(latency=1500.0)))
    assert (slow.phase, slow.message) == (F, "latency 1500 ms > 1000 ms")
    both = judged("apiserver-health", context(sig=signals(ok={"cp1": False}, latency=1500.0)))
    assert (both.phase, both.value) == (F, 2.0)  # two problems found
    assert judged("apiserver-health", context(sig=signals(latency=None))).phase is E


def test_canary_provider_reads_the_ratio_under_its_limit() -> None:
    p = provider_for("canary")
    assert str(p.defaults.failure) == "result > 2" and p.defaults.success is None
    bad = judged("canary", context(sig=signals(metrics={"error_rate": 0.25,
                                                        "error_rate_baseline": 0.002})))
    assert bad.phase is F and bad.value == pytest.approx(125.0)
    assert bad.message == "error_rate 0.25 vs error_rate_baseline 0.002: ratio 125, limit 2"
    at_limit = judged("canary", context(sig=signals(metrics={"error_rate": 0.02,
                                                             "error_rate_baseline": 0.01})))
    assert at_limit.phase is S
    missing = judged("canary", context(sig=signals(metrics={"error_rate": 0.02})))
    assert (missing.phase, missing.message) == (E, "cannot tell: no error_rate_baseline reported")


def test_etcd_provider_remembers_the_raft_index_between_measurements() -> None:
    memo: dict[str, object] = {}
    first = judged("etcd-health", context(sig=signals(etcd=HEALTHY_ETCD), memo=memo))
    assert first.phase is S and memo["raft"] == 510
    stuck = judged("etcd-health", context(sig=signals(etcd=HEALTHY_ETCD), memo=memo))
    assert (stuck.phase, stuck.message) == (F, "raft index did not advance (510 → 510)")


def test_workload_provider_tracks_pending_pods_in_its_memo() -> None:
    memo: dict[str, object] = {}
    waiting = (pod("web-a", "web", phase="Pending", node_name=None),)
    assert judged("workload-availability",
                  context(obs=cluster(time=1000.0, pods=waiting), memo=memo)).phase is S
    late = judged("workload-availability",
                  context(obs=cluster(time=1400.0, pods=waiting), memo=memo))
    assert (late.phase, late.message) == (F, "shop/web-a Pending for 400s (limit 300s)")


def test_addon_and_snapshot_providers() -> None:
    st = step("coredns", targets=("coredns",), changes=(), to="1.12.1")
    obs = cluster()
    assert judged("addon-health", context(obs=obs, st=st)).phase is E  # not reported
    assert judged("etcd-snapshot", context(st=st)).phase is S


def test_threshold_provider_reads_the_metric_and_the_gate_judges_it() -> None:
    p = provider_for(THRESHOLD)
    two_sided = spec("result <= 0.01", "result > 0.05")
    read = p.measure(context(sig=signals(metrics={"error_rate": 0.03}),
                             params={"metric": "error_rate"}))
    assert read == Reading(0.03, label="error_rate")
    assert judge_reading(two_sided, read, 0.0).phase is INC
    missing = p.measure(context(sig=signals(), params={"metric": "error_rate"}))
    assert missing == Reading.broken("cannot tell: no error_rate reported")
    nan = p.measure(context(sig=signals(metrics={"error_rate": math.nan}),
                            params={"metric": "error_rate"}))
    assert judge_reading(two_sided, nan, 0.0).phase is E
    with pytest.raises(ValueError, match="no health signals were read"):
        p.measure(context(params={"metric": "error_rate"}))


def test_unknown_gate_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownGateKind) as err:
        provider_for("datadog")
    assert "no gate provider for kind 'datadog'" in str(err.value)
    assert "canary" in str(err.value) and "node-health" in str(err.value)


# -- the registry covers every kind listed elsewhere -------------------------------------------


def _planner_gate_kinds() -> set[str]:
    import importlib
    import pkgutil

    import pitstop.planner

    kinds: set[str] = set()
    for info in pkgutil.iter_modules(pitstop.planner.__path__, "pitstop.planner."):
        module = importlib.import_module(info.name)
        kinds |= {v.kind for v in vars(module).values() if isinstance(v, Gate)}
    return kinds


def test_every_gate_kind_the_planner_emits_has_a_provider() -> None:
    from pathlib import Path

    from pitstop.catalog import load_catalog
    from pitstop.config import load_files
    from pitstop.planner import make_plan

    kinds = _planner_gate_kinds()
    assert len(kinds) >= 8, kinds  # the scan found the planner's gates
    examples = Path(__file__).resolve().parent.parent / "examples"
    cfg = load_files([examples / n for n in ("fleet.yaml", "policy.yaml", "target.yaml")])
    assert cfg.fleet and cfg.target and cfg.policy
    plan = make_plan(cfg.fleet, cfg.target, cfg.policy, load_catalog(),
                     now=datetime(2026, 11, 26, tzinfo=UTC))
    emitted = {g.kind for s in plan.steps for g in s.gates}
    assert emitted and emitted <= kinds
    assert kinds <= set(PROVIDERS), kinds - set(PROVIDERS)
    # and no provider is dead: each is a kind the planner emits, a custom gate's kind, or
    # the canary judge's (added by the executor after canary node steps: spec.canaryJudge)
    from pitstop.gates.judging import CANARY_JUDGE
    assert set(PROVIDERS) == kinds | {THRESHOLD, PROMETHEUS, CANARY_JUDGE}


def test_every_gate_timing_key_is_a_registered_kind() -> None:
    from pitstop.model.policy import BuiltinGateKind

    keys = set(get_args(BuiltinGateKind))
    assert keys <= set(PROVIDERS) - {THRESHOLD, PROMETHEUS}, keys - set(PROVIDERS)
    # the kinds without a gateTiming entry: the custom gates' (timed per gate), the canary
    # judge's (timed by spec.canaryJudge) and the snapshot check (a single measurement of an
    # operation that already succeeded)
    assert set(PROVIDERS) - keys == {THRESHOLD, PROMETHEUS, "canary-judge", "etcd-snapshot"}


# -- custom gates in the policy ----------------------------------------------------------------

POLICY_HEAD = "apiVersion: pitstop.dev/v1alpha1\nkind: UpgradePolicy\nmetadata: {name: p}\n"


def test_custom_gate_conditions_map_onto_success_and_failure() -> None:
    from pitstop.model import CustomGate

    old = CustomGate.model_validate({"name": "g", "metric": "m", "condition": "result < 1"})
    assert (old.success, old.failure_condition) == ("result < 1", None)
    assert old.conditions() == {"condition": "result < 1"}
    new = CustomGate.model_validate({"name": "g", "metric": "m", "successCondition": "result < 1",
                                     "failureCondition": "result > 5", "inconclusiveLimit": 2,
                                     "consecutiveErrorLimit": 0})
    assert (new.success, new.failure_condition) == ("result < 1", "result > 5")
    assert (new.inconclusive_limit, new.consecutive_error_limit) == (2, 0)
    assert new.conditions() == {"successCondition": "result < 1",
                                "failureCondition": "result > 5"}


@pytest.mark.parametrize(("gate", "message"), [
    ('{name: e, metric: m, condition: "result < 1", successCondition: "result < 2"}',
     "policy.yaml:6: spec.gates[0]: gate e: condition is the older name of successCondition; "
     "keep one of the two"),
    ("{name: e, metric: m}",
     "policy.yaml:6: spec.gates[0]: gate e: give successCondition, failureCondition or both"),
    ('{name: e, metric: m, failureCondition: "result > 1", inconclusiveLimit: -1}',
     "spec.gates[0].inconclusiveLimit"),
    ('{name: e, metric: m, failureCondition: "result > 1", consecutiveErrorLimit: -1}',
     "spec.gates[0].consecutiveErrorLimit"),
])
def test_custom_gate_fields_are_checked_when_loaded(gate: str, message: str) -> None:
    from pitstop.config import load_documents
    from pitstop.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_documents(POLICY_HEAD + f"spec:\n  gates:\n  - {gate}\n", "policy.yaml")
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("key", ["condition", "successCondition", "failureCondition"])
def test_every_condition_of_a_custom_gate_is_parsed_when_loaded(tmp_path: Any,
                                                                 key: str) -> None:
    from tests.test_cli import pitstop

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_HEAD + "spec:\n  gates:\n  - name: e\n    metric: error_rate\n"
                      f"    {key}: 'result >> 1'\n")
    r = pitstop("validate", "-f", str(policy))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"spec.gates[0].{key}: condition 'result >> 1'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    policy.write_text(POLICY_HEAD + "spec:\n  gates:\n  - name: e\n    metric: error_rate\n"
                      f"    {key}: 'result >= 1'\n")
    ok = pitstop("validate", "-f", str(policy))
    assert ok.returncode == 0, ok.stderr
