"""The command line, run as a user runs it: the installed ``pitstop`` script in a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
EXAMPLE_FILES = ["-f", str(EX / "fleet.yaml"), "-f", str(EX / "policy.yaml"),
                 "-f", str(EX / "target.yaml")]
NOW = ["--now", "2026-11-26T00:00:00+00:00"]


def pitstop(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pitstop", path=str(Path(sys.executable).parent))
    assert exe, "the pitstop console script is not installed in this venv (pip install -e .)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)


def _unblocked_fleet(tmp_path: Path) -> Path:
    text = (EX / "fleet.yaml").read_text().replace("maxUnavailable: 0", "maxUnavailable: 1")
    out = tmp_path / "fleet.yaml"
    out.write_text(text)
    return out


def test_plan_blocked_by_example_pdb_exits_1_and_names_it() -> None:
    r = pitstop("plan", *EXAMPLE_FILES, *NOW)
    assert r.returncode == 1, r.stderr
    assert "pdb-blocks-drain" in r.stdout and "payments/ledger" in r.stdout
    assert "Traceback" not in r.stderr


def test_plan_json_contract(tmp_path: Path) -> None:
    fleet = _unblocked_fleet(tmp_path)
    r = pitstop("plan", "-f", str(fleet), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), *NOW, "--start", "2026-11-30T00:00:00+00:00", "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "pitstop.dev/v1alpha1/Plan" and doc["reachable"] is True
    assert not [f for f in doc["findings"] if f["severity"] == "blocking"]
    for step in doc["steps"]:
        assert {"id", "cluster", "component", "from", "to", "targets", "wave", "reason",
                "gates", "phase", "changes", "dependsOn"} <= step.keys()
        assert step["reason"] and step["gates"] and step["targets"]
    assert [w["name"] for w in doc["waves"]] == ["canary", "europe", "americas"]
    assert doc["schedule"]["finish"] is not None


@pytest.mark.parametrize("fmt", ["yaml", "markdown", "table"])
def test_plan_other_formats(tmp_path: Path, fmt: str) -> None:
    fleet = _unblocked_fleet(tmp_path)
    r = pitstop("plan", "-f", str(fleet), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), *NOW, "-o", fmt)
    assert r.returncode == 0, r.stderr
    if fmt == "yaml":
        assert yaml.safe_load(r.stdout)["reachable"] is True
    elif fmt == "markdown":
        assert "| # | step | wave | phase |" in r.stdout and "## Calendar" in r.stdout
        assert "| `prod-eu-1/005-apiserver-cp-1-1.35.8` | europe |" in r.stdout
    else:
        assert "kube-apiserver 1.34.12 → 1.35.8" in r.stdout


def test_explain_gives_reasons() -> None:
    r = pitstop("explain", *EXAMPLE_FILES, *NOW, "--step", "prod-us-1/006")
    assert r.returncode == 1  # the fleet is still blocked; explain says so at the end
    assert "why:" in r.stdout and "one minor at a time" in r.stdout
    assert "gate:    apiserver-ready" in r.stdout
    assert "blocked pdb-blocks-drain" in r.stdout


BAD_CASES = {
    "missing-field": ("        kubelet: 1.34.12\n", "", "kubelet: this field is required"),
    "wrong-type": ("      pods: 110\n", "      pods: many\n", "pods: Input should be a valid"),
    "unknown-version": ("version: 1.7.30", "version: stable", "'stable' is not a version"),
    "yaml-syntax": ("  clusters:\n", "  clusters:\n  - name: [\n", "YAML syntax error"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_file_line_field(tmp_path: Path, case: str) -> None:
    old, new, needle = BAD_CASES[case]
    text = (EX / "fleet.yaml").read_text()
    assert old in text
    bad = tmp_path / "fleet.yaml"
    bad.write_text(text.replace(old, new, 1))
    r = pitstop("plan", "-f", str(bad), "--target", "kubernetes=1.36.5")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert f"{bad}:" in r.stderr and needle in r.stderr
    first = next(line for line in r.stderr.splitlines() if str(bad) in line)
    assert first.split(":")[1].isdigit(), "the error names the line"


def test_bad_target_and_option_exit_2() -> None:
    r = pitstop("plan", "-f", str(EX / "fleet.yaml"), "--target", "kubernetes")
    assert r.returncode == 2 and "COMPONENT=VERSION" in r.stderr
    r = pitstop("plan", "-f", str(EX / "fleet.yaml"), "--target", "kubernetes=1.36.5",
                "--now", "yesterday")
    assert r.returncode == 2 and "ISO-8601" in r.stderr
    r = pitstop("plan", "-f", str(EX / "nope.yaml"), "--target", "kubernetes=1.36.5")
    assert r.returncode == 2 and "file not found" in r.stderr


def test_refused_target_exits_1() -> None:
    r = pitstop("plan", *EXAMPLE_FILES, *NOW, "--target", "etcd=3.5.1", "-o", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert "target-known-bad" in {f["code"] for f in doc["findings"]}


def test_validate_and_schema(tmp_path: Path) -> None:
    r = pitstop("validate", "-f", str(EX / "fleet.yaml"), "-f", str(EX / "policy.yaml"))
    assert r.returncode == 0 and "ok  Fleet/acme: 3 clusters" in r.stdout
    r = pitstop("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)

    def as_editor_sees(name: str) -> object:  # YAML dates stay strings for a schema checker
        return json.loads(json.dumps(yaml.safe_load((EX / name).read_text()), default=str))

    for name in ("fleet.yaml", "policy.yaml", "target.yaml"):
        jsonschema.validate(as_editor_sees(name), schema)
    broken = as_editor_sees("policy.yaml")
    assert isinstance(broken, dict)
    broken["spec"]["pools"][0]["strategy"] = "yolo"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_catalog_command() -> None:
    r = pitstop("catalog", "-o", "json")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["kubernetes"] and doc["apis"] and doc["knownBad"]
    r = pitstop("catalog", "kubernetes")
    assert r.returncode == 0
    header = r.stdout.splitlines()[1].split()  # "kubernetes", then the table's header
    assert header[:2] == ["MINOR", "RELEASED"] and "PATCH" in header, r.stdout


def test_help_is_fast_and_light() -> None:
    code = ("import sys\nfrom pitstop.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pydantic', 'rich', 'yaml', 'pitstop.planner') "
            "if m in sys.modules]\nprint(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().endswith("[]"), r.stdout
    assert "Examples" in pitstop("plan", "--help").stdout


def test_bad_gate_condition_is_bad_input(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text((EX / "policy.yaml").read_text() + (
        "  gates:\n    - name: g\n      metric: error_rate\n      condition: result <== 1\n"))
    r = pitstop("plan", "-f", str(EX / "fleet.yaml"), "-f", str(policy), "--target",
                "kubernetes=1.36.5")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "spec.gates[0].condition" in r.stderr and "Traceback" not in r.stderr
