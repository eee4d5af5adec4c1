"""The planner against the shipped catalog: order, reasons, refusals. Expected versions are read
from the catalog, not written here, so a catalog update does not silently change what is
tested."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pitstop.catalog import Catalog, load_catalog
from pitstop.config import load_files
from pitstop.model import Fleet
from pitstop.planner import Phase, Plan, make_plan
from pitstop.versions import Minor, parse_version
from tests.planlib import NOW, cluster, default_policy, fleet, node, policy, replay, target

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


def _codes(plan: Plan, blocking: bool | None = None) -> set[str]:
    return {f.code for f in plan.findings if blocking is None or f.blocking == blocking}


def _kubeadm_etcd(cat: Catalog, minor: str) -> str:
    return str(cat.etcd_for_kubernetes[Minor.parse(minor)].kubeadm)


def test_control_plane_one_minor_at_a_time(cat: Catalog) -> None:
    f = fleet(cluster("c1", "1.31.4", etcd=_kubeadm_etcd(cat, "1.31"),
                      pools={"general": [node(f"n{i}", "1.31.4", "2.1.4") for i in range(4)]}))
    k = cat.latest_patch(Minor(1, 34))
    assert k is not None
    plan = make_plan(f, target(kubernetes=str(k)), default_policy(), cat, now=NOW,
                     preflight=False)
    assert plan.reachable, plan.findings
    api = [s for s in plan.steps if s.action == "upgrade-apiserver"]
    # three instances × three minors, each step one minor, in order 1.32, 1.33, 1.34
    assert [parse_version(s.to_version).line for s in api] == [Minor(1, m) for m in
                                                               (32, 32, 32, 33, 33, 33, 34, 34, 34)]
    assert [s.to_version for s in api[:3]] == [str(cat.latest_patch(Minor(1, 32)))] * 3
    for s in api:
        assert parse_version(s.to_version).line.minus(parse_version(s.from_version).line) == 1
        assert "one at a time" in s.reason
    # controllers follow each minor's apiservers
    idx = {s.id: i for i, s in enumerate(plan.steps)}
    for minor in (32, 33, 34):
        last_api = max(idx[s.id] for s in api if parse_version(s.to_version).line.minor == minor)
        cm = next(s for s in plan.steps if s.component == "kube-controller-manager"
                  and parse_version(s.to_version).line.minor == minor)
        assert idx[cm.id] == last_api + 1
    # nodes only after the last apiserver; canary first
    nodes = [s for s in plan.steps if s.phase is Phase.NODES]
    assert nodes and min(idx[s.id] for s in nodes) > max(idx[s.id] for s in api)
    assert nodes[0].canary and nodes[0].targets == ("n0",)
    assert "kubernetes#127316" in nodes[-1].reason
    assert all(s.reason and s.gates for s in plan.steps)
    final = replay(plan, f, cat)["c1"]
    assert {v for _, v in final.apiservers} == {k}
    assert {g.kubelet for g in final.node_groups} == {k}


def test_kubelets_three_minors_behind_are_upgraded_before_the_next_minor(cat: Catalog) -> None:
    runtime = "2.1.4"
    f = fleet(cluster("c1", "1.32.4", etcd=_kubeadm_etcd(cat, "1.32"), pools={
        "old": [node("old-1", "1.29.10", runtime), node("old-2", "1.29.10", runtime)],
        "new": [node("new-1", "1.32.4", runtime)]}))
    plan = make_plan(f, target(kubernetes=str(cat.latest_patch(Minor(1, 33)))), default_policy(),
                     cat, now=NOW, preflight=False)
    assert plan.reachable, plan.findings
    first_api = next(i for i, s in enumerate(plan.steps) if s.action == "upgrade-apiserver")
    pre = [s for s in plan.steps[:first_api] if s.phase is Phase.NODES]
    assert pre, "kubelets 3 minors behind must be rolled before the 1.33 control plane"
    assert {s.pool for s in pre} == {"old"}
    assert all(s.changes[-1].to_version == "1.32.4" for s in pre if s.component == "kubelet")
    assert "3 minors older" not in pre[0].reason or "allowed: 3" in pre[0].reason
    assert "would be 4 minors older" in pre[0].reason
    replay(plan, f, cat)


def test_runtime_and_kubelet_change_in_one_drain_in_a_supported_order(cat: Catalog) -> None:
    lines = cat.runtimes["containerd"]
    old = next(ln for ln in lines if ln.line == Minor(1, 7))
    newest_k = max(m for ln in lines for m in ln.supports if ln.line == Minor(2, 1))
    start_k = Minor(newest_k.major, newest_k.minor - 1)
    start_v = cat.latest_patch(start_k)
    kv = cat.latest_patch(newest_k)
    assert start_v and kv
    rt_from = str(old.supports.get(start_k, old.latest))
    f = fleet(cluster("c1", str(start_v), etcd=_kubeadm_etcd(cat, str(start_k)),
                      pools={"p": [node("n1", str(start_v), rt_from),
                                   node("n2", str(start_v), rt_from)]}))
    rt_to = next(ln for ln in lines if ln.line == Minor(2, 1)).latest
    plan = make_plan(f, target(kubernetes=str(kv), containerd=str(rt_to)), default_policy(), cat,
                     now=NOW, preflight=False)
    assert plan.reachable, plan.findings
    node_steps = [s for s in plan.steps if s.phase is Phase.NODES]
    for s in node_steps:
        comps = [c.component for c in s.changes]
        assert "kubelet" in comps and "containerd" in comps  # same drain
        # containerd does not skip a line: latest 1.7 patch first, then 2.0, then 2.1
        rt = [parse_version(c.to_version) for c in s.changes if c.component == "containerd"]
        assert rt[0] == old.latest
        assert [v.line for v in rt[1:]] == [Minor(2, 0), Minor(2, 1)]
    replay(plan, f, cat)


def test_etcd_snapshot_first_and_members_one_at_a_time(cat: Catalog) -> None:
    lines = sorted(cat.etcd_lines)
    k_minor = max(m for m, info in cat.etcd_for_kubernetes.items()
                  if lines[-2] in info.supported_lines and lines[-1] in info.supported_lines)
    kv = cat.latest_patch(k_minor)
    f = fleet(cluster("c1", str(kv), etcd=str(cat.etcd_lines[lines[-2]])))
    etcd_to = cat.etcd_lines[lines[-1]]
    plan = make_plan(f, target(etcd=str(etcd_to)), default_policy(), cat, now=NOW,
                     preflight=False)
    assert plan.reachable, plan.findings
    actions = [s.action for s in plan.steps]
    assert actions == ["etcd-snapshot"] + ["upgrade-etcd-member"] * 3
    assert "restoring this verified snapshot" in plan.steps[0].reason
    assert [s.targets for s in plan.steps[1:]] == [("etcd-1",), ("etcd-2",), ("etcd-3",)]
    assert "2 of 3 members keep quorum" in plan.steps[1].reason


def test_refuses_control_plane_downgrade_across_minors(cat: Catalog) -> None:
    f = fleet(cluster("c1", "1.32.4"))
    plan = make_plan(f, target(kubernetes="1.31.5"), default_policy(), cat, now=NOW,
                     preflight=False)
    assert not plan.reachable and not plan.steps
    (f0,) = [x for x in plan.findings if x.blocking]
    assert f0.code == "no-safe-plan" and "downgrade" in f0.message and f0.cluster == "c1"


def test_refuses_known_bad_etcd_unless_waived(cat: Catalog) -> None:
    f = fleet(cluster("c1", "1.32.4", etcd="3.4.23"))
    t = target(etcd="3.5.1")
    plan = make_plan(f, t, default_policy(), cat, now=NOW, preflight=False)
    assert "target-known-bad" in _codes(plan, blocking=True)
    bad = next(x for x in plan.findings if x.code == "target-known-bad")
    assert "etcd 3.5.1" in bad.message and "https://" in bad.message and "waiver" in bad.fix
    waiver = {"rule": "known-bad", "component": "etcd", "version": "3.5.1",
              "reason": "test cluster, accepted risk", "approvedBy": "sre-lead"}
    ok = make_plan(f, t, policy({"waivers": [{**waiver, "expires": "2027-01-31T00:00:00Z"}]}),
                   cat, now=NOW, preflight=False)
    assert "target-known-bad" not in _codes(ok) and "known-bad-waived" in _codes(ok)
    expired = make_plan(f, t, policy({"waivers": [{**waiver, "expires": "2026-10-01T00:00:00Z"}]}),
                        cat, now=NOW, preflight=False)
    bad = next(x for x in expired.findings if x.code == "target-known-bad")
    assert "expired on 2026-10-01" in bad.message


def test_refuses_removed_api_in_use(cat: Catalog) -> None:
    removed = next(a for a in cat.apis if a.removed_in == Minor(1, 25)
                   and a.kind == "PodDisruptionBudget")
    c = cluster("c1", "1.24.17", etcd=None, pools={"p": [node("n1", "1.24.17", "1.6.20")]},
                apiUsage=[{"apiVersion": removed.api_version, "kind": "PodDisruptionBudget",
                           "name": "web", "namespace": "shop", "source": "live"}])
    plan = make_plan(fleet(c), target(kubernetes=str(cat.latest_patch(Minor(1, 25)))),
                     default_policy(), cat, now=NOW, preflight=False)
    f0 = next(x for x in plan.findings if x.code == "removed-api-in-use")
    assert f0.blocking and not plan.reachable
    assert f0.objects == ("PodDisruptionBudget shop/web (live)",)
    assert "policy/v1" in f0.fix


def test_refuses_target_not_in_catalog_and_unknown_component(cat: Catalog) -> None:
    f = fleet(cluster("c1", "1.32.4"))
    newest = cat.newest_minor()
    plan = make_plan(f, target(kubernetes=f"{newest.major}.{newest.minor + 1}.0", fluxcap="1.0.0"),
                     default_policy(), cat, now=NOW, preflight=False)
    assert {"target-not-in-catalog", "target-unknown-component"} <= _codes(plan, blocking=True)


def test_unsupported_runtime_target_refused(cat: Catalog) -> None:
    k = cat.newest_minor()
    old_line = min(cat.runtimes["containerd"], key=lambda ln: ln.line)
    assert k not in old_line.supports
    plan = make_plan(fleet(cluster("c1", "1.32.4")),
                     target(kubernetes=str(cat.latest_patch(k)), containerd=str(old_line.latest)),
                     default_policy(), cat, now=NOW, preflight=False)
    f0 = next(x for x in plan.findings if x.code == "target-unsupported-runtime")
    assert f0.blocking and "choose one of" in f0.fix


def test_unsupported_runtime_waiver_lets_the_plan_through(cat: Catalog) -> None:
    # a containerd line whose newest supported minor has a next minor the catalog knows
    line, k1 = next((ln, max(ln.supports)) for ln in sorted(cat.runtimes["containerd"],
                                                            key=lambda ln: ln.line)
                    if cat.latest_patch(max(ln.supports).next()) is not None)
    k2 = k1.next()
    rt = str(line.latest)
    v1, v2 = str(cat.latest_patch(k1)), str(cat.latest_patch(k2))
    assert cat.runtime_supports("containerd", line.latest, k2) is False
    f = fleet(cluster("c1", v1, etcd=None,
                      pools={"p": [node(f"n{i}", v1, rt) for i in range(3)]}))
    t = target(kubernetes=v2, containerd=rt)
    refused = make_plan(f, t, default_policy(), cat, now=NOW, preflight=False)
    assert not refused.reachable and "target-unsupported-runtime" in _codes(refused, True)

    waiver = {"rule": "unsupported-runtime", "component": "containerd", "version": rt,
              "reason": "the vendor supports this pair for us until spring",
              "approvedBy": "platform-lead"}
    ok = make_plan(f, t, policy({"waivers": [{**waiver, "expires": "2027-03-01T00:00:00Z"}]}),
                   cat, now=NOW, preflight=False)
    assert ok.reachable, [x.message for x in ok.findings]
    w = next(x for x in ok.findings if x.code == "unsupported-runtime-waived")
    assert not w.blocking and "platform-lead" in w.message and f"containerd {rt}" in w.message
    node_steps = [s for s in ok.steps if s.phase is Phase.NODES]
    assert node_steps and all(s.to_version == v2 for s in node_steps)
    # every node ends at the new kubelet on the waived runtime; the only rule the final state
    # breaks is the waived one
    final = replay(ok, f, cat, tolerate={("runtime-unsupported", "containerd", rt)})["c1"]
    assert {(str(g.kubelet), str(g.runtime_version)) for g in final.node_groups} == {(v2, rt)}

    expired = make_plan(f, t, policy({"waivers": [{**waiver, "expires": "2026-10-01T00:00:00Z"}]}),
                        cat, now=NOW, preflight=False)
    assert not expired.reachable
    bad = next(x for x in expired.findings if x.code == "target-unsupported-runtime")
    assert "expired on 2026-10-01" in bad.message


def test_pdb_that_never_allows_disruption_blocks(cat: Catalog) -> None:
    c = cluster("c1", "1.32.4", workloads=[
        {"kind": "Deployment", "name": "ledger", "namespace": "pay", "replicas": 2,
         "labels": {"app": "ledger"}}],
        podDisruptionBudgets=[{"name": "ledger", "namespace": "pay", "maxUnavailable": 0,
                               "selector": {"matchLabels": {"app": "ledger"}}}])
    plan = make_plan(fleet(c), target(kubernetes="1.32.4"), default_policy(), cat, now=NOW)
    f0 = next(x for x in plan.findings if x.code == "pdb-blocks-drain")
    assert f0.blocking and any("ledger" in o for o in f0.objects) and not plan.reachable


def test_approvals_and_waves(cat: Catalog) -> None:
    f = fleet(cluster("stg", "1.32.4", environment="staging"),
              cluster("prod", "1.32.4", environment="production"),
              cluster("lab", "1.32.4", environment="development", labels={"team": "x"}))
    pol = policy({
        "waves": [{"name": "prod", "clusters": {"matchLabels": {"environment": "production"}}},
                  {"name": "canary", "canary": True, "soak": "2h",
                   "clusters": {"matchLabels": {"environment": "staging"}}}],
        "approvals": [{"environment": "production", "required": 2}],
    })
    plan = make_plan(f, target(kubernetes=str(cat.latest_patch(Minor(1, 33)))), pol, cat,
                     now=NOW, preflight=False)
    assert [w.name for w in plan.waves] == ["canary", "prod", "unassigned"]
    assert plan.waves[0].soak == timedelta(hours=2)
    assert "cluster-not-in-wave" in _codes(plan)
    assert [s.cluster for s in plan.steps if s.requires_approval] == ["prod"]
    assert plan.approvals[0].required == 2
    order = [s.cluster for s in plan.steps]
    assert order.index("prod") > max(i for i, c in enumerate(order) if c == "stg")


def test_examples_plan(cat: Catalog) -> None:
    cfg = load_files([EXAMPLES / "fleet.yaml", EXAMPLES / "policy.yaml", EXAMPLES / "target.yaml"])
    assert cfg.fleet is not None and cfg.policy is not None and cfg.target is not None
    plan = make_plan(cfg.fleet, cfg.target, cfg.policy, cat, now=NOW)
    # the example carries one PDB that blocks every drain of prod-eu-1, and nothing else blocks
    assert [(f.code, f.cluster) for f in plan.blocking] == [("pdb-blocks-drain", "prod-eu-1")]
    assert "payments/ledger" in plan.blocking[0].objects
    final = replay(plan, cfg.fleet, cat)
    k = parse_version(cfg.target.spec.versions["kubernetes"])
    assert all(g.kubelet == k for s in final.values() for g in s.node_groups)
    # staging is the canary wave and goes first; production needs approval
    assert plan.steps[0].cluster == "staging-eu"
    assert {s.cluster for s in plan.steps if s.requires_approval} == {"prod-eu-1", "prod-us-1"}
    # containerd 1.7 → 2.3 in place passes each line and an intermediate kubelet minor
    gen = next(s for s in plan.steps if s.cluster == "prod-us-1" and s.pool == "general")
    kubelets = [c.to_version for c in gen.changes if c.component == "kubelet"]
    assert len(kubelets) == 2 and kubelets[-1] == str(k)
    doc = plan.to_dict()
    assert doc["reachable"] is False and doc["steps"][0]["reason"]


def test_crio_follows_the_kubelet_minor_in_the_same_drain(cat: Catalog) -> None:
    k0, k1 = cat.latest_patch(Minor(1, 35)), cat.latest_patch(Minor(1, 36))
    assert k0 and k1
    c = cluster("c1", str(k0), etcd=_kubeadm_etcd(cat, "1.35"), pools={
        "p": [node(f"n{i}", str(k0), "1.35.2", rt="cri-o") for i in range(3)]})
    ok = make_plan(fleet(c), target(kubernetes=str(k1), cri_o="1.36.1",
                                    etcd=_kubeadm_etcd(cat, "1.36")),
                   default_policy(), cat, now=NOW, preflight=False)
    assert ok.reachable, ok.findings
    node_steps = [s for s in ok.steps if s.phase is Phase.NODES]
    assert node_steps and all({"cri-o", "kubelet"} <= {ch.component for ch in s.changes}
                              for s in node_steps)
    replay(ok, fleet(c), cat)
    # without a CRI-O target, the kubelet cannot move: refused, and told what to add
    no = make_plan(fleet(c), target(kubernetes=str(k1), etcd=_kubeadm_etcd(cat, "1.36")),
                   default_policy(), cat, now=NOW, preflight=False)
    f0 = next(x for x in no.blocking if x.code == "no-safe-plan")
    assert "cri-o" in f0.message and "cri-o=1.36.x" in f0.fix
    # a CRI-O minor that is not the kubelet's is refused up front
    bad = make_plan(fleet(c), target(kubernetes=str(k1), cri_o="1.35.9"), default_policy(), cat,
                    now=NOW, preflight=False)
    assert "target-unsupported-runtime" in _codes(bad, blocking=True)


def test_pre_roll_is_reported_as_an_extra_roll(cat: Catalog) -> None:
    f = fleet(cluster("c1", "1.32.4", etcd=_kubeadm_etcd(cat, "1.32"), pools={
        "old": [node("old-1", "1.29.10", "2.1.4")], "new": [node("new-1", "1.32.4", "2.1.4")]}))
    plan = make_plan(f, target(kubernetes=str(cat.latest_patch(Minor(1, 33)))), default_policy(),
                     cat, now=NOW, preflight=False)
    extra = [x for x in plan.findings if x.code == "extra-node-roll"]
    assert [x.objects for x in extra] == [("old-1",)]


def test_plan_json_round_trip(cat: Catalog) -> None:
    from pitstop.planner.plan import plan_from_dict

    cfg = load_files([EXAMPLES / "fleet.yaml", EXAMPLES / "policy.yaml", EXAMPLES / "target.yaml"])
    assert cfg.fleet and cfg.policy and cfg.target
    plan = make_plan(cfg.fleet, cfg.target, cfg.policy, cat, now=NOW)
    again = plan_from_dict(plan.to_dict())
    assert again.to_dict() == plan.to_dict()


# ---------------------------------------------------------------------------------------------
# kube-proxy before 1.25, etcd upgrade-from floors, one roll per pool after a pre-roll


def _m(v: str) -> int:
    """The minor number of a 1.x version."""
    return parse_version(v).minor


def _one_node_plan(cat: Catalog, version: str, kube_proxy: str, to: str) -> tuple[Fleet, Plan]:
    """A cluster at ``version`` with one node whose kube-proxy is ``kube_proxy``, planned to
    ``to`` with ``cat``."""
    f = fleet(cluster("c1", version, etcd=None,
                      pools={"p": [node("n1", version, "1.7.24", kubeProxy=kube_proxy)]}))
    plan = make_plan(f, target(kubernetes=to), default_policy(), cat, now=NOW, preflight=False)
    assert plan.reachable, [x.message for x in plan.blocking]
    return f, plan


def _catalog_with(tmp: Path, name: str, old: str, new: str) -> Catalog:
    """The shipped catalog with ``old`` replaced by ``new`` in data file ``name``."""
    from pitstop.catalog import load_catalog as load

    shipped = (Path(__file__).resolve().parent.parent / "src" / "pitstop" / "catalog" / "data"
               / name).read_text(encoding="utf-8")
    assert old in shipped
    (tmp / name).write_text(shipped.replace(old, new), encoding="utf-8")
    return load(tmp)


def _kube_proxy_states_ok(plan: Plan, node_name: str, kubelet: str, proxy: str,
                          apiservers: dict[str, str]) -> None:
    """Walk the plan's steps in order with plain numbers, independently of the rules module:
    kube-proxy before 1.25 must stay within two minors of the newest apiserver and of its
    kubelet (version-skew policy), in every state, including those inside a drain."""
    api = dict(apiservers)

    def check(where: str) -> None:
        if _m(proxy) < 25:
            assert max(_m(v) for v in api.values()) - _m(proxy) <= 2, (where, proxy, api)
            assert abs(_m(kubelet) - _m(proxy)) <= 2, (where, kubelet, proxy)

    check("today")
    for s in plan.steps:
        if s.action == "upgrade-apiserver":
            api[s.targets[0]] = s.to_version
            check(s.id)
        elif s.action == "upgrade-nodes" and node_name in s.targets:
            for c in s.changes:
                if c.component == "kubelet":
                    kubelet = c.to_version
                elif c.component == "kube-proxy":
                    proxy = c.to_version
                check(f"{s.id} {c.component} {c.to_version}")


def test_kube_proxy_before_1_25_may_be_only_two_minors_behind(cat: Catalog) -> None:
    from pitstop.catalog.rules import ClusterVersions, check_cluster

    v24, v25, v26, v27 = (str(cat.latest_patch(Minor(1, m))) for m in (24, 25, 26, 27))
    # the rule itself: kube-proxy 1.24 under an apiserver 1.27 (3 behind) and beside a kubelet
    # 1.27 (3 apart) breaks it; the same distances from a kube-proxy 1.25 do not
    for proxy, bad in ((v24, True), (v25, False)):
        base = cluster("c1", v27 if bad else str(cat.latest_patch(Minor(1, 28))), etcd=None,
                       pools={"p": [node("n1", v27 if bad else str(cat.latest_patch(
                           Minor(1, 28))), "1.7.24", kubeProxy=proxy)]})
        rules = {v.rule for v in check_cluster(ClusterVersions.from_cluster(
            fleet(base).spec.clusters[0]), cat)}
        assert ("kube-proxy-skew" in rules) is bad, (proxy, rules)
    c = cluster("c1", v26, etcd=None, pools={"p": [node("n1", v26, "1.7.24", kubeProxy=v24)]})
    found = [v.message for v in check_cluster(ClusterVersions.from_cluster(
        fleet(c).spec.clusters[0]), cat)]
    assert found == [], found  # two minors from the apiserver and from the kubelet: allowed

    # the case: kubelet 1.25, kube-proxy 1.24, apiservers 1.25, target 1.27
    f = fleet(cluster("c1", v25, etcd=None,
                      pools={"p": [node("n1", v25, "1.7.24", kubeProxy=v24),
                                   node("n2", v25, "1.7.24", kubeProxy=v24)]}))
    plan = make_plan(f, target(kubernetes=v27), default_policy(), cat, now=NOW,
                     preflight=False)
    assert plan.reachable, [x.message for x in plan.blocking]
    _kube_proxy_states_ok(plan, "n1", v25, v24, {f"cp-{i}": v25 for i in (1, 2, 3)})
    # the kube-proxies are pre-rolled before the control plane leaves 1.26, and say why
    first_27 = next(i for i, s in enumerate(plan.steps)
                    if s.action == "upgrade-apiserver" and s.to_version == v27)
    pre = [s for s in plan.steps[:first_27] if s.phase is Phase.NODES]
    assert pre and all(s.pool == "p" for s in pre)
    assert f"kube-proxy {v24} would be 3 minors older" in pre[0].reason
    assert "(allowed: 2)" in pre[0].reason
    replay(plan, f, cat)


def test_kube_proxy_before_1_25_is_never_three_minors_from_its_kubelet_mid_drain(
        cat: Catalog) -> None:
    """kubelet 1.26 with kube-proxy 1.24 under apiservers 1.26: the roll to 1.27 must not put
    kube-proxy 1.24 beside kubelet 1.27 (kube-proxy first, or a pre-roll)."""
    v24, v26, v27 = (str(cat.latest_patch(Minor(1, m))) for m in (24, 26, 27))
    f, plan = _one_node_plan(cat, v26, v24, v27)
    _kube_proxy_states_ok(plan, "n1", v26, v24, {f"cp-{i}": v26 for i in (1, 2, 3)})
    replay(plan, f, cat)


def test_etcd_3_5_to_3_6_passes_the_latest_3_5_patch_first(cat: Catalog) -> None:
    latest_35 = cat.etcd_lines[Minor(3, 5)]
    assert latest_35 >= parse_version("3.5.26")
    kv = str(cat.latest_patch(Minor(1, 34)))
    for members in (3, 1):
        f = fleet(cluster("c1", kv, apiservers=members, etcd="3.5.24"))
        plan = make_plan(f, target(etcd="3.6.8"), default_policy(), cat, now=NOW,
                         preflight=False)
        assert plan.reachable, [x.message for x in plan.blocking]
        etcd = [(s.action, s.to_version) for s in plan.steps if s.phase is Phase.ETCD]
        assert etcd == ([("etcd-snapshot", "3.5.24")]
                        + [("upgrade-etcd-member", str(latest_35))] * members
                        + [("etcd-snapshot", str(latest_35))]
                        + [("upgrade-etcd-member", "3.6.8")] * members), etcd
        # the snapshot and the member steps of the extra hop say why it exists
        hop = plan.steps[:members + 1]
        assert all("3.5.26 or later" in s.reason and "zombie" in s.reason for s in hop), [
            s.reason for s in hop]
        final = replay(plan, f, cat)["c1"]
        assert {v for _, v in final.etcd} == {parse_version("3.6.8")}
    # already at the floor: no extra hop
    f = fleet(cluster("c1", kv, etcd="3.5.26"))
    plan = make_plan(f, target(etcd="3.6.8"), default_policy(), cat, now=NOW, preflight=False)
    assert [s.to_version for s in plan.steps if s.action == "upgrade-etcd-member"] == [
        "3.6.8"] * 3


def test_etcd_members_on_3_6_beside_3_5_below_the_floor_break_a_rule(cat: Catalog) -> None:
    from pitstop.catalog.rules import ClusterVersions, check_cluster

    c = fleet(cluster("c1", str(cat.latest_patch(Minor(1, 34))), etcd="3.5.24")).spec.clusters[0]
    state = ClusterVersions.from_cluster(c).with_etcd_member("etcd-1", parse_version("3.6.8"))
    bad = [v for v in check_cluster(state, cat) if v.rule == "etcd-upgrade-floor"]
    assert len(bad) == 1 and set(bad[0].objects) == {"etcd-1", "etcd-2", "etcd-3"}
    assert "3.5.26" in bad[0].message
    ok = ClusterVersions.from_cluster(fleet(cluster(
        "c1", str(cat.latest_patch(Minor(1, 34))), etcd="3.5.26")).spec.clusters[0])
    assert not [v for v in check_cluster(ok.with_etcd_member("etcd-1", parse_version("3.6.8")),
                                         cat) if v.rule.startswith("etcd")]


def test_etcd_floor_the_catalog_cannot_meet_is_refused(cat: Catalog, tmp_path: Path) -> None:
    old = _catalog_with(tmp_path, "etcd.yaml", 'latestPatch: "3.5.35"', 'latestPatch: "3.5.25"')
    f = fleet(cluster("c1", str(cat.latest_patch(Minor(1, 34))), etcd="3.5.24"))
    plan = make_plan(f, target(etcd="3.6.8"), default_policy(), old, now=NOW, preflight=False)
    assert not plan.reachable and not plan.steps
    (f0,) = plan.blocking
    assert f0.code == "no-safe-plan" and "etcd-upgrade-floor" in f0.message
    assert "3.5.26" in f0.message and "3.5.25" in f0.message
    assert "--catalog" in f0.fix


def test_a_pool_pre_rolled_with_a_canary_is_rolled_once_more_as_one_group(cat: Catalog) -> None:
    old = str(cat.latest_patch(Minor(1, 29)))
    now = str(cat.latest_patch(Minor(1, 32)))
    to = str(cat.latest_patch(Minor(1, 33)))
    names = [f"n{i}" for i in range(6)]
    f = fleet(cluster("c1", now, etcd=_kubeadm_etcd(cat, "1.32"),
                      pools={"p": [node(n, old, "1.7.24") for n in names]}))
    pol = policy({"pools": [{"canaryNodes": 1, "maxUnavailable": 2}]})
    plan = make_plan(f, target(kubernetes=to), pol, cat, now=NOW, preflight=False)
    assert plan.reachable, [x.message for x in plan.blocking]
    last_api = max(i for i, s in enumerate(plan.steps) if s.action == "upgrade-apiserver")
    pre = [s for s in plan.steps[:last_api] if s.phase is Phase.NODES]
    final = [s for s in plan.steps[last_api:] if s.phase is Phase.NODES]
    for roll in (pre, final):
        # one canary step and one step for the rest; every node drained exactly once
        assert [s.canary for s in roll] == [True, False], [(s.id, s.targets) for s in roll]
        drained = [n for s in roll for n in s.targets]
        assert sorted(drained) == names, drained
    assert final[0].targets == ("n0",)
    replay(plan, f, cat)


def test_kube_proxy_goes_first_when_the_new_kubelet_would_be_too_far_from_it(
        cat: Catalog, tmp_path: Path) -> None:
    """With a catalog that allows an old kube-proxy only one minor from its kubelet, kubelet
    1.25 → 1.26 beside kube-proxy 1.24 moves kube-proxy first: kubelet first would put kube-proxy
    1.24 two minors from kubelet 1.26."""
    strict = _catalog_with(tmp_path, "kubernetes.yaml",
                           'kubeProxyMaxSkewToKubeletLegacy: {before: "1.25", minors: 2}',
                           'kubeProxyMaxSkewToKubeletLegacy: {before: "1.25", minors: 1}')
    v24, v25, v26 = (str(cat.latest_patch(Minor(1, m))) for m in (24, 25, 26))
    f, plan = _one_node_plan(strict, v25, v24, v26)
    (step,) = [s for s in plan.steps if s.phase is Phase.NODES]
    assert [(c.component, c.to_version) for c in step.changes] == [
        ("kube-proxy", v26), ("kubelet", v26)]
    replay(plan, f, strict)
