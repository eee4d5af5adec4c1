"""Bad input is reported with file, line, field and fix — never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitstop.config import load_documents, load_files, target_from_text
from pitstop.errors import ConfigError

GOOD = """\
apiVersion: pitstop.dev/v1alpha1
kind: Fleet
metadata: {name: t}
spec:
  clusters:
  - name: a
    controlPlane:
      apiServers: [{name: cp1, version: "1.32.4"}]
      controllerManager: {version: "1.32.4"}
      scheduler: {version: "1.32.4"}
    nodePools:
    - name: p
      nodes:
      - name: n1
        kubelet: "1.32.4"
        containerRuntime: {name: containerd, version: "1.7.24"}
"""


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_documents(text, "fleet.yaml")
    return info.value


def test_good_document_loads() -> None:
    (fleet,) = load_documents(GOOD, "fleet.yaml")
    assert fleet.spec.clusters[0].node_pools[0].nodes[0].kubelet == "1.32.4"  # type: ignore[attr-defined]


def test_missing_field_names_line_and_field() -> None:
    exc = _err(GOOD.replace('        kubelet: "1.32.4"\n', ""))
    (p,) = exc.problems
    assert (p.file, p.line) == ("fleet.yaml", 14)
    assert p.field == "spec.clusters[0].nodePools[0].nodes[0].kubelet"
    assert "required" in p.message and "kubelet:" in p.fix


def test_wrong_type() -> None:
    exc = _err(GOOD.replace("name: p\n", "name: p\n      controlPlane: maybe\n"))
    (p,) = exc.problems
    assert p.field == "spec.clusters[0].nodePools[0].controlPlane"
    assert p.line == 13 and "bool" in p.message and "'maybe'" in p.message


def test_unknown_field_suggests_spelling() -> None:
    exc = _err(GOOD.replace("        kubelet:", "        kubelt:"))
    msgs = {p.field: p for p in exc.problems}
    p = msgs["spec.clusters[0].nodePools[0].nodes[0].kubelt"]
    assert p.line == 15 and "`kubelet`" in p.fix


def test_unknown_version_and_float_version() -> None:
    exc = _err(GOOD.replace('kubelet: "1.32.4"', "kubelet: latest").replace(
        'scheduler: {version: "1.32.4"}', "scheduler: {version: 1.30}"))
    by_field = {p.field: p for p in exc.problems}
    assert "not a version" in by_field["spec.clusters[0].nodePools[0].nodes[0].kubelet"].message
    sched = by_field["spec.clusters[0].controlPlane.scheduler.version"]
    assert sched.line == 10 and "quote versions" in sched.message


def test_yaml_syntax_error_has_line() -> None:
    exc = _err(GOOD.replace("    nodePools:\n", "    nodePools:\n   - name: [\n"))
    (p,) = exc.problems
    assert p.line is not None and p.line >= 12
    assert "YAML syntax error" in p.message


def test_wrong_kind_and_api_version() -> None:
    assert "unknown kind 'Flet'" in str(_err(GOOD.replace("kind: Fleet", "kind: Flet")))
    assert "expected 'pitstop.dev/v1alpha1'" in str(
        _err(GOOD.replace("pitstop.dev/v1alpha1", "pitstop.dev/v1")))


def test_duplicate_cluster_across_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD)
    with pytest.raises(ConfigError, match="also defined in"):
        load_files([a, b])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_files([tmp_path / "nope.yaml"])


def test_policy_validation_messages() -> None:
    policy = """\
apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: p}
spec:
  maintenanceWindows:
  - {name: w, start: "22:00", duration: 4h, timeZone: Mars/Olympus}
  pools:
  - {strategy: in-place, maxUnavailable: 0}
  waivers:
  - {rule: known-bad, component: etcd, reason: short, expires: 2026-01-01, approvedBy: x}
"""
    with pytest.raises(ConfigError) as info:
        load_documents(policy, "policy.yaml")
    text = str(info.value)
    assert "policy.yaml:6: spec.maintenanceWindows[0].timeZone: unknown time zone" in text
    assert "policy.yaml:8: spec.pools[0]: in-place strategy needs maxUnavailable" in text
    assert "spec.waivers[0].reason" in text


def test_target_text() -> None:
    t = target_from_text("kubernetes=1.34.2, containerd=2.1.4")
    assert t.spec.versions == {"kubernetes": "1.34.2", "containerd": "2.1.4"}
    for bad, needle in [("kubernetes", "COMPONENT=VERSION"), ("kubernetes=latest", "not a version"),
                        ("", "empty target"), ("etcd=3.5.1,etcd=3.5.2", "given twice")]:
        with pytest.raises(ConfigError, match=needle):
            target_from_text(bad)


def test_unquoted_time_is_refused() -> None:
    policy = """\
apiVersion: pitstop.dev/v1alpha1
kind: UpgradePolicy
metadata: {name: p}
spec:
  maintenanceWindows:
  - {name: w, start: 22:00, duration: 4h}
"""
    with pytest.raises(ConfigError, match=r"policy.yaml:6: spec.maintenanceWindows\[0\].start: "
                                          r"1320 was read as a number; quote times"):
        load_documents(policy, "policy.yaml")


def test_policy_round_trips_through_json() -> None:
    from pitstop.model import UpgradePolicy

    text = (Path(__file__).resolve().parent.parent / "examples" / "policy.yaml").read_text()
    (policy,) = load_documents(text, "policy.yaml")
    assert isinstance(policy, UpgradePolicy)
    again = UpgradePolicy.model_validate_json(policy.model_dump_json(by_alias=True))
    assert again == policy


def test_a_second_object_of_a_single_kind_is_refused(tmp_path: Path) -> None:
    faults = ("apiVersion: pitstop.dev/v1alpha1\nkind: FaultScenario\nmetadata: {name: f}\n"
              "spec: {faults: [{type: pdbNeverAllows, pdb: a/b}]}\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(faults)
    b.write_text(faults)
    with pytest.raises(ConfigError, match="a second FaultScenario; only one may be given"):
        load_files([a, b])
