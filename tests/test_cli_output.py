"""What the command line prints, as a kubectl user expects it: plans readable at a glance, plain
columns off a terminal, ``-o json|yaml`` on the commands that read, runs named by id,
``status --watch``, exit codes that tell how a run ended, shell completion, and data-derived
text that cannot break or fake the output (rich markup, terminal control characters).

The commands run as a user runs them: the installed entry point in a subprocess, on the
example fleet and the twin. Renderer tests build plans from real fleets; names that a loader
would refuse are put in place afterwards (``object.__setattr__``), as if they had come from
somewhere that does not validate them."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from pitstop.calendar import schedule_plan
from pitstop.catalog import load_catalog
from pitstop.cli.runs import execute, start_run
from pitstop.config import load_files
from pitstop.executor.approvals import approve_step
from pitstop.model import Fleet
from pitstop.planner import make_plan
from pitstop.planner.plan import Change, Step
from pitstop.render import render_explain, render_plan
from pitstop.render.plan import change_chains, group_findings
from pitstop.render.runs import split_rollbacks
from pitstop.render.safe import markup, visible
from pitstop.render.table import plain_table
from pitstop.store import SqliteRunStore as Journal

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
EXAMPLE = ["-f", str(EX / "fleet.yaml"), "-f", str(EX / "policy.yaml"), "-f",
           str(EX / "target.yaml")]
NOW = "2026-11-30T07:00:00+00:00"
BOX = set("┏┓┗┛┃━│─┡┩╇┼├┤┬┴╭╮╰╯")
# what a hostile name can carry: a rich closing tag that matches nothing, a colour tag,
# an OSC window-title sequence (ESC … BEL), a carriage return, a right-to-left override
NASTY = "eu1-gen-05[/nope][red]\x1b]0;owned\x07\r\u202eevil"
RAW = ("\x1b", "\x07", "\r", "\u202e")


def pitstop(*args: str, cwd: Path | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=300, check=False, cwd=cwd, input=stdin,
                          env={**os.environ, **(env or {})})


def fixed_fleet(tmp: Path) -> Path:
    out = tmp / "fleet.yaml"
    out.write_text((EX / "fleet.yaml").read_text().replace("maxUnavailable: 0",
                                                           "maxUnavailable: 1"))
    return out


def policy_without_approvals(tmp: Path) -> Path:
    doc = yaml.safe_load((EX / "policy.yaml").read_text())
    doc["spec"].pop("approvals")
    out = tmp / "policy.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


# -- the plan, at a glance ------------------------------------------------------------------

@pytest.fixture(scope="module")
def plan_out() -> subprocess.CompletedProcess[str]:
    return pitstop("plan", *EXAMPLE, "--now", NOW)


@pytest.fixture(scope="module")
def plan_doc() -> dict[str, Any]:
    r = pitstop("plan", *EXAMPLE, "--now", NOW, "-o", "json")
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_plan_off_a_terminal_is_plain_aligned_columns(
        plan_out: subprocess.CompletedProcess[str], plan_doc: dict[str, Any]) -> None:
    out = plan_out.stdout
    assert plan_out.returncode == 1 and not BOX & set(out), out
    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split() == ["STEP", "WAVE", "CHANGE",
                                                                    "ON", "HOW"])
    cols = [lines[header].index(h) for h in ("WAVE", "CHANGE", "ON", "HOW")]
    rows = lines[header + 1:header + 1 + len(plan_doc["steps"])]
    for step, row in zip(plan_doc["steps"], rows, strict=True):
        assert row.startswith(step["id"] + " "), row  # every step id, as approve needs it
        assert row[cols[0]:].startswith(step["wave"] + " "), row  # columns line up
        for c in cols:
            assert row[c - 1] == " " and row[c] != " ", (row, c)


def test_plan_findings_are_grouped_by_code_with_the_objects_under_them(
        plan_out: subprocess.CompletedProcess[str], plan_doc: dict[str, Any]) -> None:
    lines = plan_out.stdout.splitlines()
    codes = {(f["severity"], f["code"]) for f in plan_doc["findings"]}
    for severity, code in codes:  # each code is said once, with how many
        heads = [ln for ln in lines if re.match(rf"{severity.upper()} +{re.escape(code)}\b", ln)]
        n = sum(1 for f in plan_doc["findings"] if f["code"] == code)
        assert heads == [f"{severity.upper():8} {code}" + (f" ({n})" if n > 1 else "")], heads
    # the warning found in every cluster: its message once, one line of objects per cluster
    message = next(f["message"] for f in plan_doc["findings"]
                   if f["code"] == "single-replica-no-pdb")
    assert sum(ln.strip() == message for ln in lines) == 1
    for cluster in ("staging-eu", "prod-eu-1", "prod-us-1"):
        assert f"    {cluster}: data/redis-cache, data/redis-cache-0" in lines
    # before: 128 lines for this example (a finding took 3 lines, a node step 3 rows)
    assert len(lines) <= 100, len(lines)


def test_plan_shows_one_version_chain_per_component_and_every_component(
        plan_out: subprocess.CompletedProcess[str], plan_doc: dict[str, Any]) -> None:
    rows = {ln.split()[0]: ln for ln in plan_out.stdout.splitlines()
            if ln.split() and "/" in ln.split()[0]}
    canary = next(s for s in plan_doc["steps"] if s["id"].startswith("prod-eu-1/")
                  and s["canary"] and s["pool"] == "general")
    row = rows[canary["id"]]
    assert "containerd 1.7.30 → 1.7.36 → 2.0.14 → 2.1.9 → 2.2.9 → 2.3.7" in row, row
    assert "kubelet, kube-proxy 1.34.12 → 1.35.8 → 1.36.5" in row, row
    for s in plan_doc["steps"]:
        for c in s["changes"]:  # kube-proxy included: nothing is left out
            assert c["component"] in rows[s["id"]] and c["to"] in rows[s["id"]], s["id"]


def _step(changes: list[tuple[str, str, str]]) -> Step:
    from pitstop.planner.plan import Phase

    return Step(id="c/001-pool-p-1.36.5", wave="w", cluster="c", phase=Phase.NODES,
                action="upgrade-nodes", component="kubelet", from_version="1.34.1",
                to_version="1.36.5", targets=("n1",), reason="r",
                changes=tuple(Change(*c) for c in changes))


def test_change_chains_merge_only_components_that_move_alike() -> None:
    alike = _step([("containerd", "1.7.30", "2.0.14"), ("kubelet", "1.34.1", "1.35.8"),
                   ("kube-proxy", "1.34.1", "1.35.8"), ("containerd", "2.0.14", "2.1.9")])
    assert change_chains(alike) == ["containerd 1.7.30 → 2.0.14 → 2.1.9",
                                    "kubelet, kube-proxy 1.34.1 → 1.35.8"]
    apart = _step([("kubelet", "1.34.1", "1.36.5"), ("kube-proxy", "1.35.2", "1.36.5")])
    assert change_chains(apart) == ["kubelet 1.34.1 → 1.36.5", "kube-proxy 1.35.2 → 1.36.5"]


def test_plan_on_a_terminal_is_boxed_and_never_folds_a_step_id() -> None:
    cfg = load_files([str(EX / n) for n in ("fleet.yaml", "policy.yaml", "target.yaml")])
    assert cfg.fleet and cfg.target and cfg.policy
    now = datetime.fromisoformat(NOW)
    plan = make_plan(cfg.fleet, cfg.target, cfg.policy, load_catalog(), now=now)
    schedule = schedule_plan(plan, cfg.policy,
                             {c.name: c.full_labels for c in cfg.fleet.spec.clusters}, now)
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    render_plan(plan, schedule, "table", console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert BOX & set(out)
    assert all(len(ln) <= 120 for ln in out.splitlines())
    for s in plan.steps:
        assert s.id in out, s.id
    assert "wave europe" in out and "approvals" in out  # folded, in the how column


def test_plain_table_headers_and_alignment() -> None:
    lines = plain_table(("id", "latestPatch", "note"), [["a", "1.2.3", "x"], ["bbbb", "→", ""]])
    assert lines == ["ID     LATEST PATCH   NOTE", "a      1.2.3          x", "bbbb   →"]


# -- text from data is shown as it is stored, and cannot break the output -----------------

@pytest.mark.parametrize(("text", "shown"), [
    ("stg-gen-01", "stg-gen-01"),
    ("a\x1b]0;t\x07b", "a\\x1b]0;t\\x07b"),
    ("x\ry", "x\\x0dy"),
    ("abc\u202etxt", "abc\\u202etxt"),
    ("tab\there", "tab\\x09here"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("line\nbreak", "line\\x0abreak"),
    ("plain → arrow, ümlaut", "plain → arrow, ümlaut"),
])
def test_visible_escapes_what_is_not_printable(text: str, shown: str) -> None:
    assert visible(text) == shown


def test_markup_is_shown_literally_by_rich() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      highlight=False)  # as pitstop's consoles
    console.print(f"node {markup(NASTY)} [bold]ok[/]")
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "eu1-gen-05[/nope][red]" in out and "\\x1b]0;owned\\x07\\x0d\\u202eevil" in out
    assert "\x1b]0;" not in out and "\x07" not in out and "\r" not in out


def _nasty_fleet() -> tuple[Fleet, Any, Any]:
    cfg = load_files([str(EX / n) for n in ("fleet.yaml", "policy.yaml", "target.yaml")])
    assert cfg.fleet and cfg.target and cfg.policy
    for cluster in cfg.fleet.spec.clusters:
        for pool in cluster.node_pools:
            for node in pool.nodes:
                if node.name == "eu1-gen-05":  # the node whose drain stalls on the PDB
                    object.__setattr__(node, "name", NASTY)
    return cfg.fleet, cfg.target, cfg.policy


@pytest.mark.parametrize("terminal", [True, False])
def test_plan_and_explain_render_hostile_names_safely(terminal: bool) -> None:
    fleet, target, policy = _nasty_fleet()
    cluster = fleet.spec.clusters[0]
    object.__setattr__(cluster, "name", "stg[/nope]\x1b[2J")  # a cluster name, too
    now = datetime.fromisoformat(NOW)
    plan = make_plan(fleet, target, policy, load_catalog(), now=now)
    assert any(NASTY in t for s in plan.steps for t in s.targets)
    console = Console(file=io.StringIO(), force_terminal=terminal, width=200, highlight=False,
                      color_system="truecolor" if terminal else None)
    render_plan(plan, None, "table", console)
    render_explain(plan, console, "prod-eu-1/016")
    render_plan(plan, None, "markdown", console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    for raw in ("\x07", "\r", "\u202e", "\x1b[2J", "\x1b]0"):
        assert raw not in out, repr(raw)
    assert "stg[/nope]\\x1b[2J/001-etcd-snapshot" in out
    assert "[/nope][red]\\x1b]0;owned" in out  # the node, in the table, explain, markdown


def test_group_findings_says_a_repeated_warning_once() -> None:
    from pitstop.preflight.findings import Finding, Severity

    same = [Finding("w", Severity.WARNING, "m", "fix it", cluster=c, objects=(f"{c}/o",))
            for c in ("a", "b")]
    other = Finding("w", Severity.WARNING, "m2", "fix it", cluster="c")
    (group,) = group_findings([*same, other])
    assert group.count == 3
    (block,) = group.blocks
    assert block.messages == [("m", [("a", ("a/o",)), ("b", ("b/o",))]), ("m2", [("c", ())])]


def test_split_rollbacks_says_the_rollback_once() -> None:
    why = "step s: gate g failed"
    what = "rolled back s (1 node(s)); kept 3 control-plane step(s)"
    reason, lines = split_rollbacks(f"{why}; wave canary rolled back: {what}",
                                    [f"wave canary: {what}", "x/etcd: etcd restore failed"])
    assert reason == why and lines == [f"wave canary: {what}", "x/etcd: etcd restore failed"]


# -- runs: named by id, listed, watched -----------------------------------------------------

@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rehearsal of the example fleet (PDB unfixed) whose stalling node has a hostile name,
    paused for its approvals: created and run in this process, through the real twin."""
    runs = tmp_path_factory.mktemp("nasty") / "runs"
    fleet, target, policy = _nasty_fleet()
    now = datetime.fromisoformat(NOW)
    plan = make_plan(fleet, target, policy, load_catalog(), now=now)
    run, twin = start_run(fleet, plan, policy, runs, seed=1, start=now, faults=None,
                          mode="rehearse")
    result = execute(run, twin)
    assert result.status == "paused" and "approval" in result.reason
    step = next(s.id for s in plan.steps if s.requires_approval)
    for who in ("sre-leads", "change-board"):
        approve_step(run, step, who, at=twin.clock.now())
    run.close()
    return run.path


