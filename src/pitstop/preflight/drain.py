"""Checks of what a node drain will meet: disruption budgets and pods that drain refuses.

Semantics follow kubectl's ``pkg/drain`` and the eviction API (domain facts §5): a PDB whose
budget can never be positive makes every eviction of its pods answer 429 forever; a pod selected
by two PDBs makes the eviction API answer 500; drain refuses pods with ``emptyDir`` data unless
``--delete-emptydir-data`` and pods without a controller unless ``--force``. Users' most common
complaint about upgrade tools is a drain waiting forever on a PDB that nobody named (§9, 1–2):
every finding here names the budget and the pods.
"""

from __future__ import annotations

from collections.abc import Callable

from pitstop.model import PodDisruptionBudget, PoolPolicy
from pitstop.model.common import resolve_int_or_percent
from pitstop.model.fleet import Workload
from pitstop.preflight.context import ClusterContext, listed, objects
from pitstop.preflight.findings import Finding, Severity
from pitstop.preflight.placement import Pod

__all__ = [
    "check_empty_dir_data",
    "check_pdb_blocks_drain",
    "check_pdb_overlap",
    "check_single_replica_no_pdb",
    "check_unreplicated_pods",
    "pdb_disruptions_possible",
]


def _ref(pdb: PodDisruptionBudget) -> str:
    return f"{pdb.namespace}/{pdb.name}"


def _names(pods: list[Pod]) -> list[str]:
    return [p.name for p in pods]


def pdb_disruptions_possible(pdb: PodDisruptionBudget, expected_pods: int) -> int:
    """How many of its ``expected_pods`` pods ``pdb`` lets be disrupted when all are healthy.

    The disruption controller scales both fields against the expected pod count rounding *up*
    (``GetScaledValueFromIntOrPercent(..., true)``): ``minAvailable: 90%`` of 3 pods is 3.
    """
    if pdb.max_unavailable is not None:
        return resolve_int_or_percent(pdb.max_unavailable, expected_pods, round_up=True)
    assert pdb.min_available is not None  # the model requires one of the two
    floor = resolve_int_or_percent(pdb.min_available, expected_pods, round_up=True)
    return max(0, expected_pods - floor)


def check_pdb_blocks_drain(ctx: ClusterContext) -> list[Finding]:
    """``pdb-blocks-drain`` (blocking): a PDB that selects pods but can never allow one
    disruption (``maxUnavailable: 0``/``"0%"``, or ``minAvailable`` at or above the number of
    pods it selects, e.g. ``"100%"``). Every drain of a node running one of its pods would wait
    until the drain timeout. Names the PDB and its pods. A PDB that selects no pod blocks
    nothing and is not reported."""
    out: list[Finding] = []
    pl = ctx.placement
    for pdb in ctx.cluster.pod_disruption_budgets:
        expected = pl.pod_count_of_pdb(pdb)
        if expected == 0 or pdb_disruptions_possible(pdb, expected) > 0:
            continue
        pods = _names(pl.pods_of_pdb(pdb))
        if pdb.max_unavailable is not None:
            rule = f"maxUnavailable {pdb.max_unavailable}"
            fix = (f"Set maxUnavailable to at least 1 on {_ref(pdb)} (and run enough replicas to "
                   "absorb it) before the upgrade, or delete the PDB.")
        else:
            rule = f"minAvailable {pdb.min_available} of {expected} pod(s)"
            fix = (f"Lower minAvailable on {_ref(pdb)} below {expected} (or use maxUnavailable: "
                   f"1), or scale its workloads above {expected} replicas, before the upgrade.")
        out.append(ctx.finding(
            "pdb-blocks-drain", Severity.BLOCKING,
            f"PodDisruptionBudget {_ref(pdb)} ({rule}) never allows an eviction, so draining any "
            f"node that runs {listed(pods)} would wait until the drain times out.",
            fix,
            objects([_ref(pdb)], pods),
        ))
    return out


def check_pdb_overlap(ctx: ClusterContext) -> list[Finding]:
    """``pdb-overlap`` (blocking): pods selected by more than one PDB. The eviction API refuses
    such pods with a 500 ("more than one PodDisruptionBudget") and drain stops without retrying.
    One finding per distinct set of overlapping PDBs, naming them and the pods."""
    pl = ctx.placement
    groups: dict[tuple[str, ...], list[Workload]] = {}
    for w in ctx.cluster.workloads:
        pdbs = pl.pdbs_of(w)
        if len(pdbs) > 1 and pl.pod_count(w) > 0:
            groups.setdefault(tuple(sorted(_ref(b) for b in pdbs)), []).append(w)
    out: list[Finding] = []
    for refs, workloads in sorted(groups.items()):
        pods = [p.name for w in workloads for p in pl.pods_of(w)]
        out.append(ctx.finding(
            "pdb-overlap", Severity.BLOCKING,
            f"Pods {listed(pods)} are selected by {len(refs)} PodDisruptionBudgets "
            f"({listed(list(refs))}); the eviction API refuses them with an error and the drain "
            "of their nodes stops.",
            "Make the PDB selectors disjoint so each pod has exactly one budget: narrow the "
            f"matchLabels of {listed(list(refs[1:]))} or delete the redundant PDB.",
            objects(list(refs), pods),
        ))
    return out


