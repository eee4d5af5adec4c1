"""A real 3-member etcd 3.4.23 cluster on loopback rolled to 3.5.1 while a writer puts keys."""

from __future__ import annotations

import itertools
import time

from tests.hosts.etcdlib import NEW, OLD, MakeCluster, Writer, read_prefix
from tests.hosts.runtime_fixtures import figure

MAX_BLIP = 5.0  # seconds without an acknowledged put around one member restart


def test_rolling_upgrade_under_writes_loses_no_key(make_cluster: MakeCluster) -> None:
    live = make_cluster(OLD)
    a = live.actuator
    endpoints = [m.client_url for m in live.cluster.members]
    writer = Writer(endpoints, "/w/", max_puts=20_000, max_seconds=120.0)
    writer.start()
    try:
        time.sleep(1.0)  # puts before the first restart, for a baseline
        report = a.upgrade(NEW, live.root / "snapshots" / "pre-3.5.db")
        assert writer.wait_acked_after(time.monotonic()), (
            f"writes did not resume after the upgrade (last error: {writer.last_error})")
        assert writer.is_alive(), "the writer reached its bound before the upgrade finished"
    finally:
        writer.stop()

    # every member runs 3.5.1, healthy, one leader, no alarm
    obs = a.health()
    assert [o.version for o in obs] == [NEW] * 3
    assert all(o.healthy and not o.alarms for o in obs)
    assert sum(o.leader for o in obs) == 1

    # the verified snapshot came first; followers went before the leader, one at a time
    assert report.snapshot.path.is_file() and report.snapshot.version == OLD
    rolled = [m for m in report.members if not m.skipped]
    assert len(rolled) == 3 and {m.from_version for m in rolled} == {OLD}
    assert rolled[-1].was_leader
    assert not any(m.was_leader for m in rolled[:-1])
    for prev, nxt in itertools.pairwise(rolled):
        assert prev.healthy_at is not None and nxt.stopping_at is not None
        assert prev.healthy_at <= nxt.stopping_at

    # no acknowledged put is lost: every member answers with every key and its value
    acked = [k for _, k in writer.acked]
    assert len(acked) > 500 and writer.failures < len(acked)
    for ep in endpoints:
        stored = read_prefix(ep, "/w/")
        missing = [k for k in acked if stored.get(k) != f"v{int(k.rsplit('/', 1)[1])}"]
        assert not missing, f"{len(missing)} acknowledged keys missing on {ep}: {missing[:5]}"

    # write-unavailability per member restart: the longest gap between acknowledged puts
    blips = {}
    for m in rolled:
        assert m.stopping_at is not None and m.healthy_at is not None
        blips[m.name] = writer.longest_gap(m.stopping_at, m.healthy_at)
    first = rolled[0].stopping_at
    assert first is not None
    baseline = writer.longest_gap(0.0, first - 0.05)
    for m in rolled:
        assert m.stopping_at is not None and m.healthy_at is not None
        figure(f"etcd {OLD}->{NEW} write gap, {m.name}{' (leader)' if m.was_leader else ''}",
               f"{blips[m.name] * 1000:.0f} ms (restart until healthy and caught up: "
               f"{m.healthy_at - m.stopping_at:.2f} s)")
    figure("etcd write gap before the upgrade (baseline)", f"{baseline * 1000:.0f} ms")
    figure("etcd rolling upgrade, total", f"{report.seconds:.2f} s (gates, snapshot, 3 members); "
           f"{len(acked)} puts round-robin over the members acknowledged, "
           f"{writer.failures} failed attempts retried, 0 lost")
    assert all(b < MAX_BLIP for b in blips.values()), blips

    # idempotent: a second run finds every member at 3.5.1 and restarts nothing
    pids = live.pids()
    again = a.upgrade(NEW, live.root / "snapshots" / "pre-3.5.db")
    assert all(m.skipped for m in again.members)
    assert again.snapshot.sha256 == report.snapshot.sha256
    assert live.pids() == pids
