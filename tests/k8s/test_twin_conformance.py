"""Twin ↔ real conformance: the same upgrade scenarios, run through the same ``Executor`` on
the rehearsal twin and on the real control plane (kwok nodes), give the same observable
outcomes.

Each :class:`Scenario` is written once: nodes (one pool, kubelet version, size), workloads
(Deployments, StatefulSets, DaemonSets with replicas, pinned to the pool by node selector),
PDBs, the pool policy, custom gates and the target. It is then

* materialised on the real control plane: kwok nodes, the objects, wait until every pod is
  Running and Ready and every PDB observed; the pods' placement (the real scheduler's choice)
  is read back, and
* materialised as *one* ``Fleet`` with that placement (``Workload.nodes``): the plan is made
  once from it; the real run executes it with ``KubeBackend`` + ``KwokNodeUpgrader`` +
  ``pod_readiness_metrics``, the twin runs (``Twin.create`` of the same fleet, once with the
  default durations and once with durations like this kwok cluster's) execute it too, under
  the same run id, so the names the executor makes (replacement nodes) are the same.

What is compared is what an operator observes, never when it happened:

* the run's status and its reason (normalised: run paths and pod names → workload names);
* per (step, node) the journal's actions with repeats collapsed (cordon, evict, upgrade of each
  component, uncordon, replace-add/ready/remove, node-done), and the order the nodes started;
* per (step, node) the pods evicted, counted by workload; the workloads whose evictions met a
  429 (budget exhausted) at least once — the real cluster's are a subset of the twin's (the
  named difference "429 timing", below), and a budget that allows nothing refuses on both;
* the final nodes: versions, Ready, cordoned, the ``pitstop.dev/cordoned`` annotation;
* the pods at the end, once settled: Running and Ready, counted by workload;
* no PDB ever below its floor (real: :class:`~.kubelib.PdbWatch` sampling all along; twin:
  ``check_invariants`` after every simulated event).

Placement is made deterministic by the scenarios, not by the comparison: the twin's scheduler
takes the first node by name, the real one scores nodes and breaks ties at random, so a
scenario leaves every evicted pod exactly one node to go to (two nodes, drained one at a time;
or nodes whose CPU fits only the pods they have). See "twin vs real" in docs/rehearsal.md for
the differences that remain (and which are asserted below, by name).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness.controlplane import ControlPlane

from pitstop.backend import Backend
from pitstop.catalog import load_catalog
from pitstop.executor.core import Executor
from pitstop.executor.nodes import CORDON_ANNOTATION
from pitstop.executor.run import RunDir, create_run, new_run_id
from pitstop.kube import KubeBackend, KwokNodeUpgrader, pod_readiness_metrics
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.planner.plan import Plan
from pitstop.twin import Twin, TwinTimings

from .kubelib import (
    POOL_LABEL,
    PdbWatch,
    apply,
    daemonset,
    deployment,
    kwok_node,
    pdb,
    pods,
    quiet_cluster,
    statefulset,
    wait_for,
    wait_settled,
)

pytestmark = pytest.mark.k8s

OLD_KUBELET = "1.35.4"  # one minor behind the apiserver: the plan has node steps
RUNTIME = "2.2.9"  # kwok_node's containerd; supports both kubelet minors
CPU = {"Deployment": "100m", "StatefulSet": "100m", "DaemonSet": "10m"}  # kubelib's requests

# Durations like this kwok cluster's (pods start and stop in about a second, a kwok "restart"
# takes KwokNodeUpgrader.restart_seconds): the twin rehearsing *this* cluster.
KWOK_TIMINGS = TwinTimings(node_restart=(1.0, 2.0), kube_proxy_restart=(1.0, 2.0),
                           pod_termination=(0.5, 1.5), pod_startup=(0.5, 2.0),
                           node_provisioning=(0.5, 2.0), node_removal=(0.2, 1.0))
TWIN_TIMINGS = {"default": TwinTimings(), "kwok": KWOK_TIMINGS}


# -- scenarios ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Wl:
    kind: str  # Deployment | StatefulSet | DaemonSet
    name: str
    replicas: int = 0  # ignored for a DaemonSet


@dataclass(frozen=True)
class Budget:
    name: str
    app: str
    min_available: int | None = None
    max_unavailable: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    nodes: int
    workloads: tuple[Wl, ...]
    pdbs: tuple[Budget, ...]
    pool: dict[str, Any]  # the PoolPolicy (canaryNodes 0: no 3-minute canary analysis)
    status: str  # expected on both: completed | paused | rolled-back
    reason: str  # a phrase the (normalised) reason holds on both
    refused: frozenset[str]  # workloads whose evictions the twin meets a 429 for
    refused_always: frozenset[str] = frozenset()  # ... and the real cluster too, whatever
    #                                               the timing (a budget that allows nothing)
    gates: tuple[dict[str, Any], ...] = ()
    node_cpu: str = "32"
    packed: bool = False  # every pod starts on the first node (the others cordoned meanwhile)
    upgraded: bool = True  # the pool ends at the target versions


WEB_DB_AGENT = (Wl("Deployment", "web", 4), Wl("StatefulSet", "db", 2), Wl("DaemonSet", "agent"))
IN_PLACE = {"strategy": "in-place", "maxUnavailable": 1, "canaryNodes": 0, "soak": "PT0S",
            "canarySoak": "PT0S", "drainTimeout": "PT5M"}

SCENARIOS = [
    # 1) in-place drain of a pool under a maxUnavailable and a minAvailable PDB. Two nodes
    #    drained one at a time: every evicted pod has exactly one node to go to.
    Scenario("drain", 2, WEB_DB_AGENT,
             (Budget("web", "web", max_unavailable=1), Budget("db", "db", min_available=1)),
             IN_PLACE, "completed", "every step done and every gate passed",
             frozenset({"web", "db"})),
    # 2) a PDB that allows nothing (minAvailable = replicas): the drain of the first node
    #    times out, the run pauses naming the PDB and its pods; api (its own budget) goes.
    Scenario("blocked", 2, (Wl("Deployment", "web", 2), Wl("Deployment", "api", 1),
                            Wl("DaemonSet", "agent")),
             (Budget("web", "web", min_available=2), Budget("api", "api", max_unavailable=1)),
             {**IN_PLACE, "drainTimeout": "PT40S"}, "paused",
             "held by PodDisruptionBudget(s) tc-blocked/web", frozenset({"web"}),
             refused_always=frozenset({"web"}), packed=True, upgraded=False),
    # 3) replace: AddNode at the target, drain the old node, RemoveNode; one at a time. Each
    #    node's CPU (250m) fits two web pods and the agent: the evicted pods fit on the new
    #    node only.
    Scenario("replace", 2, (Wl("Deployment", "web", 4), Wl("DaemonSet", "agent")),
             (Budget("web", "web", max_unavailable=1),),
             {**IN_PLACE, "strategy": "replace", "maxSurge": 1}, "completed",
             "every step done and every gate passed", frozenset({"web"}), node_cpu="250m"),
    # 4) rollback: a policy gate on a metric neither backend reports (a Prometheus query
    #    pitstop has no source for here) is an Error on both after the step → the wave is
    #    rolled back, each node drained again and returned to its kubelet.
    Scenario("rollback", 2, (Wl("Deployment", "web", 2), Wl("DaemonSet", "agent")),
             (Budget("web", "web", max_unavailable=1),), IN_PLACE, "rolled-back",
             "p99-latency Error (5 errors in a row; last: cannot tell: no latency_p99_ms "
             "reported)", frozenset({"web"}),
             gates=({"name": "p99-latency", "metric": "latency_p99_ms",
                     "condition": "result < 500", "phases": ["nodes"], "interval": "2s",
                     "count": 3},), upgraded=False),
]


def _node_names(s: Scenario) -> list[str]:
    return [f"tc-{s.name}-{i}" for i in range(s.nodes)]


def _pool(s: Scenario) -> str:
    return f"tc-{s.name}"


# -- what is compared ---------------------------------------------------------------------

@dataclass
class Outcome:
    status: str
    reason: str
    node_order: list[str]  # "step node", by first action
    actions: dict[str, list[str]]  # "step node" → journal actions, repeats collapsed
    evicted: dict[str, dict[str, int]]  # "step node" → workload → accepted evictions
    refused: set[str]  # workloads whose eviction met a 429
    nodes: dict[str, tuple[Any, ...]]  # name → (kubelet, kube-proxy, runtime, Ready,
    #                                     cordoned, annotation)
    pods: dict[str, int] = field(default_factory=dict)  # workload → Running and Ready pods
    pdb_violations: list[str] = field(default_factory=list)

    def comparable(self) -> dict[str, Any]:
        """Everything but ``refused`` (compared apart: see "429 timing")."""
        return {k: v for k, v in vars(self).items() if k != "refused"}


def _workload_of(pod: str, names: list[str]) -> str:
    """``web-7d9c-x2x`` / ``web-0`` / ``db-1`` → ``web`` / ``db`` (pod names differ between
    the twin and the real controllers; the workload does not)."""
    hits = [w for w in names if pod == w or pod.startswith(w + "-")]
    return max(hits, key=len) if hits else pod


def _normalise(text: str, run: RunDir, ns: str, names: list[str]) -> str:
    text = text.replace(str(run.path), "RUN")
    return re.sub(rf"{re.escape(ns)}/([a-z0-9][-a-z0-9.]*)",
                  lambda m: f"{ns}/{_workload_of(m.group(1), names)}", text)


def _journal(run: RunDir, names: list[str]) -> tuple[list[str], dict[str, list[str]],
                                                     dict[str, dict[str, int]], set[str]]:
    order: list[str] = []
    actions: dict[str, list[str]] = {}
    evicted: dict[str, Counter[str]] = {}
    refused: set[str] = set()
    for a in run.journal.actions():
        if a.kind in ("operation", "operation-done"):
            continue  # control-plane operations: none in these plans
        key = f"{a.step_id} {a.target}"
        if key not in actions:
            order.append(key)
        label = a.kind
        if a.kind == "upgrade":
            label = f"upgrade {a.detail['component']} {a.detail['to']}"
        seq = actions.setdefault(key, [])
        if not seq or seq[-1] != label:
            seq.append(label)
        if a.kind == "evict":
            workload = _workload_of(str(a.detail["pod"]).split("/", 1)[1], names)
            if a.outcome == "evicted":
                evicted.setdefault(key, Counter())[workload] += 1
            elif a.outcome == "budget-exhausted":
                refused.add(workload)
    return order, actions, {k: dict(v) for k, v in evicted.items()}, refused


def _outcome(run: RunDir, result: Any, backend: Backend, cluster: str, ns: str,
             names: list[str], pool: str) -> Outcome:
    order, actions, evicted, refused = _journal(run, names)
    obs = backend.observe(cluster)
    nodes = {n.name: (n.kubelet, n.kube_proxy, n.runtime_version, n.ready, n.unschedulable,
                      "paused" if "paused" in n.annotations.get(CORDON_ANNOTATION, "")
                      else n.annotations.get(CORDON_ANNOTATION))
             for n in obs.nodes if n.pool == pool}
    return Outcome(result.status, _normalise(result.reason, run, ns, names), order, actions,
                   evicted, refused, nodes)


def _settled_pods(obs: Any, ns: str, pool_nodes: set[str]) -> dict[str, int] | None:
    """Workload → pods Running and Ready on a node of the pool, once nothing else is left
    (no pod pending, deleting, unready, or on a node that is gone); else None."""
    mine = [p for p in obs.pods if p.namespace == ns]
    if any(p.deleting or not p.ready or p.phase != "Running" or p.node not in pool_nodes
           for p in mine):
        return None
    return dict(Counter(p.workload.split("/", 1)[1] for p in mine))


# -- the two sides ----------------------------------------------------------------------------

def _materialise_real(cp: ControlPlane, scratch: Any, s: Scenario
                      ) -> tuple[str, dict[str, list[str]]]:
    """Nodes and objects on the real cluster, settled; returns the namespace and where the
    real scheduler put each workload's pods (by pod name: StatefulSet ordinals in order)."""
    pool = {POOL_LABEL: _pool(s)}
    names = _node_names(s)
    docs = []
    for i, name in enumerate(names):
        doc = kwok_node(name, labels=pool, kubelet=OLD_KUBELET, runtime=RUNTIME,
                        unschedulable=s.packed and i > 0)
        for k in ("allocatable", "capacity"):
            doc["status"][k]["cpu"] = s.node_cpu
        docs.append(doc)
    scratch.add_nodes(docs)
    for name in names:  # kwok keeps the size given (the tight nodes rely on it)
        got = cp.get(f"/api/v1/nodes/{name}")["status"]["allocatable"]["cpu"]
        assert got == s.node_cpu, (name, got)
    ns = scratch.namespace(_pool(s))
    objs: list[dict[str, Any]] = []
    for w in s.workloads:
        if w.kind == "Deployment":
            objs.append(deployment(ns, w.name, w.replicas, pool))
        elif w.kind == "StatefulSet":
            objs.append(statefulset(ns, w.name, w.replicas, pool))
        else:
            objs.append(daemonset(ns, w.name, pool))
    objs += [pdb(ns, b.name, {"app": b.app}, min_available=b.min_available,
                 max_unavailable=b.max_unavailable) for b in s.pdbs]
    apply(cp, objs)
    expected = sum(s.nodes if w.kind == "DaemonSet" else w.replicas for w in s.workloads)
    wait_settled(cp, ns, expected)
    if s.packed:
        cp.kubectl("uncordon", *names[1:])
    placement: dict[str, list[str]] = {}
    for p in sorted(pods(cp, ns), key=lambda p: _ordinal_key(p["metadata"]["name"])):
        app = p["metadata"]["labels"]["app"]
        placement.setdefault(app, []).append(p["spec"]["nodeName"])
    return ns, placement


