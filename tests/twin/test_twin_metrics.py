"""The twin's metric series (pitstop.twin.metrics): deterministic per seed, one series per
node, a ``metricRegression`` fault shifting only upgraded nodes from ``after`` past their
upgrade, and a query for a signal the twin does not have raising MetricQueryError naming the
ones it has."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.backend import UpgradeComponent
from pitstop.backend.metrics import MetricQuery, MetricQueryError, metric_source
from pitstop.twin import Twin
from pitstop.twin.metrics import NOISE, SIGNALS

from .twinlib import C, faults, fleet, settle, twin


def _q(signal: str, nodes: str | None = None) -> MetricQuery:
    return MetricQuery(promql=signal, template=signal,
                       fills={"cluster": C, **({"nodes": nodes} if nodes else {})})


def _points(t: object, signal: str, start: float, end: float,
            step: float = 30.0) -> dict[str, list[tuple[float, float]]]:
    source = metric_source(t)
    assert source is not None
    return {s.labels["node"]: list(s.points) for s in source.range(C, _q(signal), start, end,
                                                                    step)}


def test_the_series_are_the_same_for_a_seed_and_differ_between_seeds(tmp_path: Path) -> None:
    f = fleet()
    a = twin(tmp_path, f, seed=3, name="a.db")
    b = twin(tmp_path, f, seed=3, name="b.db")
    c = twin(tmp_path, f, seed=4, name="c.db")
    for t in (a, b, c):
        t.clock.sleep(600)
    first = _points(a, "pod-startup-p99", 0, 600)
    assert first == _points(b, "pod-startup-p99", 0, 600)
    assert first != _points(c, "pod-startup-p99", 0, 600)
    assert sorted(first) == ["n0", "n1", "n2"]
    assert all(len(ps) == 21 for ps in first.values())
    base = SIGNALS["pod-startup-p99"]
    values = [v for ps in first.values() for _, v in ps]
    assert all(base * (1 - NOISE) <= v <= base * (1 + NOISE) for v in values)
    assert len(set(values)) > len(values) // 2  # noise, not a constant
    # a twin opened again answers the same
    a.close()
    with Twin.open(tmp_path / "a.db") as again:
        assert _points(again, "pod-startup-p99", 0, 600) == first


def test_the_nodes_fill_selects_series_and_no_point_comes_from_the_future(
        tmp_path: Path) -> None:
    t = twin(tmp_path, fleet())
    t.clock.sleep(120)
    source = t.metrics
    series = source.range(C, _q("kubelet-p99-latency", "n0|n2"), 0, 10_000, 60)
    assert [(s.labels["node"], s.labels["pool"]) for s in series] == [("n0", "general"),
                                                                      ("n2", "general")]
    assert all(s.points[-1][0] <= 120 for s in series)
    now = source.instant(C, _q("kubelet-p99-latency", "n1"), 120)
    assert [s.labels["node"] for s in now] == ["n1"]
    (n1,) = source.range(C, _q("kubelet-p99-latency", "n1"), 0, 120, 60)
    assert now[0].value == dict(n1.points)[120]
    assert source.alerts(C) == ()


def test_an_unknown_signal_raises_a_query_error_naming_the_known_ones(tmp_path: Path) -> None:
    source = twin(tmp_path, fleet()).metrics
    with pytest.raises(MetricQueryError, match="no series for template 'apiserver-qps'") as e:
        source.range(C, _q("apiserver-qps"), 0, 60, 30)
    assert all(name in str(e.value) for name in SIGNALS)
    with pytest.raises(MetricQueryError, match="without a template"):
        source.instant(C, MetricQuery(promql="up"), 0)
    with pytest.raises(MetricQueryError, match="no cluster 'nope'"):
        source.range("nope", _q("pod-startup-p99"), 0, 60, 30)
    with pytest.raises(MetricQueryError, match="is not a window"):
        source.range(C, _q("pod-startup-p99"), 60, 0, 30)


def test_a_regression_shifts_upgraded_nodes_only_from_after_past_their_upgrade(
        tmp_path: Path) -> None:
    f = fleet()
    scenario = faults({"type": "metricRegression", "signal": "pod-startup-p99", "shift": 0.3,
                       "after": "2m"})
    clean = twin(tmp_path, f, name="clean.db")
    hit = twin(tmp_path, f, name="hit.db", scenario=scenario)
    for t in (clean, hit):
        t.start(C, "up-n0", UpgradeComponent("n0", "kubelet", "1.34.3"))
        settle(t, 400)
        t.clock.sleep(900)
    op = hit.poll(C, "up-n0")
    assert op.finished is not None
    shifted_from = op.finished + 120
    now = hit.clock.now()
    before, after = _points(clean, "pod-startup-p99", 0, now), _points(hit, "pod-startup-p99",
                                                                        0, now)
    assert before["n1"] == after["n1"] and before["n2"] == after["n2"]  # not upgraded
    for (t, plain), (_, shifted) in zip(before["n0"], after["n0"], strict=True):
        expected = plain * 1.3 if t >= shifted_from else plain
        assert shifted == pytest.approx(expected, rel=1e-5), t
    assert any(t >= shifted_from for t, _ in after["n0"])
    # another signal is untouched
    assert _points(clean, "container-restarts", 0, now) == _points(hit, "container-restarts",
                                                                   0, now)
