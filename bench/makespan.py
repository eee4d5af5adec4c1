"""Benchmark: rehearsed makespan against a lower bound and against one-node-at-a-time draining.

For (1) the example fleet (with its blocking PDB fixed, no maintenance windows) and (2) a
generated 500-node cluster with PDBs, rehearse the plan on the twin and print:

* the rehearsed makespan (virtual time, from the first step's start to the last step's end);
* two lower bounds computed from the constraints alone: for every step, its operations, the
  gate measurements the policy requires and the soak; the soak between waves; for node steps,
  the larger of the nodes' time over the batch size and, for every PDB, (pods to move ÷
  disruptions allowed) × (shortest pod termination + startup) — the budget bound. The first
  takes the durations the twin drew in this rehearsal (they depend on the seed and on what is
  timed, never on the executor), so it measures the executor's scheduling; the second takes
  the shortest durations the twin can draw at all;
* the makespan of the same plan drained one node at a time (maxUnavailable 1, what a
  `kubectl drain` loop does), rehearsed on the same twin model.

    .venv/bin/python bench/makespan.py [--nodes 500]

Target (issue #3): rehearsed makespan ≤ 1.10 × the lower bound. Every ratio is printed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pitstop.catalog import load_catalog
from pitstop.cli.demo import _fixed, _load
from pitstop.executor.core import Executor
from pitstop.executor.gating import GATE_SPECS
from pitstop.executor.run import create_run
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import Plan, make_plan
from pitstop.twin import Twin
from pitstop.twin.timings import TwinTimings, uniform

SEED = 1
START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
T = TwinTimings()


def generated(nodes: int) -> Fleet:
    per_pool = nodes // 2
    workloads, pdbs = [], []
    for i in range(nodes // 10):
        workloads.append({"kind": "Deployment", "name": f"svc-{i}", "namespace": "apps",
                          "replicas": 10, "labels": {"app": f"svc-{i}"},
                          "requests": {"cpu": "500m", "memory": "512Mi"},
                          "nodePool": "a" if i % 2 else "b"})
        pdbs.append({"name": f"svc-{i}", "namespace": "apps", "maxUnavailable": 2,
                     "selector": {"matchLabels": {"app": f"svc-{i}"}}})
    workloads.append({"kind": "DaemonSet", "name": "agent", "namespace": "kube-system",
                      "labels": {"app": "agent"}, "requests": {"cpu": "100m"}})
    return Fleet.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "big"},
        "spec": {"clusters": [{
            "name": "big", "environment": "production",
            "controlPlane": {
                "apiServers": [{"name": f"cp-{i}", "version": "1.35.8"} for i in range(3)],
                "controllerManager": {"version": "1.35.8"}, "scheduler": {"version": "1.35.8"},
                "etcd": {"version": "3.6.6", "members": [{"name": f"e{i}"} for i in range(3)]}},
            "nodePools": [{"name": p, "nodes": [
                {"name": f"{p}-{n:03d}", "kubelet": "1.35.8",
                 "containerRuntime": {"name": "containerd", "version": "2.2.9"},
                 "allocatable": {"cpu": "16", "memory": "64Gi", "pods": 110}}
                for n in range(per_pool)]} for p in ("a", "b")],
            "workloads": workloads, "podDisruptionBudgets": pdbs}]}})


def _d(span: tuple[float, float], pick: int) -> float:
    """The shortest duration the twin can draw (pick 0), or the mean (pick 1)."""
    return span[0] if pick == 0 else (span[0] + span[1]) / 2


def _gate_floor(step: Any) -> float:
    """Shortest time the step's gates can take: (count - 1) intervals of the longest gate."""
    return max(((GATE_SPECS.get(g.kind, (0.0, 1, 0))[1] - 1) * GATE_SPECS.get(
        g.kind, (0.0, 1, 0))[0] for g in step.gates), default=0.0)


Budgets = tuple[dict[str, dict[str, int]], dict[str, int], dict[str, list[tuple[str, str]]]]