def _ordinal_key(name: str) -> tuple[str, int]:
    base, _, tail = name.rpartition("-")
    return (base, int(tail)) if tail.isdigit() else (name, 0)


def _fleet(s: Scenario, cluster: str, apiservers: dict[str, str], controllers: tuple[str, str],
           ns: str, placement: dict[str, list[str]]) -> Fleet:
    """The scenario as a Fleet, with the placement the real scheduler chose."""
    pool = _pool(s)
    nodes = [{"name": n, "kubelet": OLD_KUBELET, "kubeProxy": OLD_KUBELET,
              "containerRuntime": {"name": "containerd", "version": RUNTIME},
              "allocatable": {"cpu": s.node_cpu, "memory": "256Gi", "pods": 110}}
             for n in _node_names(s)]
    workloads = []
    for w in s.workloads:
        doc: dict[str, Any] = {"kind": w.kind, "name": w.name, "namespace": ns,
                               "labels": {"app": w.name}, "nodePool": pool,
                               "requests": {"cpu": CPU[w.kind], "memory": "64Mi"}}
        if w.kind != "DaemonSet":
            doc["replicas"] = w.replicas
            doc["nodes"] = placement[w.name]
        workloads.append(doc)
    budgets = [{"name": b.name, "namespace": ns, "selector": {"matchLabels": {"app": b.app}},
                **({"minAvailable": b.min_available} if b.min_available is not None else {}),
                **({"maxUnavailable": b.max_unavailable} if b.max_unavailable is not None
                   else {})} for b in s.pdbs]
    return Fleet.model_validate({
        "apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet", "metadata": {"name": "tc"},
        "spec": {"clusters": [{
            "name": cluster, "environment": "staging",
            "controlPlane": {"apiServers": [{"name": k, "version": v}
                                            for k, v in apiservers.items()],
                             "controllerManager": {"version": controllers[0]},
                             "scheduler": {"version": controllers[1]}},
            "nodePools": [{"name": pool, "labels": {POOL_LABEL: pool}, "nodes": nodes}],
            "workloads": workloads, "podDisruptionBudgets": budgets}]}})


