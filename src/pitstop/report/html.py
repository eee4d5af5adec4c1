"""A self-contained HTML report of one upgrade run: one file, no network.

The page opens offline: its CSS is inline, its charts are inline SVG, and a few lines of inline
JavaScript only turn the SVG ``<title>`` tooltips into styled ones (without JavaScript the
browser shows them natively). Every string taken from the data is escaped.

:func:`render_html` takes one ``dict`` (the run as JSON would carry it) and returns the page;
:func:`write_report` writes it to a file. The contract of that ``dict``; times are seconds
since the epoch, as floats, and may be virtual time (a rehearsal on the ``twin`` backend), so
the page shows them relative to ``started`` (``h:mm`` on the axes, ``h:mm:ss`` in tables)::

    {
      "title": str, "runId": str,
      "status": "completed" | "paused" | "aborted" | "rolled-back" | "failed",
      "reason": str,                       # why the run ended as it did
      "backend": "twin" | ...,             # "twin" = a virtual-time rehearsal
      "started": float, "finished": float | None,
      "target": {component: version},
      "steps": [{"id": str, "wave": str, "cluster": str, "phase": str, "component": str,
                 "from": str, "to": str,
                 "status": "done" | "failed" | "rolled-back" | "paused" | "running" | "pending",
                 "start": float | None, "end": float | None, "reason": str}],
      "nodes": [{"cluster": str, "node": str, "step": str, "start": float,
                 "end": float | None,
                 "outcome": "done" | "failed" | "blocked" | "rollback"}],
      "availability": {"ns/workload": [[t, ready, desired], ...]},
      "pdbFloors": {"ns/workload": int},   # fewest ready pods its PDB allows
      "gates": [{"step": str, "gate": str,
                 "phase": "Successful" | "Failed" | "Inconclusive" | "Error" | "Running",
                 "message": str, "at": float}],
      "judgements": [{"step": str, "when": "gate" | "soak", "at": float,
                      "count": int, "verdicts": {"pass": int, ...},
                      "judgement": {...}}],  # the canary judge's last, per step: the -o json
                                             # document of `pitstop judge` (docs/judge.md)
      "rollbacks": [str],
      "stalls": [{"node": str, "pods": [str], "pdbs": [str], "at": float, "seconds": float}],
      "stories": [{"title": str, "lines": [str]}],          # optional narrative sections
      "summary": {"makespanSeconds": float, "minAvailability": {"ns/workload": float},
                  "evictions": int, "refusals429": int}
    }

Every key but ``started`` may be missing; a missing list is drawn as empty. What the page shows:
a header (status colour-coded, reason, target, run id), a summary, the stories, a Gantt chart
of the steps by cluster and of every node's upgrade (one row per node, coloured by outcome),
each workload's ready and desired replicas over time against its PDB floor, the gates (Error,
a check that broke, drawn apart from Failed, a check that said no), the canary judge's last
judgement per step with its per-metric table (when it ran), the steps, the rollbacks
and the stalls.

Large runs stay readable: at most :data:`MAX_NODE_ROWS` node rows are drawn (the nodes that did
not simply finish come first, and a note says how many were left out), availability series are
down-sampled to at most :data:`MAX_POINTS` samples each keeping every bucket's lowest and
highest reading (so a dip is never smoothed away), and at most :data:`MAX_CHARTS` workloads get
a chart (the least available first; the rest are listed in a table).
"""

from __future__ import annotations

import html
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_CHARTS",
    "MAX_NODE_ROWS",
    "MAX_POINTS",
    "downsample",
    "format_clock",
    "render_html",
    "write_report",
]

MAX_NODE_ROWS = 400
MAX_POINTS = 300
MAX_CHARTS = 48
MAX_TABLE_ROWS = 1000

# Known values map to CSS class names; anything else is "unknown" (never data in a class).
_RUN_STATUS = {"completed", "paused", "aborted", "rolled-back", "failed"}
_STEP_STATUS = {"done", "failed", "rolled-back", "paused", "running", "pending"}
_OUTCOMES = {"done", "failed", "blocked", "rollback"}
_GATE_PHASES = {"Successful": "successful", "Failed": "failed", "Inconclusive": "inconclusive",
                "Error": "error", "Running": "running"}

# Chart geometry (SVG user units; the page is laid out for about 1300 px of width).
_GW = 1240          # Gantt width
_LABEL_W = 220      # row labels
_GX0 = _LABEL_W + 12
_GX1 = _GW - 16
_AXIS_H = 26
_STEP_ROW = 24
_NODE_ROW = 13
_CLUSTER_HEAD = 20
_CHAR_W = 6.4       # rough width of one 11 px character, to fit labels

_NICE_TICKS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
               86400, 172800, 604800)


# ---------------------------------------------------------------------------------------------
# small helpers

