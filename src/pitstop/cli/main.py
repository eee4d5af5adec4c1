"""The ``pitstop`` command line.

Heavy modules (pydantic, rich, the planner) are imported inside commands, so that
``pitstop --help`` starts fast.

Exit codes (documented in docs/operations.md and README.md):
  0  the plan is ready, the run completed, or the command succeeded
  1  the plan is blocked by findings, the target or the run is refused, or the command found
     what it checks for (drift, a tampered audit log)
  2  bad input: a file, field, option or run that cannot be accepted (click's usage errors
     are 2 as well)
  3  internal error (a bug in pitstop: please report it)
  4  the run stopped paused (an approval, a drain stall, a pause request …): resume it
  5  the run was rolled back (a gate failed)
  6  the run was aborted
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.catalog import Catalog
    from pitstop.config import LoadedConfig

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_PAUSED, EXIT_ROLLED_BACK, EXIT_ABORTED, EXIT_FAILED = 4, 5, 6, 7
# how a run ended → the exit code of the command that ran it (rehearse, apply, resume,
# status --watch); any other status (a run that is not over, an unknown one) is 1
# (keys are RunStatus values: pitstop.executor.vocabulary, not imported here to keep --help fast)
EXIT_FOR_STATUS = {"completed": EXIT_OK, "paused": EXIT_PAUSED, "rolled-back": EXIT_ROLLED_BACK,
                   "aborted": EXIT_ABORTED, "failed": EXIT_FAILED}
F = TypeVar("F", bound=Callable[..., Any])

PLAN_EXAMPLES = """
\b
Examples:
  pitstop plan -f examples/fleet.yaml -f examples/policy.yaml \\
      --target kubernetes=1.36.5,containerd=2.3.7,etcd=3.6.8
  pitstop plan -f fleet.yaml -f policy.yaml -f target.yaml -o json > plan.json
  pitstop plan -f fleet.yaml --target kubernetes=1.36.5 -o markdown > PLAN.md
"""


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, soft_wrap=False, highlight=False)
    if not console.is_terminal:  # piped or redirected: lines as long as they need to be
        console = Console(stderr=stderr, soft_wrap=False, highlight=False, width=10_000)
    return console


def _echo(text: str, err: bool = False) -> None:
    """A plain line built from data: every non-printable character shown as an escape."""
    from pitstop.render.safe import visible

    click.echo(visible(text, newlines=True), err=err)


def _output_option(*formats: str, default: str = "table") -> Callable[[F], F]:
    return click.option("-o", "--output", "fmt", type=click.Choice(list(formats)),
                        default=default, show_default=True,
                        help="table: for people (plain columns when not on a terminal); "
                        "json, yaml: for programs (docs/operations.md#machine-readable-output).")


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _guard(fn: F) -> F:
    """Turn pitstop's errors into messages and exit codes; never show a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pitstop.errors import PitstopError

        try:
            return fn(*args, **kwargs)
        except PitstopError as exc:  # the one error tree (pitstop.errors), mapped here
            _fail(f"pitstop: {exc.kind}:\n{exc}", exc.exit_code)
        except (BrokenPipeError, KeyboardInterrupt):
            sys.exit(EXIT_BLOCKED)
        except Exception as exc:
            if os.environ.get("PITSTOP_DEBUG"):
                raise
            _fail(f"pitstop: internal error: {type(exc).__name__}: {exc}\n"
                  "This is a bug in pitstop; set PITSTOP_DEBUG=1 to see where, and report it.",
                  EXIT_INTERNAL)
        return None

    return wrapper  # type: ignore[return-value]


def _parse_time(value: str | None, option: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    from pitstop.model.limits import check_time

    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"pitstop: error:\n{option}: {value[:60]!r} is not an ISO-8601 time. "
              "Fix: write e.g. 2026-12-01T22:00:00+01:00.", EXIT_BAD_INPUT)
        raise
    try:
        check_time(t)
    except ValueError as exc:
        _fail(f"pitstop: error:\n{option}: {exc}.", EXIT_BAD_INPUT)
        raise
    return t if t.tzinfo else t.replace(tzinfo=UTC)


files_option = click.option(
    "-f", "--filename", "files", multiple=True, type=click.Path(dir_okay=False),
    help="A YAML file with Fleet, UpgradePolicy and/or UpgradeTarget objects (repeatable).")
catalog_option = click.option(
    "--catalog", "catalog_dir", type=click.Path(file_okay=False), default=None,
    help="A directory whose catalog data files replace the shipped ones of the same name.")


def _load(files: tuple[str, ...], target_text: str | None,
          catalog_dir: str | None) -> tuple[LoadedConfig, Catalog]:
    from pitstop.catalog import load_catalog
    from pitstop.config import load_files, target_from_text
    from pitstop.errors import ConfigError, ConfigProblem

    if not files:
        raise ConfigError([ConfigProblem("-f", None, "", "no input file given.",
                                         "pass a fleet with -f fleet.yaml.")])
    cfg = load_files(files)
    if cfg.fleet is None:
        raise ConfigError([ConfigProblem(", ".join(files), None, "", "no Fleet object found.",
                                         "add a file with `kind: Fleet`.")])
    if target_text:
        cfg.target = target_from_text(target_text, cfg.target)
    if cfg.policy is not None:
        _check_gate_conditions(cfg)
    return cfg, load_catalog(catalog_dir)


def _check_gate_conditions(cfg: LoadedConfig) -> None:
    """Custom gate conditions are a small language of their own: parse them before anything
    runs, and name the field when one is wrong."""
    from pitstop.errors import ConfigError, ConfigProblem
    from pitstop.gates import Condition, ConditionError
    from pitstop.gates.promql import templates

    assert cfg.policy is not None
    problems = []
    source = next((f for k, f in cfg.sources.items() if k.startswith("UpgradePolicy/")), "-f")
    for i, gate in enumerate(cfg.policy.spec.gates):
        for key, text in gate.conditions().items():
            try:
                Condition.parse(text)
            except ConditionError as exc:
                problems.append(ConfigProblem(source, None, f"spec.gates[{i}].{key}",
                                              f"{exc}.", "write e.g. 'result <= 0.01'."))
        if gate.template is not None and gate.template not in templates():
            problems.append(ConfigProblem(
                source, None, f"spec.gates[{i}].template", f"no built-in template "
                f"{gate.template!r}.", f"use one of {', '.join(sorted(templates()))}."))
    if problems:
        raise ConfigError(problems)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pitstop")
def main() -> None:
    """pitstop keeps container runtimes and Kubernetes clusters current across a fleet,
    without taking services down: skew-safe, PDB-aware plans with reasons for every step.

    \b
    Start here:
      pitstop validate -f examples/fleet.yaml -f examples/policy.yaml
      pitstop plan -f examples/fleet.yaml -f examples/policy.yaml -f examples/target.yaml
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml --step prod-us-1
      pitstop catalog kubernetes
    """


@main.command(epilog=PLAN_EXAMPLES)
@files_option
@click.option("--target", "target_text", default=None,
              help="Desired versions, e.g. kubernetes=1.36.5,containerd=2.3.7,etcd=3.6.8.")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml", "markdown"]),
              default="table", show_default=True)
@catalog_option
@click.option("--now", "now_text", default=None,
              help="Evaluate waivers and end-of-life at this time (ISO-8601); default: now.")