def _run_real(cp: ControlPlane, scratch: Any, s: Scenario, plan: Plan, policy: UpgradePolicy,
              root: Path, run_id: str, cluster: str, ns: str, names: list[str]) -> Outcome:
    run = create_run(root, plan, policy, {cluster: {"name": cluster}},
                     {"kind": "kube", "kubeconfig": str(cp.kubeconfig), "state": "kube.json"},
                     run_id=run_id)
    backend = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader(restart_seconds=1.0),
                          state_file=run.path / "kube.json", metrics=pod_readiness_metrics)
    try:
        with PdbWatch(cp, [ns]) as watch:
            result = Executor(run, backend, poll_s=1.0).execute()
            outcome = _outcome(run, result, backend, cluster, ns, names, _pool(s))
            obs = backend.observe(cluster)
            orphans = [p.name for p in obs.pods if p.namespace == ns and p.node is not None
                       and obs.node(p.node) is None]
            print(f"\n{s.name}: real pods left on removed nodes at the end: {orphans}")

            def settled() -> dict[str, int] | None:
                obs = backend.observe(cluster)
                return _settled_pods(obs, ns, {n.name for n in obs.nodes
                                               if n.pool == _pool(s)})
            # a removed node's DaemonSet pod goes with the pod garbage collector (see the
            # docs: "twin vs real"), so this wait is bounded generously
            outcome.pods = wait_for(settled, 120, f"pods of {ns} settled",
                                    describe=lambda: [(p.name, p.node, p.phase, p.ready,
                                                       p.deleting) for p in
                                                      backend.observe(cluster).pods
                                                      if p.namespace == ns])
        assert watch.samples > 20, watch.samples
        outcome.pdb_violations = [f"{v[1]}: {v[2]} < {v[3]}" for v in watch.violations]
    finally:
        made = cp.get(f"/api/v1/nodes?labelSelector={POOL_LABEL}%3D{_pool(s)}")["items"]
        scratch.nodes.extend(sorted({n["metadata"]["name"] for n in made}
                                    - set(scratch.nodes)))  # replacements, for the cleanup
        backend.close()
        run.close()
    return outcome


