"""Property: on random fleets and targets, every state a plan passes through is supported by the
catalog's rules, the plan ends at the target, and its order keeps the invariants the skew policy
asks for. A plan may refuse — but only with a blocking finding that explains why."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from pitstop.catalog import Catalog, load_catalog
from pitstop.planner import Phase, make_plan
from pitstop.versions import Minor, Version, parse_version
from tests.planlib import NOW, default_policy, fleet, policy, replay, target

CAT: Catalog = load_catalog()
# every minor the catalog knows with etcd data, from 1.24: kube-proxies and kubelets older than
# 1.25 have a smaller allowance (two minors), which the generator must reach
MINORS = sorted(m for m in CAT.kubernetes if m in CAT.etcd_for_kubernetes)


def _proxy_allowance(p: Minor) -> int:
    """How many minors a kubelet or kube-proxy of minor ``p`` may be behind the apiservers, and
    a kube-proxy from its kubelet, by the version-skew policy's numbers (written here, not read
    from the rules: before 1.25 two minors, else three)."""
    return 2 if p < Minor(1, 25) else 3


def _runtimes_for(k: Minor) -> list[str]:
    out = []
    for ln in CAT.runtimes["containerd"]:
        if k in ln.supports:
            out.append(str(max(ln.supports[k], ln.latest)))
            out.append(str(ln.supports[k]))
    return out


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    ai = draw(st.integers(0, len(MINORS) - 2))
    a = MINORS[ai]
    av = CAT.latest_patch(a)
    assert av is not None
    n_api = draw(st.sampled_from([1, 3]))
    api_versions = [str(av)] * n_api
    ctrl = str(av)
    # sometimes a mid-upgrade state: one apiserver already one minor ahead
    if n_api == 3 and ai + 1 < len(MINORS) and draw(st.booleans()):
        api_versions[0] = str(CAT.latest_patch(MINORS[ai + 1]))
    newest = max(parse_version(v) for v in api_versions).line
    pools: list[dict[str, Any]] = []
    n = 0
    for p in range(draw(st.integers(1, 3))):
        nodes = []
        for _ in range(draw(st.integers(1, 3))):
            km = draw(st.sampled_from([m for m in MINORS if m <= a
                                       and newest.minus(m) <= _proxy_allowance(m)] or [a]))
            kv = CAT.latest_patch(km)
            rts = _runtimes_for(km)
            rt = draw(st.sampled_from(rts)) if rts else "1.7.24"
            # sometimes an older kube-proxy, within the policy's distance of its kubelet and of
            # the newest apiserver (a cluster out of skew today is refused, which proves little)
            proxies = [m for m in MINORS if m <= km
                       and km.minus(m) <= _proxy_allowance(m)
                       and newest.minus(m) <= _proxy_allowance(m)]
            older = draw(st.booleans())
            pm = draw(st.sampled_from(proxies)) if proxies and older else km
            for _ in range(draw(st.integers(1, 3))):
                nodes.append({"name": f"n{n}", "kubelet": str(kv),
                              "kubeProxy": str(CAT.latest_patch(pm)),
                              "containerRuntime": {"name": "containerd", "version": rt}})
                n += 1
        pools.append({"name": f"pool{p}", "nodes": nodes})
    # etcd: what kubeadm ships for the minor, or sometimes an older patch of a line that has
    # an upgrade-from floor into the next line (3.5.24 before 3.6 needs 3.5.26+)
    etcd = str(CAT.etcd_for_kubernetes[a].kubeadm)
    below = [str(Version(f.source.major, f.source.minor, f.minimum.patch - 1))
             for f in CAT.upgrade_floors("etcd") if f.minimum.patch > 0]
    below = [v for v in below
             if all(CAT.etcd_supported(parse_version(v), parse_version(x).line) is not False
                    for x in api_versions)]
    low = draw(st.booleans())
    if below and low:
        etcd = draw(st.sampled_from(below))
    c = {"name": "c", "controlPlane": {
        "apiServers": [{"name": f"cp{i}", "version": v} for i, v in enumerate(api_versions)],
        "controllerManager": {"version": ctrl}, "scheduler": {"version": ctrl},
        "etcd": {"version": etcd, "members": [{"name": f"e{i}"} for i in range(n_api)]}},
        "nodePools": pools,
        "addons": [{"name": "coredns", "version": "1.11.1"}]}
    ki = draw(st.integers(ai, len(MINORS) - 1))
    k = MINORS[ki]
    tgt: dict[str, str] = {"kubernetes": str(CAT.latest_patch(k))}
    if draw(st.booleans()):
        rts = _runtimes_for(k)
        if rts:
            tgt["containerd"] = draw(st.sampled_from(rts))
    if draw(st.booleans()):
        tgt["etcd"] = str(CAT.etcd_for_kubernetes[k].kubeadm)
    if draw(st.booleans()):
        tgt["coredns"] = "1.12.1"
    pol = {"pools": [{"strategy": draw(st.sampled_from(["in-place", "replace"])),
                      "maxSurge": 1, "maxUnavailable": draw(st.sampled_from([1, 2, "50%"])),
                      "canaryNodes": draw(st.sampled_from([0, 1, 2]))}]}
    return c, tgt, pol


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_every_intermediate_state_is_supported(
        case: tuple[dict[str, Any], dict[str, str], dict[str, Any]]) -> None:
    c, tgt, pol = case
    f = fleet(c)
    plan = make_plan(f, target(**tgt), policy(pol), CAT, now=NOW, preflight=False)
    outcome = "reachable" if plan.reachable else "refused"
    event(outcome)
    nodes = [n for pl in c["nodePools"] for n in pl["nodes"]]
    if any(parse_version(n["kubeProxy"]).line < Minor(1, 25) for n in nodes):
        event(f"{outcome}: a kube-proxy before 1.25")
    if any(parse_version(n["kubeProxy"]).line < parse_version(n["kubelet"]).line
           for n in nodes):
        event(f"{outcome}: a kube-proxy older than its kubelet")
    etcd = parse_version(c["controlPlane"]["etcd"]["version"])
    if "etcd" in tgt and any(etcd.line == f.source and etcd < f.minimum
                             and parse_version(tgt["etcd"]).line >= f.line
                             for f in CAT.upgrade_floors("etcd")):
        event(f"{outcome}: etcd below an upgrade-from floor it must cross")
    if not plan.reachable:
        # a refusal must explain itself
        assert all(x.message and x.fix for x in plan.blocking)
        assert not plan.steps
        return
    final = replay(plan, f, CAT)["c"]  # raises if any intermediate state breaks a rule
    k = parse_version(tgt["kubernetes"])
    assert {v for _, v in final.apiservers} == {k}
    assert final.controller_manager == k and final.scheduler == k
    assert all(g.kubelet == k for g in final.node_groups)
    assert all(g.kube_proxy in (None, k) for g in final.node_groups)
    if "containerd" in tgt:
        assert all(g.runtime_version == parse_version(tgt["containerd"])
                   for g in final.node_groups)
    if "etcd" in tgt:
        assert {v for _, v in final.etcd} == {parse_version(tgt["etcd"])}
    _check_order(plan.steps, k)


def _check_order(steps: list[Any], k: Version) -> None:
    api_state: dict[str, Version] = {}
    last_api_to_k = max((i for i, s in enumerate(steps) if s.action == "upgrade-apiserver"),
                        default=-1)
    snapshot_open = False
    seen_phase_addons = False
    for i, s in enumerate(steps):
        assert s.reason, s
        assert s.gates, s
        if s.phase is Phase.ADDONS:
            seen_phase_addons = True
        else:
            assert not seen_phase_addons, "add-ons go last"
        if s.action == "upgrade-apiserver":
            frm, to = parse_version(s.from_version), parse_version(s.to_version)
            assert to.line.minus(frm.line) <= 1, "an apiserver never skips a minor"
            api_state[s.targets[0]] = to
        if s.action == "etcd-snapshot":
            snapshot_open = True
        if s.action == "upgrade-etcd-member":
            assert snapshot_open, "an etcd member is upgraded only after a snapshot"
        if s.phase is Phase.NODES:
            kube = [c for c in s.changes if c.component == "kubelet"]
            if kube and parse_version(kube[-1].to_version) == k and k.line != parse_version(
                    kube[-1].from_version).line:
                # the final roll: only after every apiserver reached the target
                assert i > last_api_to_k
            assert len(set(api_state.values())) <= 1, "no node step while apiservers differ"


def test_generator_reaches_both_outcomes() -> None:
    """Guard against a generator that only ever produces refusals (the property would then hold
    vacuously): a fixed, feasible scenario must plan."""
    a, k, rt = max(((x, y, ln) for ln in CAT.runtimes["containerd"] for x in MINORS
                    for y in MINORS if x < y and x in ln.supports and y in ln.supports),
                   key=lambda t: (t[1].minus(t[0]), t[1]))
    c = {"name": "c", "controlPlane": {
        "apiServers": [{"name": "cp0", "version": str(CAT.latest_patch(a))}],
        "controllerManager": {"version": str(CAT.latest_patch(a))},
        "scheduler": {"version": str(CAT.latest_patch(a))}},
        "nodePools": [{"name": "p", "nodes": [
            {"name": "n0", "kubelet": str(CAT.latest_patch(a)),
             "containerRuntime": {"name": "containerd", "version": str(rt.latest)}}]}]}
    plan = make_plan(fleet(c), target(kubernetes=str(CAT.latest_patch(k))), default_policy(),
                     CAT, now=NOW, preflight=False)
    assert plan.reachable, plan.findings
    assert len([s for s in plan.steps if s.action == "upgrade-apiserver"]) == k.minus(a)


def _plans(case: tuple[dict[str, Any], dict[str, str], dict[str, Any]]) -> bool:
    c, tgt, pol = case
    return make_plan(fleet(c), target(**tgt), policy(pol), CAT, now=NOW,
                     preflight=False).reachable


def test_generator_reaches_old_kube_proxies_and_etcd_floors_that_plan() -> None:
    """Guard: the generator does produce plannable fleets with a kube-proxy before 1.25 older
    than its kubelet, and with etcd below an upgrade-from floor that the target crosses (else
    the property would say nothing about the rules those fleets exercise)."""

    def old_proxy(case: tuple[dict[str, Any], dict[str, str], dict[str, Any]]) -> bool:
        nodes = [n for p in case[0]["nodePools"] for n in p["nodes"]]
        return any(parse_version(n["kubeProxy"]).line < Minor(1, 25)
                   and parse_version(n["kubeProxy"]) < parse_version(n["kubelet"])
                   for n in nodes) and _plans(case)

    def floor(case: tuple[dict[str, Any], dict[str, str], dict[str, Any]]) -> bool:
        etcd = parse_version(case[0]["controlPlane"]["etcd"]["version"])
        tgt = case[1].get("etcd")
        return tgt is not None and any(
            etcd.line == f.source and etcd < f.minimum and parse_version(tgt).line >= f.line
            for f in CAT.upgrade_floors("etcd")) and _plans(case)

    for wanted in (old_proxy, floor):
        found = find(scenario(), wanted, settings=settings(
            max_examples=2000, database=None, suppress_health_check=list(HealthCheck)))
        assert wanted(found)
