"""Benchmark: plan an upgrade for a generated fleet (default 2,000 clusters, 1,000,000 nodes).

Prints, separately: generating the input, loading (validating) it into Fleet objects, planning
(target checks, preflight, every cluster's plan with every intermediate state checked), and
placing the plan into maintenance windows — wall time and the process's peak RSS after each.

    .venv/bin/python bench/plan_scale.py                    # 2,000 × 500
    .venv/bin/python bench/plan_scale.py --clusters 200     # a quicker run

Target (issue #2): planning ≤ 10 s and ≤ 2 GiB on a 2-core machine, loading reported apart.
There is no peer tool that plans a fleet offline to compare with in the same run; the figures
are absolute and noisy on shared machines — compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pitstop.calendar import schedule_plan
from pitstop.catalog import load_catalog
from pitstop.model import (
    Cluster,
    Fleet,
    FleetSpec,
    Metadata,
    UpgradePolicy,
    UpgradeTarget,
)
from pitstop.planner import make_plan

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(clusters: int, nodes_per_cluster: int) -> Iterator[dict[str, Any]]:
    """Cluster documents like a large platform team's: HA control planes on 1.34 or 1.35, four
    pools per cluster (one a minor behind), containerd 1.7 or 2.2, workloads with PDBs."""
    pools = 4
    per_pool = nodes_per_cluster // pools
    for c in range(clusters):
        k = "1.34.12" if c % 3 else "1.35.8"
        behind = "1.33.13" if k == "1.34.12" else "1.34.12"
        runtime = "1.7.30" if k == "1.34.12" else "2.2.9"
        cp = {
            "apiServers": [{"name": f"cp-{i}", "version": k} for i in range(3)],
            "controllerManager": {"version": k}, "scheduler": {"version": k},
            "etcd": {"version": "3.5.26", "members": [{"name": f"etcd-{i}"} for i in range(3)]},
        }
        node_pools = []
        for p in range(pools):
            kubelet = behind if p == 3 else k
            node_pools.append({"name": f"pool-{p}", "nodes": [
                {"name": f"c{c}-p{p}-n{n}", "kubelet": kubelet,
                 "containerRuntime": {"name": "containerd", "version": runtime},
                 "allocatable": {"cpu": "15650m", "memory": "61Gi", "pods": 110}}
                for n in range(per_pool)]})
        workloads = [
            {"kind": "Deployment", "name": f"app-{w}", "namespace": "apps", "replicas": 6,
             "labels": {"app": f"app-{w}"}, "requests": {"cpu": "500m", "memory": "1Gi"},
             "nodePool": f"pool-{w % pools}"} for w in range(4)]
        pdbs = [{"name": f"app-{w}", "namespace": "apps", "maxUnavailable": 1,
                 "selector": {"matchLabels": {"app": f"app-{w}"}}} for w in range(2)]
        yield {"name": f"cluster-{c:05d}", "environment": "production",
               "labels": {"region": f"r{c % 4}"}, "controlPlane": cp,
               "nodePools": node_pools, "workloads": workloads,
               "podDisruptionBudgets": pdbs,
               "addons": [{"name": "coredns", "version": "1.12.1"}]}


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--nodes-per-cluster", type=int, default=500)
    args = ap.parse_args()
    catalog = load_catalog()
    policy = UpgradePolicy.model_validate({"metadata": {"name": "bench"}, "spec": {
        "waves": [{"name": f"r{r}", "clusters": {"matchLabels": {"region": f"r{r}"}}}
                  for r in range(4)],
        "pools": [{"strategy": "in-place", "maxUnavailable": "10%", "canaryNodes": 1}],
        "maintenanceWindows": [{"name": "nights", "start": "22:00", "duration": "6h",
                                "timeZone": "Europe/Berlin"}],
    }})
    target = UpgradeTarget.model_validate({"spec": {"versions": {
        "kubernetes": "1.36.5", "containerd": "2.3.7", "etcd": "3.6.8", "coredns": "1.14.2"}}})

    # Loading: each generated cluster document is validated as it comes (as the YAML loader
    # validates each document), so the raw documents never pile up.
    t1 = time.perf_counter()
    clusters = [Cluster.model_validate(doc)
                for doc in generate(args.clusters, args.nodes_per_cluster)]
    fleet = Fleet(metadata=Metadata(name="bench"), spec=FleetSpec(clusters=clusters))
    gc.collect()
    t2 = time.perf_counter()
    nodes = sum(len(p.nodes) for c in fleet.spec.clusters for p in c.node_pools)
    rss_loaded = current_rss_mib()
    print(f"fleet: {len(fleet.spec.clusters)} clusters, {nodes} nodes")
    print(f"load:     {t2 - t1:6.2f} s   (generate + validate into Fleet objects; RSS "
          f"{rss_loaded:,.0f} MiB, peak so far {peak_rss_mib():,.0f} MiB)")

    t3 = time.perf_counter()
    plan = make_plan(fleet, target, policy, catalog, now=NOW)
    t4 = time.perf_counter()
    labels = {c.name: c.full_labels for c in fleet.spec.clusters}
    schedule = schedule_plan(plan, policy, labels, NOW)
    t5 = time.perf_counter()
    rss = peak_rss_mib()
    blocking = len(plan.blocking)
    print(f"plan:     {t4 - t3:6.2f} s   ({len(plan.steps)} steps, {len(plan.findings)} findings, "
          f"{blocking} blocking, reachable={plan.reachable})")
    codes: dict[str, int] = {}
    for f in plan.blocking:
        codes[f.code] = codes.get(f.code, 0) + 1
    if codes:
        print(f"blocking findings by code: {codes}")
    print(f"calendar: {t5 - t4:6.2f} s   (finish {schedule.finish})")
    print(f"planning total (plan + calendar): {t5 - t3:.2f} s; peak RSS of the process: "
          f"{rss:,.0f} MiB ({rss - rss_loaded:,.0f} MiB above the loaded fleet)")
    print(f"throughput: {nodes / (t4 - t3):,.0f} nodes/s planned")
    ok_time, ok_mem = (t5 - t3) <= 10, rss <= 2048
    print(f"target ≤10 s: {'met' if ok_time else 'MISSED'}; target ≤2 GiB: "
          f"{'met' if ok_mem else 'MISSED'}")


if __name__ == "__main__":
    main()
