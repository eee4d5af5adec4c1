"""The twin's state survives its process: open it elsewhere and it continues exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pitstop.backend import BackendError
from pitstop.twin import Twin
from tests.twin.twinlib import C, fleet, node, pdb, twin, workload

ROOT = Path(__file__).resolve().parents[2]


def _fleet() -> Any:
    return fleet([node(f"n{i}") for i in range(4)],
                 [workload("web", 6), workload("db", 3, kind="StatefulSet"),
                  workload("agent", kind="DaemonSet")],
                 [pdb("web", "web", maxUnavailable=1), pdb("db", "db", minAvailable=2)])


# The first and second halves of a small rehearsal; the second runs in another process.
FIRST = """
def first(t):
    t.cordon("c1", "n0", "drain")
    for p in t.observe("c1").pods_on("n0"):
        if p.owner_kind != "DaemonSet":
            t.evict("c1", p.namespace, p.name, p.uid)
    t.clock.sleep(45)
    t.start("c1", "n0-kubelet", UpgradeComponent("n0", "kubelet", "1.34.3"))
    t.clock.sleep(20)
"""
SECOND = """
def second(t):
    t.clock.sleep(200)
    t.uncordon("c1", "n0")
    t.cordon("c1", "n1", "drain")
    for p in t.observe("c1").pods_on("n1"):
        if p.owner_kind != "DaemonSet":
            t.evict("c1", p.namespace, p.name, p.uid)
    t.start("c1", "n1-kubelet", UpgradeComponent("n1", "kubelet", "1.34.3"))
    t.clock.sleep(400)
"""
SUMMARY = """
def summary(t):
    o = t.observe("c1")
    return {
        "time": o.time,
        "nodes": [[n.name, n.ready, n.unschedulable, n.kubelet] for n in o.nodes],
        "pods": [[p.name, p.uid, p.node, p.phase, p.ready, p.deleting] for p in o.pods],
        "pdbs": [[p.name, p.disruptions_allowed, p.current_healthy] for p in o.pdbs],
        "events": [[e.seq, e.time, e.source, e.kind, e.subject, e.uid, e.destructive]
                   for e in t.events()],
        "availability": {k: [list(s) for s in v] for k, v in t.availability().items()},
    }
"""
HEADER = "from pitstop.backend import UpgradeComponent\nfrom pitstop.twin import Twin\n"
ns: dict[str, Any] = {}
exec(HEADER + FIRST + SECOND + SUMMARY, ns)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_a_twin_opened_in_another_process_continues_like_an_uninterrupted_one(
        tmp_path: Path) -> None:
    a = twin(tmp_path, _fleet(), name="a.db", seed=11)
    ns["first"](a)
    before = ns["summary"](a)
    a.close()

    code = HEADER + SECOND + SUMMARY + textwrap.dedent(f"""
        import json
        t = Twin.open({str(tmp_path / "a.db")!r})
        opened = summary(t)
        second(t)
        print(json.dumps({{"opened": opened, "after": summary(t)}}))
    """)
    r = _run(code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)

    b = twin(tmp_path, _fleet(), name="b.db", seed=11)  # the same, without interruption
    ns["first"](b)
    ns["second"](b)
    assert out["opened"] == json.loads(json.dumps(before))
    assert out["after"] == json.loads(json.dumps(ns["summary"](b)))
    assert out["after"]["time"] > before["time"]
    assert any(e[3] == "pod-ready" and e[1] > before["time"] for e in out["after"]["events"])


def test_a_killed_process_leaves_the_last_committed_state(tmp_path: Path) -> None:
    """SIGKILL a process mid-run; the reopened twin is consistent and an idempotent loop
    finishes the work without starting anything twice."""
    path = tmp_path / "k.db"
    twin(tmp_path, fleet([node(f"n{i:02d}") for i in range(40)],
                         [workload("web", 80, cpu="10m")]), name="k.db").close()
    loop = textwrap.dedent("""
        from pitstop.backend import OperationState, UpgradeComponent

        def upgrade_all(t):
            for n in [f"n{i:02d}" for i in range(40)]:
                op = t.start("c1", n, UpgradeComponent(n, "kubelet", "1.34.3"))
                print("started", n, flush=True)
                while op.state is OperationState.RUNNING:
                    t.clock.sleep(1)
                    op = t.poll("c1", n)
    """)
    code = loop + f"\nfrom pitstop.twin import Twin\nupgrade_all(Twin.open({str(path)!r}))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.stdout.readline().startswith("started n03"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    t = Twin.open(path)
    events = t.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gap
    assert Twin.open(path).observe(C) == t.observe(C)  # the store holds what t loaded
    started = {e.subject for e in t.events(source="call", destructive=True)}
    assert {"n00", "n01", "n02", "n03"} <= started
    assert len(started) < 40  # killed mid-run
    resume: dict[str, Any] = {}
    exec(loop, resume)
    resume["upgrade_all"](t)  # the same idempotent loop, from the start
    starts = [e.subject for e in t.events(source="call") if e.kind == "start" and e.destructive]
    assert sorted(starts) == sorted(f"n{i:02d}" for i in range(40))  # each exactly once
    assert all(n.kubelet == "1.34.3" and n.ready for n in t.observe(C).nodes)


def test_create_refuses_an_existing_state_and_open_a_missing_one(tmp_path: Path) -> None:
    twin(tmp_path, _fleet(), name="x.db").close()
    with pytest.raises(BackendError, match="exists"):
        twin(tmp_path, _fleet(), name="x.db")
    with pytest.raises(BackendError, match="no twin"):
        Twin.open(tmp_path / "missing.db")