@click.option("--start", "start_text", default=None,
              help="Earliest start for the calendar (ISO-8601); default: --now.")
@click.option("--no-preflight", is_flag=True, help="Skip preflight findings (not recommended).")
@_guard
def plan(files: tuple[str, ...], target_text: str | None, fmt: str, catalog_dir: str | None,
         now_text: str | None, start_text: str | None, no_preflight: bool) -> None:
    """Plan an upgrade: ordered, skew-safe steps with reasons, gates and a calendar.

    Exit 0 when the plan is ready, 1 when findings block it or the target is refused,
    2 on bad input."""
    sys.exit(_plan(files, target_text, fmt, catalog_dir, now_text, start_text, no_preflight,
                   explain=None))


def _plan(files: tuple[str, ...], target_text: str | None, fmt: str, catalog_dir: str | None,
          now_text: str | None, start_text: str | None, no_preflight: bool,
          explain: str | None) -> int:
    from pitstop.calendar import schedule_plan
    from pitstop.errors import ConfigError, ConfigProblem
    from pitstop.model import UpgradePolicy
    from pitstop.model.common import Metadata
    from pitstop.planner import make_plan
    from pitstop.render import render_explain, render_plan

    now = _parse_time(now_text, "--now")
    start = _parse_time(start_text, "--start") if start_text else now
    cfg, catalog = _load(files, target_text, catalog_dir)
    if cfg.target is None:
        raise ConfigError([ConfigProblem("--target", None, "", "no target given.",
                                         "pass --target kubernetes=1.36.5 or a file with "
                                         "`kind: UpgradeTarget`.")])
    assert cfg.fleet is not None
    policy = cfg.policy or UpgradePolicy(metadata=Metadata(name="default"))
    result = make_plan(cfg.fleet, cfg.target, policy, catalog, now=now,
                       preflight=not no_preflight)
    labels = {c.name: c.full_labels for c in cfg.fleet.spec.clusters}
    schedule = schedule_plan(result, policy, labels, start) if result.steps else None
    console = _console()
    if explain is not None:
        render_explain(result, console, explain or None, fmt)
    else:
        render_plan(result, schedule, fmt, console)
    return EXIT_OK if result.reachable else EXIT_BLOCKED


@main.command()
@files_option
@click.option("--target", "target_text", default=None, help="Desired versions (as for plan).")
@click.option("--step", "step", default="",
              help="Only steps whose id contains this, or the step at this position in the plan.")
@_output_option("table", "json", "yaml")
@catalog_option
@click.option("--now", "now_text", default=None, help="As for plan.")
@_guard
def explain(files: tuple[str, ...], target_text: str | None, step: str, fmt: str,
            catalog_dir: str | None, now_text: str | None) -> None:
    """Explain why each step exists, why it is where it is, and what gates follow it.

    \b
    Examples:
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml --step apiserver
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml --step prod-eu-1/015 -o yaml
    """
    sys.exit(_plan(files, target_text, fmt, catalog_dir, now_text, None, False,
                   explain=step))


@main.command()
@files_option
@catalog_option
@_output_option("table", "json", "yaml")
@_guard
def validate(files: tuple[str, ...], catalog_dir: str | None, fmt: str) -> None:
    """Check configuration files and the catalog; print what was read.

    \b
    Examples:
      pitstop validate -f examples/fleet.yaml -f examples/policy.yaml
      pitstop validate -f fleet.yaml -f hosts.yaml -o json
    """
    from pitstop.catalog import load_catalog
    from pitstop.config import load_files
    from pitstop.errors import ConfigError, ConfigProblem

    if not files:
        raise ConfigError([ConfigProblem("-f", None, "", "no input file given.",
                                         "pass files with -f.")])
    cfg = load_files(files)
    load_catalog(catalog_dir)
    if cfg.policy is not None:
        _check_gate_conditions(cfg)
    objects: list[tuple[dict[str, Any], str]] = []  # (document entry, what a person reads)

    def add(obj: Any, facts: dict[str, Any], text: str) -> None:
        kind, name = obj.kind, obj.metadata.name
        objects.append(({"kind": kind, "name": name,
                         "file": cfg.sources.get(f"{kind}/{name}"), **facts},
                        f"{kind}/{name}: {text}"))

    if cfg.fleet is not None:
        clusters = cfg.fleet.spec.clusters
        nodes = sum(len(p.nodes) for c in clusters for p in c.node_pools)
        add(cfg.fleet, {"clusters": len(clusters), "nodes": nodes},
            f"{len(clusters)} clusters, {nodes} nodes")
    if cfg.policy is not None:
        spec = cfg.policy.spec
        add(cfg.policy, {"waves": len(spec.waves),
                         "maintenanceWindows": len(spec.maintenance_windows)},
            f"{len(spec.waves)} waves, {len(spec.maintenance_windows)} maintenance windows")
    if cfg.target is not None:
        versions = dict(cfg.target.spec.versions)
        add(cfg.target, {"versions": versions},
            ", ".join(f"{k}={v}" for k, v in versions.items()))
    if cfg.hosts is not None:
        hosts = sum(len(c.nodes) for c in cfg.hosts.spec.clusters)
        add(cfg.hosts, {"clusters": len(cfg.hosts.spec.clusters), "hosts": hosts},
            f"{len(cfg.hosts.spec.clusters)} clusters, {hosts} hosts")
    if cfg.faults is not None:
        add(cfg.faults, {"faults": len(cfg.faults.spec.faults)},
            f"{len(cfg.faults.spec.faults)} faults")
    if fmt != "table":
        from pitstop.render import emit_document

        emit_document(_console(), {"format": "pitstop.dev/v1alpha1/Validation", "ok": True,
                                   "objects": [doc for doc, _ in objects]}, fmt)
        return
    for _, text in objects:
        _echo(f"ok  {text}")


@main.command()
@click.argument("kind", required=False,
                type=click.Choice(["Fleet", "UpgradePolicy", "UpgradeTarget", "FaultScenario",
                                   "JudgeConfig"]))
@_guard
def schema(kind: str | None) -> None:
    """Print the JSON Schema of the configuration objects (for editors and CI linting).

    \b
    Examples:
      pitstop schema > pitstop.schema.json       # all kinds, one document
      pitstop schema Fleet > fleet.schema.json
    """
    import json

    from pitstop.model import KINDS

    if kind:
        doc = KINDS[kind].model_json_schema(by_alias=True)
    else:
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "pitstop configuration (pitstop.dev/v1alpha1)",
            "oneOf": [{"$ref": f"#/$defs/{k}"} for k in KINDS],
            "$defs": {},
        }
        for k, model in KINDS.items():
            sub = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
            doc["$defs"].update(sub.pop("$defs", {}))
            doc["$defs"][k] = sub
    click.echo(json.dumps(doc, indent=2))


@main.command()
@click.option("--canary", "canary_file", required=True, type=click.Path(dir_okay=False),
              help="Samples of the canary set (upgraded): CSV `metric,value` or JSON "
              "{\"metric\": [values]}.")
@click.option("--baseline", "baseline_file", required=True, type=click.Path(dir_okay=False),
              help="Samples of the baseline set (not yet upgraded), in the same formats.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="A JudgeConfig (YAML): per metric direction, critical, weight, group and "
              "effect size; the thresholds. Without it every metric is judged with the "
              "defaults.")