def test_hostile_names_in_a_run_reach_no_terminal_raw(nasty_run: Path) -> None:
    r = pitstop("resume", str(nasty_run))
    assert r.returncode == 4, r.stdout + r.stderr  # paused again: the drain of that node
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    for out in (r.stdout, r.stderr, pitstop("status", str(nasty_run)).stdout,
                pitstop("runs", "--runs-dir", str(nasty_run.parent)).stdout):
        for raw in RAW:
            assert raw not in out, (repr(raw), out)
    assert "drain of eu1-gen-05[/nope][red]\\x1b]0;owned\\x07\\x0d\\u202eevil timed out" \
        in r.stdout
    st = pitstop("status", str(nasty_run), "-o", "json")  # JSON escapes it its own way
    assert json.loads(st.stdout)["reason"].startswith(f"drain of {NASTY} timed out")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs: paused for approvals (apply), rolled back (a canary fault), completed (a
    policy without approvals)."""
    tmp = tmp_path_factory.mktemp("runs")
    runs = tmp / "runs"
    fleet = fixed_fleet(tmp)
    common = ["-f", str(EX / "target.yaml"), "--now", NOW, "--runs-dir", str(runs)]
    r = pitstop("apply", "-f", str(fleet), "-f", str(EX / "policy.yaml"), *common, "-y")
    assert r.returncode == 4, r.stdout + r.stderr
    faults = tmp / "faults.yaml"
    faults.write_text(yaml.safe_dump({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "FaultScenario",
        "metadata": {"name": "canary-breach"},
        "spec": {"faults": [{"type": "canaryErrorRate", "cluster": "staging-eu",
                             "pool": "general", "errorRate": 0.25}]}}))
    r = pitstop("rehearse", "-f", str(fleet), "-f", str(EX / "policy.yaml"), *common,
                "--faults", str(faults))
    assert r.returncode == 5, r.stdout + r.stderr
    r = pitstop("rehearse", "-f", str(fleet), "-f", str(policy_without_approvals(tmp)), *common)
    assert r.returncode == 0, r.stdout + r.stderr
    return runs


def _run_docs(runs: Path) -> list[dict[str, Any]]:
    r = pitstop("runs", "--runs-dir", str(runs), "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "pitstop.dev/v1alpha1/RunList"
    runs_: list[dict[str, Any]] = doc["runs"]
    return runs_


def test_runs_lists_every_run_newest_first(runs_dir: Path) -> None:
    docs = _run_docs(runs_dir)
    assert [d["status"] for d in docs] == ["completed", "rolled-back", "paused"]
    for d in docs:
        assert {"runId", "path", "status", "backend", "clusters", "started", "finished",
                "steps", "clock"} <= d.keys()
        assert d["clusters"] == ["staging-eu", "prod-eu-1", "prod-us-1"]
        assert d["backend"]["kind"] == "twin" and d["backend"]["rehearsal"] is True
        assert d["started"].startswith("2026-11-30T07:00") and d["clock"] == "virtual"
    assert docs[0]["steps"] == {"done": 51, "total": 51} and docs[0]["finished"]
    assert docs[2]["finished"] is None  # paused: not finished
    table = pitstop("runs", "--runs-dir", str(runs_dir)).stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "BACKEND", "CLUSTERS", "STARTED", "FINISHED",
                                "STEPS"]
    assert [ln.split()[0] for ln in table[1:]] == [d["runId"] for d in docs]
    assert table[3].split()[1:3] == ["paused", "twin/apply"] and table[3].endswith("11/51")
    assert "no runs" in pitstop("runs", "--runs-dir", str(runs_dir / "none")).stdout


def test_a_run_is_named_by_its_id_or_a_part_of_it(runs_dir: Path) -> None:
    paused = _run_docs(runs_dir)[2]
    rid = paused["runId"]
    others = [d["runId"] for d in _run_docs(runs_dir) if d["runId"] != rid]
    refs = [rid, rid[-6:]] + [rid[:15]] * all(not o.startswith(rid[:15]) for o in others)
    for ref in refs:
        r = pitstop("status", ref, "--runs-dir", str(runs_dir), "-o", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["runDir"] == paused["path"]
    # resolved under the default runs directory, relative to where pitstop runs
    (runs_dir.parent / ".pitstop").mkdir(exist_ok=True)
    link = runs_dir.parent / ".pitstop" / "runs"
    if not link.exists():
        link.symlink_to(runs_dir)
    r = pitstop("status", rid[-6:], cwd=runs_dir.parent)
    assert r.returncode == 0 and f"run {rid}: paused" in r.stdout, r.stderr


def test_a_run_id_that_names_none_or_several_is_bad_input(runs_dir: Path) -> None:
    r = pitstop("status", "nosuchrun", "--runs-dir", str(runs_dir))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no run 'nosuchrun' under" in r.stderr and str(runs_dir) in r.stderr
    assert "pitstop runs" in r.stderr
    r = pitstop("approve", "2026", "--runs-dir", str(runs_dir), "--step", "x", "--as", "y")
    assert r.returncode == 2 and "'2026' matches 3 runs" in r.stderr, r.stderr
    r = pitstop("resume", str(runs_dir))
    assert r.returncode == 2 and "not a pitstop run directory" in r.stderr, r.stderr
    assert "it holds 3 run(s)" in r.stderr


def test_status_yaml_and_json_have_the_documented_shape(runs_dir: Path) -> None:
    run = _run_docs(runs_dir)[1]["path"]
    as_json = json.loads(pitstop("status", run, "-o", "json").stdout)
    as_yaml = yaml.safe_load(pitstop("status", run, "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json["format"] == "pitstop.dev/v1alpha1/RunStatus"
    assert as_json["status"] == "rolled-back" and as_json["stepsTotal"] == 51
    assert sum(as_json["counts"].values()) == 51
    planned = json.loads((Path(run) / "plan.json").read_text())["steps"]
    assert [s["id"] for s in as_json["steps"]] == [s["id"] for s in planned]


def test_rollback_is_said_once(runs_dir: Path, tmp_path: Path) -> None:
    run = _run_docs(runs_dir)[1]["path"]
    r = pitstop("resume", run)  # a rolled-back run is not run again; its result is printed
    assert r.returncode == 5, r.stdout + r.stderr
    assert r.stdout.count("kept 3 control-plane step(s)") == 1, r.stdout
    head = r.stdout.splitlines()[0]
    assert head.startswith("rolled-back: step staging-eu/006-canary") and "rolled back:" \
        not in head
    assert r.stdout.splitlines()[1].startswith("rollback: wave canary: rolled back")


def test_run_summary_as_a_document(runs_dir: Path) -> None:
    for d in _run_docs(runs_dir):
        r = pitstop("resume", d["path"], "-o", "json")
        doc = json.loads(r.stdout)  # progress goes to stderr: stdout is the document
        assert doc["format"] == "pitstop.dev/v1alpha1/RunResult"
        assert doc["exitCode"] == r.returncode == {"completed": 0, "paused": 4,
                                                   "rolled-back": 5}[d["status"]]
        assert doc["backend"]["rehearsal"] is True and "nothing real" in \
            doc["backend"]["description"]
        assert doc["steps"]["total"] == 51 and doc["report"].endswith("report.html")


def test_paused_run_summary_tells_the_virtual_time_it_paused_at(runs_dir: Path) -> None:
    paused = _run_docs(runs_dir)[2]["path"]
    r = pitstop("resume", paused)  # one approval of two is missing: pauses again at once
    assert r.returncode == 4
    # staging's 24 h soak came first: the pause is a day after the start, not 1.8 h
    m = re.search(r"^time: +2026-11-30 07:00 → 2026-12-01 \d\d:\d\d UTC \((\d+\.\d) h, "
                  r"virtual\)$", r.stdout, re.M)
    assert m and 25 < float(m.group(1)) < 27, r.stdout


def test_approve_and_audit_verify_as_documents(runs_dir: Path) -> None:
    run = _run_docs(runs_dir)[2]["path"]
    step = "prod-eu-1/001-etcd-snapshot-3.5.26"
    r = pitstop("approve", run, "--step", step, "--as", "sre-leads", "-o", "yaml")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout) == {"format": "pitstop.dev/v1alpha1/Approval",
                                        "runId": Path(run).name, "step": step,
                                        "approver": "sre-leads", "approvals": ["sre-leads"],
                                        "required": 2,
                                        "approvers": ["change-board", "sre-leads"]}
    r = pitstop("audit", "verify", Path(run).name[-6:], "--runs-dir", str(runs_dir), "-o",
                "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"] is True and doc["records"] > 10
    assert doc["log"] == str(Path(run) / "audit.jsonl") and doc["problems"] == []


def test_validate_and_explain_as_documents() -> None:
    r = pitstop("validate", *EXAMPLE, "-o", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"] is True
    assert [(o["kind"], o["name"]) for o in doc["objects"]] == [
        ("Fleet", "acme"), ("UpgradePolicy", "acme-default"), ("UpgradeTarget", "k8s-1.36")]
    assert doc["objects"][0]["nodes"] == 30 and doc["objects"][0]["file"].endswith("fleet.yaml")
    r = pitstop("explain", *EXAMPLE, "--now", NOW, "--step", "prod-eu-1/015", "-o", "yaml")
    assert r.returncode == 1  # blocked, as in table form
    doc = yaml.safe_load(r.stdout)
    (step,) = doc["steps"]
    assert step["id"] == "prod-eu-1/015-canary-pool-general-1.36.5" and step["number"] == 26
    assert step["reason"] and [f["code"] for f in doc["blocking"]] == ["pdb-blocks-drain"]


def test_explain_gives_the_order_of_a_nodes_changes() -> None:
    r = pitstop("explain", *EXAMPLE, "--now", NOW, "--step", "prod-eu-1/015")
    assert "   order:   containerd 1.7.30 → 1.7.36 → 2.0.14 → 2.1.9, then kubelet, kube-proxy " \
           "1.34.12 → 1.35.8, then containerd 2.1.9 → 2.2.9, then kubelet, kube-proxy 1.35.8 → " \
           "1.36.5, then containerd 2.2.9 → 2.3.7" in r.stdout, r.stdout
    assert "waits for 2 approval(s)" not in r.stdout  # 015 needs none; 001 does
    r = pitstop("explain", *EXAMPLE, "--now", NOW, "--step", "prod-eu-1/001")
    assert "waits for 2 approval(s) (`pitstop approve RUN --step " \
           "prod-eu-1/001-etcd-snapshot-3.5.26 --as NAME`)" in r.stdout


# -- status --watch ---------------------------------------------------------------------

class Lines:
    """A subprocess's standard output, line by line, with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        out = proc.stdout

        def pump() -> None:
            for line in out:
                self.q.put(line.rstrip("\n"))
            self.q.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def next(self, timeout: float = 60) -> str | None:
        return self.q.get(timeout=timeout)


