"""The ``pitstop`` command line.

Heavy modules (pydantic, rich, the planner) are imported inside commands, so that
``pitstop --help`` starts fast.

Exit codes (documented in docs/operations.md):
  0  the plan is ready (or the command succeeded)
  1  the plan is blocked by findings, or the target is refused
  2  bad input: a file, field or option that cannot be accepted
  3  internal error (a bug in pitstop: please report it)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.catalog import Catalog
    from pitstop.config import LoadedConfig

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
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
        console = Console(stderr=stderr, soft_wrap=False, highlight=False, width=160)
    return console


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
        except PitstopError as exc:
            kind = "error" if exc.exit_code == EXIT_BAD_INPUT else "refused"
            _fail(f"pitstop: {kind}:\n{exc}", exc.exit_code)
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
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"pitstop: error:\n{option}: {value!r} is not an ISO-8601 time. "
              "Fix: write e.g. 2026-12-01T22:00:00+01:00.", EXIT_BAD_INPUT)
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
    return cfg, load_catalog(catalog_dir)


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
        render_explain(result, console, explain or None)
    else:
        render_plan(result, schedule, fmt, console)
    return EXIT_OK if result.reachable else EXIT_BLOCKED


@main.command()
@files_option
@click.option("--target", "target_text", default=None, help="Desired versions (as for plan).")
@click.option("--step", "step", default="", help="Only steps whose id contains this (or its #).")
@catalog_option
@click.option("--now", "now_text", default=None, help="As for plan.")
@_guard
def explain(files: tuple[str, ...], target_text: str | None, step: str,
            catalog_dir: str | None, now_text: str | None) -> None:
    """Explain why each step exists, why it is where it is, and what gates follow it.

    \b
    Examples:
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml
      pitstop explain -f examples/fleet.yaml -f examples/target.yaml --step apiserver
    """
    sys.exit(_plan(files, target_text, "table", catalog_dir, now_text, None, False,
                   explain=step))


@main.command()
@files_option
@catalog_option
@_guard
def validate(files: tuple[str, ...], catalog_dir: str | None) -> None:
    """Check configuration files and the catalog; print what was read.

    \b
    Example:
      pitstop validate -f examples/fleet.yaml -f examples/policy.yaml
    """
    from pitstop.catalog import load_catalog
    from pitstop.config import load_files
    from pitstop.errors import ConfigError, ConfigProblem

    if not files:
        raise ConfigError([ConfigProblem("-f", None, "", "no input file given.",
                                         "pass files with -f.")])
    cfg = load_files(files)
    load_catalog(catalog_dir)
    if cfg.fleet is not None:
        nodes = sum(len(p.nodes) for c in cfg.fleet.spec.clusters for p in c.node_pools)
        click.echo(f"ok  Fleet/{cfg.fleet.metadata.name}: {len(cfg.fleet.spec.clusters)} "
                   f"clusters, {nodes} nodes")
    if cfg.policy is not None:
        click.echo(f"ok  UpgradePolicy/{cfg.policy.metadata.name}: "
                   f"{len(cfg.policy.spec.waves)} waves, "
                   f"{len(cfg.policy.spec.maintenance_windows)} maintenance windows")
    if cfg.target is not None:
        click.echo(f"ok  UpgradeTarget/{cfg.target.metadata.name}: " + ", ".join(
            f"{k}={v}" for k, v in cfg.target.spec.versions.items()))


@main.command()
@click.argument("kind", required=False,
                type=click.Choice(["Fleet", "UpgradePolicy", "UpgradeTarget"]))
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


if __name__ == "__main__":  # pragma: no cover
    main()
