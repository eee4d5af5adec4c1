"""What every preflight check of one cluster reads, computed once and shared."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pitstop.catalog import Catalog
from pitstop.catalog.rules import ClusterVersions
from pitstop.model import Cluster, NodePool, PoolPolicy, UpgradePolicy
from pitstop.model.fleet import Workload
from pitstop.preflight.findings import Finding, Severity
from pitstop.preflight.placement import Placement

__all__ = ["ClusterContext", "Resources", "fmt_cpu", "fmt_memory", "listed", "objects"]

Resources = tuple[int, int, int]  # millicores, bytes, pods

#: How many names a message lists before "and N more".
MESSAGE_NAMES = 5
#: How many names a finding's ``objects`` carries before "…".
OBJECT_NAMES = 100


class ClusterContext:
    """One cluster with the policy, catalog and instant it is checked against; the placement
    and version state are computed on first use and shared by every check."""

    __slots__ = ("_demand", "_placement", "_versions", "catalog", "cluster", "now", "policy")

    def __init__(self, cluster: Cluster, policy: UpgradePolicy, catalog: Catalog,
                 now: datetime) -> None:
        self.cluster = cluster
        self.policy = policy
        self.catalog = catalog
        self.now = now
        self._placement: Placement | None = None
        self._versions: ClusterVersions | None = None
        self._demand: dict[int, Resources] = {}

    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = Placement(self.cluster)
        return self._placement

    @property
    def versions(self) -> ClusterVersions:
        if self._versions is None:
            self._versions = ClusterVersions.from_cluster(self.cluster)
        return self._versions

    def pool_policy(self, pool: NodePool | str) -> PoolPolicy:
        return self.policy.spec.pool_policy(pool if isinstance(pool, str) else pool.name)

    def demand(self, workload: Workload) -> Resources:
        """Requests of one pod of ``workload``."""
        key = id(workload)
        got = self._demand.get(key)
        if got is None:
            got = (workload.requests.millicpu, workload.requests.memory_bytes, 1)
            self._demand[key] = got
        return got

    def finding(self, code: str, severity: Severity, message: str, fix: str,
                objects: Sequence[str] = ()) -> Finding:
        return Finding(code=code, severity=severity, message=message, fix=fix,
                       cluster=self.cluster.name, objects=tuple(objects))


def listed(names: Sequence[str], limit: int = MESSAGE_NAMES) -> str:
    """``a, b and c`` — or ``a, b, c, d, e and 7 more`` past ``limit`` names."""
    if len(names) <= 1:
        return "".join(names)
    if len(names) <= limit:
        return ", ".join(names[:-1]) + " and " + names[-1]
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


def objects(*groups: Sequence[str], limit: int = OBJECT_NAMES) -> tuple[str, ...]:
    """Concatenate name groups for ``Finding.objects``, each group cut at ``limit`` with "…"."""
    out: list[str] = []
    for g in groups:
        out.extend(g[:limit])
        if len(g) > limit:
            out.append("…")
    return tuple(out)


def fmt_cpu(millicores: int) -> str:
    if millicores % 1000 == 0:
        return f"{millicores // 1000} CPU"
    return f"{millicores}m CPU"


def fmt_memory(num_bytes: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if num_bytes >= size:
            value = num_bytes / size
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return f"{num_bytes}B"