@pytest.fixture
def running_run(runs_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, Journal]]:
    """A copy of the paused run, marked running in its journal: this test plays the executor
    (it writes the journal as the executor does), so the watch has something that changes."""
    import shutil

    src = Path(_run_docs(runs_dir)[2]["path"])
    run = tmp_path / "runs" / src.name
    shutil.copytree(src, run)
    journal = Journal(run / "journal.sqlite")
    journal.set("status", "running")
    try:
        yield run, journal
    finally:
        journal.close()


def _watch(run: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pitstop", "status", str(run), "--watch",
                             "--interval", "0.05", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_watch_prints_a_line_per_change_until_the_run_stops(
        running_run: tuple[Path, Journal]) -> None:
    run, journal = running_run
    proc = _watch(run)
    try:
        lines = Lines(proc)
        first = lines.next()
        assert first and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  running  11/51 done$",
                                  first), first
        step = "prod-eu-1/001-etcd-snapshot-3.5.26"
        journal.set_step(step, "running", 0.0)
        second = lines.next()
        assert second and second.endswith(f"running  11/51 done  running: {step}"), second
        journal.set_step(step, "done", 1.0)
        journal.set("reason", "aborted by an operator")
        journal.set("status", "aborted")
        rest = []
        while (line := lines.next()) is not None:
            rest.append(line)
        assert rest and rest[-1].endswith("aborted  12/51 done  — aborted by an operator"), rest
        assert proc.wait(30) == 6  # the watch ends with the run's exit code: aborted
    finally:
        proc.kill()


