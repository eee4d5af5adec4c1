"""A member that does not come back stops the rolling upgrade, and the restore path brings the
cluster back on 3.4.23 from the pre-upgrade snapshot, with every key."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pitstop.hosts.etcd import (
    EtcdBinaries,
    EtcdMember,
    LocalProcessControl,
    MemberProcess,
    MemberRejoinError,
)
from tests.hosts.etcdlib import NEW, OLD, MakeCluster, put, read_prefix
from tests.hosts.runtime_fixtures import figure


class DiskFaultOnSecondUpgrade(LocalProcessControl):
    """Local processes, except that the data directory of the second member started with the
    new version is damaged right before it starts (both bbolt meta pages overwritten), as a
    failing disk would. The etcd that then starts is the real one."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.upgraded: list[str] = []

    def start(self, member: EtcdMember, binaries: EtcdBinaries,
              flags: Sequence[str]) -> MemberProcess:
        if binaries.version == NEW and member.name not in self.upgraded:
            self.upgraded.append(member.name)
            if len(self.upgraded) == 2:
                db = member.data_dir / "member" / "snap" / "db"
                with db.open("r+b") as f:
                    f.write(os.urandom(8192))
        return super().start(member, binaries, flags)


def test_member_that_fails_to_rejoin_stops_the_upgrade_and_restore_brings_back_34(
        make_cluster: MakeCluster) -> None:
    live = make_cluster(OLD, control=DiskFaultOnSecondUpgrade)
    a = live.actuator
    control = live.control
    assert isinstance(control, DiskFaultOnSecondUpgrade)
    old_token = live.cluster.token
    old_dirs = [m.data_dir for m in live.cluster.members]
    endpoints = [m.client_url for m in live.cluster.members]
    keys = {f"/app/{i:04d}": f"value-{i}" for i in range(300)}
    for i, (k, v) in enumerate(keys.items()):
        put(endpoints[i % 3], k, v)
    snapshot = live.root / "snapshots" / "pre-3.5.db"

    with pytest.raises(MemberRejoinError) as err:
        a.upgrade(NEW, snapshot, member_timeout=30)
    victim = control.upgraded[1]
    e = err.value
    assert e.member == victim and e.version == NEW
    assert f"etcd member {victim} did not rejoin" in str(e) and "exited" in str(e)
    assert "invalid database" in e.log_tail  # what its log said comes with the error
    # the first member is on 3.5.1, the victim is down, the third still on 3.4.23: quorum holds
    obs = {o.name: o for o in a.health()}
    assert obs[control.upgraded[0]].version == NEW and not obs[victim].healthy
    assert sum(o.healthy for o in obs.values()) == 2

    t0 = time.monotonic()
    rr = a.restore(snapshot, OLD, live.root / "restored")
    restore_seconds = time.monotonic() - t0

    # a new cluster: old version, same names and peer URLs, new data dirs and token
    assert rr.cluster is a.cluster and rr.version == OLD
    assert a.cluster.token != old_token
    assert [m.name for m in a.cluster.members] == [f"etcd-{i}" for i in (1, 2, 3)]
    assert all(m.data_dir.parent == live.root / "restored" for m in a.cluster.members)
    assert all(d.is_dir() for d in old_dirs)  # the old data is left for inspection
    obs2 = a.health()
    assert [o.version for o in obs2] == [OLD] * 3
    assert all(o.healthy and not o.alarms for o in obs2) and sum(o.leader for o in obs2) == 1
    # every key, on every member, and the cluster takes writes again
    for ep in endpoints:
        stored = read_prefix(ep, "/app/")
        assert stored == keys
    put(endpoints[1], "/app/after-restore", "ok")
    assert read_prefix(endpoints[2], "/app/after")["/app/after-restore"] == "ok"
    # idempotent: restoring again finds the restored cluster and touches nothing
    pids = live.pids()
    again = a.restore(snapshot, OLD, live.root / "restored")
    assert again.cluster == rr.cluster and live.pids() == pids
    figure(f"etcd restore into a new {OLD} cluster", f"{restore_seconds:.2f} s (verify, "
           f"restore 3 data dirs, stop the old members, start, check {rr.key_count} keys and "
           f"hashkv at revision {rr.snapshot.revision})")
