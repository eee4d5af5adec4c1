"""``pitstop drift``: what differs between a declared fleet and the live clusters.

Pure comparison of two :class:`~pitstop.model.Fleet` objects (the live one comes from
:mod:`pitstop.kube.inventory`); no I/O here. Compared, per cluster:

* control plane: each API server's version (by name; a single API server on each side is
  compared whatever its name, since a declared ``cp-1`` is the live server's host), the
  controller-manager, scheduler and etcd versions;
* node sets: nodes declared but gone, nodes live but not declared;
* each node on both sides: kubelet, kube-proxy (only when both sides state it), container
  runtime, and the pool it is in;
* pool sizes (and pools missing on one side);
* add-on versions;
* PDB specs: selector, minAvailable, maxUnavailable, unhealthyPodEvictionPolicy.

Versions are compared as versions (``v1.36.3`` equals ``1.36.3``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pitstop.model import Cluster, Fleet, PodDisruptionBudget
from pitstop.versions import VersionError, parse_version

__all__ = ["Difference", "cluster_drift", "fleet_drift"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing that differs. ``declared``/``live`` are ``None`` when it exists only on the
    other side."""

    cluster: str
    what: str  # e.g. "kubelet", "node", "pool-size", "addon", "pdb"
    subject: str  # e.g. the node, pool, add-on or namespace/name of a PDB
    declared: str | None
    live: str | None

    def text(self) -> str:
        if self.declared is None:
            return f"{self.cluster}: {self.what} {self.subject}: not declared, live {self.live}"
        if self.live is None:
            return f"{self.cluster}: {self.what} {self.subject}: declared {self.declared}, " \
                   "gone from the live cluster"
        return f"{self.cluster}: {self.what} {self.subject}: declared {self.declared}, " \
               f"live {self.live}"

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "what": self.what, "subject": self.subject,
                "declared": self.declared, "live": self.live}


def _same_version(a: str, b: str) -> bool:
    try:
        return parse_version(a) == parse_version(b)
    except VersionError:
        return a == b


def fleet_drift(declared: Fleet, live: Fleet,
                pairs: Sequence[tuple[str, str]] | None = None) -> list[Difference]:
    """Differences of each (declared cluster, live cluster) pair of names; by default every
    declared cluster with the live cluster of the same name."""
    if pairs is None:
        pairs = [(c.name, c.name) for c in declared.spec.clusters]
    declared_by = {c.name: c for c in declared.spec.clusters}
    live_by = {c.name: c for c in live.spec.clusters}
    out: list[Difference] = []
    for d_name, l_name in pairs:
        d, lv = declared_by.get(d_name), live_by.get(l_name)
        if d is None or lv is None:
            out.append(Difference(d_name, "cluster", d_name,
                                  d_name if d else None, l_name if lv else None))
            continue
        out.extend(cluster_drift(d, lv))
    return out


def cluster_drift(declared: Cluster, live: Cluster) -> list[Difference]:
    out: list[Difference] = []
    name = declared.name

    def diff(what: str, subject: str, a: str | None, b: str | None, *,
             version: bool = True) -> None:
        if a is None and b is None:
            return
        if a is not None and b is not None and (
                _same_version(a, b) if version else a == b):
            return
        out.append(Difference(name, what, subject, a, b))

    # -- control plane
    dcp, lcp = declared.control_plane, live.control_plane
    d_api = {s.name: s.version for s in dcp.api_servers}
    l_api = {s.name: s.version for s in lcp.api_servers}
    if len(d_api) == 1 and len(l_api) == 1:
        diff("kube-apiserver", "version", next(iter(d_api.values())), next(iter(l_api.values())))
    else:
        for n in sorted(d_api.keys() | l_api.keys()):
            diff("kube-apiserver", n, d_api.get(n), l_api.get(n))
    diff("kube-controller-manager", "version", dcp.controller_manager.version,
         lcp.controller_manager.version)
    diff("kube-scheduler", "version", dcp.scheduler.version, lcp.scheduler.version)
    if dcp.etcd is not None and lcp.etcd is not None:
        diff("etcd", "version", dcp.etcd.version, lcp.etcd.version)

    # -- nodes and pools
    d_nodes = {n.name: (p.name, n) for p, n in declared.all_nodes()}
    l_nodes = {n.name: (p.name, n) for p, n in live.all_nodes()}
    for n in sorted(d_nodes.keys() - l_nodes.keys()):
        diff("node", n, f"in pool {d_nodes[n][0]}", None, version=False)
    for n in sorted(l_nodes.keys() - d_nodes.keys()):
        diff("node", n, None, f"in pool {l_nodes[n][0]}", version=False)
    for n in sorted(d_nodes.keys() & l_nodes.keys()):
        (dp, dn), (lp, ln) = d_nodes[n], l_nodes[n]
        diff("kubelet", n, dn.kubelet, ln.kubelet)
        if dn.kube_proxy is not None and ln.kube_proxy is not None:
            diff("kube-proxy", n, dn.kube_proxy, ln.kube_proxy)
        diff("container-runtime", n,
             f"{dn.container_runtime.name} {dn.container_runtime.version}",
             f"{ln.container_runtime.name} {ln.container_runtime.version}", version=False)
        diff("node-pool", n, dp, lp, version=False)
    d_pools = {p.name: len(p.nodes) for p in declared.node_pools}
    l_pools = {p.name: len(p.nodes) for p in live.node_pools}
    for p in sorted(d_pools.keys() | l_pools.keys()):
        a, b = d_pools.get(p), l_pools.get(p)
        diff("pool-size", p, None if a is None else f"{a} nodes",
             None if b is None else f"{b} nodes", version=False)

    # -- add-ons
    d_add = {a.name: a.version for a in declared.addons}
    l_add = {a.name: a.version for a in live.addons}
    for addon in sorted(d_add.keys() | l_add.keys()):
        diff("addon", addon, d_add.get(addon), l_add.get(addon))

    # -- PDBs
    d_pdb = {f"{b.namespace}/{b.name}": b for b in declared.pod_disruption_budgets}
    l_pdb = {f"{b.namespace}/{b.name}": b for b in live.pod_disruption_budgets}
    for key in sorted(d_pdb.keys() | l_pdb.keys()):
        db, lb = d_pdb.get(key), l_pdb.get(key)
        diff("pdb", key, None if db is None else _pdb_text(db),
             None if lb is None else _pdb_text(lb), version=False)
    return out


def _pdb_text(b: PodDisruptionBudget) -> str:
    parts = []
    if b.min_available is not None:
        parts.append(f"minAvailable={b.min_available}")
    if b.max_unavailable is not None:
        parts.append(f"maxUnavailable={b.max_unavailable}")
    if b.selector is None:
        parts.append("selector=null")
    else:
        sel = b.selector
        terms = [f"{k}={v}" for k, v in sorted(sel.match_labels.items())]
        terms += [f"{e.key} {e.operator} ({','.join(e.values)})" if e.values
                  else f"{e.key} {e.operator}" for e in sel.match_expressions]
        parts.append("selector={" + ", ".join(terms) + "}")
    if b.unhealthy_pod_eviction_policy != "IfHealthyBudget":
        parts.append(f"unhealthyPodEvictionPolicy={b.unhealthy_pod_eviction_policy}")
    return " ".join(parts)