def test_watch_gives_up_after_its_timeout_and_ctrl_c_exits_0(
        running_run: tuple[Path, Journal]) -> None:
    run, _ = running_run
    proc = _watch(run, "--timeout", "0.5")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "is still running after 0.5 s" in err, err
    proc = _watch(run)
    try:
        assert Lines(proc).next() is not None  # watching
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()


def test_watch_on_a_terminal_redraws_the_status(running_run: tuple[Path, Journal]) -> None:
    import pty
    import select

    run, journal = running_run
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pitstop", "status", str(run), "--watch",
                             "--interval", "0.05"], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "150"})
    os.close(slave)
    seen = b""

    def read_until(needle: bytes) -> None:
        nonlocal seen
        while needle not in seen:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, seen[-2000:]
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child ended and closed the terminal
                chunk = b""
            assert chunk, seen[-2000:]
            seen += chunk

    try:
        read_until(b"Ctrl-C stops watching")
        assert b"\x1b[2J" in seen  # the screen cleared, then the status drawn
        assert f"run {run.name}: ".encode() in seen and b"11/51 done" in seen
        journal.set("reason", "every step done and every gate passed")
        journal.set("status", "completed")
        read_until(b"every step done and every gate passed")
        assert proc.wait(30) == 0
        assert seen.count(b"\x1b[2J") >= 2  # redrawn on the change
    finally:
        proc.kill()
        os.close(master)