def _run_twin(fleet: Fleet, s: Scenario, plan: Plan, policy: UpgradePolicy, root: Path,
              run_id: str, cluster: str, ns: str, names: list[str], timings: TwinTimings
              ) -> Outcome:
    run = create_run(root, plan, policy, {cluster: {"name": cluster}},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1}, run_id=run_id)
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite", timings=timings,
                       start=datetime.now(UTC).timestamp())
    violations: list[str] = []
    twin.subscribe(lambda: violations.extend(str(v) for v in twin.check_invariants()))
    try:
        result = Executor(run, twin, poll_s=1.0).execute()
        outcome = _outcome(run, result, twin, cluster, ns, names, _pool(s))
        # Named difference "pods of a removed node" (docs/rehearsal.md, twin vs real): the
        # twin removes a node with its pods; the real cluster leaves a removed node's
        # DaemonSet pod to the pod garbage collector (printed by _run_real; gone after its
        # quarantine, which _run_real waits for before counting the pods).
        obs = twin.observe(cluster)
        assert not [p.name for p in obs.pods if p.node is not None and obs.node(p.node) is None]
        end = twin.clock.now() + 3600
        while (nxt := twin.next_event_time()) is not None and nxt <= end:
            twin.clock.sleep(nxt - twin.clock.now())
        obs = twin.observe(cluster)
        settled = _settled_pods(obs, ns, {n.name for n in obs.nodes if n.pool == _pool(s)})
        assert settled is not None, [(p.name, p.node, p.phase, p.ready, p.deleting)
                                     for p in obs.pods]
        outcome.pods = settled
        outcome.pdb_violations = sorted(set(violations))
    finally:
        twin.close()
        run.close()
    return outcome


