"""Placing plans into maintenance windows (pitstop.calendar)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitstop.calendar import Schedule, schedule_plan
from pitstop.model.common import LabelSelector, Metadata
from pitstop.model.policy import (
    WEEKDAYS,
    Blackout,
    MaintenanceWindow,
    UpgradePolicy,
    UpgradePolicySpec,
    Wave,
)
from pitstop.planner.plan import Phase, Plan, Step, WavePlan

H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(name: str, start: str, duration: timedelta, *, days: list[str] | None = None,
           tz: str = "UTC", labels: dict[str, str] | None = None) -> MaintenanceWindow:
    return MaintenanceWindow(
        name=name, start=time.fromisoformat(start), duration=duration,
        days=days or list(WEEKDAYS), time_zone=tz,
        clusters=LabelSelector(match_labels=labels or {}),
    )


def blackout(name: str, first: str, last: str,
             labels: dict[str, str] | None = None) -> Blackout:
    return Blackout(name=name, start=date.fromisoformat(first), end=date.fromisoformat(last),
                    clusters=LabelSelector(match_labels=labels or {}))


def policy(windows: list[MaintenanceWindow] | None = None,
           blackouts: list[Blackout] | None = None, *, waves: list[Wave] | None = None,
           max_parallel: int = 0) -> UpgradePolicy:
    return UpgradePolicy(metadata=Metadata(name="p"), spec=UpgradePolicySpec(
        maintenance_windows=windows or [], blackouts=blackouts or [], waves=waves or [],
        max_parallel_clusters=max_parallel))


def step(sid: str, cluster: str = "c1", *, wave: str = "w1", phase: Phase = Phase.CONTROL_PLANE,
         estimate: timedelta = 30 * M, targets: tuple[str, ...] = (), batch_size: int = 1,
         depends_on: tuple[str, ...] = (), requires_approval: bool = False) -> Step:
    return Step(
        id=sid, wave=wave, cluster=cluster, phase=phase, action="upgrade",
        component="kubernetes", from_version="1.30.4", to_version="1.31.2",
        targets=targets or (cluster,), reason="test", batch_size=batch_size,
        depends_on=depends_on, requires_approval=requires_approval, estimate=estimate,
    )


def make_plan(steps: list[Step], *, soak: dict[str, timedelta] | None = None,
              max_parallel: dict[str, int] | None = None) -> Plan:
    waves: dict[str, list[str]] = {}
    for s in steps:
        members = waves.setdefault(s.wave, [])
        if s.cluster not in members:
            members.append(s.cluster)
    return Plan(target={"kubernetes": "1.31.2"}, steps=steps, waves=[
        WavePlan(name, tuple(cs), canary=False, soak=(soak or {}).get(name, timedelta(0)),
                 max_parallel_clusters=(max_parallel or {}).get(name, 0))
        for name, cs in waves.items()
    ])


def spans(s: Schedule) -> list[tuple[str, int, datetime, datetime]]:
    return [(u.step_id, u.index, u.start, u.end) for u in s.units]


START = at("2026-01-05T12:00:00")  # a Monday


def test_no_windows_runs_back_to_back() -> None:
    p = make_plan([step("a"), step("b", estimate=H), step("c", estimate=timedelta(0))])
    s = schedule_plan(p, policy(), {"c1": {}}, START)
    assert spans(s) == [
        ("a", 0, START, START + 30 * M),
        ("b", 0, START + 30 * M, START + 90 * M),
        ("c", 0, START + 90 * M, START + 90 * M),
    ]
    assert all(u.window is None for u in s.units)
    assert s.finish == START + 90 * M
    assert s.problems == []
    assert s.overruns == []
    assert s.approvals_needed == []
    assert s.waves[0].windows_used == 0
    assert (s.waves[0].start, s.waves[0].end) == (START, START + 90 * M)


def test_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_plan(make_plan([step("a")]), policy(), {}, datetime(2026, 1, 5, 12))


def test_start_in_another_zone_is_the_same_instant() -> None:
    local = START.astimezone(ZoneInfo("Asia/Tokyo"))
    s = schedule_plan(make_plan([step("a")]), policy(), {}, local)
    assert s.units[0].start == START
    assert s.units[0].start.tzinfo is UTC


def test_window_crossing_midnight() -> None:
    # Fridays 22:00 for 4h: the window is open until Saturday 02:00
    w = window("fri-night", "22:00", 4 * H, days=["Fri"])
    p = make_plan([step("a", estimate=90 * M), step("b", estimate=90 * M),
                   step("c", estimate=H), step("d", estimate=10 * M)])
    s = schedule_plan(p, policy([w]), {"c1": {}}, START)
    assert spans(s) == [
        ("a", 0, at("2026-01-09T22:00"), at("2026-01-09T23:30")),
        ("b", 0, at("2026-01-09T23:30"), at("2026-01-10T01:00")),
        ("c", 0, at("2026-01-10T01:00"), at("2026-01-10T02:00")),  # Saturday, still open
        ("d", 0, at("2026-01-16T22:00"), at("2026-01-16T22:10")),  # closed at 02:00: next Fri
    ]
    assert s.overruns == []
    assert {u.window for u in s.units} == {"fri-night"}
    assert s.waves[0].windows_used == 2


def test_window_open_at_start_is_used() -> None:
    w = window("daily", "11:00", 2 * H)
    s = schedule_plan(make_plan([step("a")]), policy([w]), {}, START)
    assert spans(s) == [("a", 0, START, START + 30 * M)]


def test_dst_spring_forward_europe_berlin() -> None:
    # 2026-03-29 is the last Sunday of March: at 02:00 CET clocks jump to 03:00 CEST.
    w = window("night", "01:30", 2 * H, tz="Europe/Berlin")
    p = make_plan([step(x, estimate=H) for x in "abcd"])
    s = schedule_plan(p, policy([w]), {}, at("2026-03-28T12:00"))
    assert spans(s) == [
        # Sunday 01:30 CET = 00:30Z; two hours of elapsed time, i.e. until 04:30 CEST
        ("a", 0, at("2026-03-29T00:30"), at("2026-03-29T01:30")),
        ("b", 0, at("2026-03-29T01:30"), at("2026-03-29T02:30")),
        # Monday 01:30 CEST = Sunday 23:30Z
        ("c", 0, at("2026-03-29T23:30"), at("2026-03-30T00:30")),
        ("d", 0, at("2026-03-30T00:30"), at("2026-03-30T01:30")),
    ]
    assert s.overruns == []


def test_dst_window_starting_in_the_gap_moves_forward() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the occurrence starts at 03:30 CEST (01:30Z)
    w = window("gap", "02:30", H, tz="Europe/Berlin", days=["Sun"])
    s = schedule_plan(make_plan([step("a")]), policy([w]), {}, at("2026-03-28T12:00"))
    assert spans(s) == [("a", 0, at("2026-03-29T01:30"), at("2026-03-29T02:00"))]
    assert s.units[0].start.astimezone(ZoneInfo("Europe/Berlin")).hour == 3


def test_dst_fall_back_takes_first_occurrence() -> None:
    # 02:30 happens twice on 2026-10-25 in Berlin; the first one (CEST, 00:30Z) is used
    w = window("ambiguous", "02:30", H, tz="Europe/Berlin", days=["Sun"])
    s = schedule_plan(make_plan([step("a")]), policy([w]), {}, at("2026-10-24T12:00"))
    assert spans(s) == [("a", 0, at("2026-10-25T00:30"), at("2026-10-25T01:00"))]


def test_blackout_skips_days() -> None:
    w = window("morning", "10:00", H)
    b = blackout("freeze", "2026-01-06", "2026-01-07")  # Tue and Wed, inclusive
    s = schedule_plan(make_plan([step("a")]), policy([w], [b]), {}, START)
    assert spans(s) == [("a", 0, at("2026-01-08T10:00"), at("2026-01-08T10:30"))]


def test_blackout_dates_are_local_to_the_window() -> None:
    # New York 23:00 for 2h; the blackout is Jan 7 in New York, which begins at 05:00Z
    w = window("ny", "23:00", 2 * H, tz="America/New_York")
    b = blackout("freeze", "2026-01-07", "2026-01-07")
    p = make_plan([step("a", estimate=H), step("b", estimate=10 * M)])
    s = schedule_plan(p, policy([w], [b]), {}, at("2026-01-07T00:00"))
    assert spans(s) == [
        ("a", 0, at("2026-01-07T04:00"), at("2026-01-07T05:00")),  # Jan 6, 23:00 local
        # 00:00 local on Jan 7 is blacked out although the window is still open; Jan 7's
        # window (04:00Z on Jan 8) too, until it reaches Jan 8 local: 05:00Z
        ("b", 0, at("2026-01-08T05:00"), at("2026-01-08T05:10")),
    ]


def test_blackout_applies_by_selector() -> None:
    b = blackout("prod-freeze", "2026-01-05", "2026-01-06", {"environment": "production"})
    p = make_plan([step("a", "dev"), step("b", "prod")])
    labels = {"dev": {"environment": "development"}, "prod": {"environment": "production"}}
    s = schedule_plan(p, policy(None, [b]), labels, START)
    by_cluster = {u.cluster: u for u in s.units}
    assert by_cluster["dev"].start == START
    assert by_cluster["prod"].start == at("2026-01-07T00:00")  # no windows: UTC dates


def test_long_wait_beyond_the_first_weeks() -> None:
    w = window("sunday", "03:00", 2 * H, days=["Sun"], tz="Europe/Berlin")
    b = blackout("freeze", "2026-01-01", "2026-03-31")
    p = make_plan([step("a", estimate=3 * H), step("b")])
    s = schedule_plan(p, policy([w], [b]), {}, START)
    assert spans(s) == [
        ("a", 0, at("2026-04-05T01:00"), at("2026-04-05T04:00")),  # CEST by then
        ("b", 0, at("2026-04-12T01:00"), at("2026-04-12T01:30")),
    ]
    assert s.overruns == [("a", H)]


def test_window_opened_days_before_start() -> None:
    w = window("week", "00:00", timedelta(days=7), days=["Mon"])
    s = schedule_plan(make_plan([step("a", estimate=2 * H)]), policy([w]), {},
                      at("2026-01-11T23:00"))
    assert spans(s) == [("a", 0, at("2026-01-11T23:00"), at("2026-01-12T01:00"))]
    assert s.overruns == []  # the next occurrence opens as this one closes


def test_chained_windows_are_one_long_window() -> None:
    # 25h every day: the occurrences overlap into one window all year; no unit overruns
    w = window("always", "00:00", 25 * H)
    b = blackout("freeze", "2026-01-05", "2026-01-24")
    s = schedule_plan(make_plan([step("a", estimate=timedelta(days=3))]), policy([w], [b]), {},
                      START)
    assert spans(s) == [("a", 0, at("2026-01-25T00:00"), at("2026-01-28T00:00"))]
    assert s.overruns == []


def test_overlapping_windows_in_two_zones_with_a_blackout() -> None:
    # Berlin's date is already blacked out at 23:30Z; UTC's is not: the UTC window allows it
    ws = [window("berlin", "00:00", 3 * H, tz="Europe/Berlin"), window("utc", "23:00", 2 * H)]
    b = blackout("freeze", "2026-01-06", "2026-01-06")
    s = schedule_plan(make_plan([step("a", estimate=10 * M)]), policy(ws, [b]), {},
                      at("2026-01-05T23:30"))
    assert [(u.window, u.start) for u in s.units] == [("utc", at("2026-01-05T23:30"))]


def test_later_window_allows_an_earlier_start() -> None:
    # Berlin's window opens at 22:30Z, but Jan 5 (Berlin) is blacked out until 23:00Z; Tokyo's
    # opens at 22:45Z, on Jan 6 there: a unit starts at 22:45Z in Tokyo's window
    ws = [window("berlin", "23:30", 4 * H, tz="Europe/Berlin"),
          window("tokyo", "07:45", H, tz="Asia/Tokyo")]
    b = blackout("freeze", "2026-01-05", "2026-01-05")
    p = make_plan([step("a", estimate=H), step("b", estimate=H)])
    s = schedule_plan(p, policy(ws, [b]), {}, at("2026-01-05T22:40"))
    assert [(u.window, u.start) for u in s.units] == [
        ("tokyo", at("2026-01-05T22:45")), ("berlin", at("2026-01-05T23:45"))]
    assert s.overruns == []


def test_overrun_is_reported() -> None:
    w = window("short", "02:00", H)
    p = make_plan([step("a", estimate=90 * M), step("b")])
    s = schedule_plan(p, policy([w]), {}, START)
    assert spans(s)[0] == ("a", 0, at("2026-01-06T02:00"), at("2026-01-06T03:30"))
    assert s.overruns == [("a", 30 * M)]
    assert spans(s)[1][2] == at("2026-01-07T02:00")
    assert s.finish == at("2026-01-07T02:30")


def test_overlapping_windows_are_no_overrun() -> None:
    ws = [window("early", "01:00", H), window("late", "01:30", 2 * H)]
    p = make_plan([step("a", estimate=90 * M), step("b", estimate=H)])
    s = schedule_plan(p, policy(ws), {}, START)
    assert [(u.window, u.start, u.end) for u in s.units] == [
        ("early", at("2026-01-06T01:00"), at("2026-01-06T02:30")),
        ("late", at("2026-01-06T02:30"), at("2026-01-06T03:30")),
    ]
    assert s.overruns == []


def test_node_step_batches_across_two_windows() -> None:
    w = window("night", "01:00", 2 * H)
    nodes = step("nodes", phase=Phase.NODES, estimate=135 * M,
                 targets=("n1", "n2", "n3", "n4", "n5"), batch_size=2)  # 3 batches of 45 min
    p = make_plan([step("cp", estimate=30 * M), nodes])
    s = schedule_plan(p, policy([w]), {}, START)
    assert spans(s) == [
        ("cp", 0, at("2026-01-06T01:00"), at("2026-01-06T01:30")),
        ("nodes", 0, at("2026-01-06T01:30"), at("2026-01-06T02:15")),
        ("nodes", 1, at("2026-01-06T02:15"), at("2026-01-06T03:00")),
        # the window closed at 03:00: the last batch waits for the next one
        ("nodes", 2, at("2026-01-07T01:00"), at("2026-01-07T01:45")),
    ]
    assert s.overruns == []
    assert s.waves[0].windows_used == 2
    total = sum((u.end - u.start for u in s.units if u.step_id == "nodes"), timedelta(0))
    assert total == 135 * M


def test_node_batch_overrun_names_the_batch() -> None:
    w = window("night", "01:00", 2 * H)
    nodes = step("nodes", phase=Phase.NODES, estimate=5 * H,
                 targets=("n1", "n2", "n3", "n4", "n5"), batch_size=2)  # 3 batches of 100 min
    s = schedule_plan(make_plan([nodes]), policy([w]), {}, START)
    assert [u.start for u in s.units] == [
        at("2026-01-06T01:00"), at("2026-01-06T02:40"), at("2026-01-07T01:00")]
    assert s.overruns == [("nodes#1", 80 * M)]


def test_node_step_estimate_splits_exactly() -> None:
    nodes = step("n", phase=Phase.NODES, estimate=timedelta(seconds=10),
                 targets=("a", "b", "c"), batch_size=1)
    s = schedule_plan(make_plan([nodes]), policy(), {}, START)
    assert len(s.units) == 3
    assert s.units[-1].end - s.units[0].start == timedelta(seconds=10)


def test_cluster_without_matching_window_is_a_problem() -> None:
    w = window("prod-night", "01:00", 2 * H, labels={"environment": "production"})
    p = make_plan([step("a", "dev"), step("b", "prod")])
    labels = {"dev": {"environment": "development"}, "prod": {"environment": "production"}}
    s = schedule_plan(p, policy([w]), labels, START)
    assert [u.cluster for u in s.units] == ["prod"]
    assert len(s.problems) == 1
    assert "dev" in s.problems[0]
    assert "prod-night" in s.problems[0]
    assert s.finish is None
    assert s.waves[0].clusters == ("dev", "prod")


def test_horizon_exceeded_blocks_later_waves() -> None:
    w = window("night", "01:00", H)
    b = blackout("freeze", "2026-01-01", "2026-12-31")
    p = make_plan([step("a", "c1", wave="w1"), step("b", "c2", wave="w2")])
    s = schedule_plan(p, policy([w], [b]), {}, START, horizon=timedelta(days=30))
    assert s.units == []
    assert s.finish is None
    assert any("horizon" in x and "c1" in x for x in s.problems)
    assert any("wave w2" in x for x in s.problems)


@pytest.mark.parametrize(("wave_limit", "policy_limit", "starts"), [
    (0, 0, [0, 0, 0]),
    (1, 0, [0, 1, 2]),
    (0, 1, [0, 1, 2]),
    (2, 1, [0, 0, 1]),
])
def test_max_parallel_clusters(wave_limit: int, policy_limit: int, starts: list[int]) -> None:
    p = make_plan([step(f"s{i}", f"c{i}", estimate=H) for i in range(3)],
                  max_parallel={"w1": wave_limit})
    s = schedule_plan(p, policy(max_parallel=policy_limit), {}, START)
    assert [u.cluster for u in s.units] == ["c0", "c1", "c2"]
    assert [(u.start - START) // H for u in s.units] == starts


def test_max_parallel_one_serialises_clusters_within_windows() -> None:
    w = window("night", "01:00", 2 * H)
    steps = [step(f"{c}-{i}", c, estimate=40 * M) for c in ("c1", "c2") for i in range(2)]
    s = schedule_plan(make_plan(steps, max_parallel={"w1": 1}), policy([w]), {}, START)
    assert spans(s) == [
        ("c1-0", 0, at("2026-01-06T01:00"), at("2026-01-06T01:40")),
        ("c1-1", 0, at("2026-01-06T01:40"), at("2026-01-06T02:20")),
        ("c2-0", 0, at("2026-01-06T02:20"), at("2026-01-06T03:00")),
        ("c2-1", 0, at("2026-01-07T01:00"), at("2026-01-07T01:40")),
    ]


def test_waves_run_in_order_with_soak() -> None:
    p = make_plan([step("a", "c1", wave="canary", estimate=H),
                   step("b", "c2", wave="prod", estimate=H),
                   step("c", "c3", wave="prod", estimate=2 * H)],
                  soak={"canary": 24 * H})
    s = schedule_plan(p, policy(), {}, START)
    assert [(w.name, w.start, w.end, w.clusters) for w in s.waves] == [
        ("canary", START, START + H, ("c1",)),
        ("prod", START + 25 * H, START + 27 * H, ("c2", "c3")),
    ]
    assert s.finish == START + 27 * H


def test_depends_on_orders_steps_of_a_cluster() -> None:
    p = make_plan([step("b", depends_on=("a",)), step("a")])
    s = schedule_plan(p, policy(), {}, START)
    assert [u.step_id for u in s.units] == ["a", "b"]


def test_approvals_are_listed_with_their_start() -> None:
    w = window("night", "01:00", 2 * H)
    p = make_plan([step("a", requires_approval=True), step("b")])
    s = schedule_plan(p, policy([w]), {}, START)
    assert s.approvals_needed == [("a", at("2026-01-06T01:00"))]


def test_to_dict_is_json_friendly() -> None:
    w = window("short", "02:00", H)
    p = make_plan([step("a", estimate=90 * M, requires_approval=True)])
    d = schedule_plan(p, policy([w]), {}, START).to_dict()
    json.dumps(d)
    assert d["finish"] == "2026-01-06T03:30:00Z"
    assert d["units"][0]["start"] == "2026-01-06T02:00:00Z"
    assert d["units"][0]["durationSeconds"] == 5400
    assert d["overruns"] == [{"unit": "a", "seconds": 1800}]
    assert d["approvalsNeeded"] == [{"step": "a", "by": "2026-01-06T02:00:00Z"}]
    assert d["waves"][0]["windowsUsed"] == 1
    assert d["waves"][0]["overruns"] == 1
    assert d["waves"][0]["clusterNames"] == ["c1"]


def test_two_thousand_clusters_is_fast() -> None:
    ws = [window("eu", "01:00", 4 * H, tz="Europe/Berlin", days=["Mon", "Tue", "Wed", "Thu"],
                 labels={"region": "eu"}),
          window("us", "22:00", 6 * H, tz="America/New_York", labels={"region": "us"})]
    bs = [blackout("xmas", "2026-12-20", "2027-01-03")]
    steps: list[Step] = []
    labels: dict[str, dict[str, str]] = {}
    for c in range(2000):
        name = f"c{c:04d}"
        labels[name] = {"region": "eu" if c % 2 else "us"}
        wave = "canary" if c < 20 else ("staging" if c < 400 else "prod")
        for i in range(26):
            steps.append(step(f"{name}-cp{i}", name, wave=wave, estimate=5 * M))
        for pool in range(4):
            steps.append(step(f"{name}-pool{pool}", name, wave=wave, phase=Phase.NODES,
                              estimate=timedelta(minutes=8 * 6), targets=tuple("abcdef"),
                              batch_size=2))
    p = make_plan(steps, soak={"canary": 24 * H, "staging": 48 * H},
                  max_parallel={"prod": 200})
    s = schedule_plan(p, policy(ws, bs), labels, at("2026-11-02T09:00"))
    assert s.problems == []
    assert len(s.units) == 2000 * (26 + 4 * 3)


# --- properties ----------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@st.composite
def windows_st(draw: st.DrawFn) -> list[MaintenanceWindow]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
        out.append(window(
            f"w{i}", f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 15, 30, 45])):02d}",
            timedelta(minutes=draw(st.integers(1, 36 * 60))), days=list(days),
            tz=draw(st.sampled_from(ZONES)),
            labels=draw(st.sampled_from([{}, {"env": "a"}, {"env": "b"}]))))
    return out


@st.composite
def blackouts_st(draw: st.DrawFn, near: date) -> list[Blackout]:
    out = []
    for i in range(draw(st.integers(0, 2))):
        first = near + timedelta(days=draw(st.integers(-3, 20)))
        last = first + timedelta(days=draw(st.integers(0, 6)))
        out.append(blackout(f"b{i}", first.isoformat(), last.isoformat(),
                            draw(st.sampled_from([{}, {"env": "a"}]))))
    return out


@st.composite
def starts_st(draw: st.DrawFn) -> datetime:
    """Whole minutes, so that units often end exactly when a window closes."""
    tz = draw(st.sampled_from([UTC, ZoneInfo("Europe/Berlin")]))
    minutes = draw(st.integers(0, 365 * 24 * 60))
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).astimezone(tz)


@st.composite
def plans_st(draw: st.DrawFn) -> tuple[Plan, dict[str, dict[str, str]]]:
    steps: list[Step] = []
    labels: dict[str, dict[str, str]] = {}
    n_waves = draw(st.integers(1, 3))
    for c in range(draw(st.integers(1, 5))):
        name = f"c{c}"
        labels[name] = {"env": draw(st.sampled_from(["a", "b"]))}
        wave = f"wave{draw(st.integers(0, n_waves - 1))}"
        for i in range(draw(st.integers(1, 4))):
            phase = draw(st.sampled_from(list(Phase)))
            n = draw(st.integers(1, 5))
            steps.append(step(
                f"{name}-{i}", name, wave=wave, phase=phase,
                estimate=timedelta(minutes=draw(st.integers(0, 600))),
                targets=tuple(f"n{j}" for j in range(n)), batch_size=draw(st.integers(1, 3)),
                requires_approval=draw(st.booleans())))
    steps.sort(key=lambda s: s.wave)  # the planner lists waves in order
    p = make_plan(steps,
                  soak={f"wave{i}": timedelta(hours=draw(st.integers(0, 30)))
                        for i in range(n_waves)},
                  max_parallel={f"wave{i}": draw(st.integers(0, 2)) for i in range(n_waves)})
    return p, labels


def _startable(t: datetime, ws: list[MaintenanceWindow], bs: list[Blackout]) -> bool:
    """Brute force: some applicable window has an occurrence open at ``t`` whose zone's date of
    ``t`` is not blacked out."""
    for w in ws:
        tz = ZoneInfo(w.time_zone)
        local = t.astimezone(tz)
        if any(b.start <= local.date() <= b.end for b in bs):
            continue
        for back in range(9):
            d = local.date() - timedelta(days=back)
            if WEEKDAYS[d.weekday()] not in w.days:
                continue
            occ = datetime.combine(d, w.start, tzinfo=tz).astimezone(UTC)
            if occ <= t < occ + w.duration:
                return True
    return False


def _startable_any(t: datetime, ws: list[MaintenanceWindow], bs: list[Blackout]) -> bool:
    if ws:
        return _startable(t, ws, bs)
    return not any(b.start <= t.astimezone(UTC).date() <= b.end for b in bs)


def _earlier_start(lo: datetime, hi: datetime, ws: list[MaintenanceWindow],
                   bs: list[Blackout]) -> datetime | None:
    """Brute force: a time in [lo, hi) at which a unit could have started. Startability only
    begins at ``lo``, at an occurrence's start, or at the midnight after a blackout."""
    candidates = {lo}
    for tz in {ZoneInfo(w.time_zone) for w in ws} or {ZoneInfo("UTC")}:
        for b in bs:
            candidates.add(datetime.combine(b.end + timedelta(days=1), time(0), tzinfo=tz))
    for w in ws:
        tz = ZoneInfo(w.time_zone)
        d = lo.astimezone(tz).date() - timedelta(days=1)
        while d <= hi.astimezone(tz).date():
            candidates.add(datetime.combine(d, w.start, tzinfo=tz).astimezone(UTC))
            d += timedelta(days=1)
    for t in sorted(c.astimezone(UTC) for c in candidates):
        if lo <= t < hi and _startable_any(t, ws, bs):
            return t
    return None