def test_watch_of_a_run_that_already_stopped_exits_with_its_code(runs_dir: Path) -> None:
    for d in _run_docs(runs_dir):
        r = pitstop("status", d["path"], "--watch", "--interval", "0.05")
        assert r.returncode == {"completed": 0, "paused": 4, "rolled-back": 5}[d["status"]]
        assert len(r.stdout.splitlines()) == 1 and d["status"] in r.stdout


# -- exit codes ---------------------------------------------------------------------------

def test_exit_codes_tell_how_a_run_ended(runs_dir: Path, tmp_path: Path) -> None:
    docs = {d["status"]: d["path"] for d in _run_docs(runs_dir)}
    assert pitstop("resume", docs["completed"]).returncode == 0
    assert pitstop("resume", docs["rolled-back"]).returncode == 5
    assert pitstop("resume", docs["paused"]).returncode == 4
    import shutil

    aborted = tmp_path / Path(docs["paused"]).name
    shutil.copytree(docs["paused"], aborted)
    assert pitstop("abort", str(aborted)).returncode == 0
    r = pitstop("resume", str(aborted))
    assert r.returncode == 6 and r.stdout.startswith("aborted: aborted by an operator"), r.stdout
    assert pitstop("plan", *EXAMPLE, "--now", NOW).returncode == 1  # blocked
    assert pitstop("status").returncode == 2  # click's usage error: no RUN
    assert pitstop("status", "--runs-dir", str(runs_dir), "nope").returncode == 2
    broken = tmp_path / "broken"
    shutil.copytree(docs["completed"], broken)
    (broken / "journal.sqlite").write_bytes(b"this is not a database" * 100)
    for p in broken.glob("journal.sqlite-*"):
        p.unlink()
    r = pitstop("status", str(broken))  # a damaged run: refused, naming the file (exit 2)
    assert r.returncode == 2 and f"{broken / 'journal.sqlite'}: not a readable journal" in \
        r.stderr and "Traceback" not in r.stderr, r.stderr


