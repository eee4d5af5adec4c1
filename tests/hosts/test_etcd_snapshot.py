"""Snapshots of a real etcd 3.4.23 cluster: saved and verified; a damaged one is refused by the
verification, the upgrade and the restore alike, and nothing is touched."""

from __future__ import annotations

import json

import pytest

from pitstop.hosts.etcd import SnapshotVerificationError
from tests.hosts.etcdlib import NEW, OLD, MakeCluster, put


def test_damaged_snapshot_is_refused(make_cluster: MakeCluster) -> None:
    live = make_cluster(OLD)
    a = live.actuator
    for i in range(200):
        put(live.cluster.members[i % 3].client_url, f"/s/{i:03d}", "x" * 100)
    path = live.root / "snapshots" / "pre.db"
    snap = a.snapshot(path)
    assert snap.version == OLD and snap.revision >= 201 and snap.total_keys >= 200
    assert snap.key_count is not None and snap.key_count >= 200 and snap.kv_hash is not None
    assert json.loads(snap.meta_path.read_text())["sha256"] == snap.sha256
    assert a.snapshot(path) == snap  # idempotent: the file there is verified, not replaced
    good = path.read_bytes()
    pids = live.pids()

    # one damaged page in the middle of the database
    bad = bytearray(good)
    mid = (len(good) // 2) // 4096 * 4096
    bad[mid + 100:mid + 164] = bytes(64)
    path.write_bytes(bytes(bad))
    with pytest.raises(SnapshotVerificationError, match="sha256 appended by `snapshot save` does"):
        a.verify_snapshot(path)
    with pytest.raises(SnapshotVerificationError) as err:
        a.upgrade(NEW, path)
    assert str(path) in str(err.value) and "refusing" in str(err.value)
    with pytest.raises(SnapshotVerificationError):
        a.restore(path, OLD, live.root / "restored")

    # cut short
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(SnapshotVerificationError, match="truncated"):
        a.verify_snapshot(path)

    # not the file that was saved, though intact: a snapshot of the cluster taken later
    put(live.cluster.members[0].client_url, "/s/extra", "y")
    other = a.snapshot(live.root / "snapshots" / "later.db")
    path.write_bytes(other.path.read_bytes())
    with pytest.raises(SnapshotVerificationError, match="recorded when it was saved"):
        a.verify_snapshot(path)

    # nothing was touched: same processes, same version, restore left no data dir behind
    assert live.pids() == pids
    assert [o.version for o in a.health()] == [OLD] * 3
    assert not (live.root / "restored").exists()