def _e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: object) -> float | None:
    """A finite number, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def format_clock(seconds: float, *, with_seconds: bool = False) -> str:
    """Time since the start as ``h:mm`` (or ``h:mm:ss``); hours go past 24, negatives get a
    minus sign."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    if not with_seconds:
        total = (total // 60) * 60  # an axis label never rounds up into the next minute
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{s:02d}" if with_seconds else f"{sign}{h}:{m:02d}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = round(max(seconds, 0.0))
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d {h}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def _utc(t: float | None) -> str:
    if t is None:
        return "—"
    try:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def _pct(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.0f}%"


def _f(v: float) -> str:
    """A coordinate: short, and never in exponent notation."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _fit(text: str, width: float, min_room: int = 2) -> str:
    """Cut ``text`` to fit ``width`` units, marking the cut (or nothing, if fewer than
    ``min_room`` characters would fit)."""
    room = int(width / _CHAR_W)
    if len(text) <= room:
        return text
    return text[: room - 1] + "…" if room >= min_room else ""


@dataclass(frozen=True, slots=True)
class _Clock:
    """Maps run time to the x axis of a chart spanning ``x0``..``x1``."""

    t0: float
    t1: float

    @property
    def span(self) -> float:
        return self.t1 - self.t0

    def x(self, t: float, x0: float, x1: float) -> float:
        frac = (t - self.t0) / self.span
        return x0 + min(max(frac, 0.0), 1.0) * (x1 - x0)

    def rel(self, t: float | None, *, with_seconds: bool = True) -> str:
        return "—" if t is None else format_clock(t - self.t0, with_seconds=with_seconds)


def _tick_step(span: float, most: int = 12) -> int:
    for step in _NICE_TICKS:
        if span / step <= most:
            return step
    return _NICE_TICKS[-1] * max(1, math.ceil(span / (_NICE_TICKS[-1] * most)))


# ---------------------------------------------------------------------------------------------
# down-sampling

def downsample(samples: Sequence[Sequence[float]],
               limit: int = MAX_POINTS) -> list[tuple[float, float, float]]:
    """At most ``limit`` of ``samples`` (``[t, ready, desired]``), in time order.

    The first and the last sample are kept; the rest are split into equal buckets and each
    bucket keeps its lowest-ready and its highest-ready sample, so dips and peaks survive.
    Malformed samples (not three finite numbers) are dropped."""
    clean: list[tuple[float, float, float]] = []
    for s in samples:
        if not isinstance(s, list | tuple) or len(s) < 3:
            continue
        t, r, d = _num(s[0]), _num(s[1]), _num(s[2])
        if t is not None and r is not None and d is not None:
            clean.append((t, r, d))
    clean.sort(key=lambda s: s[0])
    limit = max(limit, 4)
    if len(clean) <= limit:
        return clean
    inner = clean[1:-1]
    buckets = (limit - 2) // 2
    kept: list[tuple[float, float, float]] = [clean[0]]
    for b in range(buckets):
        lo = b * len(inner) // buckets
        hi = (b + 1) * len(inner) // buckets
        chunk = range(lo, hi)
        if not chunk:
            continue
        i_min = min(chunk, key=lambda i: (inner[i][1], i))
        i_max = max(chunk, key=lambda i: (inner[i][1], -i))
        kept.extend(inner[i] for i in sorted({i_min, i_max}))
    kept.append(clean[-1])
    return kept


# ---------------------------------------------------------------------------------------------
# the time span of the run

def _time_span(data: Mapping[str, Any]) -> _Clock:
    started = _num(data.get("started"))
    times: list[float] = []
    for step in _list(data.get("steps")):
        s = _dict(step)
        times += [t for t in (_num(s.get("start")), _num(s.get("end"))) if t is not None]
    for node in _list(data.get("nodes")):
        n = _dict(node)
        times += [t for t in (_num(n.get("start")), _num(n.get("end"))) if t is not None]
    for gate in _list(data.get("gates")):
        t = _num(_dict(gate).get("at"))
        if t is not None:
            times.append(t)
    for stall in _list(data.get("stalls")):
        st = _dict(stall)
        at = _num(st.get("at"))
        if at is not None:
            times.append(at + (_num(st.get("seconds")) or 0.0))
    for series in _dict(data.get("availability")).values():
        for s in _list(series):
            if isinstance(s, list | tuple) and s:
                t = _num(s[0])
                if t is not None:
                    times.append(t)
    t0 = started if started is not None else (min(times) if times else 0.0)
    finished = _num(data.get("finished"))
    t1 = max([t0, *times] + ([finished] if finished is not None else []))
    if t1 - t0 < 1.0:
        t1 = t0 + 1.0
    return _Clock(t0, t1)


def _now(data: Mapping[str, Any], clock: _Clock) -> float:
    """Where an unfinished bar ends: the run's end, or the last thing seen."""
    finished = _num(data.get("finished"))
    return finished if finished is not None else clock.t1


# ---------------------------------------------------------------------------------------------
# page sections

def _header(data: Mapping[str, Any], clock: _Clock) -> str:
    status = _str(data.get("status")) or "unknown"
    cls = status if status in _RUN_STATUS else "unknown"
    backend = _str(data.get("backend"))
    virtual = ('<span class="tag" title="times are virtual: a rehearsal on the digital twin">'
               "virtual-time rehearsal</span>") if backend == "twin" else ""
    target = _dict(data.get("target"))
    chips = "".join(f'<span class="chip"><b>{_e(c)}</b> {_e(v)}</span>'
                    for c, v in sorted(target.items(), key=lambda kv: str(kv[0])))
    finished = _num(data.get("finished"))
    reason = _str(data.get("reason"))
    title = _str(data.get("title")) or "pitstop run"
    none = '<span class="muted">—</span>'
    return f"""
<header class="top st-{cls}">
  <div class="head-row">
    <h1>{_e(title)}</h1>
    <span id="status" class="status st-{cls}">{_e(status)}</span>
  </div>
  {f'<p class="reason">{_e(reason)}</p>' if reason else ''}
  <dl class="meta">
    <div><dt>run</dt><dd class="mono">{_e(data.get("runId") or "—")}</dd></div>
    <div><dt>backend</dt><dd>{_e(backend or "—")} {virtual}</dd></div>
    <div><dt>started</dt><dd>{_e(_utc(clock.t0))}</dd></div>
    <div><dt>finished</dt><dd>{_e(_utc(finished)) if finished is not None else "not yet"}</dd></div>
  </dl>
  <div class="target"><span class="label">target</span>{chips or none}</div>
</header>"""


def _min_availability(data: Mapping[str, Any]) -> dict[str, float]:
    """The summary's per-workload minimum, or computed from the samples where it is missing."""
    given = {str(k): v for k, v in _dict(_dict(data.get("summary")).get("minAvailability")).items()
             if _num(v) is not None}
    out: dict[str, float] = {k: float(v) for k, v in given.items()}
    for name, series in _dict(data.get("availability")).items():
        if str(name) in out:
            continue
        ratios = [(r / d if d > 0 else 1.0) for _, r, d in downsample(_list(series), 10**9)]
        if ratios:
            out[str(name)] = min(ratios)
    return out


def _summary(data: Mapping[str, Any], clock: _Clock) -> str:
    summary = _dict(data.get("summary"))
    steps = [_dict(s) for s in _list(data.get("steps"))]
    nodes = [_dict(n) for n in _list(data.get("nodes"))]
    makespan = _num(summary.get("makespanSeconds"))
    if makespan is None and _num(data.get("finished")) is not None:
        makespan = clock.span
    done_steps = sum(1 for s in steps if s.get("status") == "done")
    node_keys = {(_str(n.get("cluster")), _str(n.get("node"))) for n in nodes}
    trouble = Counter(_str(n.get("outcome")) for n in nodes if n.get("outcome") != "done")
    evictions = _num(summary.get("evictions"))
    refusals = _num(summary.get("refusals429"))
    mins = _min_availability(data)
    worst = sorted(mins.items(), key=lambda kv: (kv[1], kv[0]))[:5]
    floors = _dict(data.get("pdbFloors"))

    def card(label: str, value: str, note: str = "", cls: str = "") -> str:
        return (f'<div class="card {cls}"><div class="v">{_e(value)}</div>'
                f'<div class="k">{_e(label)}</div>'
                + (f'<div class="n">{_e(note)}</div>' if note else "") + "</div>")

    cards = [
        card("makespan", _duration(makespan)),
        card("steps done", f"{done_steps} / {len(steps)}"),
        card("nodes", str(len(node_keys)),
             " · ".join(f"{n} {o or '?'}" for o, n in sorted(trouble.items())),
             "warn" if trouble else ""),
        card("evictions", "—" if evictions is None else f"{evictions:,.0f}"),
        card("429 refusals", "—" if refusals is None else f"{refusals:,.0f}",
             "PDB said not now", "warn" if refusals else ""),
        card("rollbacks", str(len(_list(data.get("rollbacks")))), "",
             "bad" if _list(data.get("rollbacks")) else ""),
        card("stalls", str(len(_list(data.get("stalls")))), "",
             "warn" if _list(data.get("stalls")) else ""),
    ]
    rows = []
    for name, ratio in worst:
        floor = _num(floors.get(name))
        rows.append(f'<tr><td class="mono">{_e(name)}</td><td class="num">{_e(_pct(ratio))}</td>'
                    f'<td class="num muted">{"" if floor is None else _e(f"floor {floor:.0f}")}'
                    "</td></tr>")
    worst_html = ("<table class=\"mini\"><caption>lowest availability</caption>"
                  + "".join(rows) + "</table>") if rows else ""
    return (f'<section id="summary" class="summary"><h2>Summary</h2>'
            f'<div class="cards">{"".join(cards)}</div>{worst_html}</section>')


def _stories(data: Mapping[str, Any]) -> str:
    parts = []
    for story in _list(data.get("stories")):
        s = _dict(story)
        lines = "".join(f"<p>{_e(line)}</p>" for line in _list(s.get("lines")))
        parts.append(f'<article class="story"><h3>{_e(s.get("title") or "")}</h3>{lines}</article>')
    if not parts:
        return ""
    return f'<section id="stories"><h2>What happened</h2>{"".join(parts)}</section>'


def _axis(clock: _Clock, y: float, height: float, *, top: bool = True) -> str:
    """Tick labels at ``y`` and grid lines down ``height`` units."""
    step = _tick_step(clock.span)
    secs = step < 60
    out = []
    k = 0
    while k * step <= clock.span + 1e-9:
        x = clock.x(clock.t0 + k * step, _GX0, _GX1)
        label = format_clock(k * step, with_seconds=secs)
        ty = y + (16 if top else 14)
        out.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(y + (_AXIS_H if top else 0))}" '
                   f'x2="{_f(x)}" y2="{_f(y + height)}"/>'
                   f'<text class="tick" x="{_f(x)}" y="{_f(ty if top else y + height + 14)}" '
                   f'text-anchor="middle">{_e(label)}</text>')
        k += 1
    return "".join(out)