# -- apply says what it acts on -----------------------------------------------------------

def test_apply_names_the_twin_and_asks(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    r = pitstop("apply", "-f", str(fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), "--now", NOW, "--runs-dir", str(runs), stdin="n\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "apply 51 steps to 3 cluster(s) on the twin: a rehearsal on a simulated copy of " \
           "the fleet" in r.stderr and "no real cluster or host is changed" in r.stderr
    assert "Go ahead? [y/N]" in r.stderr and r.stdout == "" and not runs.exists()


def test_apply_names_the_contexts_and_the_hosts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    r = pitstop("apply", "-f", str(fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), "--now", NOW, "--runs-dir", str(runs), "--backend",
                "kube", "--kubeconfig", str(tmp_path / "kubeconfig"), "--context",
                "prod-eu-1=admin@eu", "--context", "prod-us-1=admin@us", "--context",
                "staging-eu=kind-staging", stdin="n\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"apply 51 steps to 3 cluster(s) on live clusters through kubeconfig "
            f"{tmp_path / 'kubeconfig'}, contexts staging-eu → kind-staging, prod-eu-1 → "
            "admin@eu, prod-us-1 → admin@us") in r.stderr, r.stderr
    assert not runs.exists()
    fleet = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "lab"},
             "spec": {"clusters": [{
                 "name": "lab", "environment": "test",
                 "controlPlane": {"apiServers": [{"name": "cp-1", "version": "1.24.17"}],
                                  "controllerManager": {"version": "1.24.17"},
                                  "scheduler": {"version": "1.24.17"}},
                 "nodePools": [{"name": "hosts", "nodes": [
                     {"name": n, "kubelet": "1.24.17",
                      "containerRuntime": {"name": "containerd",
                                           "version": "1.6.20~ds1-1+deb12u2"}}
                     for n in ("node-a", "node-b")]}]}]}}
    ssh = {"user": "pitstop", "identityFile": "/etc/pitstop/id", "knownHostsFile": "/etc/kh"}
    hosts = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
             "metadata": {"name": "lab"}, "spec": {"clusters": [{"name": "lab", "ssh": ssh,
                                                                  "nodes": [
                 {"name": "node-a", "address": "10.0.0.7"},
                 {"name": "node-b", "address": "10.0.0.8"}]}]}}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(fleet))
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    r = pitstop("apply", "-f", str(tmp_path / "lab.yaml"), "-f", str(tmp_path / "hosts.yaml"),
                "--target", "containerd=1.6.20~ds1-1+deb12u3", "--backend", "hosts",
                "--runs-dir", str(runs), stdin="n\n")
    assert r.returncode == 2, r.stdout + r.stderr  # its SSH key does not exist: no question
    assert "on 2 host(s) over SSH: node-a (10.0.0.7), node-b (10.0.0.8)" in r.stderr, r.stderr
    assert "/etc/pitstop/id does not exist" in r.stderr and "Go ahead?" not in r.stderr


