"""Planning one cluster: etcd, the control plane one minor at a time, node pools, add-ons.

The order, and why:

1. Kubelets (and kube-proxies) that the next control-plane minor would leave out of skew are
   upgraded first — to the newest version allowed while the control plane is where it is.
2. etcd hops (one minor at a time, a verified snapshot before each) as soon as the new etcd is
   supported by every apiserver minor present and the next one; a line with an upgrade-from
   floor in the catalog (etcd 3.6 from 3.5.26+) is entered only after a hop to the latest patch
   of the line it leaves.
3. kube-apiserver instances one at a time, then kube-controller-manager, kube-scheduler and
   cloud-controller-manager (never newer than any apiserver).
4. Node pools only after every apiserver reached the target (kubernetes#127316: a new kubelet
   talked to an old apiserver through the load balancer). Kubelet, kube-proxy and the runtime
   change in the same drain, in an order that keeps every state supported; canary nodes first.
5. Add-ons last.

Every state the plan passes through (:func:`pitstop.planner.transition.states_through`, the
transition the executor's live skew check uses too) is checked with :func:`check_cluster`; a
step that would break a rule is never emitted — the cluster is refused with the violated rule
named.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pitstop.catalog import Catalog, UpgradeFloor
from pitstop.catalog.rules import (
    SUPPORT_GAPS,
    ClusterVersions,
    NodeGroup,
    Violation,
    behind,
    check_cluster,
    kube_proxy_beside_kubelet,
    runtime_waiver,
    waiver_for,
)
from pitstop.model import Cluster, PoolPolicy, StepEstimates, UpgradePolicy
from pitstop.model.common import format_duration
from pitstop.planner.plan import Change, Gate, Phase, Step
from pitstop.planner.targets import TargetVersions, check_known_bad
from pitstop.planner.transition import states_through
from pitstop.preflight.findings import Finding, Severity
from pitstop.versions import Minor, Version, parse_version

__all__ = ["Unsafe", "plan_cluster"]

G_API = Gate("apiserver-ready", "apiserver-health",
             "the upgraded kube-apiserver answers /readyz and /livez; API requests succeed")
G_CP = Gate("control-plane-healthy", "control-plane-health",
            "every apiserver answers healthy, with request latency under the limit")
G_SNAP = Gate("etcd-snapshot-verified", "etcd-snapshot",
              "the snapshot operation succeeded (the backend saves it and checks its integrity)")
G_ETCD = Gate("etcd-healthy", "etcd-health",
              "every member healthy, one leader, raft index advancing, no alarms, db under quota")
G_NODES = Gate("nodes-ready", "node-health",
               "the upgraded nodes are Ready, uncordoned and report the new versions")
G_WORK = Gate("workloads-available", "workload-availability",
              "every workload at or above its PDB minimum; no pod Pending too long")
G_CANARY = Gate("canary-analysis", "canary",
                "canary nodes' error rate at most twice the baseline's")
G_ADDON = Gate("addon-rolled-out", "addon-health", "the add-on's rollout completed and is healthy")


class Unsafe(Exception):
    """No safe order exists: carries the violations that the next step would cause."""

    def __init__(self, what: str, violations: list[Violation], fix: str = "") -> None:
        self.what = what
        self.violations = violations
        self.fix = fix
        super().__init__(what)




@dataclass
class _ClusterPlanner:
    cluster: Cluster
    wave: str
    tv: TargetVersions
    policy: UpgradePolicy
    catalog: Catalog
    requires_approval: bool
    now: datetime
    state: ClusterVersions = field(init=False)
    steps: list[Step] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tolerated: set[tuple[str, str]] = field(default_factory=set)
    waived: set[tuple[str, str]] = field(default_factory=set)  # (component, version) reported
    # etcd hops that exist to meet a line's upgrade-from floor, and that floor (for reasons)
    floor_hops: dict[Version, UpgradeFloor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = ClusterVersions.from_cluster(self.cluster)

    # -- the safety net --------------------------------------------------------------------
    def _violations(self, state: ClusterVersions) -> list[Violation]:
        """Violations of ``state``, less support gaps that exist today (a runtime or an etcd
        older than the catalog's minimum): preflight reports those, and they are tolerated
        until the plan changes that component; and less what an active waiver of the policy
        allows (reported once, as ``unsupported-runtime-waived``)."""
        out: list[Violation] = []
        for v in check_cluster(state, self.catalog):
            if (v.rule, v.message) in self.tolerated:
                continue
            w = waiver_for(v, self.tv.waivers)
            if w is None:
                out.append(v)
                continue
            if (v.component, v.version) not in self.waived:
                self.waived.add((v.component, v.version))
                self.findings.append(Finding(
                    "unsupported-runtime-waived", Severity.WARNING,
                    f"{v.message}; allowed by a waiver of {w.approved_by} until "
                    f"{w.expires.isoformat()}: {w.reason}",
                    f"move to a {v.component} that supports it before the waiver expires "
                    "(see `pitstop catalog containerd`).", self.cluster.name,
                    (f"{v.component}={v.version}",), "planner"))
        return out

    def _supports(self, runtime: str, version: Version, kubelet: Minor) -> bool | None:
        """The catalog's answer, except that an active ``unsupported-runtime`` waiver of the
        policy makes a pair the catalog refuses acceptable (as :meth:`_violations` does)."""
        verdict = self.catalog.runtime_supports(runtime, version, kubelet)
        if verdict is False and runtime_waiver(runtime, version, self.tv.waivers) is not None:
            return True
        return verdict

    def _advance(self, new_state: ClusterVersions, what: str) -> None:
        bad = self._violations(new_state)
        if bad:
            raise Unsafe(what, bad, self._fix_for(bad, new_state))
        self.state = new_state

    def _fix_for(self, bad: list[Violation], state: ClusterVersions) -> str:
        """A concrete way out for the first violation the plan could not avoid."""
        rule = bad[0].rule
        minor = state.newest_apiserver.line
        if rule in ("etcd-unsupported", "etcd-skew"):
            info = self.catalog.etcd_for_kubernetes.get(minor)
            if info is not None:
                return (f"add etcd={info.kubeadm} to the target (what kubeadm ships for "
                        f"Kubernetes {minor}; it needs at least {info.minimum})")
        if rule == "runtime-unsupported":
            return ("add a containerd (or cri-o) version that supports every kubelet minor the "
                    "plan passes through to the target; see `pitstop catalog containerd`")
        return "change the target or the fleet so that a supported path exists"

    def _take(self, step: Step) -> None:
        """Check every state ``step`` passes through (:func:`states_through`), then emit it."""
        for what, state in states_through(self.state, step):
            self._advance(state, f"after {what}")
        self._emit(step)

    def _emit(self, step: Step) -> None:
        depends = (self.steps[-1].id,) if self.steps else ()
        approval = self.requires_approval and not self.steps
        self.steps.append(replace(step, depends_on=depends, requires_approval=approval))

    def _id(self, slug: str) -> str:
        return f"{self.cluster.name}/{len(self.steps) + 1:03d}-{slug}"

    # -- plan ------------------------------------------------------------------------------
    def run(self) -> None:
        initial = check_cluster(self.state, self.catalog)
        blocking = [v for v in initial if v.rule not in SUPPORT_GAPS]
        if blocking:
            raise Unsafe("the cluster is out of skew today", blocking,
                         "bring it into a supported state first (e.g. finish an interrupted "
                         "upgrade), then plan again")
        self.tolerated = {(v.rule, v.message) for v in initial}
        etcd_hops = self._etcd_hops()
        stops = self._control_plane_stops()
        for stop in stops:
            self._pre_roll_kubelets(stop)
            etcd_hops = self._do_etcd_hops(etcd_hops, next_minor=stop.line)
            self._upgrade_control_plane(stop, final=stop is stops[-1])
        etcd_hops = self._do_etcd_hops(etcd_hops, next_minor=None)
        if etcd_hops:
            info = self.catalog.etcd_for_kubernetes.get(self.state.oldest_apiserver.line)
            raise Unsafe(
                f"etcd {etcd_hops[0]} is not supported by Kubernetes "
                f"{self.state.oldest_apiserver.line}", [],
                f"choose etcd {info.kubeadm} (what kubeadm ships for that minor)" if info else "")
        self._final_node_roll()
        self._addons()

    # -- control plane ---------------------------------------------------------------------
    def _control_plane_stops(self) -> list[Version]:
        k = self.tv.kubernetes
        if k is None:
            return []
        oldest, newest = self.state.oldest_apiserver, self.state.newest_apiserver
        if k.line < newest.line:
            raise Unsafe(f"Kubernetes {k} would downgrade the control plane from {newest} across "
                         "minors, which Kubernetes does not support", [],
                         "restore the control plane from backup (etcd snapshot) instead, or "
                         f"target {newest.line}.x or newer")
        if k < newest:
            self.findings.append(Finding(
                "patch-downgrade", Severity.WARNING,
                f"Kubernetes {k} is an older patch than the running {newest}.",
                "check this is intended (a rollback within a minor).", self.cluster.name,
                (f"kubernetes={k}",), "planner"))
        stops: list[Version] = []
        line = oldest.line
        while line < k.line:
            line = line.next()
            if line == k.line:
                break
            latest = self.catalog.latest_patch(line)
            if latest is None:
                raise Unsafe(f"the catalog knows no release of Kubernetes {line}, a minor the "
                             "control plane must pass through", [],
                             "update the catalog (--catalog) with that minor")
            stops.append(max(latest, newest) if newest.line == line else latest)
        current = {v for _, v in self.state.apiservers} | {self.state.controller_manager,
                                                          self.state.scheduler}
        if current != {k}:
            stops.append(k)
        return stops

    def _upgrade_control_plane(self, v: Version, *, final: bool) -> None:
        cp = self.cluster.control_plane
        k = self.tv.kubernetes
        prev = self.state.oldest_apiserver
        passing = (f"the control plane moves one minor at a time ({prev.line} → {k.line} passes "
                   f"{v.line})" if not final and k is not None else
                   f"the target Kubernetes {v}" if prev.line == v.line else
                   f"the last minor step, {prev.line} → {v.line}")
        if cp.managed:
            self._take(Step(
                id=self._id(f"control-plane-{v}"), wave=self.wave, cluster=self.cluster.name,
                phase=Phase.CONTROL_PLANE, action="provider-upgrade-control-plane",
                component="control-plane", from_version=str(prev), to_version=str(v),
                targets=(self.cluster.name,), strategy="managed",
                reason=f"{passing}; the provider ({self.cluster.provider}) upgrades its managed "
                "control plane, pitstop asks for it and waits",
                gates=(G_API, G_CP), estimate=self.policy.spec.estimates.apiserver * 3))
            return
        todo = [(n, cur) for n, cur in self.state.apiservers if cur != v]
        for i, (name, cur) in enumerate(todo):
            others = len(self.state.apiservers) - 1
            order = (f"instance {i + 1} of {len(todo)}, one at a time so that "
                     f"{others} other instance(s) keep serving the API"
                     if others else "the only instance: the API is briefly unavailable while it "
                     "restarts")
            self._take(Step(
                id=self._id(f"apiserver-{name}-{v}"), wave=self.wave, cluster=self.cluster.name,
                phase=Phase.CONTROL_PLANE, action="upgrade-apiserver",
                component="kube-apiserver", from_version=str(cur), to_version=str(v),
                targets=(name,), strategy="rolling",
                reason=f"{passing}; apiservers go first (skew policy); {order}",
                gates=(G_API,), estimate=self.policy.spec.estimates.apiserver))
        for comp, attr in (("kube-controller-manager", "controller_manager"),
                           ("kube-scheduler", "scheduler"),
                           ("cloud-controller-manager", "cloud_controller_manager")):
            cur = getattr(self.state, attr)
            if cur is None or cur == v:
                continue
            self._take(Step(
                id=self._id(f"{comp}-{v}"), wave=self.wave, cluster=self.cluster.name,
                phase=Phase.CONTROL_PLANE, action=f"upgrade-{comp.removeprefix('kube-')}",
                component=comp, from_version=str(cur), to_version=str(v),
                targets=tuple(getattr(cp, attr).instances or [comp]) if getattr(cp, attr)
                else (comp,), strategy="rolling",
                reason=f"every kube-apiserver is at {v}; {comp} follows them because it must "
                "never be newer than any apiserver it talks to",
                gates=(G_CP,), estimate=self.policy.spec.estimates.controller))

    # -- etcd ------------------------------------------------------------------------------
    def _etcd_hops(self) -> list[Version]:
        target = self.tv.etcd
        etcd = self.cluster.control_plane.etcd
        if target is None or etcd is None:
            return []
        if not etcd.managed:
            self.findings.append(Finding(
                "etcd-provider-managed", Severity.INFO,
                "etcd is run by the provider; the etcd target is not planned for this cluster.",
                "", self.cluster.name, ("etcd",), "planner"))
            return []
        current = min(v for _, v in self.state.etcd)
        if target.line < current.line:
            raise Unsafe(f"etcd {target} would downgrade etcd {current} across minors, which "
                         "etcd does not support", [],
                         "the way back to an older etcd is restoring a snapshot taken on it")
        if target == current and all(v == target for _, v in self.state.etcd):
            return []
        hops = self.catalog.etcd_path(current, target)
        unmet = self.catalog.unmet_floor("etcd", current, hops)
        if unmet is not None:
            latest = self.catalog.latest_of_line("etcd", unmet.source)
            low = tuple(n for n, v in self.state.etcd if v < unmet.minimum)
            raise Unsafe(
                f"etcd {current} → {target} must pass through {unmet.minimum} or later of "
                f"{unmet.source}, and the catalog's latest {unmet.source} patch is {latest}",
                [Violation("etcd-upgrade-floor", unmet.describe(), low)],
                f"use a catalog whose etcd.yaml lists a {unmet.source} patch at or above "
                f"{unmet.minimum} (--catalog DIR), or move the members to one by hand first; "
                f"until then, target etcd {unmet.source}.x only")
        prev = current
        for hop, nxt in itertools.pairwise(hops):
            floor = self.catalog.upgrade_floor("etcd", hop.line, nxt.line)
            if floor is not None and hop.line == prev.line:
                self.floor_hops[hop] = floor
            prev = hop
        for hop in hops[:-1]:
            for f in check_known_bad("etcd", hop, self.policy, self.catalog, self.now,
                                     cluster=self.cluster.name, why="an intermediate hop"):
                self.findings.append(f)
        return hops

    def _etcd_ok(self, hop: Version, minors: Iterable[Minor]) -> bool:
        return all(self.catalog.etcd_supported(hop, m) is not False for m in minors)

    def _do_etcd_hops(self, hops: list[Version], next_minor: Minor | None) -> list[Version]:
        present = {v.line for _, v in self.state.apiservers}
        if next_minor is not None:
            present.add(next_minor)
        while hops and self._etcd_ok(hops[0], present):
            self._etcd_hop(hops.pop(0))
        return hops

    def _etcd_hop(self, hop: Version) -> None:
        est = self.policy.spec.estimates
        current = min(v for _, v in self.state.etcd)
        floor = self.floor_hops.get(hop)
        why_hop = (f"; this hop exists because {floor.describe()}" if floor is not None else
                   "; etcd moves one minor at a time" if hop != self.tv.etcd else "")
        self._emit(Step(
            id=self._id(f"etcd-snapshot-{current}"), wave=self.wave, cluster=self.cluster.name,
            phase=Phase.ETCD, action="etcd-snapshot", component="etcd",
            from_version=str(current), to_version=str(current), targets=("etcd",),
            reason=f"snapshot before etcd {current} → {hop}: "
            + ("etcd cannot be downgraded across minors, so restoring this verified snapshot "
               "into a cluster of the old version is the way back"
               if hop.line != current.line else "a verified backup is the way back") + why_hop,
            gates=(G_SNAP,), estimate=est.etcd_snapshot))
        # an intermediate hop never moves a member back (one already past it stays)
        members = [(n, v) for n, v in self.state.etcd
                   if v != hop and (hop == self.tv.etcd or v < hop)]
        for i, (name, cur) in enumerate(members):
            quorum = len(self.state.etcd) // 2 + 1
            self._take(Step(
                id=self._id(f"etcd-{name}-{hop}"), wave=self.wave, cluster=self.cluster.name,
                phase=Phase.ETCD, action="upgrade-etcd-member", component="etcd",
                from_version=str(cur), to_version=str(hop), targets=(name,), strategy="rolling",
                reason=f"etcd {cur} → {hop} rolls one member at a time ({i + 1} of "
                f"{len(members)}), so {quorum} of {len(self.state.etcd)} members keep quorum; "
                "followers first, the leader last (chosen at run time)" + why_hop,
                gates=(G_ETCD,), estimate=est.etcd_member))

    # -- nodes -----------------------------------------------------------------------------
    def _pre_roll_kubelets(self, stop: Version) -> None:
        """Before the control plane moves to ``stop``, upgrade nodes it would leave out of skew."""
        sk = self.catalog.skew
        allowed_to = self.state.oldest_apiserver
        needs: dict[str, list[NodeGroup]] = {}
        late: dict[str, list[tuple[str, Version, int]]] = {}
        for g in self.state.node_groups:
            out = behind(g, stop.line, sk)
            if out:
                needs.setdefault(g.pool, []).append(g)
                late.setdefault(g.pool, []).extend(x for x in out if x not in late.get(g.pool, []))
        for pool_name, groups in needs.items():
            which = "; ".join(
                f"{comp} {v} would be {stop.line.minus(v.line)} minors older than kube-apiserver "
                f"{stop} after the next control-plane step (allowed: {allowed})"
                for comp, v, allowed in late[pool_name])
            why = (f"{which}; these nodes are upgraded first, to {allowed_to}, the newest version "
                   "allowed while the apiservers are there")
            self.findings.append(Finding(
                "extra-node-roll", Severity.WARNING,
                f"pool {pool_name} is rolled twice: its kubelets are upgraded to {allowed_to} "
                f"before the control plane moves to {stop.line}, and again to the target at the "
                "end.", "upgrade these kubelets on their own beforehand to save a roll, or "
                "accept the extra drains.", self.cluster.name,
                tuple(n for g in groups for n in g.nodes)[:10], "planner"))
            self._roll_pool(pool_name, groups, kubelet=allowed_to, why=why, final=False)

    def _final_node_roll(self) -> None:
        k = self.tv.kubernetes
        by_pool: dict[str, list[NodeGroup]] = {}
        for g in self.state.node_groups:
            rt_target = self.tv.runtime(g.runtime)
            kubelet_change = k is not None and (g.kubelet != k or (
                g.kube_proxy is not None and g.kube_proxy != k))
            rt_change = rt_target is not None and rt_target != g.runtime_version
            if kubelet_change or rt_change:
                by_pool.setdefault(g.pool, []).append(g)
        for pool_name, groups in by_pool.items():
            if k is not None:
                why = (f"every kube-apiserver is at {self.state.oldest_apiserver}: node upgrades "
                       "start only when the control plane is done (kubernetes#127316)")
            else:
                why = "only the container runtime changes"
            self._roll_pool(pool_name, groups, kubelet=k, why=why, final=True)

    def _runtime_target(self, g: NodeGroup, kubelet: Minor, *, final: bool) -> Version:
        """The runtime version a node ends a roll with: the target where it supports the
        kubelet; else the version it runs, where that does (and the roll is not the last);
        else the smallest move: the oldest catalog release line's latest patch, no older than
        what it runs and no newer than the target, that supports the kubelet."""
        target = self.tv.runtime(g.runtime)
        supports = self._supports
        if target is not None and supports(g.runtime, target, kubelet) is not False:
            return target if (final or target >= g.runtime_version) else g.runtime_version
        if supports(g.runtime, g.runtime_version, kubelet) is not False and (
                target is None or not final):
            return g.runtime_version
        if g.runtime == "containerd":
            candidates = [ln.latest for ln in self.catalog.runtimes.get("containerd", ())
                          if ln.latest >= g.runtime_version
                          and (target is None or ln.latest <= target)
                          and ln.supports_kubernetes(ln.latest, kubelet)]
            if candidates:  # the smallest move that supports the kubelet
                return min(candidates)
        hint = (f"add {g.runtime}={kubelet}.x to the target (CRI-O follows the kubelet's minor)"
                if g.runtime == "cri-o" else
                f"add a {g.runtime} version that supports Kubernetes {kubelet} to the target")
        raise Unsafe(f"{g.runtime} {g.runtime_version} in pool {g.pool} does not support kubelet "
                     f"{kubelet}", [], hint)

    def _node_sequence(self, g: NodeGroup, kubelet: Version | None,
                       runtime_to: Version, *, replace: bool) -> list[Change]:
        """Order the changes made to a drained node so that every intermediate state is
        supported. The runtime moves one release line at a time (or LTS to the next LTS line);
        the kubelet may jump minors, or stop at an intermediate minor when no runtime version
        supports both ends (containerd 1.7 → 2.3 with kubelet 1.34 → 1.36 passes 2.2 and
        kubelet 1.35)."""
        k_from, k_to = g.kubelet, kubelet or g.kubelet

        def kubelet_move(frm: Version, to: Version) -> list[Change]:
            """kube-proxy follows the kubelet, or goes first when the new kubelet would be
            too far from the old kube-proxy (kube-proxy before 1.25 may be only two minors
            from its kubelet)."""
            out = [Change("kubelet", str(frm), str(to))]
            if g.kube_proxy is not None:
                proxy_from = g.kube_proxy if frm == k_from else frm
                if proxy_from != to:
                    proxy = Change("kube-proxy", str(proxy_from), str(to))
                    if kube_proxy_beside_kubelet(proxy_from.line, to.line, self.catalog.skew):
                        out.append(proxy)
                    else:
                        out.insert(0, proxy)
            return out

        def direct() -> list[Change]:
            rt = ([Change(g.runtime, str(g.runtime_version), str(runtime_to))]
                  if runtime_to != g.runtime_version else [])
            proxy_only = (g.kube_proxy is not None and g.kube_proxy != k_to)
            kube = kubelet_move(k_from, k_to) if k_from != k_to or proxy_only else []
            if k_from == k_to:
                kube = [c for c in kube if c.component != "kubelet"]
            return rt + kube

        if replace or g.runtime == "cri-o":
            # A new node starts at the new versions and the old one is removed; CRI-O serves
            # only its own Kubernetes minor, so it and the kubelet change together on the
            # drained node.
            return direct()
        kubes = [k_from]
        m = k_from.line
        while m < k_to.line:
            m = m.next()
            latest = self.catalog.latest_patch(m)
            if m == k_to.line or latest is None:
                break
            kubes.append(min(latest, self.state.oldest_apiserver))
        if k_to != k_from:
            kubes.append(k_to)
        paths = self.catalog.runtime_paths(g.runtime, g.runtime_version, runtime_to)
        unmet = [f for p in paths
                 if (f := self.catalog.unmet_floor(g.runtime, g.runtime_version, p)) is not None]
        if len(unmet) == len(paths) and unmet:
            floor = unmet[-1]
            raise Unsafe(
                f"{g.runtime} {g.runtime_version} → {runtime_to} in pool {g.pool} must pass "
                f"through {floor.minimum} or later of {floor.source}, and the catalog's latest "
                f"{floor.source} patch is {self.catalog.latest_of_line(g.runtime, floor.source)}",
                [Violation(f"{g.runtime}-upgrade-floor", floor.describe(), g.nodes[:5])],
                f"use a catalog whose runtimes.yaml lists a {g.runtime} {floor.source} patch at "
                f"or above {floor.minimum} (--catalog DIR), or choose a {g.runtime} target on "
                f"line {g.runtime_version.line}")
        paths = [p for p in paths
                 if self.catalog.unmet_floor(g.runtime, g.runtime_version, p) is None]
        if all(len(p) <= 1 for p in paths) and len(kubes) <= 2 and (
                not paths[0] or self._supports(
                    g.runtime, paths[0][-1], k_from.line) is not False):
            return direct()
        for path_ in paths:
            found = self._search(g, [g.runtime_version, *path_], kubes)
            if found is not None:
                rts, path = found
                break
        else:
            raise Unsafe(
                f"no order of {g.runtime} "
                f"{' → '.join(str(v) for v in [g.runtime_version, *paths[-1]])} and kubelet "
                f"{k_from} → {k_to} keeps every state supported (pool {g.pool})", [],
                f"use strategy: replace for pool {g.pool} (new nodes start at the new versions, "
                f"so no in-place path is needed), or choose a {g.runtime} target that supports "
                f"kubelet {k_to.line} and can be reached line by line (`pitstop catalog "
                f"containerd`)")
        out: list[Change] = []
        for (i0, j0), (i1, j1) in itertools.pairwise(path):
            if i1 != i0:
                out.append(Change(g.runtime, str(rts[i0]), str(rts[i1])))
            else:
                out.extend(kubelet_move(kubes[j0], kubes[j1]))
        if len(kubes) == 1 and g.kube_proxy is not None and g.kube_proxy != k_to:
            out.append(Change("kube-proxy", str(g.kube_proxy), str(k_to)))
        return out

    def _search(self, g: NodeGroup, rts: list[Version], kubes: list[Version]
                ) -> tuple[list[Version], list[tuple[int, int]]] | None:
        """Breadth-first over (runtime index, kubelet index): fewest changes, runtime first,
        then the longest kubelet jump. None when no order keeps every state supported."""
        ok = self._supports

        def supported(i: int, j: int) -> bool:
            return ok(g.runtime, rts[i], kubes[j].line) is not False

        start, goal = (0, 0), (len(rts) - 1, len(kubes) - 1)
        prev: dict[tuple[int, int], tuple[int, int]] = {start: start}
        queue = [start]
        while queue and goal not in prev:
            i, j = queue.pop(0)
            moves = ([(i + 1, j)] if i + 1 < len(rts) else []) + [
                (i, jj) for jj in range(len(kubes) - 1, j, -1)]
            for nxt in moves:
                if nxt not in prev and supported(*nxt):
                    prev[nxt] = (i, j)
                    queue.append(nxt)
        if goal not in prev:
            return None
        path = [goal]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path.reverse()
        return rts, path

    def _roll_pool(self, pool_name: str, groups: list[NodeGroup], *, kubelet: Version | None,
                   why: str, final: bool) -> None:
        pp = self.policy.spec.pool_policy(pool_name)
        pool = next(p for p in self.cluster.node_pools if p.name == pool_name)
        est = self.policy.spec.estimates
        batch, surge, canaries = pp.disruption(len(pool.nodes))
        plans: list[tuple[NodeGroup, list[Change], str]] = []
        for g in sorted(groups, key=lambda g: (-len(g.nodes), g.nodes[0])):
            k_line = (kubelet or g.kubelet).line
            rt_to = self._runtime_target(g, k_line, final=final)
            strategy: str = pp.strategy
            if (strategy == "in-place" and pp.runtime_patch_without_drain and kubelet in (
                    None, g.kubelet) and rt_to.line == g.runtime_version.line):
                strategy = "no-drain"
            changes = self._node_sequence(g, kubelet, rt_to, replace=strategy == "replace")
            if not changes:
                continue
            plans.append((g, changes, strategy))
        first = True
        for g, changes, strategy in plans:
            nodes = sorted(g.nodes)
            chunks: list[tuple[tuple[str, ...], bool]] = []
            if first and canaries > 0 and len(nodes) > 0:
                n_can = min(canaries, len(nodes))
                chunks.append((tuple(nodes[:n_can]), True))
                nodes = nodes[n_can:]
            if nodes:
                chunks.append((tuple(nodes), False))
            first = False
            for targets, canary in chunks:
                self._node_step(pool_name, g, targets, changes, strategy, pp, canary=canary,
                                batch=batch, surge=surge, why=why, est=est)

    def _node_step(self, pool_name: str, g: NodeGroup, targets: tuple[str, ...],
                   changes: list[Change], strategy: str, pp: PoolPolicy, *, canary: bool,
                   batch: int, surge: int, why: str, est: StepEstimates) -> None:
        # Every state the step passes through is checked as the step is taken (_take): each
        # change of an in-place node in turn; a replaced or CRI-O node only at its end.
        per_node = {"in-place": est.node_in_place, "replace": est.node_replace,
                    "no-drain": est.runtime_in_place}[strategy]
        step_batch = 1 if canary else batch
        units = math.ceil(len(targets) / step_batch)
        soak = pp.canary_soak if canary else pp.soak
        estimate = units * per_node + soak
        # The step is named by its kubelet move (first hop's start to last hop's end), or by the
        # runtime when the kubelet stays.
        kubes = [c for c in changes if c.component == "kubelet"]
        moves = kubes or [c for c in changes if c.component != "kube-proxy"] or changes
        shown = (Change(moves[0].component, moves[0].from_version, moves[-1].to_version)
                 if moves else None)
        how = {
            "in-place": "cordon, drain (PDBs respected, timeout "
                        f"{format_duration(pp.drain_timeout)}), upgrade, uncordon",
            "replace": f"surge up to {surge} new node(s) at the new versions, then drain and "
                       "remove old ones",
            "no-drain": "restart the runtime in place: a patch release, and running containers "
                        "survive a runtime restart (their shims stay)",
        }[strategy]
        several = len({c.component for c in changes} - {"kube-proxy"}) > 1
        listed = ", ".join(f"{c.component} {c.to_version}" for c in changes)
        together = ("" if not several else
                    f" The new nodes come up with {listed}." if strategy == "replace" else
                    f" Kubelet and runtime change in the same drain, in this order (every "
                    f"intermediate state supported): {listed}.")
        reason = f"{why}; {how}.{together}"
        if canary:
            reason = (f"canary: {len(targets)} node(s) of pool {pool_name} first, alone, soaked "
                      f"{format_duration(pp.canary_soak)} before the rest; " + reason)
        gates = (G_NODES, G_WORK) + ((G_CANARY,) if canary else ())
        self._take(Step(
            id=self._id(f"{'canary-' if canary else ''}pool-{pool_name}-"
                        f"{shown.to_version if shown else ''}"),
            wave=self.wave, cluster=self.cluster.name, phase=Phase.NODES,
            action="upgrade-nodes", component=shown.component if shown else "",
            from_version=shown.from_version if shown else "",
            to_version=shown.to_version if shown else "",
            targets=targets, reason=reason, changes=tuple(changes), gates=gates, pool=pool_name,
            strategy=strategy, batch_size=step_batch, surge=surge if strategy == "replace" else 0,
            canary=canary, soak=soak, estimate=estimate))

    # -- add-ons ---------------------------------------------------------------------------
    def _addons(self) -> None:
        for addon in self.cluster.addons:
            v = self.tv.addons.get(addon.name)
            if v is None or _v(addon.version) == v:
                continue
            k = self.state.oldest_apiserver.line
            notes = []
            if addon.name == "coredns" and k in self.catalog.coredns:
                shipped = self.catalog.coredns[k]
                if v < shipped:
                    self.findings.append(Finding(
                        "addon-older-than-kubeadm", Severity.WARNING,
                        f"CoreDNS {v} is older than the {shipped} kubeadm ships with Kubernetes "
                        f"{k}.", f"consider coredns={shipped}.", self.cluster.name,
                        (f"coredns={v}",), "planner"))
            lines = [a for a in self.catalog.cni if a.name == addon.name and a.line == v.line]
            if lines and k not in lines[0].kubernetes:
                self.findings.append(Finding(
                    "addon-untested", Severity.WARNING,
                    f"{addon.name} {v.line} is not listed as tested with Kubernetes {k} by its "
                    "project.", "check its compatibility page or choose a line that lists it.",
                    self.cluster.name, (f"{addon.name}={v}",), "planner"))
            if v < _v(addon.version):
                notes.append("a downgrade of the add-on")
            self._emit(Step(
                id=self._id(f"addon-{addon.name}-{v}"), wave=self.wave, cluster=self.cluster.name,
                phase=Phase.ADDONS, action="upgrade-addon", component=addon.name,
                from_version=addon.version, to_version=str(v), targets=(addon.name,),
                strategy="rolling",
                reason="add-ons go last, once the control plane and every node run the target"
                + (f" ({'; '.join(notes)})" if notes else ""),
                gates=(G_ADDON, G_WORK), estimate=self.policy.spec.estimates.addon))


def _v(text: str) -> Version:
    return parse_version(text)


def plan_cluster(cluster: Cluster, wave: str, tv: TargetVersions, policy: UpgradePolicy,
                 catalog: Catalog, *, requires_approval: bool,
                 now: datetime) -> tuple[list[Step], list[Finding]]:
    """Steps for one cluster, or none and a blocking finding that names the rule at stake."""
    cp = _ClusterPlanner(cluster, wave, tv, policy, catalog, requires_approval, now)
    try:
        cp.run()
    except Unsafe as exc:
        detail = "; ".join(dict.fromkeys(f"{v.rule}: {v.message}" for v in exc.violations))
        objects = tuple(o for v in exc.violations for o in v.objects)[:10]
        return [], [*cp.findings, Finding(
            "no-safe-plan", Severity.BLOCKING,
            f"cluster {cluster.name} cannot be upgraded safely: {exc.what}"
            + (f" ({detail})" if detail else "") + ".",
            exc.fix or "change the target or the fleet so that a supported path exists.",
            cluster.name, objects, "planner")]
    return cp.steps, cp.findings