def _close(t: datetime, ws: list[MaintenanceWindow]) -> datetime:
    """Brute force: when the last of the overlapping occurrences open at ``t`` closes."""
    occs = []
    for w in ws:
        tz = ZoneInfo(w.time_zone)
        d0 = t.astimezone(tz).date()
        for k in range(-9, 4):
            d = d0 + timedelta(days=k)
            if WEEKDAYS[d.weekday()] in w.days:
                occ = datetime.combine(d, w.start, tzinfo=tz).astimezone(UTC)
                occs.append((occ, occ + w.duration))
    end = t
    for s, e in sorted(occs):
        if s <= end and e > end:
            end = e
    return end


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), ws=windows_st(), plan_labels=plans_st(), start=starts_st(),
       no_windows=st.booleans())
def test_properties(data: st.DataObject, ws: list[MaintenanceWindow],
                    plan_labels: tuple[Plan, dict[str, dict[str, str]]], start: datetime,
                    no_windows: bool) -> None:
    bs = data.draw(blackouts_st(start.date()))
    p, labels = plan_labels
    if no_windows:
        ws = []
    s = schedule_plan(p, policy(ws, bs), labels, start, horizon=timedelta(days=200))
    order = {st_.id: i for i, st_ in enumerate(p.steps)}
    by_id = {st_.id: st_ for st_ in p.steps}
    # every unit starts inside an applicable window, not on a blackout day
    for u in s.units:
        assert u.start >= start
        cw = [w for w in ws if w.clusters.matches(labels[u.cluster])]
        cb = [b for b in bs if b.clusters.matches(labels[u.cluster])]
        if ws:
            assert _startable(u.start, cw, cb), u
            assert u.window in {w.name for w in cw}
        else:
            assert u.window is None
            assert not any(b.start <= u.start.astimezone(UTC).date() <= b.end for b in cb)
    # units of a cluster do not overlap and follow plan order
    per_cluster: dict[str, list[tuple[int, int, datetime, datetime]]] = {}
    for u in s.units:
        per_cluster.setdefault(u.cluster, []).append((order[u.step_id], u.index, u.start, u.end))
    for seq in per_cluster.values():
        assert [(a, b) for a, b, _, _ in seq] == sorted((a, b) for a, b, _, _ in seq)
        for prev, nxt in pairwise(seq):
            assert prev[3] <= nxt[2]
    # ... and a unit starts as soon as the previous one of its cluster ended and a window allows
    for prev_u, u in pairwise(s.units):
        if prev_u.cluster == u.cluster and prev_u.wave == u.wave:
            cw = [w for w in ws if w.clusters.matches(labels[u.cluster])]
            cb = [b for b in bs if b.clusters.matches(labels[u.cluster])]
            assert _earlier_start(prev_u.end, u.start, cw, cb) is None, (prev_u, u)
    # waves in order, after the previous wave's end plus its soak
    soak = {w.name: w.soak for w in p.waves}
    for prev, nxt in pairwise(s.waves):
        prev_units = [u for u in s.units if u.wave == prev.name]
        if prev_units:
            assert nxt.start >= max(u.end for u in prev_units) + soak[prev.name]
        for u in s.units:
            if u.wave == nxt.name:
                assert u.start >= prev.end
    # at most max_parallel_clusters clusters of a wave at once
    for w in p.waves:
        if not w.max_parallel_clusters:
            continue
        events: list[tuple[datetime, int]] = []
        for c in w.clusters:
            us = [u for u in s.units if u.cluster == c]
            if us and us[-1].end > us[0].start:
                events += [(us[0].start, 1), (us[-1].end, -1)]
        active = 0
        for _, delta in sorted(events):
            active += delta
            assert active <= w.max_parallel_clusters
    # a finished schedule holds every step, its units adding up to its estimate
    if s.finish is not None:
        for sid, x in by_id.items():
            us = [u for u in s.units if u.step_id == sid]
            assert [u.index for u in us] == list(range(len(us)))
            assert sum((u.end - u.start for u in us), timedelta(0)) == x.estimate
        assert s.finish == max((u.end for u in s.units), default=s.finish)
        assert s.problems == []
    else:
        assert s.problems
    approval_ids = [a for a, _ in s.approvals_needed]
    assert set(approval_ids) <= {x.id for x in p.steps if x.requires_approval}
    # overruns: past the close of every window open when the unit started
    expected = {}
    for u in s.units:
        cw = [w for w in ws if w.clusters.matches(labels[u.cluster])]
        if cw and u.end > _close(u.start, cw):
            single = sum(1 for x in s.units if x.step_id == u.step_id) == 1
            expected[u.step_id if single else f"{u.step_id}#{u.index}"] = (
                u.end - _close(u.start, cw))
    assert dict(s.overruns) == expected
    json.dumps(s.to_dict())