def test_progress_off_a_terminal_is_a_line_per_step_on_stderr(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    r = pitstop("apply", "-f", str(fixed_fleet(tmp_path)), "-f", str(EX / "policy.yaml"), "-f",
                str(EX / "target.yaml"), "--now", NOW, "--runs-dir", str(runs), "-y", "-o",
                "json")
    assert r.returncode == 4
    assert json.loads(r.stdout)["status"] == "paused"
    done = [ln for ln in r.stderr.splitlines() if ln.startswith("done ")]
    assert done[0] == "done 1/51  staging-eu/001-etcd-snapshot-3.5.26" and len(done) == 11
    assert not BOX & set(r.stderr) and "━" not in r.stderr


# -- shell completion ---------------------------------------------------------------------

def test_shell_completion_script_and_completions(runs_dir: Path) -> None:
    r = pitstop("completion", "bash")
    assert r.returncode == 0 and "_pitstop_completion()" in r.stdout
    assert "complete -o nosort -F _pitstop_completion pitstop" in r.stdout
    exe = str(Path(sys.executable).parent / "pitstop")
    by_env = subprocess.run([exe], capture_output=True, text=True, check=False,
                            env={**os.environ, "_PITSTOP_COMPLETE": "bash_source"})
    assert by_env.returncode == 0 and by_env.stdout.strip() == r.stdout.strip()
    for shell, needle in (("zsh", "#compdef pitstop"), ("fish", "complete --no-files")):
        assert needle in pitstop("completion", shell).stdout

    def complete(words: str) -> list[str]:
        out = subprocess.run([exe], capture_output=True, text=True, check=False,
                             env={**os.environ, "_PITSTOP_COMPLETE": "bash_complete",
                                  "COMP_WORDS": words,
                                  "COMP_CWORD": str(len(words.split()) - 1)}).stdout
        return [ln.split(",", 1)[1] for ln in out.splitlines() if "," in ln]

    assert "status" in complete("pitstop sta") and "runs" in complete("pitstop ru")
    ids = [d["runId"] for d in _run_docs(runs_dir)]
    assert sorted(complete(f"pitstop status --runs-dir {runs_dir} 2026")) == sorted(ids)
