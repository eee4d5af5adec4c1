"""Built-in gate checks: pure functions of backend observations and health signals.

Each returns a :class:`~pitstop.gates.analysis.CheckResult`. The rule that runs through all of
them: a signal the backend could not read (left out, ``None``, NaN, a stale status) makes the
check **Error** — the check broke — never Failed. Failed needs evidence that the system is
unhealthy; when a check has both evidence of ill health and a missing signal, it is Failed and
its message names both. The gate providers (:mod:`~pitstop.gates.providers`) turn these
results into readings that the analysis judges, measured ``interval``/``count`` with limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from pitstop.backend.api import (
    ClusterObservation,
    HealthSignals,
    NodeObservation,
    PdbObservation,
    PodObservation,
)
from pitstop.gates.analysis import CheckResult, Phase
from pitstop.versions import VersionError, parse_version

__all__ = [
    "ETCD_DB_QUOTA_SHARE",
    "RUNTIMES",
    "addon_rolled_out",
    "apiserver_health",
    "canary_vs_baseline",
    "etcd_health",
    "nodes_ready",
    "pods_pending",
    "track_pending",
    "workloads_available",
]

RUNTIMES = frozenset({"containerd", "cri-o", "docker"})
ETCD_DB_QUOTA_SHARE = 0.8
"""An etcd member whose database uses this share of its quota or more fails the check."""

_SHOW = 5  # names listed in a message before "and N more"


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_SHOW])
    return shown + (f"; and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def _verdict(name: str, value: float | None, bad: list[str], missing: list[str],
             ok: str) -> CheckResult:
    """Failed on evidence, else Error on a missing signal, else Successful."""
    if bad:
        text = _listing(bad)
        if missing:
            text += f" (also unreadable: {_listing(missing)})"
        return CheckResult(name, Phase.FAILED, value, text, len(bad))
    if missing:
        return CheckResult(name, Phase.ERROR, value, "cannot tell: " + _listing(missing))
    return CheckResult(name, Phase.SUCCESSFUL, value, ok)


def _same_version(actual: str, expected: str) -> bool:
    """Equal as versions (``v1.34.2`` is ``1.34.2``); as text when either is not a version."""
    try:
        return parse_version(actual) == parse_version(expected)
    except VersionError:
        return actual.strip() == expected.strip()


def _reported(node: NodeObservation, component: str) -> tuple[str | None, str | None]:
    """``(version, problem)`` of a component as the node reports it; version None when the
    node does not report it (problem None then means: the signal is missing)."""
    if component in ("kubelet", "kube-proxy"):
        return node.version_of(component), None
    if component in RUNTIMES or component == "runtime":
        if component != "runtime" and node.runtime and node.runtime != component:
            return None, f"runs {node.runtime}, not {component}"
        return node.version_of(component), None
    return None, None


# -- nodes -------------------------------------------------------------------------------------


def nodes_ready(obs: ClusterObservation, nodes: Iterable[str],
                versions: Mapping[str, str]) -> CheckResult:
    """Every named node exists, is Ready, is not cordoned, and reports ``versions``
    (component → version: ``kubelet``, ``kube-proxy``, ``containerd``/``cri-o``/``docker``, or
    ``runtime`` for whichever runtime it runs). Value: the number of nodes not there yet."""
    names = list(nodes)
    bad: list[str] = []
    missing: list[str] = []
    behind: set[str] = set()
    for name in names:
        node = obs.node(name)
        if node is None:
            bad.append(f"{name}: not in the cluster")
            behind.add(name)
            continue
        issues = []
        if not node.ready:
            issues.append("not Ready")
        if node.unschedulable:
            issues.append("cordoned")
        for component, want in sorted(versions.items()):
            have, problem = _reported(node, component)
            if problem:
                issues.append(problem)
            elif have is None:
                missing.append(f"{name}: no {component} version reported")
                behind.add(name)
            elif not _same_version(have, want):
                issues.append(f"{component} {have} (want {want})")
        if issues:
            bad.append(f"{name}: {', '.join(issues)}")
            behind.add(name)
    wanted = ", ".join(f"{c} {v}" for c, v in sorted(versions.items()))
    ok = (f"{len(names)} node(s) Ready, uncordoned" + (f", at {wanted}" if wanted else "")
          if names else "no nodes to check")
    return _verdict("nodes-ready", float(len(behind)), bad, missing, ok)


# -- workloads ---------------------------------------------------------------------------------


def _selects(pdb: PdbObservation, pod: PodObservation) -> bool:
    return pdb.selects(pod.namespace, pod.labels)


def workloads_available(obs: ClusterObservation) -> CheckResult:
    """Every PDB holds: its ``current_healthy`` is at least ``desired_healthy`` (the floor the
    disruption controller computed from minAvailable/maxUnavailable). Names the workloads whose
    pods a PDB below its floor selects. A PDB whose status is stale (``observed_generation <
    generation``) cannot be read → Error. Value: the number of PDBs below their floor."""
    bad: list[str] = []
    missing: list[str] = []
    for pdb in sorted(obs.pdbs, key=lambda p: p.key):
        if pdb.observed_generation < pdb.generation:
            missing.append(f"PDB {pdb.key}: status not yet observed for generation "
                           f"{pdb.generation}")
            continue
        if pdb.current_healthy >= pdb.desired_healthy:
            continue
        workloads = sorted({p.workload for p in obs.pods if _selects(pdb, p)})
        who = ", ".join(workloads) if workloads else "no pods selected"
        bad.append(f"{who}: {pdb.current_healthy} healthy < {pdb.desired_healthy} required "
                   f"(PDB {pdb.key})")
    ok = (f"{len(obs.pdbs)} PDB(s) at or above their minimum" if obs.pdbs
          else "no PDBs: no minimum to hold")
    return _verdict("workloads-available", float(len(bad)), bad, missing, ok)


# -- pending pods ------------------------------------------------------------------------------


def _pending(obs: ClusterObservation) -> list[PodObservation]:
    return [p for p in obs.pods if p.phase == "Pending" and not p.deleting]


def track_pending(obs: ClusterObservation, since: Mapping[str, float]) -> dict[str, float]:
    """When each pod now Pending was first seen Pending (pod uid → observation time), carried
    over from ``since`` (the previous answer; empty at first). The observation carries no
    pending-since time, so the caller keeps this between observations."""
    return {p.uid: since.get(p.uid, obs.time) for p in _pending(obs)}


def pods_pending(obs: ClusterObservation, max_pending_s: float, *,
                 since: Mapping[str, float]) -> CheckResult:
    """No pod has been Pending longer than ``max_pending_s``, by ``since`` (from
    :func:`track_pending`; a pod not in it counts as first seen now). Value: the longest
    pending time in seconds."""
    ages = sorted(((obs.time - since.get(p.uid, obs.time), p) for p in _pending(obs)),
                  key=lambda a: (-a[0], a[1].key))
    longest = ages[0][0] if ages else 0.0
    bad = [f"{p.key} Pending for {age:.0f}s (limit {max_pending_s:g}s)"
           for age, p in ages if age > max_pending_s]
    ok = (f"{len(ages)} pod(s) Pending, the longest for {longest:.0f}s (limit "
          f"{max_pending_s:g}s)" if ages else "no pods Pending")
    return _verdict("pods-pending", longest, bad, [], ok)


# -- control plane -----------------------------------------------------------------------------


def apiserver_health(signals: HealthSignals, max_latency_ms: float) -> CheckResult:
    """Every apiserver instance answers its health check and latency is at most
    ``max_latency_ms``. Value: the latency in ms."""
    bad = [f"{inst}: health check failing" for inst, up in sorted(signals.apiserver_ok.items())
           if not up]
    missing: list[str] = []
    if not signals.apiserver_ok:
        missing.append("no apiserver health reported")
    latency = signals.apiserver_latency_ms
    if latency is None or math.isnan(latency):
        missing.append("no apiserver latency reported")
        latency = None
    elif latency > max_latency_ms:
        bad.append(f"latency {latency:g} ms > {max_latency_ms:g} ms")
    ok = (f"{len(signals.apiserver_ok)} apiserver(s) healthy, latency {latency:g} ms "
          f"(limit {max_latency_ms:g} ms)") if latency is not None else ""
    return _verdict("apiserver-health", latency, bad, missing, ok)


def etcd_health(signals: HealthSignals, previous_raft_index: int | None) -> CheckResult:
    """etcd is healthy: every member healthy, exactly one leader, the raft index advanced past
    ``previous_raft_index`` (skipped when None: the first look), no alarms, each database
    under 80% of its quota. Value: the highest raft index — pass it as
    ``previous_raft_index`` next time (and None after a snapshot restore)."""
    members = sorted(signals.etcd, key=lambda m: m.name)
    if not members:
        return CheckResult("etcd-health", Phase.ERROR, None,
                           "cannot tell: no etcd members reported")
    bad: list[str] = []
    missing: list[str] = []
    bad += [f"{m.name}: unhealthy" for m in members if not m.healthy]
    leaders = [m.name for m in members if m.leader]
    if not leaders:
        bad.append("no leader")
    elif len(leaders) > 1:
        bad.append(f"{len(leaders)} members claim to lead ({', '.join(leaders)})")
    index = max(m.raft_index for m in members)
    if previous_raft_index is not None and index <= previous_raft_index:
        bad.append(f"raft index did not advance ({previous_raft_index} → {index})")
    for m in members:
        if m.alarms:
            bad.append(f"{m.name}: alarm {', '.join(m.alarms)}")
        if m.quota <= 0:
            missing.append(f"{m.name}: no quota reported")
        elif m.db_size >= ETCD_DB_QUOTA_SHARE * m.quota:
            bad.append(f"{m.name}: database {m.db_size} bytes is "
                       f"{m.db_size / m.quota:.0%} of its quota {m.quota}")
    ok = (f"{len(members)} member(s) healthy, leader {leaders[0] if leaders else '?'}, "
          f"raft index {index}")
    return _verdict("etcd-health", float(index), bad, missing, ok)


# -- metrics -----------------------------------------------------------------------------------


def _metric(signals: HealthSignals, name: str) -> float | None:
    value = signals.metrics.get(name)
    return None if value is None or math.isnan(value) else value


def canary_vs_baseline(signals: HealthSignals, metric: str, max_ratio: float, *,
                       baseline: str | None = None, min_baseline: float = 0.0) -> CheckResult:
    """The canary's ``metric`` is at most ``max_ratio`` × the baseline's (metric
    ``baseline``, by default ``<metric>_baseline``), for metrics where higher is worse (error
    rate, latency). The ratio divides by ``max(baseline, min_baseline)``: set ``min_baseline``
    so that a canary at 0.01% errors against a baseline at 0% does not count as infinitely
    worse. Both zero → ratio 1. A missing or negative value → Error. Value: the ratio."""
    name = f"canary-vs-baseline:{metric}"
    base_name = baseline or f"{metric}_baseline"
    canary, base = _metric(signals, metric), _metric(signals, base_name)
    missing = [f"no {n} reported" for n, v in ((metric, canary), (base_name, base)) if v is None]
    if canary is None or base is None:
        return CheckResult(name, Phase.ERROR, None, "cannot tell: " + "; ".join(missing))
    if canary < 0 or base < 0:
        return CheckResult(name, Phase.ERROR, None,
                           f"cannot tell: negative values ({metric} {canary:g}, "
                           f"{base_name} {base:g})")
    denominator = max(base, min_baseline)
    # both zero: the same; only the canary above zero: infinitely worse
    ratio = canary / denominator if denominator else (1.0 if canary == 0 else math.inf)
    shown = f"{metric} {canary:g} vs {base_name} {base:g}: ratio {ratio:.3g}, limit {max_ratio:g}"
    worse = ratio > max_ratio
    return CheckResult(name, Phase.FAILED if worse else Phase.SUCCESSFUL, ratio, shown,
                       int(worse))


# -- add-ons -----------------------------------------------------------------------------------


def addon_rolled_out(obs: ClusterObservation, addon: str, version: str) -> CheckResult:
    """The add-on reports ``version``. An add-on the observation does not report at all cannot
    be judged → Error. Value: none."""
    have = obs.addons.get(addon)
    if have is None:
        return _verdict("addon-rolled-out", None, [], [f"no version reported for {addon}"], "")
    bad = [] if _same_version(have, version) else [f"{addon} reports {have}, want {version}"]
    return _verdict("addon-rolled-out", None, bad, [], f"{addon} reports {have}")
