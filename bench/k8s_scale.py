"""Benchmark: pitstop against kubectl on one real control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok) with 1,000 kwok nodes and 10,000 pods.

    .venv/bin/python bench/k8s_scale.py                                        # full scale
    .venv/bin/python bench/k8s_scale.py --nodes 100 --pods 1000 --drain-nodes 10   # quicker

Set-up: ``harness/controlplane.py``'s ControlPlane with its own flags (nothing tuned: the
controller-manager, scheduler and kwok run at their default client QPS). Nodes in pools (label
``pitstop.dev/pool``, 100 nodes a pool), one namespace a pool; per pool a DaemonSet, and
Deployments and StatefulSets of ``--replicas`` pods each (two in three are Deployments), every
one with a PDB (``maxUnavailable: 1`` or ``minAvailable: replicas-1``, alternately). The real
scheduler places the pods, kwok marks them Running and Ready. The set-up's phases are timed.

The StatefulSets are pinned to every fifth node of their pool (label
``scale.pitstop.dev/stateful``), and the drains pick other nodes. Why: seen on 1.36.3 (loaded
machine), after one StatefulSet pod was evicted, the next eviction under the same PDB was
refused (429) for about two minutes (122 s), for kubectl and pitstop alike — most likely the
PDB's ``status.disruptedPods`` entry, kept by pod *name* until its 2-minute expiry, matching
the replacement, which has the evicted pod's name. A serial ``kubectl drain`` loop then spends
most of its time in those stalls. ``--drain-statefulsets`` spreads them over every node to
measure that case.

Measured (2 shared cores, load 3–7 from other engineers' tests; full scale, ~13 min a run):
set-up ~380 s; inventory pitstop 3.7 s vs kubectl 9.1 s (ratio 0.41; pitstop 302 MiB, kubectl
~1.1 GiB); drains of 50 nodes, 0 PDB violations, kubectl serial 140 s vs pitstop 113 s at
``--concurrency 10`` (1.2×), 152 s vs 105 s at ``--concurrency 50`` (1.45×). pitstop's loop is
bound by ``observe()`` (every pod of the cluster, 3.5–5.3 s a loop at 10,000 pods) and by its
evictions, sent one at a time.

1. **Inventory**: ``pitstop inventory -o json`` (the venv's CLI) and ``kubectl get
   nodes,pods,pdb -A -o json`` (the built kubectl) alternately, ``--rounds`` times each, as
   subprocesses writing to a file; median wall time, ratio pitstop/kubectl (target ≤ 1.5), peak
   RSS of each process (``os.wait4``). pitstop lists more than kubectl here (see the output).
2. **Drain**, on the same cluster: (a) a serial loop of ``kubectl drain NODE
   --ignore-daemonsets --delete-emptydir-data`` over ``--drain-nodes`` nodes, then uncordon
   them and wait until every workload is Ready and every PDB allows its disruption again;
   (b) pitstop's drain of as many *other* nodes (as many from each pool): ``pitstop.drain.Drainer``
   over ``pitstop.kube.KubeBackend``, many nodes at once — at most ``--concurrency``, each one
   admitted by the executor's rule (``pitstop.executor.core.admits``: every PDB covering the
   candidate's pods allows that many disruptions now, and the schedulable nodes have room for
   the pods moving), one observation of the cluster per loop, polled every ``--poll`` seconds;
   evictions of a node go out concurrently (the backend's ``concurrent_calls``), as kubectl
   sends them. One call of ``admits`` is timed and reported. Every PDB is sampled all along
   (``tests/k8s/kubelib.PdbWatch``: currentHealthy < desiredHealthy is a violation).

The control plane is always stopped at the end. Figures are wall times on a shared machine:
compare runs on one machine only, and read the load average printed with them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harness.controlplane import ControlPlane, default_version
from harness.kube import (
    POOL_LABEL,
    PdbWatch,
    daemonset,
    deployment,
    kwok_node,
    node_ready,
    pdb,
    statefulset,
    wait_for,
)

from pitstop.drain import BackendEvictions, Drainer, DrainOptions, DrainState
from pitstop.executor.core import admits
from pitstop.kube import KubeBackend, KwokNodeUpgrader

ROOT = Path(__file__).resolve().parent.parent
PITSTOP = ROOT / ".venv" / "bin" / "pitstop"
NODES_PER_POOL = 100


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the cluster --------------------------------------------------------------------------------

STATEFUL_LABEL = "scale.pitstop.dev/stateful"


@dataclass
class Layout:
    pools: int
    nodes: dict[int, list[str]]  # pool -> node names
    stateful: set[str]  # nodes the StatefulSets are pinned to (every fifth of a pool)
    namespaces: list[str]
    docs: list[dict[str, Any]]  # workloads and PDBs
    expected_pods: int
    workloads: int


def layout(n_nodes: int, n_pods: int, replicas: int, pin_statefulsets: bool) -> Layout:
    pools = max(1, n_nodes // NODES_PER_POOL)
    nodes = {p: [f"scale-p{p}-n{i:03d}" for i in range(n_nodes) if i % pools == p]
             for p in range(pools)}
    stateful = {n for names in nodes.values() for j, n in enumerate(names) if j % 5 == 4}
    docs: list[dict[str, Any]] = []
    namespaces = [f"scale-p{p}" for p in range(pools)]
    expected = n_nodes  # one DaemonSet pod per node
    workloads = 0
    per_pool = max(0, n_pods - n_nodes) // pools
    for p, ns in enumerate(namespaces):
        sel = {POOL_LABEL: f"pool-{p}"}
        docs.append(daemonset(ns, "agent", sel))
        for w in range(per_pool // replicas):
            name = f"app-{w:03d}"
            sts = w % 3 == 2
            docs.append(statefulset(ns, name, replicas, {**sel, STATEFUL_LABEL: "true"}
                                    if pin_statefulsets else sel) if sts
                        else deployment(ns, name, replicas, sel))
            docs.append(pdb(ns, name, {"app": name}, max_unavailable=1) if w % 2 == 0
                        else pdb(ns, name, {"app": name}, min_available=replicas - 1))
            expected += replicas
            workloads += 1
    return Layout(pools, nodes, stateful if pin_statefulsets else set(), namespaces, docs,
                  expected, workloads)


def apply_chunked(cp: ControlPlane, docs: list[dict[str, Any]], chunk: int = 200) -> None:
    for i in range(0, len(docs), chunk):
        cp.kubectl("apply", "-f", "-", timeout=600, input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": docs[i:i + chunk]}))


def ready_counts(cp: ControlPlane, namespaces: list[str]) -> tuple[int, int, int]:
    """(Ready pods of the workloads, PDBs at full allowance, PDBs) — from the small workload
    and PDB lists, not the 10,000 pods."""
    ready = 0
    full = total = 0
    for ns in namespaces:
        for kind in ("deployments", "statefulsets"):
            for o in cp.get(f"/apis/apps/v1/namespaces/{ns}/{kind}")["items"]:
                st = o.get("status") or {}
                if st.get("observedGeneration") == o["metadata"]["generation"]:
                    ready += min(int(st.get("readyReplicas") or 0),
                                 int(st.get("updatedReplicas") or 0)
                                 if kind == "deployments" else int(st.get("readyReplicas") or 0))
        for o in cp.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets")["items"]:
            ready += int((o.get("status") or {}).get("numberReady") or 0)
        for b in cp.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")["items"]:
            total += 1
            st = b.get("status") or {}
            if (st.get("observedGeneration") == b["metadata"]["generation"]
                    and st.get("disruptionsAllowed", 0) >= 1
                    and st.get("currentHealthy", 0) == st.get("expectedPods", -1)):
                full += 1
    return ready, full, total


def wait_all_ready(cp: ControlPlane, lay: Layout, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    last_print = 0.0
    state: tuple[int, int, int] = (0, 0, 0)

    def ok() -> bool:
        nonlocal state, last_print
        state = ready_counts(cp, lay.namespaces)
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            log(f"  {what}: {state[0]}/{lay.expected_pods} pods Ready, {state[1]}/{state[2]} "
                f"PDBs at full allowance (load {loadavg()})")
        return state[0] == lay.expected_pods and state[1] == state[2]

    wait_for(ok, timeout, what, interval=3.0, describe=lambda: state)
    return time.monotonic() - t0


def pods_on_nodes(cp: ControlPlane, nodes: list[str]) -> dict[str, int]:
    """Pods (not DaemonSet, not deleting) on each node, via field selectors."""
    out = {}
    for n in nodes:
        items = cp.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{n}")["items"]
        out[n] = sum(1 for p in items if not p["metadata"].get("deletionTimestamp") and not any(
            r.get("kind") == "DaemonSet" for r in p["metadata"].get("ownerReferences") or []))
    return out


# -- inventory ----------------------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    rss_mib: float
    rc: int


def timed(cmd: list[str], out: Path, timeout: float) -> Run:
    """Run ``cmd`` with stdout to ``out``; wall time and the child's own peak RSS (wait4)."""
    with open(out, "wb") as fh, open(out.with_suffix(".err"), "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fh, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, ru.ru_maxrss / 1024, p.returncode)


def bench_inventory(cp: ControlPlane, rounds: int, work: Path, profile_top: int
                    ) -> dict[str, Any]:
    kc, ctx = str(cp.kubeconfig), "pitstop-test"
    cmds = {
        "kubectl": [str(cp.bin / "kubectl"), "--kubeconfig", kc, "--context", ctx, "get",
                    "nodes,pods,pdb", "-A", "-o", "json"],
        "pitstop": [str(PITSTOP), "inventory", "--kubeconfig", kc, "--context", ctx, "-o",
                    "json"],
    }
    runs: dict[str, list[Run]] = {"kubectl": [], "pitstop": []}
    for i in range(rounds):
        order = ["kubectl", "pitstop"] if i % 2 == 0 else ["pitstop", "kubectl"]
        for who in order:
            r = timed(cmds[who], work / f"{who}-{i}.json", timeout=600)
            if r.rc != 0:
                raise RuntimeError(f"{who} exited {r.rc}: "
                                   f"{(work / f'{who}-{i}.err').read_text()[-2000:]}")
            runs[who].append(r)
            log(f"  inventory round {i + 1}: {who} {r.wall:.2f} s, peak RSS {r.rss_mib:.0f} MiB "
                f"(load {loadavg()})")
    startup = timed([str(PITSTOP), "inventory", "--help"], work / "help.txt", timeout=60)
    profile = ""
    if profile_top:
        prof = work / "inventory.prof"
        timed([sys.executable, "-m", "cProfile", "-o", str(prof), str(PITSTOP),
               *cmds["pitstop"][1:]], work / "profiled.json", timeout=900)
        buf = io.StringIO()
        stats = pstats.Stats(str(prof), stream=buf).sort_stats("cumulative")
        stats.print_stats("pitstop/", profile_top)
        buf2 = io.StringIO()
        pstats.Stats(str(prof), stream=buf2).sort_stats("tottime").print_stats(profile_top)
        profile = buf.getvalue() + buf2.getvalue()
    k_doc = json.loads((work / "kubectl-0.json").read_text())
    kinds = Counter(o["kind"] for o in k_doc["items"])
    p_doc = json.loads((work / "pitstop-0.json").read_text())
    c = p_doc["spec"]["clusters"][0]
    p_counts = {
        "nodes": sum(len(p["nodes"]) for p in c.get("nodePools") or []),
        "pools": len(c.get("nodePools") or []),
        "workloads": len(c.get("workloads") or []),
        "pdbs": len(c.get("podDisruptionBudgets") or []),
        "api_usage": len(c.get("apiUsage") or []),
    }
    sizes = {who: (work / f"{who}-0.json").stat().st_size / 2**20 for who in runs}
    return {"runs": runs, "startup": startup, "profile": profile, "kubectl_kinds": dict(kinds),
            "pitstop_counts": p_counts, "sizes": sizes,
            "pitstop_summary": (work / "pitstop-0.err").read_text().strip().splitlines()[:3]}


# -- drains -------------------------------------------------------------------------------------

@dataclass
class DrainResult:
    seconds: float
    nodes: int
    evicted: int
    refusals: int  # 429 answers (budget exhausted) met and retried
    failed: list[str]
    violations: list[tuple[float, str, int, int]]
    samples: int
    extra: dict[str, Any] = field(default_factory=dict)


def kubectl_drains(cp: ControlPlane, nodes: list[str], namespaces: list[str],
                   timeout_s: int, work: Path) -> DrainResult:
    evicted = refusals = 0
    failed: list[str] = []
    per_node: list[float] = []
    with PdbWatch(cp, namespaces, interval=0.5) as watch:
        t0 = time.monotonic()
        for n in nodes:
            t1 = time.monotonic()
            res = cp.kubectl("drain", n, "--ignore-daemonsets", "--delete-emptydir-data",
                             f"--timeout={timeout_s}s", check=False, timeout=timeout_s + 60)
            per_node.append(time.monotonic() - t1)
            out = res.stdout + res.stderr
            (work / f"kubectl-drain-{n}.txt").write_text(out)
            if per_node[-1] > 30:
                log(f"  slow kubectl drain of {n}: {per_node[-1]:.1f} s; output in {work}")
            evicted += sum(1 for line in out.splitlines() if line.rstrip().endswith(" evicted"))
            refusals += out.count("will retry after")
            if res.returncode != 0:
                failed.append(f"{n}: {out.strip().splitlines()[-1:]}")
        took = time.monotonic() - t0
    return DrainResult(took, len(nodes), evicted, refusals, failed, watch.violations,
                       watch.samples, {"per_node_median": statistics.median(per_node),
                                       "per_node_max": max(per_node)})


def pitstop_drains(cp: ControlPlane, nodes: list[str], namespaces: list[str],
                   timeout_s: int, concurrency: int, poll_s: float) -> DrainResult:
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    c = backend.cluster
    opts = DrainOptions(ignore_daemonsets=True, delete_empty_dir_data=True, timeout_s=timeout_s)
    # one call of the executor's admission rule, timed, on the full observation
    obs0 = backend.observe(c)
    t = time.perf_counter()
    admits(obs0, nodes[1], [nodes[0]])
    may_start_s = time.perf_counter() - t
    pending = list(nodes)
    active: dict[str, Drainer] = {}
    finished: dict[str, Drainer] = {}
    observe_s: list[float] = []
    loops = max_active = 0
    waits_for_budget = 0
    admission_s = advance_s = 0.0
    with PdbWatch(cp, namespaces, interval=0.5) as watch:
        t0 = time.monotonic()
        while pending or active:
            loops += 1
            t1 = time.perf_counter()
            obs = backend.observe(c)
            observe_s.append(time.perf_counter() - t1)
            t2 = time.perf_counter()
            for n in list(pending):
                if len(active) >= concurrency:
                    break
                if not admits(obs, n, list(active)):
                    waits_for_budget += 1
                    continue
                pending.remove(n)
                backend.cordon(c, n, "bench")
                active[n] = Drainer(BackendEvictions(backend, c), n, opts,
                                    started=backend.clock.now())
            if not active and pending:  # the executor always makes progress
                n = pending.pop(0)
                backend.cordon(c, n, "bench")
                active[n] = Drainer(BackendEvictions(backend, c), n, opts,
                                    started=backend.clock.now())
            max_active = max(max_active, len(active))
            t3 = time.perf_counter()
            admission_s += t3 - t2
            for n, d in list(active.items()):
                if d.advance(obs).state is not DrainState.RUNNING:
                    finished[n] = active.pop(n)
                    took_n = backend.clock.now() - d.started
                    if took_n > 30:
                        log(f"  slow pitstop drain of {n}: {took_n:.1f} s; {d.status.message}")
            advance_s += time.perf_counter() - t3
            if time.monotonic() - t0 > timeout_s * 2:
                raise RuntimeError(f"pitstop drains not done after {timeout_s * 2} s")
            if pending or active:
                time.sleep(poll_s)
        took = time.monotonic() - t0
    backend.close()
    evictions = Counter(call.detail.split(": ", 1)[1] for call in backend.calls
                        if call.kind == "evict")
    failed = [f"{n}: {d.status.message}" for n, d in finished.items()
              if d.status.state is not DrainState.DONE]
    return DrainResult(
        took, len(nodes), sum(len(d.status.evicted) for d in finished.values()),
        evictions.get("budget-exhausted", 0) + evictions.get("BUDGET_EXHAUSTED", 0), failed,
        watch.violations, watch.samples,
        {"loops": loops, "observe_median": statistics.median(observe_s),
         "observe_max": max(observe_s), "observe_total": sum(observe_s),
         "admission_total": admission_s, "advance_total": advance_s, "max_active": max_active,
         "admission_waits": waits_for_budget, "executor_may_start_s": may_start_s,
         "eviction_answers": dict(evictions)})


def pick_drain_sets(lay: Layout, count: int) -> tuple[list[str], list[str]]:
    """``count`` nodes for kubectl and ``count`` others for pitstop, as many from each pool."""
    per_pool = max(1, count // lay.pools)
    a: list[str] = []
    b: list[str] = []
    for p in range(lay.pools):
        ns = [n for n in lay.nodes[p] if n not in lay.stateful]
        a += ns[:per_pool]
        b += ns[per_pool:2 * per_pool]
    return a[:count], b[:count]


# -- main ---------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--drain-nodes", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=20, help="pods per Deployment/StatefulSet")
    ap.add_argument("--rounds", type=int, default=3, help="inventory rounds per contender")
    ap.add_argument("--concurrency", type=int, default=10,
                    help="pitstop: nodes draining at once at most (the step's batch)")
    ap.add_argument("--poll", type=float, default=1.0, help="pitstop: seconds between loops")
    ap.add_argument("--drain-timeout", type=int, default=300, help="per node, both contenders")
    ap.add_argument("--setup-timeout", type=int, default=2400)
    ap.add_argument("--drain-statefulsets", action="store_true",
                    help="spread StatefulSets over every node (default: pinned to every fifth "
                         "node, which no drain picks; see the docstring)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the timed rounds, profile one pitstop inventory (cProfile) "
                         "and print its top N functions")
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--skip-inventory", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    lay = layout(args.nodes, args.pods, args.replicas, not args.drain_statefulsets)
    work = Path(tempfile.mkdtemp(prefix="pitstop-k8s-scale-"))
    figures: list[tuple[str, str]] = []
    log(f"machine: {os.cpu_count()} cores, load {loadavg()}; {args.nodes} nodes in {lay.pools} "
        f"pools, {lay.workloads} workloads + {lay.pools} DaemonSets = {lay.expected_pods} pods")
    cp = ControlPlane(default_version())
    t_setup = time.monotonic()
    try:
        cp.start()
        log(f"control plane {cp.git_version} up in {cp.startup_seconds:.1f} s")
        figures.append(("control plane start", f"{cp.startup_seconds:.1f} s"))

        t = time.monotonic()
        node_docs = [kwok_node(n, labels={POOL_LABEL: f"pool-{p}", **(
                         {STATEFUL_LABEL: "true"} if n in lay.stateful else {})},
                               kubelet=cp.version)
                     for p, names in lay.nodes.items() for n in names]
        apply_chunked(cp, node_docs)
        all_nodes = [n for names in lay.nodes.values() for n in names]
        wait_for(lambda: sum(node_ready(n) for n in cp.get("/api/v1/nodes")["items"])
                 >= len(all_nodes), 600, f"{len(all_nodes)} nodes Ready", interval=3.0)
        t_nodes = time.monotonic() - t
        log(f"{len(all_nodes)} nodes created and Ready in {t_nodes:.1f} s")

        t = time.monotonic()
        for ns in lay.namespaces:
            cp.kubectl("create", "namespace", ns)
        wait_for(lambda: all(cp.kubectl("get", "serviceaccount", "default", "-n", ns,
                                        check=False).returncode == 0
                             for ns in lay.namespaces), 120, "default service accounts")
        apply_chunked(cp, lay.docs)
        t_apply = time.monotonic() - t
        log(f"{len(lay.docs)} workloads and PDBs applied in {t_apply:.1f} s")
        t_pods = wait_all_ready(cp, lay, args.setup_timeout, "set-up")
        setup = time.monotonic() - t_setup
        log(f"all {lay.expected_pods} pods Ready, every PDB at full allowance, after "
            f"{t_pods:.1f} s; set-up total {setup:.1f} s")
        figures += [
            ("nodes created + Ready", f"{t_nodes:.1f} s ({len(all_nodes)} nodes)"),
            ("workloads + PDBs applied", f"{t_apply:.1f} s ({len(lay.docs)} objects)"),
            ("pods scheduled, Running, Ready", f"{t_pods:.1f} s ({lay.expected_pods} pods)"),
            ("set-up total", f"{setup:.1f} s (default QPS: nothing tuned)"),
        ]

        if not args.skip_inventory:
            log(f"inventory: {args.rounds} rounds each, alternating (load {loadavg()})")
            inv = bench_inventory(cp, args.rounds, work, args.profile)
            if inv["profile"]:
                log(f"cProfile of one more pitstop inventory (not timed):\n{inv['profile']}")
            med = {w: statistics.median(r.wall for r in rs) for w, rs in inv["runs"].items()}
            rss = {w: max(r.rss_mib for r in rs) for w, rs in inv["runs"].items()}
            ratio = med["pitstop"] / med["kubectl"]
            k = inv["kubectl_kinds"]
            pc = inv["pitstop_counts"]
            figures += [
                ("kubectl get nodes,pods,pdb -A -o json",
                 f"median {med['kubectl']:.2f} s of {args.rounds} "
                 f"({', '.join(f'{r.wall:.2f}' for r in inv['runs']['kubectl'])}), "
                 f"peak RSS {rss['kubectl']:.0f} MiB, {inv['sizes']['kubectl']:.1f} MiB out"),
                ("pitstop inventory -o json",
                 f"median {med['pitstop']:.2f} s of {args.rounds} "
                 f"({', '.join(f'{r.wall:.2f}' for r in inv['runs']['pitstop'])}), "
                 f"peak RSS {rss['pitstop']:.0f} MiB, {inv['sizes']['pitstop']:.1f} MiB out"),
                ("ratio pitstop/kubectl", f"{ratio:.2f} (target ≤ 1.5: "
                 f"{'met' if ratio <= 1.5 else 'MISSED'})"),
                ("pitstop CLI start-up (inventory --help)", f"{inv['startup'].wall:.2f} s, "
                 f"{inv['startup'].rss_mib:.0f} MiB (the kube client is imported later)"),
                ("kubectl listed", ", ".join(f"{n} {kind}" for kind, n in sorted(k.items()))),
                ("pitstop listed", "nodes, pods (not finished), Deployments, StatefulSets, "
                 "DaemonSets, ReplicaSets, Jobs, PDBs, /version, discovery and the served kinds "
                 "the API catalog names (API usage)"),
                ("pitstop's Fleet", f"{pc['nodes']} nodes in {pc['pools']} pools, "
                 f"{pc['workloads']} workloads, {pc['pdbs']} PDBs, {pc['api_usage']} "
                 "deprecated-API uses"),
            ]

        if not args.skip_drain:
            a, b = pick_drain_sets(lay, args.drain_nodes)
            held_a = pods_on_nodes(cp, a)
            log(f"kubectl: serial drain of {len(a)} nodes holding {sum(held_a.values())} pods "
                f"(load {loadavg()})")
            k = kubectl_drains(cp, a, lay.namespaces, args.drain_timeout, work)
            log(f"kubectl drains: {k.seconds:.1f} s, {k.evicted} evicted, {k.refusals} "
                f"429 retries, {len(k.violations)} violations, failed: {k.failed}")
            cp.kubectl("uncordon", *a, timeout=120)
            settle = wait_all_ready(cp, lay, 900, "settle after kubectl")
            log(f"settled in {settle:.1f} s")
            held_b = pods_on_nodes(cp, b)
            log(f"pitstop: drain of {len(b)} other nodes holding {sum(held_b.values())} pods, "
                f"at most {args.concurrency} at once (load {loadavg()})")
            p = pitstop_drains(cp, b, lay.namespaces, args.drain_timeout, args.concurrency,
                               args.poll)
            log(f"pitstop drains: {p.seconds:.1f} s, {p.evicted} evicted, {p.refusals} 429, "
                f"{len(p.violations)} violations, failed: {p.failed}; {p.extra}")
            cp.kubectl("uncordon", *b, timeout=120)
            figures += [
                (f"kubectl drain, serial, {k.nodes} nodes",
                 f"{k.seconds:.1f} s; {sum(held_a.values())} pods held, {k.evicted} evicted, "
                 f"{k.refusals} 429 retries, per node median {k.extra['per_node_median']:.1f} s "
                 f"/ max {k.extra['per_node_max']:.1f} s, failed {len(k.failed)}"),
                ("  PDB samples / violations", f"{k.samples} / {len(k.violations)}"),
                ("settle after kubectl (uncordon, all Ready)", f"{settle:.1f} s"),
                (f"pitstop Drainer, ≤{args.concurrency} at once, {p.nodes} other nodes",
                 f"{p.seconds:.1f} s; {sum(held_b.values())} pods held, {p.evicted} evicted, "
                 f"{p.refusals} 429 answers, at most {p.extra['max_active']} at once, "
                 f"failed {len(p.failed)}"),
                ("  PDB samples / violations", f"{p.samples} / {len(p.violations)}"),
                ("  loops / observe() median, max",
                 f"{p.extra['loops']} / {p.extra['observe_median']:.2f} s, "
                 f"{p.extra['observe_max']:.2f} s"),
                ("  time in observe / admission / advance",
                 f"{p.extra['observe_total']:.1f} s / {p.extra['admission_total']:.1f} s / "
                 f"{p.extra['advance_total']:.1f} s (advance: evictions, cordons; the rest "
                 f"is the {args.poll:g} s poll sleep)"),
                ("  the executor's admission rule, one call",
                 f"{p.extra['executor_may_start_s'] * 1000:.0f} ms"),
                ("drain speedup (kubectl serial / pitstop)",
                 f"{k.seconds / p.seconds:.1f}× at {len(k.violations) + len(p.violations)} "
                 "PDB violations"),
            ]
            if k.violations or p.violations:
                figures.append(("violations (first 5)", str((k.violations + p.violations)[:5])))
    finally:
        log("stopping the control plane")
        cp.stop()

    width = max(len(k) for k, _ in figures)
    print(f"\n{'':=<{width + 60}}\nk8s_scale: Kubernetes {cp.git_version}, {args.nodes} kwok "
          f"nodes, {lay.expected_pods} pods, {os.cpu_count()} cores, load now {loadavg()}")
    for k_, v in figures:
        print(f"{k_:<{width}}  {v}")


if __name__ == "__main__":
    main()