def _lanes(items: list[tuple[float, float, Any]]) -> list[tuple[int, float, float, Any]]:
    """Greedy lanes so bars of one row never overlap."""
    ends: list[float] = []
    out = []
    for start, end, item in sorted(items, key=lambda i: (i[0], i[1])):
        for lane, lane_end in enumerate(ends):
            if lane_end <= start:
                ends[lane] = end
                break
        else:
            lane = len(ends)
            ends.append(end)
        out.append((lane, start, end, item))
    return out


def _gantt_steps(data: Mapping[str, Any], clock: _Clock) -> str:
    steps = [_dict(s) for s in _list(data.get("steps"))]
    now = _now(data, clock)
    by_cluster: dict[str, list[tuple[float, float, dict[str, Any]]]] = {}
    unplaced = 0
    for s in steps:
        cluster = _str(s.get("cluster"))
        start = _num(s.get("start"))
        by_cluster.setdefault(cluster, [])
        if start is None:
            unplaced += 1
            continue
        end = _num(s.get("end"))
        by_cluster[cluster].append((start, end if end is not None else max(now, start), s))
    gates_at: dict[str, list[dict[str, Any]]] = {}
    for g in _list(data.get("gates")):
        gd = _dict(g)
        if _num(gd.get("at")) is not None:
            gates_at.setdefault(_str(gd.get("step")), []).append(gd)
    if not by_cluster:
        return '<p class="muted">No steps.</p>'

    rows: list[str] = []
    y = _AXIS_H + 4
    for cluster, items in by_cluster.items():
        placed = _lanes(items)
        n_lanes = max([lane for lane, *_ in placed], default=0) + 1
        height = n_lanes * _STEP_ROW
        waves = sorted({_str(s.get("wave")) for _, _, s in items} - {""})
        rows.append(f'<rect class="band" x="0" y="{_f(y)}" width="{_GW}" height="{height}"/>')
        rows.append(f'<text class="rowlabel" x="8" y="{_f(y + 16)}">{_e(_fit(cluster, 150))}'
                    f"<title>{_e(cluster)}</title></text>")
        if len(waves) == 1:
            rows.append(f'<text class="wavelabel" x="{_LABEL_W}" y="{_f(y + 16)}" '
                        f'text-anchor="end">{_e(_fit(waves[0], 64))}</text>')
        for lane, start, end, s in placed:
            status = _str(s.get("status"))
            cls = status if status in _STEP_STATUS else "unknown"
            x0 = clock.x(start, _GX0, _GX1)
            x1 = max(clock.x(end, _GX0, _GX1), x0 + 2)
            by = y + lane * _STEP_ROW + 4
            open_end = " open" if _num(s.get("end")) is None else ""
            label = f"{_str(s.get('component'))} {_str(s.get('phase'))}".strip()
            tip = (f"{_str(s.get('id'))} · {cluster} · {_str(s.get('phase'))}\n"
                   f"{_str(s.get('component'))} {_str(s.get('from'))} → {_str(s.get('to'))}\n"
                   f"{status} · {clock.rel(start)} → "
                   f"{clock.rel(_num(s.get('end'))) if not open_end else 'still going'}"
                   f" ({_duration(end - start)})"
                   + (f"\n{_str(s.get('reason'))}" if s.get("reason") else ""))
            rows.append(f'<g class="step"><rect class="sbar s-{cls}{open_end}" x="{_f(x0)}" '
                        f'y="{_f(by)}" width="{_f(x1 - x0)}" height="{_STEP_ROW - 8}" rx="3"/>'
                        f"<title>{_e(tip)}</title></g>")
            text = _fit(label, x1 - x0 - 8, min_room=6)
            if text:
                rows.append(f'<text class="barlabel" x="{_f(x0 + 4)}" y="{_f(by + 12)}">'
                            f"{_e(text)}</text>")
            for g in gates_at.get(_str(s.get("id")), []):
                phase = _GATE_PHASES.get(_str(g.get("phase")), "unknown")
                gx = clock.x(_num(g.get("at")) or start, _GX0, _GX1)
                gy = by + (_STEP_ROW - 8) / 2
                rows.append(f'<path class="gmark g-{phase}" d="M{_f(gx)} {_f(gy - 5)} '
                            f'l5 5 l-5 5 l-5 -5z"><title>'
                            f"{_e(_str(g.get('gate')) + ': ' + _str(g.get('phase')))}\n"
                            f"{_e(_str(g.get('message')))}</title></path>")
        y += height + 2
    total = y + 2
    svg = (f'<svg id="gantt-steps" class="gantt" viewBox="0 0 {_GW} {_f(total + 18)}" '
           f'role="img" aria-label="steps by cluster over time">'
           f"{_axis(clock, 0, total)}{''.join(rows)}</svg>")
    note = (f'<p class="note">{unplaced} step(s) have not started and are not drawn.</p>'
            if unplaced else "")
    return svg + note


