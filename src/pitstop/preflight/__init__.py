"""Preflight: what is wrong with a fleet *before* anything is upgraded.

Pure functions: no I/O, no clock (the caller passes ``now``). :func:`run_preflight` runs every
check on every cluster and returns the findings sorted blocking first, then by cluster and code.
Each check is a function of a :class:`ClusterContext` and can be run alone.

Finding codes (stable; severity in brackets):

=========================  ==================================================================
``pdb-blocks-drain``       [blocking] a PDB can never allow a disruption; names PDB and pods
``pdb-overlap``            [blocking] a pod is selected by more than one PDB (eviction → 500)
``single-replica-no-pdb``  [warning] one-pod Deployment/StatefulSet without PDB: downtime
``empty-dir-data``         [blocking; warning with ``deleteEmptyDirData``] emptyDir pods
``unreplicated-pod``       [blocking; warning with ``forceAfterDrainTimeout``] bare pods
``capacity-shortfall``     [blocking] the biggest drain batch's pods do not fit elsewhere
``capacity-unknown``       [info] nodes without allocatable/capacity, counted as unlimited
``end-of-life``            [warning] Kubernetes minor or containerd line past end of life
``runtime-unsupported``    [warning] runtime version not supported for the kubelet's minor
``runtime-unknown``        [info] the catalog knows nothing of the runtime line
``known-bad-running``      [warning] a component runs a known-bad version
``skew-violation``         [blocking] the current versions already break the skew policy
=========================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pitstop.catalog import Catalog
from pitstop.model import Cluster, Fleet, UpgradePolicy
from pitstop.preflight.capacity import check_capacity
from pitstop.preflight.context import ClusterContext
from pitstop.preflight.drain import (
    check_empty_dir_data,
    check_pdb_blocks_drain,
    check_pdb_overlap,
    check_single_replica_no_pdb,
    check_unreplicated_pods,
)
from pitstop.preflight.findings import Finding, Severity
from pitstop.preflight.placement import Placement, Pod, place
from pitstop.preflight.versions import (
    check_end_of_life,
    check_known_bad_running,
    check_runtime_support,
    check_skew,
)

__all__ = [
    "CHECKS",
    "ClusterContext",
    "Finding",
    "Placement",
    "Pod",
    "Severity",
    "check_capacity",
    "check_empty_dir_data",
    "check_end_of_life",
    "check_known_bad_running",
    "check_pdb_blocks_drain",
    "check_pdb_overlap",
    "check_runtime_support",
    "check_single_replica_no_pdb",
    "check_skew",
    "check_unreplicated_pods",
    "place",
    "preflight_cluster",
    "run_preflight",
    "sort_findings",
]

Check = Callable[[ClusterContext], list[Finding]]

#: Every check, in the order they run.
CHECKS: tuple[Check, ...] = (
    check_pdb_blocks_drain,
    check_pdb_overlap,
    check_single_replica_no_pdb,
    check_empty_dir_data,
    check_unreplicated_pods,
    check_capacity,
    check_end_of_life,
    check_runtime_support,
    check_known_bad_running,
    check_skew,
)

_RANK = {Severity.BLOCKING: 0, Severity.WARNING: 1, Severity.INFO: 2}


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Blocking first, then warnings, then info; within a severity by cluster, code, objects."""
    return sorted(findings, key=lambda f: (_RANK[f.severity], f.cluster, f.code, f.objects,
                                           f.message))


def preflight_cluster(cluster: Cluster, policy: UpgradePolicy, catalog: Catalog,
                      now: datetime) -> list[Finding]:
    """Every check on one cluster, unsorted."""
    ctx = ClusterContext(cluster, policy, catalog, now)
    return [f for check in CHECKS for f in check(ctx)]


def run_preflight(fleet: Fleet, policy: UpgradePolicy, catalog: Catalog,
                  now: datetime) -> list[Finding]:
    """Run every check on every cluster of ``fleet``; findings sorted by :func:`sort_findings`.
    ``policy`` supplies the pool policies (disruption batch, surge, emptyDir and force flags);
    pass ``UpgradePolicy(metadata=Metadata(name="default"))`` for the defaults."""
    findings: list[Finding] = []
    for cluster in fleet.spec.clusters:
        findings.extend(preflight_cluster(cluster, policy, catalog, now))
    return sort_findings(findings)
