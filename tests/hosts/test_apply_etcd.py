"""etcd through the command line, as a user runs it: `pitstop plan`, `pitstop apply --backend
hosts`, a SIGKILL of apply during the member upgrades, `pitstop resume`, `pitstop status`,
`pitstop audit verify` and `pitstop rollback [--restore-etcd]`, each a separate process, against a
real 3-member etcd 3.4.23 cluster on loopback with client and peer TLS (``--client-cert-auth``),
rolled to 3.5.1.

etcd 3.5.1 is known-bad in the catalog (data inconsistency when a member is killed under load),
so the plan is refused without a waiver and accepted with an expiring one. The Fleet is one
cluster under Kubernetes 1.24 (which supports etcd 3.4 and 3.5); the HostInventory has only its
etcd (no nodes: the plan changes nothing else). A writer puts keys through the members' JSON
gateway, over TLS, from before apply until resume has finished; every acknowledged key must be
there at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from pitstop.store import OpEvent, SqliteOperationStore
from tests.runlib import journal, only_run

from .etcdlib import NEW, OLD, LiveCluster, MakeCluster, Pki, Writer, make_pki, put, read_prefix
from .runtime_fixtures import figure


def pitstop(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitstop", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def waiver(expires: datetime) -> dict[str, str]:
    return {"rule": "known-bad", "component": "etcd", "version": NEW,
            "reason": "lab cluster on loopback, throwaway data", "approvedBy": "sre-lead",
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}


def write_files(tmp: Path, live: LiveCluster, pki: Pki | None, *, waived: bool = True,
                expires: datetime | None = None, tls: dict[str, str] | None = None,
                name: str = "hosts") -> list[str]:
    """fleet.yaml, policy.yaml and hosts.yaml for ``live`` (``tls``: clientTls to write instead
    of the PKI's)."""
    cl = live.cluster
    fleet = {
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "lab"},
        "spec": {"clusters": [{
            "name": "lab", "environment": "test",
            "controlPlane": {"apiServers": [{"name": "cp-1", "version": "1.24.17"}],
                             "controllerManager": {"version": "1.24.17"},
                             "scheduler": {"version": "1.24.17"},
                             "etcd": {"version": OLD, "members": [
                                 {"name": m.name, "version": OLD} for m in cl.members]}},
            "nodePools": [{"name": "hosts", "nodes": [{
                "name": "node-a", "kubelet": "1.24.17",
                "containerRuntime": {"name": "containerd", "version": "1.6.20"}}]}]}]}}
    until = expires or datetime.now(UTC) + timedelta(days=30)
    policy = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "UpgradePolicy",
              "metadata": {"name": "lab"},
              "spec": {"waivers": [waiver(until)] if waived else []}}
    etcd: dict[str, Any] = {
        "token": cl.token, "ctlVersion": NEW,
        "binaries": {v: str(d) for v, d in cl.binaries.items()},
        "control": {"type": "local-process", "runDir": str(live.root / "run")},
        "snapshotDir": str(tmp / "snapshots"), "restoreDir": str(live.root / "restored"),
        "memberTimeout": "60s",
        "members": [{"name": m.name, "clientUrl": m.client_url, "peerUrl": m.peer_url,
                     "dataDir": str(m.data_dir)} for m in cl.members]}
    if pki is not None:
        etcd["extraFlags"] = pki.server_flags()
        etcd["clientTls"] = tls or {"caFile": str(pki.ca), "certFile": str(pki.client_cert),
                                    "keyFile": str(pki.client_key)}
    hosts = {"apiVersion": "pitstop.dev/v1alpha1", "kind": "HostInventory",
             "metadata": {"name": "lab"},
             "spec": {"clusters": [{"name": "lab", "etcd": etcd}]}}
    out = []
    for fname, doc in (("fleet", fleet), ("policy", policy), (name, hosts)):
        p = tmp / f"{fname}.yaml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        out += ["-f", str(p)]
    return out


def events(run: Path) -> list[OpEvent]:
    return SqliteOperationStore(run / "hosts.sqlite").events()


def starts_of(run: Path, member: str, version: str) -> list[OpEvent]:
    return [e for e in events(run) if e.kind == "etcd-start" and e.subject == member
            and e.detail.startswith(f"etcd {version} ")]


def log_starts(live: LiveCluster, member: str, version: str) -> int:
    """Starts of ``version`` in the member's own log (one mark per process started)."""
    return live.control.log_file(member).read_text(errors="replace").count(
        f"--- pitstop: starting etcd {version} ")


def versions(live: LiveCluster) -> list[str]:
    return [o.version for o in live.actuator.health()]


# ---------------------------------------------------------------------------------------------