@_output_option("table", "json")
@_guard
def judge(canary_file: str, baseline_file: str, config_file: str | None, fmt: str) -> None:
    """Judge a canary against its baseline from metric samples (docs/judge.md).

    Per metric: Mann-Whitney U, p, the Hodges-Lehmann shift and its interval, and Pass, High,
    Low or NodataFail; then the score and the verdict: pass (exit 0: proceed), marginal or
    fail (exit 1: pause for a person, or roll back); bad input exits 2.

    \b
    Examples:
      pitstop judge --canary canary.csv --baseline baseline.csv
      pitstop judge --canary canary.json --baseline baseline.json --config judge.yaml -o json
    """
    from pitstop.cli.judging import judge_document, print_judgement, run_judge
    from pitstop.gates.canary_judge import Verdict

    result = run_judge(canary_file, baseline_file, config_file)
    if fmt == "json":
        from pitstop.render import emit_document

        emit_document(_console(), judge_document(result), fmt)
    else:
        print_judgement(_console(), result)
    sys.exit(EXIT_OK if result.verdict is Verdict.PASS else EXIT_BLOCKED)


@main.command()
@click.argument("section", required=False,
                type=click.Choice(["kubernetes", "containerd", "etcd", "knownBad", "apis",
                                   "skewPolicy"]))
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]),
              default="table", show_default=True)
@catalog_option
@_guard
def catalog(section: str | None, fmt: str, catalog_dir: str | None) -> None:
    """Show the version catalog: releases and end of life, skew policy, runtime support,
    etcd, known-bad versions, deprecated and removed APIs.

    \b
    Examples:
      pitstop catalog kubernetes
      pitstop catalog knownBad -o json
    """
    from pitstop.catalog import load_catalog
    from pitstop.render import render_catalog

    render_catalog(load_catalog(catalog_dir), fmt, _console(), section)


runs_option = click.option(
    "--runs-dir", default=".pitstop/runs", show_default=True, type=click.Path(file_okay=False),
    help="Where run directories (journal, audit log, twin state, report) are kept.")


_RUNS_DIRS_KEY = "pitstop.runs_dirs"