def _node_rows(data: Mapping[str, Any]) -> tuple[dict[str, list[tuple[str, list[dict[str, Any]]]]],
                                                   int, dict[str, int]]:
    """The node rows to draw, by cluster: ``({cluster: [(node, bars)]}, left_out, outcomes)``."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in _list(data.get("nodes")):
        nd = _dict(n)
        if _num(nd.get("start")) is None:
            continue
        rows.setdefault((_str(nd.get("cluster")), _str(nd.get("node"))), []).append(nd)

    def first(bars: list[dict[str, Any]]) -> float:
        return min(_num(b.get("start")) or 0.0 for b in bars)

    keys = list(rows)
    left_out: dict[str, int] = {}
    if len(keys) > MAX_NODE_ROWS:
        def trouble(k: tuple[str, str]) -> bool:
            return any(b.get("outcome") != "done" for b in rows[k])
        ranked = sorted(keys, key=lambda k: (not trouble(k), first(rows[k])))
        keep = set(ranked[:MAX_NODE_ROWS])
        for k in ranked[MAX_NODE_ROWS:]:
            for b in rows[k]:
                o = _str(b.get("outcome")) or "unknown"
                left_out[o] = left_out.get(o, 0) + 1
        keys = [k for k in keys if k in keep]
    cluster_order: dict[str, int] = {}
    for s in _list(data.get("steps")):
        cluster_order.setdefault(_str(_dict(s).get("cluster")), len(cluster_order))
    keys.sort(key=lambda k: (cluster_order.get(k[0], len(cluster_order)), k[0],
                             first(rows[k]), k[1]))
    out: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for cluster, node in keys:
        out.setdefault(cluster, []).append((node, rows[(cluster, node)]))
    return out, len(rows) - len(keys), left_out


def _gantt_nodes(data: Mapping[str, Any], clock: _Clock) -> str:
    by_cluster, omitted, left_out = _node_rows(data)
    if not by_cluster:
        return '<p class="muted">No node upgrades.</p>'
    now = _now(data, clock)
    stalls: dict[str, list[dict[str, Any]]] = {}
    for st in _list(data.get("stalls")):
        sd = _dict(st)
        stalls.setdefault(_str(sd.get("node")), []).append(sd)
    parts: list[str] = []
    y = _AXIS_H + 2
    for cluster, nodes in by_cluster.items():
        parts.append(f'<text class="clusterhead" x="8" y="{_f(y + 14)}">{_e(_fit(cluster, 200))}'
                     f'<title>{_e(cluster)}</title></text>'
                     f'<line class="sep" x1="0" y1="{_f(y + 19)}" x2="{_GW}" y2="{_f(y + 19)}"/>')
        y += _CLUSTER_HEAD
        for i, (node, bars) in enumerate(nodes):
            if i % 2:
                parts.append(f'<rect class="band" x="0" y="{_f(y)}" width="{_GW}" '
                             f'height="{_NODE_ROW}"/>')
            parts.append(f'<text class="nodelabel" x="16" y="{_f(y + 10)}">'
                         f"{_e(_fit(node, _LABEL_W - 20))}<title>{_e(node)}</title></text>")
            for b in bars:
                start = _num(b.get("start")) or clock.t0
                end_raw = _num(b.get("end"))
                end = end_raw if end_raw is not None else max(now, start)
                outcome = _str(b.get("outcome"))
                cls = outcome if outcome in _OUTCOMES else "unknown"
                x0 = clock.x(start, _GX0, _GX1)
                x1 = max(clock.x(end, _GX0, _GX1), x0 + 2)
                tip = (f"{node} ({cluster})\nstep {_str(b.get('step'))} · {outcome}\n"
                       f"{clock.rel(start)} → "
                       f"{clock.rel(end_raw) if end_raw is not None else 'still going'}"
                       f" ({_duration(end - start)})")
                parts.append(f'<rect class="nbar o-{cls}{" open" if end_raw is None else ""}" '
                             f'x="{_f(x0)}" y="{_f(y + 2.5)}" width="{_f(x1 - x0)}" '
                             f'height="{_NODE_ROW - 5}" rx="1.5"><title>{_e(tip)}</title></rect>')
            for sd in stalls.get(node, []):
                at = _num(sd.get("at"))
                if at is None:
                    continue
                secs = _num(sd.get("seconds")) or 0.0
                x0 = clock.x(at, _GX0, _GX1)
                x1 = max(clock.x(at + secs, _GX0, _GX1), x0 + 3)
                tip = (f"drain stalled {_duration(secs)} at {clock.rel(at)}\n"
                       f"pods: {', '.join(map(str, _list(sd.get('pods')))) or '—'}\n"
                       f"PDBs: {', '.join(map(str, _list(sd.get('pdbs')))) or '—'}")
                mid = y + _NODE_ROW / 2
                parts.append(f'<line class="stallmark" x1="{_f(x0)}" y1="{_f(mid)}" '
                             f'x2="{_f(x1)}" y2="{_f(mid)}"><title>{_e(tip)}</title></line>')
            y += _NODE_ROW
        y += 4
    total = y
    bottom = _axis(clock, total, 0, top=False) if total > 500 else ""
    svg = (f'<svg id="gantt-nodes" class="gantt" viewBox="0 0 {_GW} {_f(total + 20)}" '
           f'role="img" aria-label="node upgrades over time">'
           f"{_axis(clock, 0, total)}{bottom}{''.join(parts)}</svg>")
    note = ""
    if omitted:
        detail = ", ".join(f"{n} {o}" for o, n in sorted(left_out.items()))
        note = (f'<p class="note" id="nodes-capped">Showing {MAX_NODE_ROWS} of '
                f"{MAX_NODE_ROWS + omitted} nodes: every node whose upgrade did not simply finish, "
                f"then the earliest to start. {omitted} node(s) not drawn ({_e(detail)}).</p>")
    return note + svg


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i class="sw {cls}"></i>{_e(label)}</span>' for cls, label in items) + "</div>"


def _gantt(data: Mapping[str, Any], clock: _Clock) -> str:
    step_legend = _legend([("s-done", "done"), ("s-running", "running"), ("s-paused", "paused"),
                           ("s-failed", "failed"), ("s-rolled-back", "rolled back"),
                           ("gm", "gate result")])
    node_legend = _legend([("o-done", "done"), ("o-failed", "failed"), ("o-blocked", "blocked"),
                           ("o-rollback", "rollback"), ("stall", "drain stalled")])
    return (f'<section id="gantt"><h2>Timeline</h2>'
            f'<p class="hint">Time since the run started (h:mm). Hover a bar for details.</p>'
            f'<h3>Steps by cluster</h3>{step_legend}<div class="scroll">'
            f"{_gantt_steps(data, clock)}</div>"
            f'<h3>Node upgrades</h3>{node_legend}<div class="scroll">'
            f"{_gantt_nodes(data, clock)}</div></section>")


def _step_path(points: list[tuple[float, float]]) -> str:
    """An SVG path holding each value until the next sample (a step line)."""
    if not points:
        return ""
    out = [f"M{_f(points[0][0])} {_f(points[0][1])}"]
    for (_, py), (x, y) in itertools.pairwise(points):
        out.append(f"H{_f(x)}")
        if y != py:
            out.append(f"V{_f(y)}")
    return "".join(out)


def _availability_chart(name: str, series: list[Any], floor: float | None, clock: _Clock,
                        min_ratio: float | None) -> str:
    pts = downsample(series)
    w, h = 300.0, 128.0
    x0, x1, y0, y1 = 30.0, 292.0, 10.0, 100.0
    top = max([floor or 0.0, 1.0] + [max(r, d) for _, r, d in pts])
    top = math.ceil(top)

    def sx(t: float) -> float:
        return clock.x(t, x0, x1)

    def sy(v: float) -> float:
        return y1 - (v / top) * (y1 - y0)

    breach = floor is not None and any(r < floor for _, r, _ in pts)
    ready = [(sx(t), sy(r)) for t, r, _ in pts]
    desired = [(sx(t), sy(d)) for t, _, d in pts]
    if pts:  # hold the last reading to the end of the run
        ready.append((x1, ready[-1][1]))
        desired.append((x1, desired[-1][1]))
    ready_path = _step_path(ready)
    area = f"{ready_path}V{_f(y1)}H{_f(ready[0][0])}Z" if ready else ""
    svg = [f'<svg class="avail-chart" viewBox="0 0 {_f(w)} {_f(h)}" data-samples="{len(pts)}" '
           f'role="img" aria-label="{_e(name)} ready over time">',
           f'<line class="axisline" x1="{_f(x0)}" y1="{_f(y1)}" x2="{_f(x1)}" y2="{_f(y1)}"/>']
    for v in sorted({0, top}):
        svg.append(f'<text class="ytick" x="{_f(x0 - 4)}" y="{_f(sy(v) + 3.5)}" '
                   f'text-anchor="end">{v}</text>'
                   f'<line class="grid" x1="{_f(x0)}" y1="{_f(sy(v))}" x2="{_f(x1)}" '
                   f'y2="{_f(sy(v))}"/>')
    if floor is not None and 0 < floor < top:
        svg.append(f'<text class="ytick floortick" x="{_f(x0 - 4)}" y="{_f(sy(floor) + 3.5)}" '
                   f'text-anchor="end">{floor:.0f}</text>')
    step = _tick_step(clock.span, most=4)
    k = 0
    while k * step <= clock.span + 1e-9:
        x = sx(clock.t0 + k * step)
        anchor = "start" if k == 0 else ("end" if x > x1 - 12 else "middle")
        svg.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(y0)}" x2="{_f(x)}" y2="{_f(y1)}"/>'
                   f'<text class="xtick" x="{_f(x)}" y="{_f(y1 + 13)}" text-anchor="{anchor}">'
                   f"{_e(format_clock(k * step, with_seconds=step < 60))}</text>")
        k += 1
    if area:
        svg.append(f'<path class="ready-area" d="{area}"/>')
    if desired:
        svg.append(f'<path class="desired" d="{_step_path(desired)}"><title>desired</title></path>')
    if floor is not None:
        svg.append(f'<line class="floor" x1="{_f(x0)}" y1="{_f(sy(floor))}" x2="{_f(x1)}" '
                   f'y2="{_f(sy(floor))}"><title>PDB floor: {floor:.0f} ready</title></line>')
    if ready_path:
        svg.append(f'<path class="ready" d="{ready_path}"><title>ready</title></path>')
    if pts:
        lo = min(pts, key=lambda p: (p[1], p[0]))
        svg.append(f'<circle class="lowdot" cx="{_f(sx(lo[0]))}" cy="{_f(sy(lo[1]))}" r="2.6">'
                   f"<title>lowest: {lo[1]:.0f} of {lo[2]:.0f} ready at {clock.rel(lo[0])}"
                   "</title></circle>")
    else:
        svg.append(f'<text class="tick" x="{_f((x0 + x1) / 2)}" y="{_f((y0 + y1) / 2)}" '
                   'text-anchor="middle">no samples</text>')
    svg.append("</svg>")
    stats = [f"min {_pct(min_ratio)}"]
    if floor is not None:
        stats.append(f"PDB floor {floor:.0f}")
    flag = '<span class="flag">below PDB floor</span>' if breach else ""
    return (f'<figure class="avail{" breach" if breach else ""}"><figcaption>'
            f'<span class="wl mono" title="{_e(name)}">{_e(name)}</span>'
            f'<span class="stats">{_e(" · ".join(stats))}</span>{flag}</figcaption>'
            f"{''.join(svg)}</figure>")


def _availability(data: Mapping[str, Any], clock: _Clock) -> str:
    series = {str(k): _list(v) for k, v in _dict(data.get("availability")).items()}
    if not series:
        return ('<section id="availability"><h2>Workload availability</h2>'
                '<p class="muted">No availability samples.</p></section>')
    floors = {str(k): _num(v) for k, v in _dict(data.get("pdbFloors")).items()}
    mins = _min_availability(data)
    order = sorted(series, key=lambda n: (mins.get(n, 1.0), n))
    charts = [_availability_chart(n, series[n], floors.get(n), clock, mins.get(n))
              for n in order[:MAX_CHARTS]]
    rest = order[MAX_CHARTS:]
    rest_html = ""
    if rest:
        rows = "".join(f'<tr><td class="mono">{_e(n)}</td><td class="num">'
                       f"{_e(_pct(mins.get(n)))}</td></tr>" for n in rest[:MAX_TABLE_ROWS])
        rest_html = (f'<details class="more"><summary>{len(rest)} more workload(s), '
                     f"not charted</summary><table><thead><tr><th>workload</th>"
                     f"<th>min availability</th></tr></thead><tbody>{rows}</tbody></table>"
                     "</details>")
    legend = _legend([("ready", "ready"), ("desired", "desired"), ("floor", "PDB floor")])
    return (f'<section id="availability"><h2>Workload availability</h2>'
            f'<p class="hint">Ready and desired replicas over the run, least available first.</p>'
            f'{legend}<div class="charts">{"".join(charts)}</div>{rest_html}</section>')


def _capped(rows: list[str], what: str) -> str:
    if len(rows) <= MAX_TABLE_ROWS:
        return ""
    return (f'<p class="note">Showing the first {MAX_TABLE_ROWS} of {len(rows)} {_e(what)}.'
            "</p>")


def _gates(data: Mapping[str, Any], clock: _Clock) -> str:
    gates = sorted((_dict(g) for g in _list(data.get("gates"))),
                   key=lambda g: (_num(g.get("at")) is None, _num(g.get("at")) or 0.0))
    if not gates:
        return ('<section id="gates"><h2>Gates</h2><p class="muted">No gates were checked.</p>'
                "</section>")
    rows = []
    for g in gates:
        phase = _str(g.get("phase"))
        cls = _GATE_PHASES.get(phase, "unknown")
        mark = "⚠ " if cls == "error" else ""
        at = clock.rel(_num(g.get("at")))
        rows.append(f'<tr class="gate g-{cls}"><td class="num mono">{_e(at)}</td>'
                    f'<td class="mono nw">{_e(g.get("step"))}</td><td>{_e(g.get("gate"))}</td>'
                    f'<td><span class="phase ph-{cls}">{mark}{_e(phase or "?")}</span></td>'
                    f'<td class="msg">{_e(g.get("message"))}</td></tr>')
    return (f'<section id="gates"><h2>Gates</h2><p class="hint">'
            f'<span class="phase ph-failed">Failed</span> the check ran and said no · '
            f'<span class="phase ph-error">⚠ Error</span> the check itself broke · '
            f'<span class="phase ph-inconclusive">Inconclusive</span> could not tell</p>'
            f"{_capped(rows, 'gate results')}<table class=\"list\"><thead><tr>"
            '<th class="num">at</th><th>step</th><th>gate</th><th>phase</th><th>message</th>'
            "</tr></thead><tbody>"
            f"{''.join(rows[:MAX_TABLE_ROWS])}</tbody></table></section>")


_VERDICTS = {"pass": "successful", "marginal": "inconclusive", "fail": "failed"}
_CLASSES = {"Pass": "successful", "High": "failed", "Low": "failed", "NodataFail": "error"}


def _g(value: object, fmt: str = ".4g") -> str:
    v = _num(value)
    return "—" if v is None else format(v, fmt)


def _judgement(entry: Mapping[str, Any], clock: _Clock) -> str:
    j = _dict(entry.get("judgement"))
    verdict = _str(j.get("verdict"))
    cls = _VERDICTS.get(verdict, "unknown")
    rows = []
    for m in (_dict(x) for x in _list(j.get("metrics"))):
        label = _str(m.get("classification"))
        interval = _dict(m.get("interval"))
        shown = (f"{_g(interval.get('lower'))} .. {_g(interval.get('upper'))}" if interval
                 else "—")
        change = _num(m.get("relativeChange"))
        rows.append(
            f'<tr class="judge-metric"><td class="mono">{_e(m.get("metric"))}</td>'
            f'<td><span class="phase ph-{_CLASSES.get(label, "unknown")}">{_e(label or "?")}'
            f'</span></td><td class="num">{_e(_g(m.get("canaryCount"), ".0f"))} / '
            f'{_e(_g(m.get("baselineCount"), ".0f"))}</td><td class="num">{_e(_g(m.get("u")))}</td>'
            f'<td class="num">{_e(_g(m.get("p"), ".3g"))}</td>'
            f'<td class="num">{_e(_g(m.get("effect")))}</td><td class="num nw">{_e(shown)}</td>'
            f'<td class="num">{_e("—" if change is None else f"{change * 100:+.1f} %")}</td>'
            f'<td class="msg">{_e(m.get("reason"))}</td></tr>')
    counts = ", ".join(f"{_e(k)} ×{_e(v)}" for k, v in _dict(entry.get("verdicts")).items())
    when = "during the soak" if entry.get("when") == "soak" else "as a gate"
    return (f'<div class="judgement j-{cls}"><h3><span class="mono">{_e(entry.get("step"))}'
            f'</span> <span class="phase ph-{cls}">{_e(verdict or "?")}</span> '
            f'{_e(j.get("decision"))} · score {_e(_g(j.get("score"), "g"))}</h3>'
            f'<p class="msg">{_e(j.get("reason"))}</p><p class="hint">the last of '
            f'{_e(entry.get("count", 1))} judgement(s) ({counts}); judged {when} at '
            f'{_e(clock.rel(_num(entry.get("at"))))}, confidence {_e(_g(j.get("confidence")))}'
            f'</p><table class="list judge"><thead><tr><th>metric</th><th>classification</th>'
            f'<th class="num">n canary / baseline</th><th class="num">U</th>'
            f'<th class="num">p</th><th class="num">effect</th><th class="num">interval</th>'
            f'<th class="num">mean change</th><th>reason</th></tr></thead><tbody>'
            f"{''.join(rows[:MAX_TABLE_ROWS])}</tbody></table></div>")


def _judgements(data: Mapping[str, Any], clock: _Clock) -> str:
    entries = [_dict(e) for e in _list(data.get("judgements"))]
    if not entries:
        return ""
    return ('<section id="judge"><h2>Canary judge</h2><p class="hint">Per metric, the canary '
            "nodes' samples against the baseline's (Mann-Whitney U, its two-sided p, the "
            "Hodges-Lehmann effect and its interval): pass → proceed, marginal → pause for a "
            "person, fail → roll back</p>"
            + "".join(_judgement(e, clock) for e in entries[:MAX_CHARTS]) + "</section>")


def _steps_table(data: Mapping[str, Any], clock: _Clock) -> str:
    steps = [_dict(s) for s in _list(data.get("steps"))]
    if not steps:
        return ""
    rows = []
    for s in steps:
        status = _str(s.get("status"))
        cls = status if status in _STEP_STATUS else "unknown"
        start, end = _num(s.get("start")), _num(s.get("end"))
        dur = _duration(end - start) if start is not None and end is not None else "—"
        rows.append(f'<tr><td class="mono nw">{_e(s.get("id"))}</td><td>{_e(s.get("wave"))}</td>'
                    f'<td class="nw">{_e(s.get("cluster"))}</td>'
                    f'<td class="nw">{_e(s.get("phase"))}</td>'
                    f'<td>{_e(s.get("component"))}</td><td class="mono nw">{_e(s.get("from"))} → '
                    f'{_e(s.get("to"))}</td><td><span class="pill s-{cls}">{_e(status or "?")}'
                    f'</span></td><td class="num mono">{_e(clock.rel(start))}</td>'
                    f'<td class="num">{_e(dur)}</td>'
                    f'<td class="msg">{_e(s.get("reason"))}</td></tr>')
    opened = " open" if len(steps) <= 60 else ""
    return (f'<section id="steps"><details{opened}><summary><h2>Steps ({len(steps)})</h2>'
            f"</summary>{_capped(rows, 'steps')}<table class=\"list\"><thead><tr><th>id</th>"
            f"<th>wave</th><th>cluster</th><th>phase</th><th>component</th><th>version</th>"
            f'<th>status</th><th class="num">start</th><th class="num">took</th>'
            f"<th>reason</th></tr></thead><tbody>"
            f"{''.join(rows[:MAX_TABLE_ROWS])}</tbody></table></details></section>")


def _incidents(data: Mapping[str, Any], clock: _Clock) -> str:
    rollbacks = [_str(r) for r in _list(data.get("rollbacks"))]
    stalls = [_dict(s) for s in _list(data.get("stalls"))]
    rb = ("<ul class=\"rollbacks\">" + "".join(f"<li>{_e(r)}</li>" for r in rollbacks) + "</ul>"
          if rollbacks else '<p class="muted">None.</p>')
    if stalls:
        rows = "".join(
            f'<tr><td class="mono">{_e(s.get("node"))}</td>'
            f'<td class="num mono">{_e(clock.rel(_num(s.get("at"))))}</td>'
            f'<td class="num">{_e(_duration(_num(s.get("seconds"))))}</td>'
            f'<td class="mono">{_e(", ".join(map(str, _list(s.get("pods")))))}</td>'
            f'<td class="mono">{_e(", ".join(map(str, _list(s.get("pdbs")))))}</td></tr>'
            for s in stalls[:MAX_TABLE_ROWS])
        st = (f"{_capped([''] * len(stalls), 'stalls')}<table class=\"list\"><thead><tr>"
              '<th>node</th><th class="num">at</th><th class="num">stalled for</th>'
              "<th>pods waiting</th>"
              f"<th>PDBs in the way</th></tr></thead><tbody>{rows}</tbody></table>")
    else:
        st = '<p class="muted">None.</p>'
    return (f'<section id="incidents" class="two"><div id="rollbacks"><h2>Rollbacks '
            f"({len(rollbacks)})</h2>{rb}</div><div id=\"stalls\"><h2>Drain stalls "
            f"({len(stalls)})</h2>{st}</div></section>")


_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;
--done:#16a34a;--failed:#dc2626;--rb:#7c3aed;--paused:#d97706;--running:#2563eb;
--pending:#9ca3af;--aborted:#475569;--error:#111827}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
main{max-width:1300px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:16px 0 6px;color:#374151}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 18px;
margin:0 0 16px}
.mono{font-family:"DejaVu Sans Mono",ui-monospace,Menlo,monospace;font-size:12.5px}
.muted{color:var(--muted)}.hint{color:var(--muted);margin:-4px 0 8px;font-size:13px}
.note{background:#fffbeb;border:1px solid #fde68a;border-radius:6px;padding:6px 10px;
font-size:13px}
header.top{background:var(--card);border:1px solid var(--line);border-left:8px solid #9ca3af;
border-radius:8px;padding:16px 20px;margin:0 0 16px}
.head-row{display:flex;align-items:center;gap:14px;flex-wrap:wrap}
.status{display:inline-block;padding:3px 12px;border-radius:999px;color:#fff;font-weight:700;
text-transform:uppercase;letter-spacing:.04em;font-size:13px;background:#9ca3af}
.st-completed{border-left-color:var(--done)}.status.st-completed{background:var(--done)}
.st-paused{border-left-color:var(--paused)}.status.st-paused{background:var(--paused)}
.st-aborted{border-left-color:var(--aborted)}.status.st-aborted{background:var(--aborted)}
.st-rolled-back{border-left-color:var(--rb)}.status.st-rolled-back{background:var(--rb)}
.st-failed{border-left-color:var(--failed)}.status.st-failed{background:var(--failed)}
.reason{margin:8px 0 4px;font-size:15px}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:10px 0 6px}
.meta div{display:flex;gap:6px}.meta dt{color:var(--muted)}.meta dd{margin:0}
.tag{background:#eef2ff;color:#3730a3;border-radius:4px;padding:1px 6px;font-size:12px}
.target{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.target .label{color:var(--muted);margin-right:4px}
.chip{background:#f3f4f6;border:1px solid var(--line);border-radius:4px;padding:1px 7px;
font-size:12.5px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{flex:1 1 120px;border:1px solid var(--line);border-radius:6px;padding:8px 12px;
background:#fafafa}
.card .v{font-size:20px;font-weight:700}.card .k{color:var(--muted);font-size:12px}
.card .n{font-size:11.5px;color:var(--muted)}
.card.warn{border-color:#fcd34d;background:#fffbeb}.card.bad{border-color:#c4b5fd;
background:#f5f3ff}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600;color:#374151;border-bottom:2px solid var(--line);
padding:5px 8px;font-size:12.5px}
td{border-bottom:1px solid var(--line);padding:4px 8px;vertical-align:baseline}
td.num,th.num{text-align:right;white-space:nowrap}
td.nw{white-space:nowrap}td.msg{color:#374151}
table.mini{width:auto;margin-top:12px}table.mini caption{text-align:left;color:var(--muted);
font-size:12px;padding-bottom:2px}table.mini td{padding:2px 10px 2px 0}
.story{border-left:3px solid #c7d2fe;padding:2px 0 2px 12px;margin:0 0 12px}
.story h3{margin:0 0 4px}.story p{margin:2px 0}
.scroll{overflow-x:auto}
svg.gantt{width:100%;min-width:900px;height:auto;display:block}
svg text{font-family:"DejaVu Sans",system-ui,sans-serif;font-size:11px;fill:#374151}
.tick,.xtick,.ytick{fill:#6b7280}.xtick,.ytick{font-size:9.5px}
.grid{stroke:#eceef1;stroke-width:1}.axisline{stroke:#9ca3af}
.band{fill:#f9fafb}.sep{stroke:var(--line)}
.rowlabel{font-weight:600}.wavelabel{fill:#9ca3af;font-size:10px}
.clusterhead{font-weight:700;font-size:11.5px}.nodelabel{font-size:10px;fill:#4b5563}
.barlabel{fill:#fff;font-size:10.5px;pointer-events:none}
.sbar,.nbar{stroke:none}
.s-done,.o-done{fill:var(--done)}.s-failed,.o-failed{fill:var(--failed)}
.s-rolled-back,.o-rollback{fill:var(--rb)}.s-paused,.o-blocked{fill:var(--paused)}
.s-running{fill:var(--running)}.s-pending{fill:var(--pending)}.s-unknown,.o-unknown{fill:#6b7280}
.open{fill-opacity:.55;stroke:#111827;stroke-dasharray:3 2;stroke-width:1}
.gmark{stroke:#fff;stroke-width:1.2}
.gmark.g-successful{fill:#bbf7d0;stroke:#14532d}
.gmark.g-failed{fill:#fecaca;stroke:#7f1d1d}.gmark.g-error{fill:#facc15;stroke:#111827}
.gmark.g-inconclusive{fill:#fde68a;stroke:#78350f}.gmark.g-running{fill:#bfdbfe}
.stallmark{stroke:#f97316;stroke-width:4}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:#4b5563;margin:2px 0 6px}
.legend span{display:inline-flex;align-items:center;gap:5px}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px}
.sw.s-done,.sw.o-done{background:var(--done)}.sw.s-failed,.sw.o-failed{background:var(--failed)}
.sw.s-rolled-back,.sw.o-rollback{background:var(--rb)}
.sw.s-paused,.sw.o-blocked{background:var(--paused)}.sw.s-running{background:var(--running)}
.sw.gm{background:#facc15;transform:rotate(45deg) scale(.7);border:1px solid #111827}
.sw.stall{background:#f97316;height:4px}
.sw.ready{background:var(--running);height:3px}.sw.desired{background:#9ca3af;height:2px}
.sw.floor{height:0;border-top:2px dashed var(--failed);border-radius:0}
#availability .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));
gap:12px}
figure.avail{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px 8px 2px}
figure.avail.breach{border-color:#fca5a5;background:#fef2f2}
figcaption{display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline;font-size:12.5px}
figcaption .wl{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;
max-width:100%}
figcaption .stats{color:var(--muted);font-size:11.5px}
.flag{background:var(--failed);color:#fff;border-radius:3px;padding:0 5px;font-size:11px}
svg.avail-chart{width:100%;height:auto;display:block}
.ready{fill:none;stroke:var(--running);stroke-width:1.8}
.ready-area{fill:#dbeafe;fill-opacity:.6}
.desired{fill:none;stroke:#9ca3af;stroke-width:1.2}
.floor{stroke:var(--failed);stroke-width:1.4;stroke-dasharray:5 3}
.lowdot{fill:#1e3a8a}
.floortick{fill:var(--failed)}
.phase,.pill{display:inline-block;border-radius:4px;padding:0 7px;font-size:12px;font-weight:600;
white-space:nowrap}
.ph-successful{background:#dcfce7;color:#166534}
.ph-failed{background:var(--failed);color:#fff}
.ph-error{background:var(--error);color:#fde047}
.ph-inconclusive{background:#fef3c7;color:#92400e}.ph-running{background:#dbeafe;color:#1e40af}
.ph-unknown{background:#e5e7eb}
.judgement h3{font-size:1em;margin:.8em 0 .2em}
tr.g-error td{background:#f3f4f6}tr.g-failed td{background:#fef2f2}
.pill.s-done{background:#dcfce7;color:#166534}.pill.s-failed{background:#fee2e2;color:#991b1b}
.pill.s-rolled-back{background:#ede9fe;color:#5b21b6}.pill.s-paused{background:#fef3c7;
color:#92400e}.pill.s-running{background:#dbeafe;color:#1e40af}
.pill.s-pending,.pill.s-unknown{background:#f3f4f6;color:#4b5563}
details>summary{cursor:pointer}details>summary h2{display:inline}
.two{display:grid;grid-template-columns:1fr 2fr;gap:24px}
ul.rollbacks{margin:0;padding-left:20px}
footer{color:var(--muted);font-size:12px;text-align:center}
#tip{position:fixed;display:none;max-width:420px;background:#111827;color:#f9fafb;
padding:6px 9px;border-radius:5px;font-size:12px;white-space:pre-line;pointer-events:none;
z-index:10;box-shadow:0 2px 8px rgba(0,0,0,.25)}
"""

