"""etcd through the hosts backend's start/poll, on a live 3-member cluster of local processes:
a verified snapshot, each member rolled 3.4 → 3.5 (followers first, the leader last), then the
way back — the snapshot restored into a new 3.4 cluster — and a second backend on the same
state directory (what `pitstop resume` opens) sees the restored cluster."""

from __future__ import annotations

import time
from pathlib import Path

from pitstop.backend.api import (
    Action,
    EtcdRestore,
    EtcdSnapshot,
    Operation,
    OperationState,
    UpgradeComponent,
)
from pitstop.hosts.backend import HostsBackend
from pitstop.model import HostInventory

from .etcdlib import NEW, OLD, LiveCluster, MakeCluster, put, read_prefix


def inventory(live: LiveCluster, tmp: Path) -> HostInventory:
    cl = live.cluster
    return HostInventory.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
        "metadata": {"name": "lab"},
        "spec": {"clusters": [{"name": "lab", "etcd": {
            "token": cl.token, "ctlVersion": NEW,
            "binaries": {v: str(d) for v, d in cl.binaries.items()},
            "control": {"type": "local-process", "runDir": str(live.root / "run")},
            "snapshotDir": str(tmp / "snapshots"), "restoreDir": str(live.root / "restored"),
            "members": [{"name": m.name, "clientUrl": m.client_url, "peerUrl": m.peer_url,
                         "dataDir": str(m.data_dir)} for m in cl.members]}}]}})


def run_op(b: HostsBackend, key: str, action: Action, timeout: float = 120) -> Operation:
    op = b.start("lab", key, action)
    deadline = time.monotonic() + timeout
    while op.state is OperationState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
        op = b.poll("lab", key)
    return op


def test_snapshot_rolling_upgrade_and_restore_through_the_backend(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    live = make_cluster(OLD)
    endpoint = live.cluster.members[0].client_url
    for i in range(50):
        put(endpoint, f"/k/{i:03d}", f"v{i}")
    b = HostsBackend(inventory(live, tmp_path), tmp_path / "state")
    obs = b.observe("lab")
    assert [m.version for m in obs.etcd] == [OLD] * 3 and obs.nodes == ()

    snap = run_op(b, "run/snap", EtcdSnapshot("pre"))
    assert snap.state is OperationState.SUCCEEDED, snap.message
    assert "saved and verified" in snap.message
    again = b.start("lab", "run/snap", EtcdSnapshot("pre"))  # idempotent by key
    assert again.state is OperationState.SUCCEEDED and again.started == snap.started
    assert [e.destructive for e in b.events() if e.kind == "start"] == [True, False]
    put(endpoint, "/after/1", "written after the snapshot")

    members = b.health("lab").etcd
    leader = next(m.name for m in members if m.leader)
    order = [m.name for m in members if not m.leader] + [leader]
    for name in order:
        op = run_op(b, f"run/etcd/{name}", UpgradeComponent(name, "etcd", NEW))
        assert op.state is OperationState.SUCCEEDED, op.message
        assert "caught up" in op.message
    after = b.health("lab").etcd
    assert [m.version for m in after] == [NEW] * 3
    assert all(m.healthy for m in after) and sum(m.leader for m in after) == 1
    assert len(read_prefix(endpoint, "/k/")) == 50

    # not this backend's work: a value, not an exception
    cp = b.start("lab", "run/apiserver", UpgradeComponent("cp-1", "kube-apiserver", "1.25.16"))
    assert cp.state is OperationState.FAILED and "does not upgrade kube-apiserver" in cp.message

    back = run_op(b, "run/restore", EtcdRestore("pre", OLD))
    assert back.state is OperationState.SUCCEEDED, back.message
    assert "new cluster of etcd 3.4.23" in back.message
    assert [m.version for m in b.observe("lab").etcd] == [OLD] * 3
    keys = read_prefix(endpoint, "/")
    assert len([k for k in keys if k.startswith("/k/")]) == 50 and "/after/1" not in keys

    # a new process (resume) on the same state directory describes the restored cluster
    b2 = HostsBackend(inventory(live, tmp_path), tmp_path / "state")
    restored = b2.health("lab").etcd
    assert [m.version for m in restored] == [OLD] * 3 and all(m.healthy for m in restored)
    assert b2.poll("lab", "run/restore").state is OperationState.SUCCEEDED
