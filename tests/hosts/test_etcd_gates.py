"""The gates read a real cluster: a NOSPACE alarm (a small quota filled up) stops the upgrade
before the snapshot and before any member is touched."""

from __future__ import annotations

import urllib.error

import pytest

from pitstop.hosts.etcd import EtcdGateError
from tests.hosts.etcdlib import NEW, OLD, MakeCluster, put


def test_nospace_alarm_and_full_db_stop_the_upgrade(make_cluster: MakeCluster) -> None:
    quota = 2 * 1024 * 1024
    live = make_cluster(OLD, quota_backend_bytes=quota)
    a = live.actuator
    assert a.gate().ok
    url = live.cluster.members[0].client_url
    refused = None
    for i in range(200):
        try:
            put(url, f"/big/{i}", "x" * 64 * 1024)
        except urllib.error.HTTPError as e:
            refused = e.read().decode()
            break
    assert refused is not None and "database space exceeded" in refused
    obs = a.health()
    assert any("NOSPACE" in o.alarms for o in obs)
    assert all(o.quota == quota for o in obs)
    g = a.gate()
    assert not g.ok
    assert any("alarms NOSPACE" in p for p in g.problems)
    assert any("db size" in p and "quota" in p for p in g.problems)
    pids = live.pids()
    snapshot = live.root / "snapshots" / "pre.db"
    with pytest.raises(EtcdGateError, match=r"before the upgrade.*NOSPACE"):
        a.upgrade(NEW, snapshot)
    assert not snapshot.exists() and live.pids() == pids
    assert [o.version for o in a.health()] == [OLD] * 3