def test_known_bad_etcd_is_refused_without_an_active_waiver(make_cluster: MakeCluster,
                                                           tmp_path: Path) -> None:
    live = make_cluster(OLD)
    pids = live.pids()
    runs = tmp_path / "runs"
    for label, kwargs in (("no waiver", {"waived": False}),
                          ("expired waiver", {"expires": datetime.now(UTC) - timedelta(days=1)})):
        files = write_files(tmp_path, live, None, **kwargs)  # type: ignore[arg-type]
        plan = pitstop("plan", *files, "--target", f"etcd={NEW}")
        assert plan.returncode == 1, label + plan.stdout + plan.stderr
        assert "BLOCKING target-known-bad" in plan.stdout, label
        assert f"etcd {NEW} (the target) is known-bad" in plan.stdout
        assert f"add a waiver (rule: known-bad, component: etcd, version: {NEW})" in \
            " ".join(plan.stdout.split())
        r = pitstop("apply", *files, "--target", f"etcd={NEW}", "--backend", "hosts", "-y",
                    "--runs-dir", str(runs))
        assert r.returncode == 1, label + r.stdout + r.stderr
        text = " ".join(r.stderr.split())
        assert "the plan is blocked: target-known-bad (fleet)" in text, text
        assert f"add a waiver (rule: known-bad, component: etcd, version: {NEW})" in text
        assert not runs.exists() or not any(runs.iterdir())
    # with an active waiver the plan is ready, and says the waiver is what allows it
    files = write_files(tmp_path, live, None)
    plan = pitstop("plan", *files, "--target", f"etcd={NEW}", "-o", "json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    doc = json.loads(plan.stdout)
    assert "known-bad-waived" in {f["code"] for f in doc["findings"]}
    assert [s["action"] for s in doc["steps"]] == ["etcd-snapshot"] + ["upgrade-etcd-member"] * 3
    assert live.pids() == pids and versions(live) == [OLD] * 3


def test_apply_sigkill_resume_status_audit_then_restore(make_cluster: MakeCluster,
                                                        tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    live = make_cluster(OLD, pki=pki)
    eps = [m.client_url for m in live.cluster.members]
    before = {f"/k/{i:03d}": f"v{i}" for i in range(50)}
    for i, (k, v) in enumerate(before.items()):
        put(eps[i % 3], k, v)
    files = write_files(tmp_path, live, pki)
    target = f"etcd={NEW}"
    plan = json.loads(pitstop("plan", *files, "--target", target, "-o", "json").stdout)
    steps = plan["steps"]
    second_id, second = steps[2]["id"], steps[2]["targets"][0]

    runs = tmp_path / "runs"
    writer = Writer(eps, "/w/", max_seconds=900, min_interval=0.01)
    writer.start()
    out = (tmp_path / "apply.out").open("w")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pitstop", "apply", *files, "--target",
                             target, "--backend", "hosts", "-y", "--runs-dir", str(runs)],
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        # until the journal shows the second member's operation started and the backend's log
        # shows that member being stopped for its restart: then SIGKILL
        deadline = time.monotonic() + 300
        stopping: list[OpEvent] = []
        while not stopping and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            if not (runs.exists() and any(runs.iterdir())):
                continue
            run = only_run(runs)
            if not journal(run, "SELECT seq FROM actions WHERE kind = 'operation' AND "
                           "step_id = ? AND outcome = 'started'", second_id):
                continue
            if (run / "hosts.sqlite").exists():
                stopping = [e for e in events(run)
                            if e.kind == "etcd-stop" and e.subject == second]
        assert stopping, (tmp_path / "apply.out").read_text()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # also when the test fails: never left running
        assert proc.wait(10) == -signal.SIGKILL
    killed_after = time.monotonic() - t0
    run = only_run(runs)
    status = pitstop("status", str(run))
    assert status.returncode == 0 and "running" in status.stdout, status.stdout
    assert re.search(rf"^{re.escape(second_id)}\s+running\s", status.stdout, re.M), status.stdout
    (op2,) = [o for o in SqliteOperationStore(run / "hosts.sqlite").operations()
              if o.key.endswith(f"/{second_id}/{second}")]
    assert op2.state == "running"
    at_kill = {o.name: (o.version, o.healthy) for o in live.actuator.health()}

    t1 = time.monotonic()
    r = pitstop("resume", str(run))
    resume_s = time.monotonic() - t1
    assert writer.wait_acked_after(time.monotonic(), count=20)
    writer.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed: every step done and every gate passed" in r.stdout

    # every member at 3.5.1, healthy, one leader; no acknowledged key lost
    obs = live.actuator.health()
    assert [o.version for o in obs] == [NEW] * 3
    assert all(o.healthy and not o.alarms for o in obs) and sum(o.leader for o in obs) == 1
    stored = read_prefix(eps[0], "/w/")
    lost = [k for _, k in writer.acked if k not in stored]
    assert not lost, f"{len(lost)} acknowledged key(s) lost, e.g. {lost[:5]}"
    assert read_prefix(eps[1], "/k/") == before

    # the journal, the backend's log, the member logs: one restart per member and step
    assert journal(run, "SELECT value FROM run WHERE key = 'status'") == [("completed",)]
    assert {s for (s,) in journal(run, "SELECT status FROM steps")} == {"done"}
    for s in steps[1:]:
        member = s["targets"][0]
        assert len(starts_of(run, member, NEW)) == 1, (member, starts_of(run, member, NEW))
        assert log_starts(live, member, NEW) == 1, member
    log = events(run)
    adopt = [e for e in log if e.kind == "adopt"]
    assert [e.op_key for e in adopt] == [op2.key]
    (start2,) = starts_of(run, second, NEW)
    killed_owner = op2.owner
    ops = {o.key: o for o in SqliteOperationStore(run / "hosts.sqlite").operations()}
    assert ops[op2.key].state == "succeeded" and ops[op2.key].owner != killed_owner
    intents2 = journal(run, "SELECT outcome FROM actions WHERE step_id = ? AND kind = "
                       "'operation'", second_id)
    # one key, one journal row: the resumed process polled (and, the owner gone, the backend
    # adopted) what the killed one began — it did not journal a second start
    assert intents2 == [("started",)], intents2
    status = pitstop("status", str(run), "-o", "json")
    doc = json.loads(status.stdout)
    assert doc["status"] == "completed" and {s["status"] for s in doc["steps"]} == {"done"}
    audit = pitstop("audit", "verify", str(run))
    assert audit.returncode == 0 and "chain intact" in audit.stdout, audit.stdout + audit.stderr
    # no key material anywhere in the run directory (paths only)
    key_body = pki.client_key.read_text().splitlines()[1]
    for f in run.iterdir():
        if f.is_file():
            assert key_body.encode() not in f.read_bytes(), f
    figure("etcd apply over TLS: SIGKILL of apply", f"{killed_after:.1f} s after start, while "
           f"{second} restarted (states then: {at_kill}); restarted by "
           f"{'the killed process' if start2.owner == killed_owner else 'resume'}")
    figure("etcd resume to completion", f"{resume_s:.1f} s; writer: {len(writer.acked)} puts "
           f"acknowledged, {writer.failures} failed attempts retried, none lost")

    # the run completed: rolling it back is refused unless asked for in so many words
    put(eps[2], "/after/upgrade", "written on 3.5.1")
    pids = live.pids()
    rb = pitstop("rollback", str(run))
    assert rb.returncode == 1, rb.stdout + rb.stderr
    assert f"`pitstop rollback {run} --undo-completed`" in rb.stderr, rb.stderr
    assert live.pids() == pids and versions(live) == [NEW] * 3
    # asked for, without --restore-etcd: prints the way back (the exact command) and changes
    # nothing in etcd
    rb = pitstop("rollback", str(run), "--undo-completed")
    assert rb.returncode == 0, rb.stdout + rb.stderr
    text = " ".join(rb.stdout.split())
    assert f"keep etcd of cluster lab at {NEW} (3 member step(s))" in text, text
    assert f"restored into a new etcd {OLD} cluster, losing every write made since" in text
    assert "nothing to do" in text
    assert f"pitstop rollback {run} --wave test --restore-etcd --undo-completed" in text
    assert f"the snapshot of {steps[0]['id']}" in text
    assert live.pids() == pids and versions(live) == [NEW] * 3

    # with the flag: the verified pre-upgrade snapshot into a new 3.4.23 cluster
    t2 = time.monotonic()
    rb = pitstop("rollback", str(run), "--undo-completed", "--restore-etcd", "-y")
    restore_s = time.monotonic() - t2
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert f"restored {steps[0]['id']} into etcd {OLD}" in " ".join(rb.stdout.split())
    obs = live.actuator.health()
    assert [o.version for o in obs] == [OLD] * 3
    assert all(o.healthy for o in obs) and sum(o.leader for o in obs) == 1
    assert read_prefix(eps[0], "/k/") == before
    assert "/after/upgrade" not in read_prefix(eps[1], "/after/")
    doc = json.loads(pitstop("status", str(run), "-o", "json").stdout)
    assert doc["status"] == "rolled-back"
    assert {s["status"] for s in doc["steps"]} == {"rolled-back"}
    restores = [o for o in SqliteOperationStore(run / "hosts.sqlite").operations()
                if o.key.endswith(f"/{steps[0]['id']}/restore")]
    assert [o.state for o in restores] == ["succeeded"]
    assert journal(run, "SELECT outcome FROM actions WHERE kind = 'operation-done' AND "
                   "target LIKE '%/restore'") == [("succeeded",)]
    audit = pitstop("audit", "verify", str(run))
    assert audit.returncode == 0 and "chain intact" in audit.stdout
    figure("pitstop rollback --restore-etcd", f"{restore_s:.1f} s (verify the snapshot, "
           f"restore 3 data dirs, stop the 3.5.1 members, start {OLD}, check keys and hashkv)")