def budgets(fleet: Fleet) -> Budgets:
    """Pods per node per PDB (by the twin's own placement), each PDB's disruptions allowed,
    and the evictable pods (cluster, uid) each node starts with."""
    pods_on: dict[str, dict[str, int]] = {}
    allowed: dict[str, int] = {}
    evictable: dict[str, list[tuple[str, str]]] = {}
    twin = Twin.create(fleet, seed=SEED, state_path=Path(tempfile.mkdtemp()) / "t.sqlite",
                       start=START.timestamp())
    for c in fleet.spec.clusters:
        obs = twin.observe(c.name)
        for p in obs.pods:
            if p.node is not None and p.owner_kind != "DaemonSet" and not p.mirror:
                evictable.setdefault(p.node, []).append((c.name, p.uid))
            for b in obs.pdbs:
                if b.selects(p.namespace, p.labels):
                    pods_on.setdefault(p.node or "", {}).setdefault(b.key, 0)
                    pods_on[p.node or ""][b.key] += 1
        allowed.update({b.key: max(1, b.disruptions_allowed) for b in obs.pdbs})
    return pods_on, allowed, evictable


def _budget_bound(s: Any, b: Budgets, pick: int = 0) -> float:
    """For every PDB: the pods the step moves ÷ the disruptions it allows, each round at least
    one termination and one startup."""
    pods_on, allowed, _ = b
    moved: dict[str, int] = {}
    for n in s.targets:
        for key, k in pods_on.get(n, {}).items():
            moved[key] = moved.get(key, 0) + k
    return max((math.ceil(k / allowed.get(key, 1)) * (_d(T.pod_termination, pick)
               + _d(T.pod_startup, pick)) for key, k in moved.items()), default=0.0)


def lower_bound(plan: Plan, b: Budgets, pick: int = 0) -> float:
    total = 0.0
    for s in plan.steps:
        floor = _gate_floor(s) + s.soak.total_seconds()
        if s.action == "etcd-snapshot":
            total += _d(T.etcd_snapshot, pick) + floor
        elif s.action == "upgrade-apiserver":
            total += _d(T.apiserver_restart, pick) + floor
        elif s.action.startswith("upgrade-") and s.component.startswith("kube-"):
            total += _d(T.controller_restart, pick) + floor
        elif s.action == "upgrade-etcd-member":
            total += _d(T.etcd_member_restart, pick) + floor
        elif s.action == "upgrade-addon":
            total += _d(T.addon_rollout, pick) + floor
        elif s.action == "upgrade-nodes":
            hops = sum(1 for c in s.changes if c.component != "kube-proxy")
            per_node = hops * _d(T.node_restart, pick)
            nodes_bound = math.ceil(len(s.targets) / max(1, s.batch_size)) * per_node
            total += max(nodes_bound, _budget_bound(s, b, pick)) + floor
    return total + sum(w.soak.total_seconds() for w in plan.waves[:-1])


def realized_bound(plan: Plan, b: Budgets, twin: Twin) -> float:
    """The same bound, with every operation's duration the one the twin actually drew in the
    rehearsal (it depends only on the seed and the operation's key, never on the executor's
    choices) instead of the shortest it could draw. A node's time is its operations one after
    another, after the termination of the pods it starts with (they leave it only by its own
    drain, and each one's termination is drawn from its uid; pods that land on it later are
    not counted). For a node step: the larger of the longest node, the nodes' total ÷ the
    batch size (no schedule keeps more nodes busy at once), and the budget bound — still a
    bound no executor could beat on this twin, and the one that measures the executor's
    scheduling alone."""
    _, _, evictable = b
    drained: set[str] = set()  # nodes drained by an earlier step: their first pods are gone
    started: dict[str, float] = {}
    took: dict[str, float] = {}
    for e in twin.events():
        if e.source == "call" and e.kind == "start":
            started.setdefault(e.subject, e.time)
        elif e.kind == "operation-finished" and e.subject in started:
            took[e.subject] = e.time - started[e.subject]
    total = 0.0
    for s in plan.steps:
        floor = _gate_floor(s) + s.soak.total_seconds()
        prefix = f"/{s.id}/"
        ops = {k: v for k, v in took.items() if prefix in k and "/rollback" not in k}
        if s.action != "upgrade-nodes":
            total += sum(ops.values()) + floor
            continue
        per_node: dict[str, float] = {
            n: max((uniform(T.pod_termination, SEED, "terminate", c, uid)
                    for c, uid in evictable.get(n, ())), default=0.0)
            for n in s.targets if n not in drained}
        drained.update(s.targets)
        for key, secs in ops.items():
            node = key.split(prefix, 1)[1].split("/", 1)[0]
            per_node[node] = per_node.get(node, 0.0) + secs
        work = sum(per_node.values())
        total += max(max(per_node.values(), default=0.0), work / max(1, s.batch_size),
                     _budget_bound(s, b)) + floor
    return total + sum(w.soak.total_seconds() for w in plan.waves[:-1])


