"""A real HA control-plane minor upgrade, 1.35.4 → 1.36.3, through the executor.

Two kube-apiserver instances on one etcd (``tests/k8s/ha.py``), a leader-electing
kube-controller-manager and kube-scheduler, kwok nodes. ``make_plan`` orders it; ``Executor``
over ``KubeBackend`` carries it out, with pitstop's command hook (``CommandControlPlaneUpgrader``)
running the operator's script per instance and ``KwokNodeUpgrader`` for the nodes. A poller asks
both apiservers for ``/readyz`` every 100 ms all along.

Midway a person rolls ``cp-b`` back to 1.35.4 by hand, with the same script, right after the
scheduler step: the live skew check pauses the run before the node step, naming the instance
and the versions; the person upgrades it again and resumes; the run completes.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness.controlplane import bin_dir

from pitstop.audit import verify
from pitstop.backend import OperationState, UpgradeComponent
from pitstop.catalog import load_catalog
from pitstop.executor.core import Executor
from pitstop.executor.run import create_run, open_run
from pitstop.kube import KubeBackend, KwokNodeUpgrader
from pitstop.kube.controlplane import CommandControlPlaneUpgrader
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan

from .ha import HaControlPlane, new_ha, run_hook, wait_ready
from .kubelib import POOL_LABEL, kwok_node, node_ready, running, wait_for

pytestmark = pytest.mark.k8s
OLD, NEW = "1.35.4", "1.36.3"


class ApiPoller:
    """Asks every apiserver instance for /readyz every ``interval`` seconds, in a thread."""

    def __init__(self, ha: HaControlPlane, interval: float = 0.1) -> None:
        self.ha, self.interval = ha, interval
        self.samples: list[tuple[float, dict[str, bool]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ApiPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.samples.append((t, {i: self.ha.get_at(self.ha.url(i), "/readyz", 1.0)[0] == 200
                                     for i in self.ha.instances}))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def failures(self, instance: str) -> int:
        return sum(1 for _, ok in self.samples if not ok[instance])

    def both_down(self) -> int:
        return sum(1 for _, ok in self.samples if not any(ok.values()))

    def longest_gap(self) -> float:
        """The longest time between two polls that some instance answered."""
        answered = [t for t, ok in self.samples if any(ok.values())]
        return max((b - a for a, b in itertools.pairwise(answered)), default=0.0)

    def outages(self, instance: str) -> list[tuple[float, float]]:
        """(start, end) of each run of failed polls of one instance (end: the next good one)."""
        out: list[tuple[float, float]] = []
        start: float | None = None
        for t, ok in self.samples:
            if not ok[instance] and start is None:
                start = t
            elif ok[instance] and start is not None:
                out.append((start, t))
                start = None
        if start is not None:
            out.append((start, self.samples[-1][0]))
        return out


@pytest.fixture
def ha() -> Any:
    def make() -> HaControlPlane:
        bin_dir(NEW)  # both versions built, or the test fails saying how to build them
        return new_ha(OLD)

    with running(make) as cp:
        yield cp


def _fleet(ha: HaControlPlane, backend: KubeBackend, nodes: list[str]) -> Fleet:
    obs = backend.observe(backend.cluster)
    return Fleet.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "ha"},
        "spec": {"clusters": [{
            "name": backend.cluster, "environment": "staging",
            "controlPlane": {
                "apiServers": [{"name": k, "version": v} for k, v in sorted(
                    obs.apiservers.items())],
                "controllerManager": {"version": OLD, "instances": [ha.instances[0]]},
                "scheduler": {"version": OLD, "instances": [ha.instances[0]]}},
            "nodePools": [{"name": "blue", "labels": {POOL_LABEL: "blue"}, "nodes": [
                {"name": n.name, "kubelet": n.kubelet, "kubeProxy": n.kube_proxy,
                 "containerRuntime": {"name": n.runtime, "version": n.runtime_version}}
                for n in obs.nodes if n.name in nodes]}]}]}})


def test_ha_control_plane_minor_upgrade_one_apiserver_at_a_time(ha: HaControlPlane,
                                                                tmp_path: Path) -> None:
    nodes = [f"ha-blue-{i}" for i in range(3)]
    ha.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        kwok_node(n, labels={POOL_LABEL: "blue"}, kubelet=OLD) for n in nodes]}))
    wait_for(lambda: all(node_ready(ha.get(f"/api/v1/nodes/{n}")) for n in nodes), 60,
             "the kwok nodes Ready")
    probe = KubeBackend(str(ha.kubeconfig), None, KwokNodeUpgrader())
    assert probe.observe(probe.cluster).apiservers == {"cp-a": OLD, "cp-b": OLD}
    fleet = _fleet(ha, probe, nodes)
    policy = UpgradePolicy.model_validate({"metadata": {"name": "ha"}, "spec": {"pools": [{
        "pools": ["blue"], "strategy": "in-place", "maxUnavailable": 3, "canaryNodes": 0,
        "soak": "PT0S", "canarySoak": "PT0S", "drainTimeout": "PT2M"}]}})
    catalog = load_catalog()
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": {
        "kubernetes": NEW}}}), policy, catalog, now=datetime.now(UTC))
    assert [(s.action, s.targets) for s in plan.steps] == [
        ("upgrade-apiserver", ("cp-a",)), ("upgrade-apiserver", ("cp-b",)),
        ("upgrade-controller-manager", ("cp-a",)), ("upgrade-scheduler", ("cp-a",)),
        ("upgrade-nodes", tuple(nodes))], plan.findings
    sched_step, node_step = plan.steps[3], plan.steps[4]

    run = create_run(tmp_path, plan, policy, {probe.cluster: {"name": probe.cluster}},
                     {"kind": "kube", "kubeconfig": str(ha.kubeconfig), "state": "kube.json"})
    script = ha.upgrade_script()  # the operator's part: swap the binary, restart the service

    def backend() -> KubeBackend:  # as `pitstop apply` / `pitstop resume` would make it
        hook = CommandControlPlaneUpgrader(
            [str(script), "{instance}", "{component}", "{version}"],
            state_dir=run.path / "control-plane", verify_timeout_s=120,
            addresses={f"{c}/{ha.instances[0]}": ha.component_url(c)
                       for c in ("kube-controller-manager", "kube-scheduler")})
        return KubeBackend(str(ha.kubeconfig), None, KwokNodeUpgrader(restart_seconds=1.0),
                           state_file=run.path / "kube.json", control_plane_upgrader=hook)

    rollback: dict[str, float] = {}

    def by_hand(action: str, info: dict[str, Any]) -> None:
        """Right after the scheduler step, someone rolls cp-b back to 1.35.4."""
        if action == "step-done" and info["subject"] == sched_step.id and not rollback:
            t0 = time.monotonic()
            run_hook(script, "cp-b", "kube-apiserver", OLD)
            wait_ready(ha, "cp-b", OLD)
            rollback["seconds"] = time.monotonic() - t0

    t0 = time.monotonic()
    with ApiPoller(ha) as poller:
        first = Executor(run, backend(), poll_s=1.0, on_event=by_hand,
                         catalog=catalog).execute()
        # paused (not failed, not skipped) before the node step, naming instance and versions
        assert first.status == "paused", first.reason
        assert f"step {node_step.id} not started" in first.reason
        assert "kubelet-skew" in first.reason and "kube-apiserver cp-b still at 1.35.4" in \
            first.reason, first.reason
        assert "kube-apiserver cp-a 1.36.3, cp-b 1.35.4" in first.reason
        assert run.journal.step(node_step.id).status == "paused"
        assert all(not ha.get(f"/api/v1/nodes/{n}")["spec"].get("unschedulable")
                   and ha.get(f"/api/v1/nodes/{n}")["status"]["nodeInfo"]["kubeletVersion"]
                   == f"v{OLD}" for n in nodes)  # no node step started
        # the fix, by hand again; then `pitstop resume`: the check runs again and passes
        run_hook(script, "cp-b", "kube-apiserver", NEW)
        wait_ready(ha, "cp-b", NEW)
        resumed = open_run(run.path)
        second = Executor(resumed, backend(), poll_s=1.0, catalog=catalog).execute()
    took = time.monotonic() - t0
    assert second.status == "completed", second.reason

    # the API answered throughout: never both apiservers down at once
    assert len(poller.samples) > 100
    assert poller.both_down() == 0, poller.outages("cp-a")[:3] + poller.outages("cp-b")[:3]
    # one at a time, then the controllers, then the nodes: the steps' end times are in order
    ends = [resumed.journal.step(s.id).finished for s in plan.steps]
    assert all(e is not None for e in ends) and ends == sorted(ends), ends  # type: ignore[type-var]
    # final versions, read live and not through pitstop
    assert {i: ha.version_at(i) for i in ha.instances} == {"cp-a": NEW, "cp-b": NEW}
    assert ha.build_version("kube-controller-manager") == NEW
    assert ha.build_version("kube-scheduler") == NEW
    for n in nodes:
        info = ha.get(f"/api/v1/nodes/{n}")["status"]["nodeInfo"]
        assert (info["kubeletVersion"], info["kubeProxyVersion"]) == (f"v{NEW}", f"v{NEW}")
    # each supervised component was restarted from the new binaries by the hook
    for comp, inst in (("kube-apiserver", "cp-a"), ("kube-apiserver", "cp-b"),
                       ("kube-controller-manager", "cp-a"), ("kube-scheduler", "cp-a")):
        starts = [e for _, e in ha.events(comp, inst) if e.startswith("start")]
        assert starts[-1].endswith(f"/v{NEW}/bin"), (comp, inst, starts)
    # journal and audit: each operation, the skew pause and the re-check
    checks = [a.outcome for a in resumed.journal.actions(node_step.id) if a.kind == "skew-check"]
    assert checks == ["paused", "ok"]
    audit = [json.loads(line) for line in (run.path / "audit.jsonl").read_text().splitlines()]
    ops = [r["subject"] for r in audit if r["action"] == "operation"]
    assert [o.rsplit("/", 1)[-1] for o in ops][:4] == ["cp-a", "cp-b", "cp-a", "cp-a"]
    assert any(r["action"] == "skew-pause" and "cp-b" in r["reason"] for r in audit)
    assert verify(run.path / "audit.jsonl").ok

    # figures (printed, not asserted)
    b = backend()
    print(f"\nHA control-plane upgrade {OLD} → {NEW}: {took:.0f}s in all, "
          f"{len(poller.samples)} polls of each apiserver")
    for s in plan.steps[:4]:
        op = b.poll(b.cluster, f"{run.run_id}/{s.id}/{s.targets[0]}")
        print(f"  {s.component} {s.targets[0]}: hook + verification {op.finished - op.started:.1f}s"
              f" ({op.message})")
    for i in ha.instances:
        worst = max((e - s for s, e in poller.outages(i)), default=0.0)
        print(f"  kube-apiserver {i}: {poller.failures(i)} failed polls, longest outage "
              f"{worst:.1f}s")
    print(f"  longest gap with no apiserver answering: {poller.longest_gap():.2f}s; polls with "
          f"both down: {poller.both_down()}")
    print(f"  manual rollback of cp-b to {OLD}: {rollback.get('seconds', 0):.1f}s; "
          f"pause reason: {first.reason[:200]}…")


def test_command_hook_failures_name_the_instance(control_plane: Any, tmp_path: Path) -> None:
    """On the single-apiserver session cluster: a command that fails, and a version that never
    shows, each fail the operation with a message naming the instance and what it reports;
    starting a known key again launches nothing."""
    cp = control_plane
    instance = next(iter(KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader()).observe(
        "pitstop-test").apiservers))

    def backend(command: list[str]) -> KubeBackend:
        hook = CommandControlPlaneUpgrader(command, state_dir=tmp_path / "cp",
                                           verify_timeout_s=3)
        return KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(),
                           state_file=tmp_path / "kube.json", control_plane_upgrader=hook)

    def finish(b: KubeBackend, key: str, action: UpgradeComponent) -> Any:
        op = b.start(b.cluster, key, action)
        while op.state is OperationState.RUNNING:
            time.sleep(0.3)
            op = b.poll(b.cluster, key)
        return op

    broken = backend(["sh", "-c", "echo no such package >&2; exit 3", "{instance}"])
    op = finish(broken, "k1", UpgradeComponent(instance, "kube-apiserver", "1.36.3"))
    assert op.state is OperationState.FAILED
    assert f"kube-apiserver {instance}" in op.message and "exited 3: no such package" in \
        op.message, op.message

    noop = backend(["true", "{instance}", "{version}"])
    action = UpgradeComponent(instance, "kube-apiserver", "1.37.0")
    op = finish(noop, "k2", action)
    assert op.state is OperationState.FAILED
    assert (f"kube-apiserver {instance} did not show 1.37.0 within 3s" in op.message
            and f"it reports {cp.version}" in op.message), op.message
    launched = sorted((tmp_path / "cp").iterdir())
    again = noop.start(noop.cluster, "k2", action)  # a known key: nothing new starts
    assert again.state is OperationState.FAILED and sorted((tmp_path / "cp").iterdir()) == \
        launched
    print(f"\nnever shows: {op.message}")

    none = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    op = none.start(none.cluster, "k3", UpgradeComponent(instance, "kube-scheduler", "1.36.3"))
    assert op.state is OperationState.FAILED and "no control-plane upgrader" in op.message
