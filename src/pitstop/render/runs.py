"""Runs for people: the summary after ``rehearse``/``apply``/``resume``, ``status`` (and its
one-line form for ``status --watch`` off a terminal), and the list of runs. Each takes the
document that ``-o json|yaml`` prints, so both say the same (docs/operations.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pitstop.render.safe import markup, visible
from pitstop.render.table import print_table

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_result", "print_runs", "print_status", "split_rollbacks", "status_line"]

STATUS_STYLE = {"completed": "green", "paused": "yellow", "rolled-back": "magenta",
                "running": "cyan", "created": "cyan"}


def _time(value: str | float | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float | int):
        t = datetime.fromtimestamp(value, UTC)
    else:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return visible(value)
    return (t.astimezone(UTC) if t.tzinfo else t).strftime("%Y-%m-%d %H:%M")


def _status(console: Console, status: str) -> str:
    if not console.is_terminal:
        return visible(status)
    return f"[bold {STATUS_STYLE.get(status, 'red')}]{markup(status)}[/]"


def _say(console: Console, text: str, data: str = "") -> None:
    """``text`` (markup of ours) followed by ``data`` (shown as it is stored)."""
    if console.is_terminal:
        console.print(text + markup(data))
    else:
        from rich.text import Text

        plain = Text.from_markup(text).plain
        console.out(plain + visible(data), highlight=False)


def split_rollbacks(reason: str, rollbacks: Sequence[str]) -> tuple[str, list[str]]:
    """Say each thing once. A run rolled back by a failed gate has a reason that ends with the
    rollback (``<why>; wave canary rolled back: <what>``), and, when the rollback was done in
    this process, a rollback entry with the same text (``wave canary: <what>``). The reason
    keeps ``<why>``; the rollback is printed once, on its own line; other rollback entries
    (a restore that failed …) are printed as they are."""
    lines: list[str] = []
    m = re.search(r"; wave (\S+) rolled back: ", reason)
    if m:
        lines.append(f"wave {m.group(1)}: {reason[m.end():]}")
        reason = reason[:m.start()]
    for rb in rollbacks:
        if rb not in lines and rb not in reason:
            lines.append(rb)
    return reason, lines


def print_result(doc: Mapping[str, Any], console: Console) -> None:
    """The summary of a run that just stopped (the ``RunResult`` document)."""
    reason, rollbacks = split_rollbacks(str(doc.get("reason") or ""), doc.get("rollbacks", []))
    if console.is_terminal:
        console.print(_status(console, str(doc["status"])) + ": " + markup(reason))
    else:
        console.out(f"{visible(doc['status'])}: {visible(reason)}", highlight=False)
    for rb in rollbacks:
        _say(console, "[magenta]rollback:[/] ", rb)
    _say(console, "run:      ", f"{doc['runId']} ({doc['runDir']})")
    _say(console, "backend:  ", str(doc["backend"]["description"]))
    steps = doc["steps"]
    _say(console, "steps:    ", f"{steps['done']}/{steps['total']} done")
    if doc.get("started"):
        clock = "virtual" if doc.get("clock") == "virtual" else "wall clock"
        hours = float(doc.get("elapsedSeconds") or 0) / 3600
        _say(console, "time:     ", f"{_time(doc['started'])} → {_time(doc.get('now'))} UTC "
                                    f"({hours:.1f} h, {clock})")
    drains = doc.get("drains")
    if drains:
        _say(console, "drains:   ", f"{drains['evictions']} evictions, {drains['refusals429']} "
                                    "refused by a PDB (429) and retried; " + drains["stalls"])
    low = doc.get("lowestAvailability") or []
    if low:
        _say(console, "lowest availability: ",
             ", ".join(f"{w['workload']} {w['ratio']:.0%}" for w in low))
    if doc.get("report"):
        _say(console, "report:   ", str(doc["report"]))


def print_status(doc: Mapping[str, Any], console: Console) -> None:
    """``pitstop status RUN``: the status and reason, the backend and progress, the steps in
    each state, and every step that is neither done nor pending."""
    if console.is_terminal:
        console.print(f"run {markup(doc['runId'])}: {_status(console, str(doc['status']))} — "
                      f"{markup(doc.get('reason') or '')}")
    else:
        console.out(f"run {visible(doc['runId'])}: {visible(doc['status'])} — "
                    f"{visible(doc.get('reason') or '')}", highlight=False)
    if doc.get("request"):
        _say(console, "request:  ", f"{doc['request']} ({doc.get('requestReason') or ''}): "
                                    "acted on at the next safe point")
    _say(console, "backend:  ", str(doc["backend"]["description"]))
    _say(console, "clusters: ", ", ".join(doc.get("clusters", [])))
    counts = doc.get("counts", {})
    _say(console, "steps:    ", f"{doc['stepsDone']}/{doc['stepsTotal']} done"
         + "".join(f", {n} {s}" for s, n in sorted(counts.items()) if s != "done"))
    if doc.get("started"):
        clock = " (virtual)" if doc.get("clock") == "virtual" else ""
        _say(console, "started:  ", f"{_time(doc['started'])} UTC{clock}"
             + (f"; finished {_time(doc['finished'])} UTC" if doc.get("finished") else ""))
    rows = [[s["id"], s["status"], s.get("message") or ""] for s in doc["steps"]
            if s["status"] not in ("done", "pending")]
    if rows:
        console.out("")
        print_table(console, ("step", "status", "message"), rows, no_wrap=("step",))


def status_line(doc: Mapping[str, Any], now: datetime | None = None) -> str:
    """One line of ``status --watch`` off a terminal: when (wall clock), the status, progress,
    the steps under way, and the reason once the run stopped."""
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    busy = [s["id"] for s in doc["steps"] if s["status"] == "running"]
    text = f"{at}  {doc['status']}  {doc['stepsDone']}/{doc['stepsTotal']} done"
    if busy:
        text += "  running: " + ", ".join(busy[:4]) + (f" +{len(busy) - 4}"
                                                       if len(busy) > 4 else "")
    if doc["status"] not in ("running", "created") and doc.get("reason"):
        text += f"  — {doc['reason']}"
    return visible(text)


def print_runs(docs: Sequence[Mapping[str, Any]], console: Console) -> None:
    """``pitstop runs``: one row per run, newest first."""
    if not docs:
        console.out("no runs", highlight=False)
        return
    rows = []
    for d in docs:
        clusters = list(d.get("clusters", []))
        shown = ", ".join(clusters[:3]) + (f" +{len(clusters) - 3}" if len(clusters) > 3 else "")
        b = d["backend"]
        backend = b["kind"] + (f"/{b['mode']}" if b.get("mode") else "")
        rows.append([d["runId"], d["status"], backend, shown, _time(d.get("started")),
                     _time(d.get("finished")), f"{d['steps']['done']}/{d['steps']['total']}"])
    print_table(console, ("id", "status", "backend", "clusters", "started", "finished",
                          "steps"), rows, no_wrap=("id",))
