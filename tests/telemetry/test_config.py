"""The configuration of Prometheus gates: endpoints in the fleet, PromQL gates and alert gates
in the policy, the files checked when a run is prepared, and bad input named by file and
field through the command line (exit 2, no traceback)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pitstop.config import load_files
from pitstop.errors import ConfigError
from pitstop.gates.promql import PLACEHOLDERS, fill, node_regex, templates
from pitstop.kinds.api import Prepared, RunOptions
from pitstop.kinds.telemetry import WithTelemetry, attach_metrics, telemetry_record
from pitstop.model import CustomGate, Fleet
from pitstop.model.policy import AlertGate
from pitstop.telemetry import PrometheusSource
from tests.executor.test_executor import fleet_doc
from tests.test_cli import EX, pitstop


def _fleet(prometheus: dict[str, Any] | None) -> dict[str, Any]:
    doc = fleet_doc(nodes=2)
    if prometheus is not None:
        doc["spec"]["clusters"][0]["telemetry"] = {"prometheus": prometheus}
    return doc


def test_an_endpoint_is_read_with_its_defaults() -> None:
    fleet = Fleet.model_validate(_fleet({"url": "https://prom.monitoring:9090/p"}))
    telemetry = fleet.spec.clusters[0].telemetry
    assert telemetry is not None and telemetry.prometheus is not None
    assert telemetry.prometheus.timeout.total_seconds() == 10
    assert telemetry.prometheus.bearer_token_file is None


@pytest.mark.parametrize(("endpoint", "says"), [
    ({"url": "prom:9090"}, "is not an http(s) URL"),
    ({"url": "ftp://prom"}, "is not an http(s) URL"),
    ({"url": "https://user:pw@prom:9090"}, "holds credentials"),
    ({"url": "https://prom:9090/?x=1"}, "query or fragment"),
    ({"url": "https://prom", "timeout": "0s"}, "timeout must be above 0"),
    ({"url": "https://prom", "timeout": "1h"}, "at most 5m"),
    ({"url": "https://prom", "token": "x"}, "Extra inputs"),
])
def test_bad_endpoints_are_refused(endpoint: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Fleet.model_validate(_fleet(endpoint))


def _gate(**kw: Any) -> CustomGate:
    return CustomGate.model_validate({"name": "g", **kw})


def test_a_gate_has_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of metric, query"):
        _gate(metric="error_rate", query="up", failureCondition="result > 0")
    with pytest.raises(ValidationError, match="got none"):
        _gate(failureCondition="result > 0")
    with pytest.raises(ValidationError, match="range goes with query"):
        _gate(template="etcd-has-leader", range={"window": "5m"})
    with pytest.raises(ValidationError, match="reduce and emptyResult go with query"):
        _gate(metric="error_rate", reduce="max", failureCondition="result > 0")
    with pytest.raises(ValidationError, match="give successCondition, failureCondition"):
        _gate(query="up")  # a query of one's own says when it is good or bad
    assert _gate(template="etcd-has-leader").success is None  # the template's conditions


@pytest.mark.parametrize(("rng", "says"), [
    ({"window": "0s"}, "window must be above 0"),
    ({"window": "5m", "step": "10m"}, "step must be above 0 and at most the window"),
    ({"window": "7d", "step": "1s"}, "more than 11,000 points"),
])
def test_bad_ranges_are_refused(rng: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _gate(query="up", range=rng, failureCondition="result > 0")


def test_alert_gates_check_their_regexes_and_timing() -> None:
    assert AlertGate.model_validate({"name": "a"}).alert_names == []
    with pytest.raises(ValidationError, match=r"matchRegex.severity: .* is not a regex"):
        AlertGate.model_validate({"name": "a", "matchRegex": {"severity": "crit("}})
    with pytest.raises(ValidationError, match="interval must be above 0"):
        AlertGate.model_validate({"name": "a", "interval": "0s"})
    with pytest.raises(ValidationError, match="maxWait must be 0 to 1d"):
        AlertGate.model_validate({"name": "a", "maxWait": "2d"})


def test_every_template_is_whole_and_uses_known_placeholders() -> None:
    found = templates()
    assert len(found) == 9
    for t in found.values():
        left = fill(t.promql, dict.fromkeys(PLACEHOLDERS, "x"))
        assert "{nodes}" not in left and "{canary}" not in left and "{baseline}" not in left
        assert t.success is not None or t.failure is not None
    assert node_regex(["b", "a", "a"]) == "a|b"


def test_an_unknown_template_is_bad_input_naming_the_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text((EX / "policy.yaml").read_text() + (
        "  gates:\n    - name: g\n      template: apiserver-errors\n"))
    r = pitstop("validate", "-f", str(EX / "fleet.yaml"), "-f", str(policy))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "spec.gates[0].template" in r.stderr and "apiserver-5xx-ratio" in r.stderr
    assert "Traceback" not in r.stderr


def _write(tmp: Path, prometheus: dict[str, Any]) -> Any:
    import yaml

    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(_fleet(prometheus)))
    return load_files([path])


def test_missing_token_and_ca_files_refuse_the_run_naming_the_field(tmp_path: Path) -> None:
    cfg = _write(tmp_path, {"url": "https://prom:9090", "bearerTokenFile": "/nonexistent/t",
                            "caFile": str(tmp_path)})  # a directory is not a CA file
    with pytest.raises(ConfigError) as err:
        telemetry_record(cfg, {"c1"})
    text = str(err.value)
    assert "spec.clusters[0].telemetry.prometheus.bearerTokenFile" in text
    assert "spec.clusters[0].telemetry.prometheus.caFile" in text and "Fix:" in text
    assert telemetry_record(cfg, {"other"}) == {}  # a cluster the plan does not touch


class _Kind:
    """A backend kind whose backend is a plain object: what WithTelemetry adds is all there
    is to see."""

    name = "plain"
    help = "a plain object"

    def prepare(self, cfg: Any, plan: Any, options: RunOptions) -> Prepared:
        return Prepared({"kind": "plain"}, lambda run_dir: types.SimpleNamespace(), "nothing")

    def reopen(self, run: Any) -> Any:
        return types.SimpleNamespace()

    def describe(self, record: dict[str, Any]) -> str:
        return "nothing"


def test_with_telemetry_gives_made_and_reopened_backends_the_source(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t\n")
    cfg = _write(tmp_path, {"url": "http://127.0.0.1:9", "bearerTokenFile": str(token)})
    plan = types.SimpleNamespace(steps=[types.SimpleNamespace(cluster="c1")])
    kind = WithTelemetry(_Kind())  # type: ignore[arg-type]
    prepared = kind.prepare(cfg, plan, RunOptions(runs_dir=tmp_path))  # type: ignore[arg-type]
    record = prepared.record["telemetry"]
    assert record["c1"]["url"] == "http://127.0.0.1:9"
    assert record["c1"]["bearerTokenFile"] == str(token.resolve())
    made = prepared.make(tmp_path)
    assert isinstance(made.metrics, PrometheusSource)  # type: ignore[attr-defined]
    reopened = kind.reopen(types.SimpleNamespace(  # type: ignore[arg-type]
        backend=prepared.record, path=tmp_path))
    assert reopened.metrics.endpoints["c1"].url == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    # no endpoint: nothing added
    bare = attach_metrics(types.SimpleNamespace(), None)  # type: ignore[arg-type]
    assert not hasattr(bare, "metrics")
