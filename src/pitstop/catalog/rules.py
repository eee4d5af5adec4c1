"""Compatibility rules: the one place where each skew and support rule lives.

A rule reads a :class:`ClusterVersions` — the versions of every component of one cluster at one
instant — and the catalog, and returns the violations it sees. The planner checks every
intermediate state of a plan with :func:`check_cluster`; preflight checks the current state with
it; the property tests replay plans against it. Rules never say how to fix anything: they only
judge a state.

Sources: Kubernetes version-skew policy (kubernetes/website
``content/en/releases/version-skew-policy.md``), containerd ``RELEASES.md``, kubeadm's etcd
support table. Parameters (how many minors) come from ``catalog/data/kubernetes.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pitstop.versions import Minor, Version, parse_version

if TYPE_CHECKING:
    from pitstop.catalog import Catalog, SkewPolicy
    from pitstop.model import Cluster
    from pitstop.model.policy import Waiver

__all__ = ["SUPPORT_GAPS", "ClusterVersions", "NodeGroup", "Violation", "behind",
           "check_cluster", "kube_proxy_beside_kubelet"]

# Rules whose violation today is a support gap (a runtime or an etcd older than the catalog's
# minimum for the running Kubernetes), not a skew break: a plan may start from such a state and
# keep it until it changes that component, but never creates a new one. Every other rule's
# violation today refuses planning.
SUPPORT_GAPS = frozenset({"runtime-unsupported", "etcd-unsupported"})


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """Nodes of one pool that run the same versions (the state abstraction that lets a plan for a
    million nodes be checked quickly)."""

    pool: str
    kubelet: Version
    kube_proxy: Version | None
    runtime: str
    runtime_version: Version
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClusterVersions:
    cluster: str
    apiservers: tuple[tuple[str, Version], ...]
    controller_manager: Version
    scheduler: Version
    cloud_controller_manager: Version | None
    etcd: tuple[tuple[str, Version], ...]  # empty when etcd is not ours to manage
    node_groups: tuple[NodeGroup, ...]

    @classmethod
    def from_cluster(cls, cluster: Cluster) -> ClusterVersions:
        cp = cluster.control_plane
        groups: dict[tuple[str, str, str | None, str, str], list[str]] = {}
        for pool in cluster.node_pools:
            for node in pool.nodes:
                key = (pool.name, node.kubelet, node.proxy_version,
                       node.container_runtime.name, node.container_runtime.version)
                groups.setdefault(key, []).append(node.name)
        etcd = cp.etcd
        return cls(
            cluster=cluster.name,
            apiservers=tuple((a.name, parse_version(a.version)) for a in cp.api_servers),
            controller_manager=parse_version(cp.controller_manager.version),
            scheduler=parse_version(cp.scheduler.version),
            cloud_controller_manager=parse_version(cp.cloud_controller_manager.version)
            if cp.cloud_controller_manager else None,
            etcd=tuple((n, parse_version(v)) for n, v in etcd.member_versions())
            if etcd is not None and etcd.managed else (),
            node_groups=tuple(
                NodeGroup(pool, parse_version(k), parse_version(p) if p else None, rt,
                          parse_version(rv), tuple(nodes))
                for (pool, k, p, rt, rv), nodes in groups.items()
            ),
        )

    # Convenience for the planner, which moves states forward step by step.
    @property
    def oldest_apiserver(self) -> Version:
        return min(v for _, v in self.apiservers)

    @property
    def newest_apiserver(self) -> Version:
        return max(v for _, v in self.apiservers)

    def with_apiserver(self, name: str, version: Version) -> ClusterVersions:
        return replace(self, apiservers=tuple(
            (n, version if n == name else v) for n, v in self.apiservers))

    def with_etcd_member(self, name: str, version: Version) -> ClusterVersions:
        return replace(self, etcd=tuple((n, version if n == name else v) for n, v in self.etcd))

    def with_nodes(self, pool: str, nodes: Iterable[str], *, kubelet: Version | None = None,
                   kube_proxy: Version | None = None, runtime: str | None = None,
                   runtime_version: Version | None = None) -> ClusterVersions:
        """Move ``nodes`` of ``pool`` to new versions (unchanged fields keep their values).
        Groups of the pool that end up with the same versions are one group again (nodes in
        name order), so that a pool rolled in several steps is rolled as one next time."""
        moving = set(nodes)
        out: list[NodeGroup] = []
        made: list[NodeGroup] = []
        for g in self.node_groups:
            if g.pool != pool or moving.isdisjoint(g.nodes):
                out.append(g)
                continue
            stay = tuple(n for n in g.nodes if n not in moving)
            go = tuple(n for n in g.nodes if n in moving)
            if stay:
                out.append(replace(g, nodes=stay))
            made.append(NodeGroup(
                pool=g.pool,
                kubelet=kubelet or g.kubelet,
                kube_proxy=(kube_proxy or g.kube_proxy) if g.kube_proxy is not None else None,
                runtime=runtime or g.runtime,
                runtime_version=runtime_version or g.runtime_version,
                nodes=go,
            ))
            out.append(made[-1])
        if not made:
            return self
        keys = [(g.kubelet, g.kube_proxy, g.runtime, g.runtime_version) for g in out
                if g.pool == pool]
        if len(set(keys)) == len(keys):
            return replace(self, node_groups=tuple(out))
        return replace(self, node_groups=_merged(out, pool))


def _versions_of(g: NodeGroup) -> tuple[Version, Version | None, str, Version]:
    return (g.kubelet, g.kube_proxy, g.runtime, g.runtime_version)


def _merged(groups: list[NodeGroup], pool: str) -> tuple[NodeGroup, ...]:
    """``groups`` with the groups of ``pool`` that run the same versions merged, at the place of
    the first of them."""
    at: dict[tuple[Version, Version | None, str, Version], int] = {}
    out: list[NodeGroup] = []
    several: set[int] = set()
    for g in groups:
        if g.pool != pool:
            out.append(g)
            continue
        key = _versions_of(g)
        i = at.get(key)
        if i is None:
            at[key] = len(out)
            out.append(g)
        else:
            out[i] = replace(out[i], nodes=out[i].nodes + g.nodes)
            several.add(i)
    for i in several:
        out[i] = replace(out[i], nodes=tuple(sorted(out[i].nodes)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str
    objects: tuple[str, ...]
    # what a waiver would name: the runtime and its version, for runtime-unsupported
    component: str = ""
    version: str = ""


def waiver_for(v: Violation, waivers: Iterable[Waiver]) -> Waiver | None:
    """The waiver among ``waivers`` (pass the active ones) that allows ``v``: only a
    ``runtime-unsupported`` violation can be waived here (policy rule ``unsupported-runtime``,
    the same component, and the same version when the waiver names one)."""
    if v.rule != "runtime-unsupported" or not v.component:
        return None
    return runtime_waiver(v.component, parse_version(v.version), waivers)


def runtime_waiver(runtime: str, version: Version, waivers: Iterable[Waiver]) -> Waiver | None:
    """The ``unsupported-runtime`` waiver among ``waivers`` for ``runtime`` at ``version``."""
    for w in waivers:
        if w.rule == "unsupported-runtime" and w.component == runtime and (
                w.version is None or parse_version(w.version) == version):
            return w
    return None


def _check_apiservers(s: ClusterVersions, cat: Catalog) -> Iterable[Violation]:
    oldest, newest = s.oldest_apiserver.line, s.newest_apiserver.line
    spread = newest.minus(oldest)
    if spread > cat.skew.apiserver_max_spread:
        yield Violation(
            "apiserver-skew",
            f"kube-apiserver instances span {oldest}–{newest}: at most "
            f"{cat.skew.apiserver_max_spread} minor apart is supported",
            tuple(n for n, _ in s.apiservers),
        )


def _check_controllers(s: ClusterVersions, cat: Catalog) -> Iterable[Violation]:
    oldest, newest = s.oldest_apiserver.line, s.newest_apiserver.line
    comps = [("kube-controller-manager", s.controller_manager), ("kube-scheduler", s.scheduler)]
    if s.cloud_controller_manager is not None:
        comps.append(("cloud-controller-manager", s.cloud_controller_manager))
    for name, v in comps:
        if v.line > oldest:
            yield Violation("controller-skew",
                            f"{name} {v} is newer than kube-apiserver {s.oldest_apiserver}",
                            (name,))
        elif newest.minus(v.line) > cat.skew.controllers_max_older:
            yield Violation(
                "controller-skew",
                f"{name} {v} is more than {cat.skew.controllers_max_older} minor older than "
                f"kube-apiserver {s.newest_apiserver}",
                (name,),
            )


def behind(g: NodeGroup, newest: Minor, skew: SkewPolicy) -> list[tuple[str, Version, int]]:
    """The components of ``g`` (``kubelet``, ``kube-proxy``) that would be more minors older
    than an apiserver at ``newest`` than the skew policy allows, each with its version and its
    allowance. The kubelet pre-roll asks this of the next control-plane minor."""
    out: list[tuple[str, Version, int]] = []
    allowed = skew.kubelet_allowance(g.kubelet.line)
    if newest.minus(g.kubelet.line) > allowed:
        out.append(("kubelet", g.kubelet, allowed))
    if g.kube_proxy is not None:
        allowed = skew.kube_proxy_allowance(g.kube_proxy.line)
        if newest.minus(g.kube_proxy.line) > allowed:
            out.append(("kube-proxy", g.kube_proxy, allowed))
    return out


def kube_proxy_beside_kubelet(kube_proxy: Minor, kubelet: Minor, skew: SkewPolicy) -> bool:
    """Whether a kube-proxy of this minor may run beside a kubelet of that minor."""
    return abs(kubelet.minus(kube_proxy)) <= skew.kube_proxy_kubelet_allowance(kube_proxy)


def _group_verdict(g: NodeGroup, oldest_v: Version, newest_v: Version,
                   cat: Catalog) -> tuple[tuple[str, str], ...]:
    """(rule, message) pairs for one node group against the apiservers. Pure in its arguments,
    so it is memoised on the catalog: a fleet repeats the same few version combinations."""
    key = ("group", g.pool, g.kubelet, g.kube_proxy, g.runtime, g.runtime_version, oldest_v,
           newest_v)
    hit = cat.memo.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    out: list[tuple[str, str]] = []
    oldest, newest = oldest_v.line, newest_v.line
    sk = cat.skew
    k = g.kubelet.line
    too_old = {comp: allowed for comp, _, allowed in behind(g, newest, sk)}
    if k > oldest:
        out.append(("kubelet-skew", f"kubelet {g.kubelet} in pool {g.pool} is newer than "
                    f"kube-apiserver {oldest_v}"))
    elif "kubelet" in too_old:
        out.append(("kubelet-skew", f"kubelet {g.kubelet} in pool {g.pool} is more than "
                    f"{too_old['kubelet']} minors older than kube-apiserver {newest_v}"))
    if g.kube_proxy is not None:
        p = g.kube_proxy.line
        if p > oldest:
            out.append(("kube-proxy-skew", f"kube-proxy {g.kube_proxy} in pool {g.pool} is "
                        f"newer than kube-apiserver {oldest_v}"))
        elif "kube-proxy" in too_old:
            out.append(("kube-proxy-skew", f"kube-proxy {g.kube_proxy} in pool {g.pool} is more "
                        f"than {too_old['kube-proxy']} minors older than kube-apiserver "
                        f"{newest_v}"))
        if not kube_proxy_beside_kubelet(p, k, sk):
            out.append(("kube-proxy-skew", f"kube-proxy {g.kube_proxy} and kubelet {g.kubelet} "
                        f"in pool {g.pool} differ by more than "
                        f"{sk.kube_proxy_kubelet_allowance(p)} minors"))
    if cat.runtime_supports(g.runtime, g.runtime_version, k) is False:
        out.append(("runtime-unsupported", f"{g.runtime} {g.runtime_version} does not support "
                    f"kubelet {k} (pool {g.pool})"))
    verdict = tuple(out)
    cat.memo[key] = verdict
    return verdict


def _check_nodes(s: ClusterVersions, cat: Catalog) -> Iterable[Violation]:
    oldest_v, newest_v = s.oldest_apiserver, s.newest_apiserver
    for g in s.node_groups:
        verdict = _group_verdict(g, oldest_v, newest_v, cat)
        if verdict:
            nodes = g.nodes[:5] + (("…",) if len(g.nodes) > 5 else ())
            for rule, message in verdict:
                if rule == "runtime-unsupported":
                    yield Violation(rule, message, nodes, g.runtime, str(g.runtime_version))
                else:
                    yield Violation(rule, message, nodes)


def _check_etcd(s: ClusterVersions, cat: Catalog) -> Iterable[Violation]:
    if not s.etcd:
        return
    lines = [v.line for _, v in s.etcd]
    lo, hi = min(lines), max(lines)
    if hi.minus(lo) > 1:
        yield Violation("etcd-skew", f"etcd members span {lo}–{hi}: members may "
                        "differ by one minor only, during a rolling upgrade",
                        tuple(n for n, _ in s.etcd))
    by_line: dict[Minor, list[tuple[str, Version]]] = {}
    for name, v in s.etcd if hi != lo else ():
        by_line.setdefault(v.line, []).append((name, v))
    for line, entered in by_line.items():
        for source, members in by_line.items():
            floor = cat.upgrade_floor("etcd", source, line) if source < line else None
            if floor is None:
                continue
            low = [(n, v) for n, v in members if v < floor.minimum]
            if low:
                yield Violation(
                    "etcd-upgrade-floor",
                    f"etcd {', '.join(f'{n} {v}' for n, v in low)} beside members on {line}: "
                    f"{floor.describe()}",
                    tuple(n for n, _ in low) + tuple(n for n, _ in entered))
    api_minors = sorted({v.line for _, v in s.apiservers})
    for name, v in s.etcd:
        for m in api_minors:
            if cat.etcd_supported(v, m) is False:
                yield Violation("etcd-unsupported",
                                f"etcd {v} is not supported by Kubernetes {m}", (name,))


_RULES = (_check_apiservers, _check_controllers, _check_nodes, _check_etcd)


def check_cluster(state: ClusterVersions, catalog: Catalog) -> list[Violation]:
    """Every rule against one state. An empty list means the state is supported."""
    return [v for rule in _RULES for v in rule(state, catalog)]
