"""Placing a plan into maintenance windows: when each unit of work starts and ends.

Pure: no I/O, no clock (``start`` is an argument). The semantics follow system-upgrade-controller,
kured and GKE maintenance windows:

* No new unit of work starts outside a window that applies to its cluster (the window's
  ``clusters`` selector matches the cluster's labels). A policy without windows allows any time;
  a cluster no window applies to cannot be scheduled (a ``problems`` entry).
* A unit that started inside a window may finish after it closes: an overrun, reported with how
  long it ran past the close (measured against the end of the merged, overlapping occurrences of
  the cluster's windows).
* No unit starts on a blackout date; dates are read in the window's time zone (UTC when the policy
  has no windows). Blackouts forbid starting, not running.
* Windows recur on days of the week at a local wall-clock time; each occurrence's start is that
  local time converted to UTC (a start inside a DST gap moves forward by the gap, an ambiguous one
  takes the first occurrence), and it lasts ``duration`` of elapsed time (RFC 5545: an hour is an
  hour), so it may cross midnight and a DST change.
* Units: an etcd, control-plane or add-on step is one unit of ``step.estimate``; a node step is
  ``ceil(len(targets) / batch_size)`` units sharing its estimate (the executor pauses between
  batches when a window closes). ``step.estimate`` already includes the per-batch soak.
* The steps of a cluster run one after another in plan order (a step also waits for its
  ``depends_on``; a dependency on another cluster's step counts when that step was scheduled
  before: an earlier wave, or an earlier cluster of the wave). The clusters of a wave run in
  parallel, at most ``max_parallel_clusters`` at once (the wave's, else the policy's; 0 = all),
  taken in plan order; a cluster holds its slot from its first unit to its last, waits between
  windows included. Waves run in the order of ``plan.waves``; a wave starts after the previous
  wave's last unit ended plus that wave's soak. Work that cannot start before the horizon ends
  stops its cluster and every later wave (``problems``); an unschedulable cluster does not stop
  the others.
* A step that ``requires_approval`` is scheduled as if approved in time; it is listed with the
  start of its first unit ("assuming approval by ...").

All times in the result are in UTC.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitstop.model.common import LabelSelector
from pitstop.model.policy import WEEKDAYS, Blackout, MaintenanceWindow, UpgradePolicy
from pitstop.planner.plan import Phase, Plan, Step

__all__ = ["SCHEDULE_FORMAT", "Schedule", "ScheduledUnit", "WaveSchedule", "schedule_plan"]

SCHEDULE_FORMAT = "pitstop.dev/v1alpha1/Schedule"

_DAY = timedelta(days=1)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _secs(d: timedelta) -> int | float:
    s = d.total_seconds()
    return int(s) if s == int(s) else round(s, 3)


@dataclass(frozen=True, slots=True)
class ScheduledUnit:
    """One unit of work: a whole step, or one batch of a node step (``index`` counts from 0)."""

    step_id: str
    cluster: str
    wave: str
    index: int
    start: datetime
    end: datetime
    window: str | None  # the window it starts in; None when the policy has no windows

    def to_dict(self) -> dict[str, Any]:
        return {
            "stepId": self.step_id,
            "cluster": self.cluster,
            "wave": self.wave,
            "index": self.index,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "durationSeconds": _secs(self.end - self.start),
            "window": self.window,
        }


@dataclass(frozen=True, slots=True)
class WaveSchedule:
    """A wave's first start and last end; ``windows_used`` counts distinct window occurrences
    its units started in (0 when the policy has no windows)."""

    name: str
    start: datetime
    end: datetime
    clusters: tuple[str, ...]
    windows_used: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """The plan placed in time. ``finish`` is None when some work could not be scheduled (see
    ``problems``). ``overruns`` name units (``step`` or ``step#batch``) that run past their
    window's close, and by how much."""

    units: list[ScheduledUnit]
    waves: list[WaveSchedule]
    finish: datetime | None
    problems: list[str] = field(default_factory=list)
    overruns: list[tuple[str, timedelta]] = field(default_factory=list)
    approvals_needed: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.finish is not None

    def wave_summary(self) -> list[dict[str, Any]]:
        """One JSON-friendly entry per wave: times, duration, clusters, units, windows used,
        overruns and approvals."""
        units: dict[str, int] = {}
        step_wave: dict[str, str] = {}
        for u in self.units:
            units[u.wave] = units.get(u.wave, 0) + 1
            step_wave[u.step_id] = u.wave
        overruns: dict[str, int] = {}
        for key, _ in self.overruns:
            w = step_wave.get(key.rsplit("#", 1)[0] if key not in step_wave else key, "")
            overruns[w] = overruns.get(w, 0) + 1
        approvals: dict[str, int] = {}
        for step_id, _ in self.approvals_needed:
            w = step_wave.get(step_id, "")
            approvals[w] = approvals.get(w, 0) + 1
        return [
            {
                "name": w.name,
                "start": _iso(w.start),
                "end": _iso(w.end),
                "durationSeconds": _secs(w.end - w.start),
                "clusters": len(w.clusters),
                "units": units.get(w.name, 0),
                "windowsUsed": w.windows_used,
                "overruns": overruns.get(w.name, 0),
                "approvalsNeeded": approvals.get(w.name, 0),
            }
            for w in self.waves
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCHEDULE_FORMAT,
            "finish": _iso(self.finish) if self.finish is not None else None,
            "complete": self.complete,
            "waves": [
                {**s, "clusterNames": list(w.clusters)}
                for s, w in zip(self.wave_summary(), self.waves, strict=True)
            ],
            "units": [u.to_dict() for u in self.units],
            "problems": list(self.problems),
            "overruns": [{"unit": k, "seconds": _secs(d)} for k, d in self.overruns],
            "approvalsNeeded": [{"step": s, "by": _iso(t)} for s, t in self.approvals_needed],
        }


# --- the calendar of one cluster: where units may start ------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    start: datetime  # where a unit may start: [start, end)
    end: datetime
    window: str | None
    occurrence: datetime  # start of the window occurrence (to count windows used)
    close: datetime  # end of the merged occurrences it lies in (to measure overruns)


_CHUNK = timedelta(days=28)


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def _blackout_intervals(blackouts: list[Blackout],
                        tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Blackout dates as UTC intervals: from local midnight of ``start`` to the local midnight
    after ``end``."""
    spans: list[tuple[datetime, datetime]] = []
    for b in blackouts:
        end = (datetime.max.replace(tzinfo=UTC) if b.end >= date.max - _DAY
               else _local_midnight(b.end + _DAY, tz))
        spans.append((_local_midnight(b.start, tz), end))
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _subtract(s: datetime, e: datetime,
              holes: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for hs, he in holes:
        if he <= s:
            continue
        if hs >= e:
            break
        if hs > s:
            out.append((s, hs))
        s = max(s, he)
        if s >= e:
            return out
    if s < e:
        out.append((s, e))
    return out


class _Recurrence:
    """The occurrences of one window, generated in order of their start."""

    __slots__ = ("days", "duration", "holes", "name", "next_date", "start_time", "tz")

    def __init__(self, w: MaintenanceWindow, blackouts: list[Blackout], lo: datetime) -> None:
        self.name = w.name
        self.tz = ZoneInfo(w.time_zone)
        self.days = frozenset(WEEKDAYS.index(d) for d in w.days)
        self.start_time = w.start.replace(tzinfo=None)
        self.duration = w.duration
        self.holes = _blackout_intervals(blackouts, self.tz)
        # an occurrence lasts at most 7 days: one that began 8 days earlier may still be open
        self.next_date = lo.astimezone(self.tz).date() - timedelta(days=8)

    def until(self, cut: datetime) -> list[tuple[datetime, datetime]]:
        """The occurrences not yet returned that start before ``cut``. A window's start is a
        local wall-clock time: converted to UTC date by date, so DST moves it correctly."""
        out: list[tuple[datetime, datetime]] = []
        while True:
            d = self.next_date
            s = datetime.combine(d, self.start_time, tzinfo=self.tz).astimezone(UTC)
            if s >= cut:
                return out
            if d.weekday() in self.days:
                out.append((s, s + self.duration))
            self.next_date = d + _DAY


class _Calendar:
    """Sorted, disjoint intervals in which a unit of one cluster may start, built lazily in
    chunks (most clusters need a few weeks of a year's horizon)."""

    __slots__ = ("_built", "_ends", "_hi", "_lo", "_pending", "_recurrences", "_starts",
                 "pieces")

    def __init__(self, windows: list[MaintenanceWindow], blackouts: list[Blackout],
                 lo: datetime, hi: datetime) -> None:
        self._lo = lo
        self._hi = hi
        self.pieces: list[_Piece] = []
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        self._recurrences = [_Recurrence(w, blackouts, lo) for w in windows]
        # occurrences of a span not yet closed: (start, end, window, holes)
        self._pending: list[tuple[datetime, datetime, str | None,
                                  list[tuple[datetime, datetime]]]] = []
        if windows:
            self._built = lo - timedelta(days=8)
        else:  # no windows: any time, except blackout dates (read in UTC)
            self._pending.append((lo, hi, None, _blackout_intervals(blackouts, ZoneInfo("UTC"))))
            self._built = hi

    def _extend(self) -> bool:
        """Generate the next chunk; False when the whole horizon is built."""
        if self._built >= self._hi and not self._pending:
            return False
        cut = min(self._built + _CHUNK, self._hi)
        for r in self._recurrences:
            self._pending.extend((s, e, r.name, r.holes) for s, e in r.until(cut))
        self._built = cut
        self._pending.sort(key=lambda o: (o[0], o[1]))
        final = cut >= self._hi
        # merge overlapping occurrences into spans; a span is final once it ends before ``cut``
        # (a later occurrence cannot join it). A unit overruns only when all have closed.
        done = 0
        i = 0
        n = len(self._pending)
        while i < n:
            span_end = self._pending[i][1]
            j = i + 1
            while j < n and self._pending[j][0] <= span_end:
                span_end = max(span_end, self._pending[j][1])
                j += 1
            if not final and span_end >= cut:
                break
            pieces = [
                _Piece(ps, pe, name, s, span_end)
                for s, e, name, holes in self._pending[i:j]
                for ps, pe in _subtract(max(s, self._lo), min(e, self._hi), holes)
            ]
            pieces.sort(key=lambda p: p.start)
            for p in pieces:
                self._add(p)
            done = j
            i = j
        del self._pending[:done]
        return True

    def _add(self, p: _Piece) -> None:
        """Append ``p`` (in order of start), keeping the pieces disjoint: where occurrences
        overlap, the window that opened first keeps the label."""
        if self.pieces and p.start < self._ends[-1]:
            if p.end <= self._ends[-1]:
                return
            p = _Piece(self._ends[-1], p.end, p.window, p.occurrence, p.close)
        self.pieces.append(p)
        self._starts.append(p.start)
        self._ends.append(p.end)

    def next_start(self, t: datetime) -> tuple[datetime, _Piece] | None:
        """The earliest time at or after ``t`` a unit may start, or None past the horizon."""
        while True:
            i = bisect_right(self._starts, t) - 1
            if i >= 0 and t < self._ends[i]:
                return t, self.pieces[i]
            if i + 1 < len(self.pieces):
                return self._starts[i + 1], self.pieces[i + 1]
            if not self._extend():
                return None


class _SelectorIndex:
    """Which of many selectors match a cluster's labels, without trying each one: a selector
    with matchLabels is tried only for clusters carrying one of its labels."""

    __slots__ = ("_always", "_by_label", "_selectors")

    def __init__(self, selectors: list[LabelSelector]) -> None:
        self._selectors = selectors
        self._always: list[int] = []
        self._by_label: dict[tuple[str, str], list[int]] = {}
        for i, sel in enumerate(selectors):
            if sel.match_labels:
                self._by_label.setdefault(min(sel.match_labels.items()), []).append(i)
            else:
                self._always.append(i)

    def matching(self, labels: dict[str, str]) -> tuple[int, ...]:
        candidates = set(self._always)
        for item in labels.items():
            candidates.update(self._by_label.get(item, ()))
        return tuple(sorted(i for i in candidates if self._selectors[i].matches(labels)))


# --- scheduling ----------------------------------------------------------------------------


def _unit_durations(step: Step) -> list[timedelta]:
    """A node step splits into batches sharing its estimate (exactly, to the microsecond)."""
    if step.phase != Phase.NODES:
        return [step.estimate]
    size = max(1, step.batch_size)
    n = max(1, -(-len(step.targets) // size))
    total = step.estimate // timedelta(microseconds=1)
    return [timedelta(microseconds=(total * (i + 1)) // n - (total * i) // n) for i in range(n)]


def _cluster_order(steps: list[Step], problems: list[str]) -> list[Step]:
    """Plan order, except that a step goes after the steps of its cluster it depends on."""
    ids = {s.id for s in steps}
    pending = list(steps)
    done: set[str] = set()
    out: list[Step] = []
    while pending:
        for i, s in enumerate(pending):
            if all(d in done or d not in ids for d in s.depends_on):
                out.append(pending.pop(i))
                done.add(s.id)
                break
        else:
            problems.append(
                f"cluster {steps[0].cluster}: steps {', '.join(s.id for s in pending)} depend on "
                "each other in a cycle; scheduled in plan order")
            out.extend(pending)
            break
    return out


@dataclass(slots=True)
class _Run:
    units: list[ScheduledUnit] = field(default_factory=list)
    ends: dict[str, datetime] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    overruns: list[tuple[str, timedelta]] = field(default_factory=list)
    approvals: list[tuple[str, datetime]] = field(default_factory=list)
    incomplete: bool = False


def _run_cluster(run: _Run, steps: list[Step], cal: _Calendar, t: datetime,
                 horizon_end: datetime) -> tuple[datetime, set[tuple[str | None, datetime]],
                                                 bool]:
    """Schedule one cluster's steps from ``t``; returns (end, occurrences used, finished)."""
    used: set[tuple[str | None, datetime]] = set()
    units = run.units
    for step in steps:
        for dep in step.depends_on:
            end = run.ends.get(dep)
            if end is not None and end > t:
                t = end
        durations = _unit_durations(step)
        single = len(durations) == 1
        for index, d in enumerate(durations):
            found = cal.next_start(t)
            if found is None:
                run.problems.append(
                    f"cluster {step.cluster}: step {step.id} cannot start before the horizon "
                    f"ends ({_iso(horizon_end)}); it and the rest of the cluster are not "
                    "scheduled")
                return t, used, False
            s, piece = found
            e = s + d
            unit = ScheduledUnit(step.id, step.cluster, step.wave, index, s, e, piece.window)
            units.append(unit)
            if piece.window is not None:
                used.add((piece.window, piece.occurrence))
                if e > piece.close:
                    run.overruns.append(
                        (step.id if single else f"{step.id}#{index}", e - piece.close))
            if index == 0 and step.requires_approval:
                run.approvals.append((step.id, s))
            t = e
        run.ends[step.id] = t
    return t, used, True


def schedule_plan(plan: Plan, policy: UpgradePolicy, cluster_labels: dict[str, dict[str, str]],
                  start: datetime, horizon: timedelta = timedelta(days=366)) -> Schedule:
    """Place ``plan`` into the maintenance windows of ``policy`` from ``start`` (tz-aware).

    ``cluster_labels`` maps a cluster name to the labels its windows and blackouts select on
    (``Cluster.full_labels``); a cluster missing from it is selected as ``{"name": cluster}``.
    Nothing starts at or after ``start + horizon``; work that would is reported in ``problems``.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    lo = start.astimezone(UTC)
    hi = lo + horizon
    spec = policy.spec
    windows = spec.maintenance_windows
    blackouts = spec.blackouts
    window_index = _SelectorIndex([w.clusters for w in windows])
    blackout_index = _SelectorIndex([b.clusters for b in blackouts])
    policy_waves = {w.name: w for w in spec.waves}
    plan_waves = {w.name: w for w in plan.waves}

    # steps by wave, then by cluster, both in plan order
    by_wave: dict[str, dict[str, list[Step]]] = {name: {} for name in plan_waves}
    for step in plan.steps:
        by_wave.setdefault(step.wave, {}).setdefault(step.cluster, []).append(step)

    run = _Run()
    calendars: dict[tuple[tuple[int, ...], tuple[int, ...]], _Calendar] = {}
    wave_results: list[WaveSchedule] = []
    t_wave = lo
    blocked_by: str | None = None
    for wave_name, clusters in by_wave.items():
        if not clusters:
            continue
        if blocked_by is not None:
            run.problems.append(f"wave {wave_name}: not scheduled, because wave {blocked_by} "
                                "does not finish within the horizon")
            run.incomplete = True
            continue
        wp = plan_waves.get(wave_name)
        pw = policy_waves.get(wave_name)
        limit = (wp.max_parallel_clusters if wp is not None else 0) or (
            pw.max_parallel_clusters if pw is not None else 0) or spec.max_parallel_clusters
        soak = wp.soak if wp is not None else (pw.soak if pw is not None else timedelta(0))
        slots: list[datetime] | None = None
        if 0 < limit < len(clusters):
            slots = [t_wave] * limit
        first: datetime | None = None
        last: datetime | None = None
        used: set[tuple[str | None, datetime]] = set()
        for cluster, steps in clusters.items():
            labels = cluster_labels.get(cluster, {"name": cluster})
            win_idx = window_index.matching(labels)
            if windows and not win_idx:
                run.problems.append(
                    f"cluster {cluster}: no maintenance window applies to it (windows: "
                    f"{', '.join(w.name for w in windows)}); its {len(steps)} step(s) are not "
                    "scheduled")
                run.incomplete = True
                continue
            bo_idx = blackout_index.matching(labels)
            cal = calendars.get((win_idx, bo_idx))
            if cal is None:
                cal = calendars[(win_idx, bo_idx)] = _Calendar(
                    [windows[i] for i in win_idx], [blackouts[i] for i in bo_idx], lo, hi)
            t0 = heapq.heappop(slots) if slots is not None else t_wave
            n_before = len(run.units)
            end, occ, finished = _run_cluster(run, _cluster_order(steps, run.problems), cal, t0,
                                              hi)
            if slots is not None:
                heapq.heappush(slots, end)
            if not finished:
                run.incomplete = True
                blocked_by = wave_name
            if len(run.units) > n_before:
                s0 = run.units[n_before].start
                first = s0 if first is None else min(first, s0)
                last = end if last is None else max(last, end)
            used |= occ
        if first is None or last is None:
            first = last = t_wave
        else:
            t_wave = last + soak
        wave_results.append(WaveSchedule(wave_name, first, last, tuple(clusters), len(used)))

    finish = None
    if not run.incomplete:
        finish = max((u.end for u in run.units), default=lo)
    return Schedule(run.units, wave_results, finish, run.problems, run.overruns, run.approvals)


def next_allowed_start(policy: UpgradePolicy, labels: dict[str, str], t: datetime,
                       horizon: timedelta = timedelta(days=366)) -> datetime | None:
    """The earliest time at or after ``t`` at which new work may start on a cluster with these
    labels (``t`` itself inside a window), or None when no window opens within ``horizon``.
    The executor asks this before every step; the same windows and blackouts as the schedule."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("t must be timezone-aware")
    lo = t.astimezone(UTC)
    spec = policy.spec
    windows = [w for w in spec.maintenance_windows if w.clusters.matches(labels)]
    if spec.maintenance_windows and not windows:
        return None
    blackouts = [b for b in spec.blackouts if b.clusters.matches(labels)]
    found = _Calendar(windows, blackouts, lo, lo + horizon).next_start(lo)
    return found[0] if found else None