def check_single_replica_no_pdb(ctx: ClusterContext) -> list[Finding]:
    """``single-replica-no-pdb`` (warning): a Deployment or StatefulSet with exactly one pod
    and no PDB. Drain evicts it without waiting, so it is down until its replacement is ready,
    once per upgrade of its node."""
    pl = ctx.placement
    out: list[Finding] = []
    for w in ctx.cluster.workloads:
        if w.kind not in ("Deployment", "StatefulSet") or pl.pod_count(w) != 1:
            continue
        if pl.pdbs_of(w):
            continue
        pods = _names(pl.pods_of(w))
        out.append(ctx.finding(
            "single-replica-no-pdb", Severity.WARNING,
            f"{w.kind} {w.namespace}/{w.name} runs a single pod ({pods[0]}) and has no "
            "PodDisruptionBudget: it is down from its eviction until the replacement pod is "
            "ready, during the drain of its node.",
            f"Run at least 2 replicas of {w.namespace}/{w.name} and add a PDB with "
            "maxUnavailable: 1; or accept a short outage during the upgrade.",
            objects([f"{w.namespace}/{w.name}"], pods),
        ))
    return out


def _split_by_pool_policy(ctx: ClusterContext, w: Workload, allowed: Callable[[PoolPolicy], bool]
                          ) -> tuple[list[str], list[str], set[str]]:
    """Scheduled pods of ``w`` split by whether their pool's policy allows what drain would
    otherwise refuse: (allowed pods, refused pods, pools of the refused pods)."""
    pl = ctx.placement
    yes: list[str] = []
    no: list[str] = []
    no_pools: set[str] = set()
    for pod in pl.pods_of(w):
        if pod.node is None:
            continue
        pool = pl.pool_of(pod.node).name
        if allowed(ctx.pool_policy(pool)):
            yes.append(pod.name)
        else:
            no.append(pod.name)
            no_pools.add(pool)
    return yes, no, no_pools


def check_empty_dir_data(ctx: ClusterContext) -> list[Finding]:
    """``empty-dir-data``: pods that keep data in ``emptyDir`` volumes. Blocking when the policy
    of their pool does not set ``deleteEmptyDirData`` (drain refuses them); a warning when it
    does (the data is deleted with the pod). DaemonSet pods are left alone by drain
    (``--ignore-daemonsets``) and are not reported; pending pods are on no node and are not
    reported."""
    out: list[Finding] = []
    for w in ctx.cluster.workloads:
        if not w.empty_dir or w.kind == "DaemonSet":
            continue
        deleted, refused, refused_pools = _split_by_pool_policy(
            ctx, w, lambda pp: pp.delete_empty_dir_data)
        ref = f"{w.namespace}/{w.name}"
        if refused:
            pools = sorted(refused_pools)
            out.append(ctx.finding(
                "empty-dir-data", Severity.BLOCKING,
                f"Pods {listed(refused)} of {w.kind} {ref} keep data in emptyDir volumes: drain "
                "refuses to evict them without --delete-emptydir-data, so draining their nodes "
                "fails.",
                f"Move the data of {ref} to a PersistentVolume, or, if it may be lost (a cache), "
                f"set deleteEmptyDirData: true in the pool policy of {listed(pools)}.",
                objects(refused),
            ))
        if deleted:
            out.append(ctx.finding(
                "empty-dir-data", Severity.WARNING,
                f"Pods {listed(deleted)} of {w.kind} {ref} keep data in emptyDir volumes and "
                "their pool policy sets deleteEmptyDirData: that data is lost when their nodes "
                "are drained.",
                f"Confirm the emptyDir data of {ref} is disposable, or move it to a "
                "PersistentVolume before the upgrade.",
                objects(deleted),
            ))
    return out


def check_unreplicated_pods(ctx: ClusterContext) -> list[Finding]:
    """``unreplicated-pod``: bare pods (kind ``Pod``, no controller). Drain refuses them without
    ``--force`` and nothing recreates them once deleted. Blocking unless the policy of their
    pool sets ``forceAfterDrainTimeout`` (then a warning: they are deleted for good)."""
    out: list[Finding] = []
    for w in ctx.cluster.workloads:
        if w.kind != "Pod":
            continue
        forced, blocked, blocked_pools = _split_by_pool_policy(
            ctx, w, lambda pp: pp.force_after_drain_timeout)
        if blocked:
            out.append(ctx.finding(
                "unreplicated-pod", Severity.BLOCKING,
                f"Pod {listed(blocked)} has no controller: drain refuses to delete it without "
                "--force, so the drain of its node fails.",
                f"Run it under a Deployment, StatefulSet or Job, or delete it before the upgrade; "
                f"or set forceAfterDrainTimeout: true in the pool policy of "
                f"{listed(sorted(blocked_pools))} to let it be deleted for good.",
                objects(blocked),
            ))
        if forced:
            out.append(ctx.finding(
                "unreplicated-pod", Severity.WARNING,
                f"Pod {listed(forced)} has no controller: with forceAfterDrainTimeout it is "
                "deleted when its node is drained and nothing recreates it.",
                "Run it under a Deployment, StatefulSet or Job, or recreate it by hand after "
                "the upgrade.",
                objects(forced),
            ))
    return out