# -- the test ---------------------------------------------------------------------------------

@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_twin_and_real_give_the_same_outcome(s: Scenario, control_plane: ControlPlane,
                                             scratch: Any, tmp_path: Path) -> None:
    cp = control_plane
    quiet_cluster(cp)
    ns, placement = _materialise_real(cp, scratch, s)
    names = [w.name for w in s.workloads]

    probe = KubeBackend(str(cp.kubeconfig), None, KwokNodeUpgrader())
    cluster = probe.cluster
    obs = probe.observe(cluster)
    probe.close()
    version = cp.get("/version")["gitVersion"].removeprefix("v")
    fleet = _fleet(s, cluster, obs.apiservers, (obs.controller_manager, obs.scheduler), ns,
                   placement)
    seen = {n.name: (n.kubelet, n.kube_proxy, n.runtime_version) for n in obs.nodes
            if n.pool == _pool(s)}  # the fleet says what the cluster runs
    assert seen == dict.fromkeys(_node_names(s), (OLD_KUBELET, OLD_KUBELET, RUNTIME)), seen
    policy = UpgradePolicy.model_validate({"metadata": {"name": "tc"}, "spec": {
        "pools": [{"pools": [_pool(s)], **s.pool}], "gates": list(s.gates)}})
    target = UpgradeTarget.model_validate({"spec": {"versions": {"kubernetes": version}}})
    plan = make_plan(fleet, target, policy, load_catalog(), now=datetime.now(UTC))
    assert [st.action for st in plan.steps] == ["upgrade-nodes"], (plan.steps, plan.findings)
    if s.name == "blocked":  # preflight foresaw it
        assert any(f.code == "pdb-blocks-drain" for f in plan.findings), plan.findings

    run_id = new_run_id()
    real = _run_real(cp, scratch, s, plan, policy, tmp_path / "real", run_id, cluster, ns,
                     names)
    twins = {label: _run_twin(fleet, s, plan, policy, tmp_path / f"twin-{label}", run_id,
                              cluster, ns, names, timings)
             for label, timings in TWIN_TIMINGS.items()}
    print(f"\n{s.name}: real {real.comparable()} refused {real.refused}")

    # the scenario's expectations hold for the real cluster (so that two equal but wrong
    # outcomes cannot pass) ...
    assert real.status == s.status, real.reason
    assert s.reason in real.reason, real.reason
    assert s.refused_always <= real.refused, real.refused
    assert real.pdb_violations == [], real.pdb_violations
    want = (version, version, RUNTIME) if s.upgraded else (OLD_KUBELET, OLD_KUBELET, RUNTIME)
    assert {v[:3] for v in real.nodes.values()} == {want}, real.nodes
    assert all(v[3] for v in real.nodes.values()), real.nodes  # every node Ready
    wanted = {w.name: len(real.nodes) if w.kind == "DaemonSet" else w.replicas
              for w in s.workloads}
    assert real.pods == wanted, real.pods
    if s.pool.get("strategy") == "replace":
        assert not set(real.nodes) & set(_node_names(s)), real.nodes  # all replaced
        assert len(real.nodes) == s.nodes
    # ... and the twin, rehearsing the same plan, observes the same things
    for label, twin in twins.items():
        print(f"{s.name}: twin ({label}) {twin.comparable()}")
        assert twin.refused == s.refused, (label, twin.refused)
        # Named difference "429 timing" (docs/rehearsal.md, twin vs real): the drain evicts a
        # node's pods one call after another. The twin answers them all at one virtual
        # instant, so the second pod under a one-disruption budget always meets a 429. On the
        # real cluster ~50 ms pass between the calls, and kwok's replacement pod can be
        # scheduled, Ready and counted by the disruption controller in that time (seen: two
        # evictions 0.11 s apart both accepted), so the 429 may not come. Every 429 the real
        # cluster meets, the twin meets too; a budget that allows nothing refuses on both.
        assert real.refused <= twin.refused, (label, real.refused, twin.refused)
        assert twin.comparable() == real.comparable(), (label, _diff(twin, real))


def _diff(twin: Outcome, real: Outcome) -> dict[str, tuple[Any, Any]]:
    t, r = twin.comparable(), real.comparable()
    return {k: (t[k], r[k]) for k in t if t[k] != r[k]}