def _remember_runs_dir(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[_RUNS_DIRS_KEY] = (value,) if value else None


def _runs_dirs(ctx: click.Context | None) -> tuple[Path, ...]:
    from pitstop.cli.runinfo import DEFAULT_RUNS_DIRS

    given = ctx.meta.get(_RUNS_DIRS_KEY) if ctx is not None else None
    return tuple(Path(d) for d in (given or DEFAULT_RUNS_DIRS))


class RunRef(click.ParamType):  # type: ignore[type-arg]
    """``RUN``: a run directory, or a run id (whole, or its start or end) under --runs-dir;
    resolved to the directory while the command line is parsed (pitstop.cli.runinfo)."""

    name = "run"

    def __init__(self, files: bool = False) -> None:
        self.files = files

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        from pitstop.cli.runinfo import RunRefError, resolve_run
        from pitstop.render.safe import visible

        try:
            return str(resolve_run(str(value), _runs_dirs(ctx), files=self.files))
        except RunRefError as exc:
            self.fail(visible(str(exc)), param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from pitstop.cli.runinfo import runs_under

        ids = [p.name for d in _runs_dirs(ctx) for p in runs_under(d)]
        return [CompletionItem(i) for i in ids if i.startswith(incomplete)]


def run_argument(files: bool = False) -> Callable[[F], F]:
    return click.argument("run_dir", metavar="PATH" if files else "RUN", type=RunRef(files))


runs_lookup_option = click.option(
    "--runs-dir", default=None, type=click.Path(file_okay=False), expose_value=False,
    is_eager=True, callback=_remember_runs_dir,
    help="Where to look up a RUN given by its id (default: .pitstop/runs, then .pitstop/demo).")


def _run_files(files: tuple[str, ...], target_text: str | None, catalog_dir: str | None,
               now_text: str | None) -> tuple[Any, Any, Any, datetime]:
    from pitstop.cli.runs import plan_for

    now = _parse_time(now_text, "--now")
    cfg, catalog = _load(files, target_text, catalog_dir)
    plan_, policy = plan_for(cfg, catalog, now)
    return cfg, plan_, policy, now


def _print_result(run: Any, twin: Any, result: Any, console: Console, title: str,
                  report: bool = True, fmt: str = "table") -> None:
    """Write the run's report and print its summary: for people, or as the RunResult
    document (``-o json|yaml``)."""
    from pitstop.cli.runs import describe_stalls, report_data
    from pitstop.render import emit_document
    from pitstop.render.runs import print_result
    from pitstop.report.html import write_report

    data = report_data(run, twin, result, title=title)
    path = write_report(run.path / "report.html", data) if report else None
    doc = _result_document(run, twin, result)
    s = data["summary"]
    doc["drains"] = {"evictions": s["evictions"], "refusals429": s["refusals429"],
                     "stalls": describe_stalls(data["stalls"]), "stalled": data["stalls"]}
    worst = sorted(s["minAvailability"].items(), key=lambda kv: (kv[1], kv[0]))
    doc["lowestAvailability"] = [{"workload": w, "ratio": r} for w, r in worst[:5]]
    doc["judgements"] = data["judgements"]  # the canary judge's last per step (docs/judge.md)
    doc["report"] = str(path) if path else None
    if fmt == "table":
        print_result(doc, console)
    else:
        emit_document(console, doc, fmt)


def _result_document(run: Any, backend: Any, result: Any) -> dict[str, Any]:
    from pitstop.cli.runinfo import audit_times, backend_summary, backend_text, hosts_of

    started, _ = audit_times(run.path / "audit.jsonl")
    now = backend.clock.now()
    elapsed = None
    if started:
        elapsed = max(0.0, now - datetime.fromisoformat(started.replace("Z", "+00:00"))
                      .timestamp())
    return {
        "format": "pitstop.dev/v1alpha1/RunResult", "runId": run.run_id,
        "runDir": str(run.path), "status": result.status, "reason": result.reason,
        "exitCode": EXIT_FOR_STATUS.get(result.status, EXIT_BLOCKED),
        "backend": {**backend_summary(run.backend), "description": backend_text(
            run.backend, long=True, hosts=hosts_of(run.path, run.backend))},
        "clusters": list(dict.fromkeys(s.cluster for s in run.plan.steps)),
        "steps": {"done": result.steps_done, "total": result.steps_total},
        "rollbacks": list(result.rollbacks),
        "clock": "virtual" if run.backend.get("kind") == "twin" else "wall",
        "started": started, "now": datetime.fromtimestamp(now, UTC).isoformat(),
        "elapsedSeconds": elapsed,
    }


_EXIT_FOR = EXIT_FOR_STATUS


@main.command()
@files_option
@click.option("--target", "target_text", default=None, help="Desired versions (as for plan).")
@click.option("--faults", "faults_file", type=click.Path(dir_okay=False), default=None,
              help="A FaultScenario YAML to inject into the twin.")
@click.option("--seed", default=1, show_default=True, help="Seed of the twin's randomness.")
@runs_option
@catalog_option
@click.option("--now", "now_text", default=None, help="As for plan; also the rehearsal start.")
@_output_option("table", "json", "yaml")
@_guard
def rehearse(files: tuple[str, ...], target_text: str | None, faults_file: str | None,
             seed: int, runs_dir: str, catalog_dir: str | None, now_text: str | None,
             fmt: str) -> None:
    """Rehearse the plan on the twin, in virtual time: predicted makespan, minimum availability
    per workload, PDB stalls, gate results and rollbacks, and an HTML report.

    \b
    Examples:
      pitstop rehearse -f examples/fleet.yaml -f examples/policy.yaml -f examples/target.yaml
      pitstop rehearse -f fleet.yaml --target kubernetes=1.36.5 --faults canary-breach.yaml

    Exit 0 completed, 4 paused, 5 rolled back, 6 aborted (docs/operations.md#exit-codes).
    """
    from pitstop.cli.runs import execute, start_run
    from pitstop.config import load_files

    cfg, plan_, policy, now = _run_files(files, target_text, catalog_dir, now_text)
    faults = None
    if faults_file:
        from pitstop.errors import ConfigError, ConfigProblem

        faults = load_files([faults_file]).faults
        if faults is None:
            raise ConfigError([ConfigProblem(faults_file, None, "kind", "no FaultScenario in "
                                             "the file.", "write `kind: FaultScenario`.")])
    run, twin = start_run(cfg.fleet, plan_, policy, Path(runs_dir), seed=seed, start=now,
                          faults=faults, mode="rehearse")
    result = execute(run, twin)
    _print_result(run, twin, result, _console(), "pitstop rehearsal", fmt=fmt)
    sys.exit(_EXIT_FOR.get(result.status, EXIT_BLOCKED))


# -- live clusters (pitstop.kube): options shared by apply, inventory and drift ----------

poll_option = click.option(
    "--poll-interval", "poll_s", type=click.FloatRange(0.1, 300), default=5.0,
    show_default=True, help="Seconds between polls of a real backend while waiting (drains, "
    "node and member upgrades); the twin's clock is virtual.")


def telemetry_options(fn: F) -> F:
    """pitstop's own telemetry for a run (docs/telemetry.md): OTLP traces, /metrics, JSON
    logs. All off by default."""
    fn = click.option(
        "--log-format", "log_format", type=click.Choice(["text", "json"]), default="text",
        show_default=True, help="The progress log on standard error: text lines, or one JSON "
        "object per line with the run id and trace id (standard output keeps -o).")(fn)
    fn = click.option(
        "--metrics-linger", "metrics_linger", type=click.FloatRange(0, 3600), default=0.0,
        show_default=True, metavar="SECONDS", help="Keep /metrics up this long after the run "
        "ended, so that a scraper reads the final values.")(fn)
    fn = click.option(
        "--metrics-address", "metrics_address", default=None, metavar="[HOST:]PORT",
        callback=_check_metrics_address,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics while the run goes on "
        "(HOST defaults to 127.0.0.1).")(fn)
    return click.option(
        "--otlp-endpoint", "otlp_endpoint", default=None, metavar="URL",
        help="Send OpenTelemetry traces over OTLP/HTTP to URL (e.g. http://127.0.0.1:4318; "
        "/v1/traces is added). Default: $OTEL_EXPORTER_OTLP_ENDPOINT, else no traces.")(fn)


def _check_metrics_address(ctx: click.Context, param: click.Parameter,
                           value: str | None) -> str | None:
    """A bad --metrics-address is bad input (exit 2), said before anything is read."""
    if value is not None:
        from pitstop.observe.metrics import parse_address

        try:
            host, port = parse_address(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        import socket

        try:  # taken or not ours: said now, before a run is made
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        except OSError as exc:
            raise click.BadParameter(f"cannot serve metrics on {value}: {exc.strerror or exc}. "
                                     "Fix: pick a free port, or 0 for any") from None
    return value


def _telemetry(otlp_endpoint: str | None, metrics_address: str | None, metrics_linger: float,
               log_format: str) -> Any:
    """The TelemetryOptions asked for."""
    from pitstop.observe.session import TelemetryOptions

    return TelemetryOptions(otlp_endpoint, metrics_address, metrics_linger, log_format)


kubeconfig_option = click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None,
    help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).")
context_option = click.option(
    "--context", "contexts", multiple=True,
    help="Kubeconfig context to read (repeatable; default: the current context).")
pool_label_option = click.option(
    "--pool-label", "pool_labels", multiple=True,
    help="Node label naming a node's pool, tried in order (repeatable; default: "
         "pitstop.dev/pool, the EKS/GKE/AKS/Karpenter pool labels, the instance type).")
page_size_option = click.option(
    "--page-size", default=500, show_default=True, type=click.IntRange(1, 10_000),
    help="Items per LIST page (limit/continue).")


@main.command()
@files_option
@click.option("--target", "target_text", default=None, help="Desired versions (as for plan).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--backend", "backend_kind",
              type=click.Choice(["twin", "hosts", "kube", "hosts+kube"]),
              default="twin", show_default=True,
              help="The twin; real hosts (container runtimes over SSH, etcd members) as a "
              "HostInventory given with -f says; live clusters through kubeconfig contexts "
              "(node steps: cordon, drain by eviction, node upgrade, uncordon); or hosts+kube: "
              "hosts that are nodes of live clusters (runtime on the host, drain by the API).")
@click.option("--seed", default=1, show_default=True, help="Seed of the twin's randomness.")
@kubeconfig_option
@click.option("--context", "contexts", multiple=True,
              help="--backend kube: the context of a cluster, as CONTEXT or CLUSTER=CONTEXT "
              "(repeatable; default: each cluster's pitstop.dev/context label, else its name).")
@click.option("--pool-label", "pool_label", default="pitstop.dev/pool", show_default=True,
              help="--backend kube: the node label naming a node's pool.")
@click.option("--node-upgrader", type=click.Choice(["kwok", "command"]), default="kwok",
              show_default=True, help="--backend kube: what upgrades a node's kubelet, runtime "
              "or kube-proxy. kwok: nodes simulated by kwok (test and rehearsal clusters; other "
              "nodes are refused); command: your --node-command per node and component, then "
              "verified from the node's status (in-place strategies only).")
@click.option("--node-command", "node_command", default=None, metavar="TEMPLATE",
              help="--node-upgrader command: the command that upgrades one component on one "
              "drained node (split like a shell line, never run by a shell), with {node}, "
              "{component}, {version} and {cluster} filled in, e.g. "
              "'ssh {node} sudo /usr/local/sbin/upgrade-kubelet {version}'.")
@click.option("--node-verify-timeout", "node_verify_timeout", default=300.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="--node-upgrader command: how long after the command exited 0 the node may "
              "take to report the target version, Ready, with a fresh heartbeat.")
@click.option("--control-plane-command", "cp_command", default=None, metavar="TEMPLATE",
              help="--backend kube: the command that upgrades one control-plane instance "
              "(split like a shell line, never run by a shell), with {instance}, {component}, "
              "{version} and {cluster} filled in, e.g. "
              "'ssh {instance} sudo /usr/local/sbin/upgrade-cp {component} {version}'.")
@click.option("--control-plane-address", "cp_addresses", multiple=True,
              metavar="COMPONENT/INSTANCE=URL",
              help="--backend kube: where an instance answers for itself (repeatable), e.g. "
              "kube-apiserver/cp-1=https://10.0.0.11:6443.")
@poll_option
@runs_option
@catalog_option
@click.option("--now", "now_text", default=None, help="As for plan.")
@telemetry_options
@_output_option("table", "json", "yaml")
@_guard
def apply(files: tuple[str, ...], target_text: str | None, yes: bool, backend_kind: str,
          seed: int, kubeconfig: str | None, contexts: tuple[str, ...], pool_label: str,
          node_upgrader: str, node_command: str | None, node_verify_timeout: float,
          cp_command: str | None, cp_addresses: tuple[str, ...], poll_s: float, runs_dir: str,
          catalog_dir: str | None, now_text: str | None, otlp_endpoint: str | None,
          metrics_address: str | None, metrics_linger: float, log_format: str,
          fmt: str) -> None:
    """Apply the plan to the twin, with `--backend hosts` to real hosts, or with
    `--backend kube` to live clusters, with progress. Refuses a plan with blocking findings,
    and (kube) a plan of versions that no longer run. Interrupt it any time:
    `pitstop resume RUN` continues where it stopped.

    \b
    Examples:
      pitstop apply -f examples/fleet.yaml -f examples/policy.yaml -f examples/target.yaml -y
      pitstop apply -f fleet.yaml -f hosts.yaml --target containerd=1.6.20 --backend hosts
      pitstop inventory --context kwok --out live.yaml
      pitstop apply -f live.yaml -f policy.yaml --target kubernetes=1.36.3 --backend kube

    Before it starts it says what it will act on: the twin (a rehearsal), the kubeconfig
    contexts, or the hosts. Exit 0 completed, 1 refused or not confirmed, 4 paused,
    5 rolled back, 6 aborted (docs/operations.md#exit-codes).
    """
    from pitstop.cli.runs import begin_run, prepare
    from pitstop.errors import RunRefused
    from pitstop.kinds import RunOptions

    telemetry = _telemetry(otlp_endpoint, metrics_address, metrics_linger, log_format)
    cfg, plan_, policy, now = _run_files(files, target_text, catalog_dir, now_text)
    if not plan_.reachable:
        raise RunRefused("the plan is blocked: " + "; ".join(
            f"{f.code} ({f.cluster or 'fleet'}): {f.message}" + (f" Fix: {f.fix}" if f.fix
                                                                   else "")
            for f in plan_.blocking) + " — fix these (`pitstop plan` shows how) before applying")
    options = RunOptions(Path(runs_dir), mode="apply", now=now, seed=seed,
                         kubeconfig=kubeconfig, contexts=contexts, pool_label=pool_label,
                         node_upgrader=node_upgrader, node_command=node_command,
                         node_verify_timeout_s=node_verify_timeout,
                         control_plane_command=cp_command, control_plane_addresses=cp_addresses)
    # what it would act on, then every check the backend makes: no question when it refuses,
    # and nothing is made before the answer
    announce = None
    if plan_.steps and not (backend_kind in ("hosts", "hosts+kube") and cfg.hosts is None):
        announce = _apply_target_text(cfg, plan_, backend_kind, kubeconfig, contexts)
        if log_format == "text" or not yes:  # json: a line of the run's log (asked: both)
            _echo(announce, err=True)
    prepared = prepare(backend_kind, cfg, plan_, options)
    if not yes and not click.confirm("Go ahead?", err=True):
        sys.exit(EXIT_BLOCKED)
    from pitstop.catalog import load_catalog

    # the live skew check reads the rules of the catalog the plan was made with
    catalog = load_catalog(catalog_dir) if catalog_dir else None
    run, backend = begin_run(backend_kind, cfg, plan_, policy, options, prepared=prepared)
    try:
        result = _execute_with_progress(run, backend, poll_s, catalog, telemetry, announce)
        _print_result(run, backend, result, _console(), "pitstop apply", fmt=fmt)
    finally:
        backend.close()  # what it has in flight finishes first (hosts)
    sys.exit(_EXIT_FOR.get(result.status, EXIT_BLOCKED))


def _apply_target_text(cfg: Any, plan_: Any, backend_kind: str, kubeconfig: str | None,
                       contexts: tuple[str, ...]) -> str:
    """What `apply` is about to act on, said before it asks: the twin (a rehearsal), the
    kubeconfig contexts of the clusters, or the hosts."""
    clusters = list(dict.fromkeys(s.cluster for s in plan_.steps))
    head = f"apply {len(plan_.steps)} steps to {len(clusters)} cluster(s)"
    if backend_kind == "twin":
        return (f"{head} on the twin: a rehearsal on a simulated copy of the fleet, in virtual "
                f"time; no real cluster or host is changed ({', '.join(clusters)}). "
                "--backend kube or hosts acts on real ones.")
    parts = []
    if backend_kind in ("kube", "hosts+kube"):
        from pitstop.kube.fleet import pair_contexts

        wanted = [c for c in cfg.fleet.spec.clusters if c.name in clusters]
        pairs = sorted(pair_contexts(wanted, contexts), key=lambda p: clusters.index(p[0]))
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        parts.append("live clusters through kubeconfig " + where + ", contexts "
                     + ", ".join(f"{c} → {ctx}" for c, ctx in pairs))
    if backend_kind in ("hosts", "hosts+kube") and cfg.hosts is not None:
        hosts = [f"{n.name} ({'local' if n.local else n.address})"
                 for c in cfg.hosts.spec.clusters if c.name in clusters for n in c.nodes]
        parts.append(f"{len(hosts)} host(s) over SSH: " + ", ".join(hosts))
    return f"{head} on " + "; and ".join(parts or [f"backend {backend_kind}"])


def _execute_with_progress(run: Any, twin: Any, poll_s: float = 5.0,
                           catalog: Any = None, telemetry: Any = None,
                           announce: str | None = None) -> Any:
    """Execute the run with its progress on standard error: a bar per wave on a terminal, a
    line per finished step otherwise (standard output keeps the summary or the document) —
    or, with --log-format json, a JSON line per audited event. ``telemetry``: the
    TelemetryOptions (traces, /metrics, JSON logs), none by default."""
    if telemetry is None or not telemetry.wanted:
        return _progress(run, twin, poll_s, catalog, None)
    from pitstop.observe.api import activate
    from pitstop.observe.backend import TracedBackend
    from pitstop.observe.session import Session

    try:
        session = Session(run.run_id, telemetry).open()
    except OSError as exc:  # the metrics address is taken or cannot be bound
        from pitstop.errors import RunRefused

        raise RunRefused(f"--metrics-address {telemetry.metrics_address}: cannot serve "
                         f"metrics there: {exc}. Fix: pick a free port") from None
    try:
        with activate(session):
            if telemetry.log_format == "json":
                if announce:
                    session.log("apply-target", announce)
                if session.metrics_url:
                    session.log("metrics", f"serving metrics at {session.metrics_url}",
                                url=session.metrics_url)
            elif session.metrics_url:
                _echo(f"metrics: {session.metrics_url}", err=True)
            return _progress(run, TracedBackend(twin, session), poll_s, catalog, session)
    finally:
        session.close()


def _progress(run: Any, twin: Any, poll_s: float, catalog: Any, session: Any) -> Any:
    from pitstop.cli.runs import execute
    from pitstop.observe.api import NO_TELEMETRY
    from pitstop.render.safe import markup

    telemetry = NO_TELEMETRY if session is None else session
    if session is not None and session.options.log_format == "json":
        return execute(run, twin, session.on_event, poll_s=poll_s, catalog=catalog,
                       telemetry=telemetry)

    waves = {w.name: len([s for s in run.plan.steps if s.wave == w.name])
             for w in run.plan.waves}
    step_wave = {s.id: s.wave for s in run.plan.steps}
    done = {s.step_id for s in run.journal.steps() if s.status == "done"}
    console = _console(stderr=True)
    if not console.is_terminal:
        count = [len(done)]

        def on_line(action: str, info: dict[str, Any]) -> None:
            if session is not None:
                session.on_event(action, info)
            if action == "step-done" and info["subject"] in step_wave:
                count[0] += 1
                _echo(f"done {count[0]}/{len(step_wave)}  {info['subject']}", err=True)

        return execute(run, twin, on_line, poll_s=poll_s, catalog=catalog,
                       telemetry=telemetry)

    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps"),
                  console=console) as progress:
        tasks = {w: progress.add_task(f"wave {markup(w)}", total=n,
                                      completed=sum(1 for d in done if step_wave.get(d) == w))
                 for w, n in waves.items()}

        def on_event(action: str, info: dict[str, Any]) -> None:
            if session is not None:
                session.on_event(action, info)
            if action == "step-done" and info["subject"] in step_wave:
                progress.advance(tasks[step_wave[info["subject"]]])

        return execute(run, twin, on_event, poll_s=poll_s, catalog=catalog,
                       telemetry=telemetry)


@main.command()
@run_argument()
@runs_lookup_option
@poll_option
@telemetry_options
@_output_option("table", "json", "yaml")
@_guard
def resume(run_dir: str, poll_s: float, otlp_endpoint: str | None,
           metrics_address: str | None, metrics_linger: float, log_format: str,
           fmt: str) -> None:
    """Continue a run after a pause, an approval, or a crash: completed actions are not
    repeated, and none is skipped. RUN is a run directory or a run id.

    Exit 0 completed, 4 paused, 5 rolled back, 6 aborted (docs/operations.md#exit-codes)."""
    from pitstop.cli.runs import load_run, open_backend
    from pitstop.executor.integrity import acting

    telemetry = _telemetry(otlp_endpoint, metrics_address, metrics_linger, log_format)
    run = load_run(run_dir)
    with acting(run, "resume"):  # one process at a time; the run's files checked first
        backend = open_backend(run)
        try:
            result = _execute_with_progress(run, backend, poll_s, telemetry=telemetry)
            _print_result(run, backend, result, _console(), f"pitstop run {run.run_id}",
                          fmt=fmt)
        finally:
            backend.close()
    sys.exit(_EXIT_FOR.get(result.status, EXIT_BLOCKED))


@main.command()
@run_argument()
@runs_lookup_option
@_output_option("table", "json", "yaml")
@click.option("-w", "--watch", is_flag=True,
              help="Re-read and redraw until the run is no longer running (Ctrl-C stops "
              "watching); off a terminal, a line per change.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True,
              metavar="SECONDS", help="--watch: seconds between reads.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=24 * 3600.0,
              show_default=True, metavar="SECONDS",
              help="--watch: give up (exit 1) when the run is still running after this long.")
@_guard
def status(run_dir: str, fmt: str, watch: bool, interval: float, timeout: float) -> None:
    """Show a run's state: status, reason, backend, progress, and every step that is neither
    done nor pending. RUN is a run directory or a run id (`pitstop runs` lists them).

    Exit 0. With --watch, once the run is no longer running: 0 completed, 4 paused,
    5 rolled back, 6 aborted; 1 when --timeout passed first; 0 on Ctrl-C.

    \b
    Examples:
      pitstop status 20261130-070000-cc1d22
      pitstop status .pitstop/runs/20261130-070000-cc1d22 -o json
      pitstop status cc1d22 --watch
    """
    from pitstop.cli.runs import load_run

    run = load_run(run_dir)
    try:
        if not watch:
            _show_status(_status_document(run), fmt)
            return
        sys.exit(_watch_status(run, fmt, interval, timeout))
    finally:
        run.close()


def _status_document(run: Any) -> dict[str, Any]:
    from pitstop.cli.runinfo import FINAL_STATUSES, audit_times, backend_summary, backend_text

    steps = run.journal.steps()
    status = run.journal.get("status")
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    started, ended = audit_times(run.path / "audit.jsonl")
    return {
        "format": "pitstop.dev/v1alpha1/RunStatus", "runId": run.run_id,
        "runDir": str(run.path), "status": status, "reason": run.journal.get("reason"),
        "request": run.journal.get("request") or None,
        "requestReason": run.journal.get("request_reason") or None,
        "backend": {**backend_summary(run.backend),
                    "description": backend_text(run.backend)},
        "clusters": list(dict.fromkeys(s.cluster for s in run.plan.steps)),
        "clock": "virtual" if run.backend.get("kind") == "twin" else "wall",
        "started": started, "finished": ended if status in FINAL_STATUSES else None,
        "stepsDone": counts.get("done", 0), "stepsTotal": len(steps), "counts": counts,
        "steps": [{"id": s.step_id, "status": s.status, "message": s.message}
                  for s in steps],
    }


def _show_status(doc: dict[str, Any], fmt: str, console: Console | None = None) -> None:
    from pitstop.render import emit_document
    from pitstop.render.runs import print_status

    if fmt == "table":
        print_status(doc, console or _console())
    else:
        emit_document(console or _console(), doc, fmt)


def _watch_status(run: Any, fmt: str, interval: float, timeout: float) -> int:
    """Re-read the run's journal every ``interval`` seconds; redraw (a terminal) or print a
    line (otherwise; a document per change with -o json|yaml) when something changed; stop
    once the run is no longer created or running."""
    import time

    from pitstop.render.runs import status_line

    console = _console()
    deadline = time.monotonic() + timeout
    last: Any = None
    try:
        while True:
            doc = _status_document(run)
            seen = (doc["status"], doc["reason"], doc["request"],
                    [(s["id"], s["status"]) for s in doc["steps"]])
            if seen != last:
                last = seen
                if fmt != "table":
                    _show_status(doc, fmt, console)
                elif console.is_terminal:
                    console.clear()
                    _show_status(doc, fmt, console)
                    console.print(f"[dim]every {interval:g} s; Ctrl-C stops watching[/]")
                else:
                    console.out(status_line(doc), highlight=False)
                console.file.flush()
            if doc["status"] not in ("created", "running"):
                return EXIT_FOR_STATUS.get(doc["status"], EXIT_BLOCKED)
            if time.monotonic() >= deadline:
                _echo(f"pitstop: run {run.run_id} is still {doc['status']} after {timeout:g} s "
                      "of watching (--timeout)", err=True)
                return EXIT_BLOCKED
            time.sleep(interval)
    except KeyboardInterrupt:
        return EXIT_OK


@main.command("runs")
@click.option("--runs-dir", "runs_dirs", multiple=True, type=click.Path(file_okay=False),
              help="A runs directory to list (repeatable; default: .pitstop/runs and "
              ".pitstop/demo).")
@_output_option("table", "json", "yaml")
@_guard
def runs_(runs_dirs: tuple[str, ...], fmt: str) -> None:
    """List runs, newest first: id, status, backend, clusters, started, finished, steps done.
    Every command that takes RUN accepts the id (or its start or end) in place of the run
    directory.

    \b
    Examples:
      pitstop runs
      pitstop runs --runs-dir /srv/pitstop/runs -o json
      pitstop status $(pitstop runs -o json | jq -r '.runs[0].runId')
    """
    from pitstop.cli.runinfo import DEFAULT_RUNS_DIRS, list_runs
    from pitstop.render import emit_document
    from pitstop.render.runs import print_runs

    dirs = [Path(d) for d in (runs_dirs or DEFAULT_RUNS_DIRS)]
    docs = [r.to_dict() for r in list_runs(dirs)]
    if fmt == "table":
        print_runs(docs, _console())
    else:
        emit_document(_console(), {"format": "pitstop.dev/v1alpha1/RunList",
                                   "runsDirs": [str(d) for d in dirs], "runs": docs}, fmt)


def _request(run_dir: str, what: str, reason: str) -> None:
    from pitstop.cli.runs import load_run

    run = load_run(run_dir)
    run.journal.set("request", what)
    run.journal.set("request_reason", reason)
    run.record(os.environ.get("USER", "operator"), f"request-{what}", reason, run.run_id)
    _echo(f"{what} requested for run {run.run_id}; the executor acts on it at its next "
          "safe point")


@main.command()
@run_argument()
@runs_lookup_option
@click.option("--reason", default="paused by an operator", show_default=True)
@_guard
def pause(run_dir: str, reason: str) -> None:
    """Ask a running run to pause at its next safe point (resume with `pitstop resume`)."""
    _request(run_dir, "pause", reason)


@main.command()
@run_argument()
@runs_lookup_option
@click.option("--reason", default="aborted by an operator", show_default=True)
@_guard
def abort(run_dir: str, reason: str) -> None:
    """Ask a run to stop for good at its next safe point: nodes in flight finish and are
    uncordoned; a node held by a drain stall stays cordoned, annotated with why."""
    _request(run_dir, "abort", reason)


@main.command()
@run_argument()
@runs_lookup_option
@click.option("--step", "step_id", required=True, help="The step that waits for approval.")
@click.option("--as", "approver", required=True, help="Who approves (recorded in the audit).")
@_output_option("table", "json", "yaml")
@_guard
def approve(run_dir: str, step_id: str, approver: str, fmt: str) -> None:
    """Approve a step that waits for approval; then `pitstop resume RUN`. RUN is a run
    directory or a run id."""
    from pitstop.cli.runs import load_run
    from pitstop.executor.approvals import approve_step

    run = load_run(run_dir)
    got = approve_step(run, step_id, approver)  # refused: not listed, or needs no approval
    _print_approval(run, got, fmt)


@main.command()
@run_argument()
@runs_lookup_option
@click.option("--wave", default=None, help="The wave to roll back (default: the current one).")
@click.option("--restore-etcd", is_flag=True,
              help="Also restore etcd where the wave upgraded members: the wave's verified "
              "pre-upgrade snapshot into a new cluster of the old version. Every write since the "
              "snapshot is lost. Without it, the command prints which snapshot and how.")
@click.option("--undo-completed", is_flag=True,
              help="Roll back a run that completed (refused without it: a completed upgrade "
              "is undone only when asked for in so many words).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@_guard
def rollback(run_dir: str, wave: str | None, restore_etcd: bool, undo_completed: bool,
             yes: bool) -> None:
    """Roll a wave of a paused or rolled-back run back to its last known-good versions: shows
    exactly what it will undo (and what it keeps), then asks."""
    from pitstop.cli.runs import load_run, open_backend
    from pitstop.errors import RunRefused
    from pitstop.executor.integrity import acting
    from pitstop.executor.vocabulary import RunStatus

    run = load_run(run_dir)
    status = run.journal.get("status")
    if status == RunStatus.COMPLETED and not undo_completed:
        raise RunRefused(f"run {run.run_id} completed: every step done and the fleet where the "
                         "plan ends. Rolling it back undoes a finished upgrade; to do that, say "
                         f"so: `pitstop rollback {run.path} --undo-completed` (it shows what "
                         "it will undo and asks)")
    with acting(run, "rollback"):
        backend = open_backend(run)
        try:
            _rollback(run, backend, wave, restore_etcd, yes, status)
        finally:
            backend.close()


def _rollback(run: Any, backend: Any, wave: str | None, restore_etcd: bool, yes: bool,
              status: str) -> None:
    from pitstop.cli.runs import describe_backend
    from pitstop.errors import BackendError, RunRefused
    from pitstop.executor.context import Stop
    from pitstop.executor.core import Executor
    from pitstop.executor.vocabulary import RunStatus, StepStatus

    if wave is None:
        started = [s for s in run.journal.steps() if s.status != StepStatus.PENDING]
        by_id = {s.id: s for s in run.plan.steps}
        wave = by_id[started[-1].step_id].wave if started else run.plan.waves[0].name
    if wave not in {w.name for w in run.plan.waves}:
        raise RunRefused(f"run {run.run_id} has no wave {wave!r}; its waves: "
                         + ", ".join(w.name for w in run.plan.waves))
    ex = Executor(run, backend)
    plan = ex.plan_rollback(wave, restore_etcd=restore_etcd)
    _echo(f"rollback of wave {wave} of run {run.run_id} ({status}) on "
          f"{describe_backend(run)} will:")
    for line in plan.describe():
        _echo(f"  - {line}")
    if plan.empty:
        _echo("nothing to do")
        return
    if not yes and not click.confirm("roll back?"):
        _echo("nothing was done")
        sys.exit(EXIT_BLOCKED)
    if restore_etcd and not yes and any(e.members and e.snapshot for e in plan.etcd) and \
            not click.confirm("restore etcd from the snapshot and lose every write made "
                              "since it was taken?"):
        _echo("nothing was done")
        sys.exit(EXIT_BLOCKED)
    try:
        summary = ex.rollback_wave(wave, "rollback requested by an operator",
                                   restore_etcd=restore_etcd, plan=plan)
    except Stop as stop:
        run.journal.set("status", stop.status)
        run.journal.set("reason", stop.reason)
        _echo(f"rollback of wave {wave} could not finish: {stop.reason}", err=True)
        sys.exit(EXIT_FOR_STATUS.get(stop.status, EXIT_BLOCKED))
    except BackendError as exc:  # the backend stopped answering: a pause that says so
        why = (f"rollback of wave {wave} could not finish: the backend could not act: "
               f"{exc}. Fix the connection, then `pitstop rollback {run.path}` again")
        run.journal.set("status", RunStatus.PAUSED)
        run.journal.set("reason", why)
        _echo(why, err=True)
        sys.exit(EXIT_PAUSED)
    run.journal.set("status", RunStatus.ROLLED_BACK)
    run.journal.set("reason", f"wave {wave}: {summary}")
    _echo(f"wave {wave}: {summary}")


def _print_approval(run: Any, got: Any, fmt: str) -> None:
    if fmt == "table":
        _echo(f"{got.approver} approved {got.step_id}; approvals {len(got.counted)} of "
              f"{got.required}: " + ", ".join(got.counted))
        return
    from pitstop.render import emit_document

    emit_document(_console(), {"format": "pitstop.dev/v1alpha1/Approval", "runId": run.run_id,
                               "step": got.step_id, "approver": got.approver,
                               "approvals": got.counted, "required": got.required,
                               "approvers": got.allowed}, fmt)


@main.group()
def audit() -> None:
    """The hash-chained audit log of a run."""


@audit.command("verify")
@run_argument(files=True)
@runs_lookup_option
@_output_option("table", "json", "yaml")
@_guard
def audit_verify(run_dir: str, fmt: str) -> None:
    """Verify a run's audit log (PATH: a run directory, a run id, or an audit.jsonl): any
    edit, deletion, reordering or truncation fails, naming the line. Exit 0 intact, 1
    tampered."""
    from pitstop.audit import verify

    p = Path(run_dir)
    log = p / "audit.jsonl" if p.is_dir() else p
    result = verify(log)
    if fmt != "table":
        from pitstop.render import emit_document

        emit_document(_console(), {"format": "pitstop.dev/v1alpha1/AuditVerification",
                                   "log": str(log), "ok": result.ok,
                                   "records": result.records,
                                   "problems": [str(x) for x in result.problems]}, fmt)
        sys.exit(EXIT_OK if result.ok else EXIT_BLOCKED)
    if result.ok:
        _echo(f"ok: {log}: {result.records} records, chain intact")
        return
    _echo(f"TAMPERED: {log}", err=True)
    for problem in result.problems:
        _echo(f"  {problem}", err=True)
    sys.exit(EXIT_BLOCKED)


@main.command()
@click.option("--runs-dir", default=".pitstop/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the demo's runs and report go.")
@_guard
def demo(runs_dir: str) -> None:
    """The example fleet's upgrade, start to end, on the twin: plan (a blocking PDB named),
    a rehearsal with an injected canary failure that rolls back by itself, the fix, a clean
    rehearsal, and an HTML report. No configuration needed."""
    from pitstop.cli.demo import run_demo

    console = _console()
    _report, ok = run_demo(Path(runs_dir), console.print)
    sys.exit(EXIT_OK if ok else EXIT_BLOCKED)


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL: commands, options, choices, files, and
    the ids of runs under .pitstop/runs for RUN.

    \b
    Examples:
      source <(pitstop completion bash)                     # this shell
      pitstop completion bash > /etc/bash_completion.d/pitstop
      pitstop completion zsh > "${fpath[1]}/_pitstop"
      pitstop completion fish > ~/.config/fish/completions/pitstop.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # bash, zsh and fish are built into click
    click.echo(cls(main, {}, "pitstop", "_PITSTOP_COMPLETE").source())


# -- live clusters: inventory and drift (pitstop.kube) ----------------------------------------

@main.command()
@kubeconfig_option
@context_option
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the Fleet to this file instead of standard output.")
@click.option("--name", default="inventory", show_default=True, help="The Fleet's name.")
@pool_label_option
@page_size_option
@_guard
def inventory(kubeconfig: str | None, contexts: tuple[str, ...], fmt: str,
              out_file: str | None, name: str, pool_labels: tuple[str, ...],
              page_size: int) -> None:
    """Read live clusters into a Fleet (nodes, pools, versions, workloads, PDBs, add-ons,
    deprecated API usage) that `pitstop validate`, `plan` and `drift` accept.

    \b
    Examples:
      pitstop inventory --out fleet.yaml
      pitstop inventory --context prod-eu --context prod-us -o json
      pitstop plan -f fleet.yaml --target kubernetes=1.36.5
    """
    import json

    import yaml

    from pitstop.kube.inventory import DEFAULT_POOL_LABELS, image_findings, take_inventory

    inv = take_inventory(list(contexts), kubeconfig, page_size=page_size,
                         pool_labels=pool_labels or DEFAULT_POOL_LABELS, name=name)
    doc = {"apiVersion": inv.fleet.api_version, "kind": inv.fleet.kind,
           **inv.fleet.model_dump(by_alias=True, mode="json", exclude_defaults=True)}
    text = (json.dumps(doc, indent=2) + "\n" if fmt == "json"
            else yaml.safe_dump(doc, sort_keys=False))
    if out_file:
        Path(out_file).write_text(text)
    else:
        click.echo(text, nl=False)
    for c in inv.fleet.spec.clusters:
        nodes = sum(len(p.nodes) for p in c.node_pools)
        _echo(f"{c.name}: {nodes} nodes in {len(c.node_pools)} pools, "
              f"{len(c.workloads)} workloads, {len(c.pod_disruption_budgets)} PDBs, "
              f"{len(c.addons)} add-ons, {len(c.api_usage)} deprecated-API uses", err=True)
    for note in inv.notes:
        _echo(f"note: {note}", err=True)
    for f in image_findings(inv.fleet):
        _echo(f"{f.severity}: {f.code} ({f.cluster}): {f.message}", err=True)
    if out_file:
        _echo(f"wrote {out_file}", err=True)


@main.command()
@files_option
@kubeconfig_option
@context_option
@_output_option("table", "json", "yaml")
@pool_label_option
@page_size_option
@_guard
def drift(files: tuple[str, ...], kubeconfig: str | None, contexts: tuple[str, ...],
          fmt: str, pool_labels: tuple[str, ...], page_size: int) -> None:
    """Compare a declared fleet with the live clusters: versions per node and control-plane
    instance, node sets, pool sizes, add-on versions, PDB specs. Exit 0 without drift, 1 with.

    Each declared cluster is read through the context in its `pitstop.dev/context` label (as
    `pitstop inventory` writes it), else the context of its name; `--context` picks contexts
    (one context with a one-cluster fleet pairs them whatever their names).

    \b
    Examples:
      pitstop drift -f fleet.yaml
      pitstop drift -f declared.yaml --context prod-eu -o json
    """

    from pitstop.config import load_files
    from pitstop.errors import ConfigError, ConfigProblem
    from pitstop.kube.drift import fleet_drift
    from pitstop.kube.fleet import pair_contexts
    from pitstop.kube.inventory import DEFAULT_POOL_LABELS, take_inventory

    if not files:
        raise ConfigError([ConfigProblem("-f", None, "", "no input file given.",
                                         "pass the declared fleet with -f fleet.yaml.")])
    declared = load_files(files).fleet
    if declared is None:
        raise ConfigError([ConfigProblem(", ".join(files), None, "", "no Fleet object found.",
                                         "add a file with `kind: Fleet`.")])
    wanted = pair_contexts(declared.spec.clusters, contexts)
    live = take_inventory([ctx for _, ctx in wanted], kubeconfig, page_size=page_size,
                          pool_labels=pool_labels or DEFAULT_POOL_LABELS)
    pairs = [(d, ci.cluster.name) for (d, _), ci in zip(wanted, live.clusters, strict=True)]
    diffs = fleet_drift(declared, live.fleet, pairs)
    if fmt != "table":
        from pitstop.render import emit_document

        emit_document(_console(), {"drift": bool(diffs), "clusters": [d for d, _ in pairs],
                                   "differences": [d.to_dict() for d in diffs]}, fmt)
    elif diffs:
        for d in diffs:
            _echo(d.text())
        _echo(f"drift: {len(diffs)} difference(s) in {len({d.cluster for d in diffs})} "
              f"of {len(pairs)} cluster(s)")
    else:
        _echo(f"no drift: {len(pairs)} cluster(s) match the declared fleet")
    sys.exit(EXIT_BLOCKED if diffs else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