def rehearse(fleet: Fleet, plan: Plan, policy: UpgradePolicy) -> tuple[float, str, Twin]:
    root = Path(tempfile.mkdtemp())
    run = create_run(root, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite"})
    twin = Twin.create(fleet, seed=SEED, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    result = Executor(run, twin).execute()
    steps = run.journal.steps()
    start = min(s.started for s in steps if s.started is not None)
    end = max(s.finished for s in steps if s.finished is not None)
    return end - start, result.status, twin


def case(name: str, fleet: Fleet, policy: UpgradePolicy, target: UpgradeTarget) -> None:
    catalog = load_catalog()
    no_windows = policy.model_copy(update={"spec": policy.spec.model_copy(update={
        "maintenance_windows": [], "blackouts": [], "approvals": []})})
    plan = make_plan(fleet, target, no_windows, catalog, now=START)
    b = budgets(fleet)
    lb = lower_bound(plan, b)
    mean_bound = lower_bound(plan, b, pick=1)
    ours, status, twin = rehearse(fleet, plan, no_windows)
    drawn = realized_bound(plan, b, twin)
    serial_pools = [p.model_copy(update={"max_unavailable": 1, "max_surge": 0,
                                         "strategy": "in-place"})
                    for p in no_windows.spec.pools]
    serial_policy = no_windows.model_copy(update={"spec": no_windows.spec.model_copy(
        update={"pools": serial_pools})})
    serial_plan = make_plan(fleet, target, serial_policy, catalog, now=START)
    serial, serial_status, _ = rehearse(fleet, serial_plan, serial_policy)
    print(f"{name}: {len(plan.steps)} steps")
    print(f"  rehearsed makespan   {ours / 3600:7.2f} h  ({status})")
    print(f"  lower bound, the durations this rehearsal drew   {drawn / 3600:7.2f} h  → ratio "
          f"{ours / drawn:.2f} (target ≤ 1.10)")
    print(f"  lower bound, the shortest durations the twin can draw {lb / 3600:7.2f} h  → ratio "
          f"{ours / lb:.2f} (target ≤ 1.10)")
    print(f"  that bound with mean durations instead of shortest {mean_bound / 3600:7.2f} h  → "
          f"ratio {ours / mean_bound:.2f} (not a bound: context)")
    print(f"  one node at a time   {serial / 3600:7.2f} h  ({serial_status}) → pitstop is "
          f"{serial / ours:.1f}× faster")

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=500)
    args = ap.parse_args()
    fleet, policy, target = _load()
    case("example fleet (blocking PDB fixed, no windows/approvals)", _fixed(fleet), policy,
         target)
    big_policy = UpgradePolicy.model_validate({"metadata": {"name": "big"}, "spec": {
        "pools": [{"maxUnavailable": "10%", "canaryNodes": 1, "soak": "2m"}]}})
    big_target = UpgradeTarget.model_validate({"spec": {"versions": {
        "kubernetes": "1.36.5", "containerd": "2.3.7"}}})
    case(f"generated cluster, {args.nodes} nodes, PDBs maxUnavailable 2 per service",
         generated(args.nodes), big_policy, big_target)


if __name__ == "__main__":
    main()