# Turns each SVG <title> into a styled tooltip (no data is read into code: textContent only).
_JS = """
(function(){
  var tip=document.getElementById('tip');
  document.querySelectorAll('svg title').forEach(function(t){
    var p=t.parentNode;p.setAttribute('data-tip',t.textContent);p.removeChild(t);});
  document.addEventListener('mousemove',function(ev){
    var el=ev.target&&ev.target.closest?ev.target.closest('[data-tip]'):null;
    if(!el){tip.style.display='none';return;}
    tip.textContent=el.getAttribute('data-tip');tip.style.display='block';
    var x=ev.clientX+14,y=ev.clientY+14;
    if(x+tip.offsetWidth>innerWidth-8){x=ev.clientX-tip.offsetWidth-14;}
    if(y+tip.offsetHeight>innerHeight-8){y=ev.clientY-tip.offsetHeight-14;}
    tip.style.left=x+'px';tip.style.top=y+'px';});
})();
"""


def render_html(data: dict[str, Any]) -> str:
    """The whole report page for one run (see the module docstring for ``data``)."""
    clock = _time_span(data)
    title = _str(data.get("title")) or "pitstop run"
    body = "".join([
        _header(data, clock),
        _summary(data, clock),
        _stories(data),
        _gantt(data, clock),
        _availability(data, clock),
        _gates(data, clock),
        _judgements(data, clock),
        _steps_table(data, clock),
        _incidents(data, clock),
    ])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)} · {_e(data.get('status') or '')}</title>"
            f"<style>{_CSS}</style></head><body><main>{body}"
            f"<footer>pitstop run report · times relative to the start of the run "
            f"({_e(_utc(clock.t0))})</footer></main>"
            f'<div id="tip" role="tooltip"></div><script>{_JS}</script></body></html>\n')


def write_report(path: Path, data: dict[str, Any]) -> Path:
    """Render ``data`` and write it to ``path`` (parent folders made); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path
