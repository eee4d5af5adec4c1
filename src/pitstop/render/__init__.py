"""Rendering plans, findings, schedules, runs and the catalog for people (tables, Markdown) and
for programs (JSON, YAML). No decisions are made here.

- :mod:`pitstop.render.safe`: text from data made safe to print (rich markup, control
  characters); everything printed here goes through it.
- :mod:`pitstop.render.table`: tables (boxed on a terminal, plain columns elsewhere) and
  JSON/YAML documents.
- :mod:`pitstop.render.plan`: the plan, its findings grouped by code, ``explain``, Markdown.
- :mod:`pitstop.render.runs`: a run's result, its status, the list of runs.
- :mod:`pitstop.render.catalog`: the version catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pitstop.render.catalog import catalog_dict, render_catalog
from pitstop.render.plan import (
    explain_document,
    plan_document,
    plan_markdown,
    print_explain,
    print_plan,
)
from pitstop.render.safe import markup, visible
from pitstop.render.table import emit_document, print_table

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.calendar import Schedule
    from pitstop.planner import Plan

__all__ = [
    "catalog_dict",
    "emit_document",
    "explain_document",
    "markup",
    "plan_document",
    "plan_markdown",
    "print_table",
    "render_catalog",
    "render_explain",
    "render_plan",
    "visible",
]


def render_plan(plan: Plan, schedule: Schedule | None, fmt: str, console: Console) -> None:
    """The plan as ``fmt``: ``table`` (for people), ``markdown``, or the ``json``/``yaml``
    contract (docs/plan-json.md)."""
    if fmt in ("json", "yaml"):
        emit_document(console, plan_document(plan, schedule), fmt)
    elif fmt == "markdown":
        console.file.write(plan_markdown(plan, schedule))
    else:
        print_plan(plan, schedule, console)


def render_explain(plan: Plan, console: Console, step_filter: str | None = None,
                   fmt: str = "table") -> None:
    """Each matching step with its reason, gates and soak (``table``), or as a document."""
    if fmt in ("json", "yaml"):
        emit_document(console, explain_document(plan, step_filter), fmt)
    else:
        print_explain(plan, console, step_filter)
