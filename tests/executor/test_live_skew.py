"""The live skew check on the twin: an apiserver rolled back by hand after the control plane was
upgraded pauses the run before the node step (never fails it, never skips the step), names the
instance and the versions, and `resume` checks again and completes once it is fixed."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.backend import OperationState, UpgradeComponent
from pitstop.executor.core import Executor
from pitstop.executor.run import create_run, open_run
from pitstop.executor.skew import live_skew_problems
from pitstop.model import Fleet, UpgradePolicy, UpgradeTarget
from pitstop.planner import make_plan
from pitstop.twin import Twin
from pitstop.versions import parse_version

from .test_executor import CAT, START, TARGET, fleet_doc


def _by_hand(twin: Twin, key: str, instance: str, version: str) -> None:
    """What a person does outside pitstop: restart one apiserver at another version."""
    op = twin.start("c1", key, UpgradeComponent(instance, "kube-apiserver", version))
    while op.state is OperationState.RUNNING:
        twin.clock.sleep(5)
        op = twin.poll("c1", key)
    assert op.state is OperationState.SUCCEEDED, op.message


def test_apiserver_rolled_back_by_hand_pauses_the_node_step(tmp_path: Path) -> None:
    fleet = Fleet.model_validate(fleet_doc(nodes=3))
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {}})
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     policy, CAT, now=START)
    run = create_run(tmp_path, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    last_cp = [s for s in plan.steps if s.action == "upgrade-scheduler"][-1]
    first_node = next(s for s in plan.steps if s.action == "upgrade-nodes")

    def on_event(action: str, info: dict[str, Any]) -> None:
        if action == "step-done" and info["subject"] == last_cp.id:
            _by_hand(twin, "by-hand/cp-1/back", "cp-1", "1.35.8")

    result = Executor(run, twin, on_event=on_event, catalog=CAT).execute()
    assert result.status == "paused", result.reason
    assert f"step {first_node.id} not started" in result.reason
    assert "kubelet-skew" in result.reason and "cp-1 still at 1.35.8" in result.reason
    assert "kube-apiserver cp-0 1.36.5, cp-1 1.35.8, cp-2 1.36.5" in result.reason
    assert run.journal.step(first_node.id).status == "paused"
    assert all(not n.unschedulable and n.kubelet == "1.35.8" for n in twin.observe("c1").nodes)
    checks = [a for a in run.journal.actions(first_node.id) if a.kind == "skew-check"]
    assert [a.outcome for a in checks] == ["paused"]
    print(f"\npaused: {result.reason}")

    _by_hand(twin, "by-hand/cp-1/fix", "cp-1", "1.36.5")  # the fix, then `pitstop resume`
    again = Executor(open_run(run.path), twin, catalog=CAT).execute()
    assert again.status == "completed", again.reason
    checks = [a for a in run.journal.actions(first_node.id) if a.kind == "skew-check"]
    assert [a.outcome for a in checks] == ["paused", "ok"]


def test_the_check_uses_the_same_rules_as_the_planner(tmp_path: Path) -> None:
    """No second copy of a rule: a control-plane step whose controller would be newer than an
    apiserver is the planner's controller-skew violation, word for word."""
    fleet = Fleet.model_validate(fleet_doc(nodes=1))
    twin = Twin.create(fleet, seed=1, state_path=tmp_path / "twin.sqlite",
                       start=START.timestamp())
    plan = make_plan(fleet, UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {}}),
                     CAT, now=START)
    cm = next(s for s in plan.steps if s.action == "upgrade-controller-manager")
    problems = live_skew_problems(twin.observe("c1"), cm, CAT)  # apiservers still at 1.35.8
    assert [(p.violation.rule, p.violation.message) for p in problems] == [
        ("controller-skew", "kube-controller-manager 1.36.5 is newer than kube-apiserver 1.35.8")]


def _waived_run(tmp: Path, expires: str) -> tuple[Any, Any, Any]:
    """containerd 2.1.9 nodes taken to kubelet 1.36.5, a pair the catalog does not support,
    under an unsupported-runtime waiver that expires at ``expires``."""
    doc = fleet_doc(nodes=3)
    for n in doc["spec"]["clusters"][0]["nodePools"][0]["nodes"]:
        n["containerRuntime"]["version"] = "2.1.9"
    fleet = Fleet.model_validate(doc)
    policy = UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {"waivers": [{
        "rule": "unsupported-runtime", "component": "containerd", "version": "2.1.9",
        "reason": "the vendor supports this pair for us until spring",
        "approvedBy": "platform-lead", "expires": expires}]}})
    target = UpgradeTarget.model_validate({"spec": {"versions": {"kubernetes": "1.36.5",
                                                                  "containerd": "2.1.9"}}})
    plan = make_plan(fleet, target, policy, CAT, now=START)
    assert plan.reachable, [f.message for f in plan.findings]
    assert CAT.runtime_supports("containerd", parse_version("2.1.9"),
                                parse_version("1.36.5").line) is False
    run = create_run(tmp, plan, policy, {c.name: c.full_labels for c in fleet.spec.clusters},
                     {"kind": "twin", "state": "twin.sqlite", "seed": 1})
    twin = Twin.create(fleet, seed=1, state_path=run.path / "twin.sqlite",
                       start=START.timestamp())
    return plan, run, twin


def test_a_waived_runtime_pair_passes_the_live_check(tmp_path: Path) -> None:
    plan, run, twin = _waived_run(tmp_path, "2027-03-01T00:00:00Z")
    result = Executor(run, twin, catalog=CAT).execute()
    assert result.status == "completed", result.reason
    assert {(n.kubelet, n.runtime_version) for n in twin.observe("c1").nodes} == {
        ("1.36.5", "2.1.9")}
    node_steps = [s for s in plan.steps if s.action == "upgrade-nodes"]
    checks = [a.outcome for s in node_steps for a in run.journal.actions(s.id)
              if a.kind == "skew-check"]
    assert checks and set(checks) == {"ok"}


def test_a_waiver_that_expires_during_the_run_pauses_it(tmp_path: Path) -> None:
    # valid when the plan is made (START), expired two minutes later, while the control plane is
    # being upgraded: the first node step's live check refuses the pair and pauses the run
    expires = datetime.fromtimestamp(START.timestamp() + 120, UTC).isoformat()
    plan, run, twin = _waived_run(tmp_path, expires)
    result = Executor(run, twin, catalog=CAT).execute()
    assert result.status == "paused", result.reason
    first_node = next(s for s in plan.steps if s.action == "upgrade-nodes")
    assert f"step {first_node.id} not started" in result.reason
    assert "runtime-unsupported" in result.reason and "containerd 2.1.9" in result.reason
    assert all(n.kubelet == "1.35.8" and not n.unschedulable for n in twin.observe("c1").nodes)


# ---------------------------------------------------------------------------------------------
# Resume part-way through a multi-hop node step: each node is judged from where it is.


def _multi_hop_plan(nodes: int = 5) -> tuple[dict[str, Any], Any]:
    """kubelet 1.34 → 1.36 with containerd 1.7 → 2.3 in one drain (several runtime hops and an
    intermediate kubelet minor), as in the example fleet's prod-us-1."""
    doc = fleet_doc(nodes=nodes)
    c = doc["spec"]["clusters"][0]
    for a in c["controlPlane"]["apiServers"]:
        a["version"] = "1.34.12"
    c["controlPlane"]["controllerManager"]["version"] = "1.34.12"
    c["controlPlane"]["scheduler"]["version"] = "1.34.12"
    for n in c["nodePools"][0]["nodes"]:
        n["kubelet"], n["containerRuntime"]["version"] = "1.34.12", "1.7.30"
    plan = make_plan(Fleet.model_validate(doc),
                     UpgradeTarget.model_validate({"spec": {"versions": TARGET}}),
                     UpgradePolicy.model_validate({"metadata": {"name": "p"}, "spec": {}}),
                     CAT, now=START)
    assert plan.reachable, [f.message for f in plan.blocking]
    return doc, plan


def _observed(tmp: Path, doc: dict[str, Any], apiserver: str,
              nodes: dict[str, tuple[str, str, str]]) -> Any:
    """The twin started at the versions a crash left: control plane at ``apiserver``, and each
    node named in ``nodes`` at (kubelet, kube-proxy, containerd)."""
    doc = copy.deepcopy(doc)
    c = doc["spec"]["clusters"][0]
    for a in c["controlPlane"]["apiServers"]:
        a["version"] = apiserver
    c["controlPlane"]["controllerManager"]["version"] = apiserver
    c["controlPlane"]["scheduler"]["version"] = apiserver
    for n in c["nodePools"][0]["nodes"]:
        if n["name"] in nodes:
            n["kubelet"], n["kubeProxy"], n["containerRuntime"]["version"] = nodes[n["name"]]
    twin = Twin.create(Fleet.model_validate(doc), seed=1, state_path=tmp / "twin.sqlite",
                       start=START.timestamp())
    return twin.observe("c1")


def _positions(step: Any) -> list[tuple[str, str, str]]:
    """(kubelet, kube-proxy, containerd) after each change of ``step``, from its start."""
    at = {c.component: c.from_version for c in reversed(step.changes)}
    out = [(at["kubelet"], at["kube-proxy"], at["containerd"])]
    for c in step.changes:
        at[c.component] = c.to_version
        out.append((at["kubelet"], at["kube-proxy"], at["containerd"]))
    return out


def test_a_resumed_multi_hop_node_step_is_judged_from_where_each_node_is(
        tmp_path: Path) -> None:
    doc, plan = _multi_hop_plan()
    step = next(s for s in plan.steps if s.action == "upgrade-nodes" and len(s.targets) >= 3)
    assert len([c for c in step.changes if c.component == "containerd"]) >= 4
    assert len([c for c in step.changes if c.component == "kubelet"]) == 2
    pos = _positions(step)
    done, part, untouched = step.targets[:3]
    # the first node of the step done, the second part-way (runtime at 2.1.9, kubelet still
    # 1.34), the third untouched; the canary before the step is done
    part_way = next(p for p in pos if p[2] == "2.1.9")
    assert part_way[0] == "1.34.12"
    canary = next(s for s in plan.steps if s.action == "upgrade-nodes").targets
    obs = _observed(tmp_path, doc, "1.36.5", {
        **dict.fromkeys(canary, pos[-1]), done: pos[-1], part: part_way})
    assert [(n.kubelet, n.runtime_version) for n in obs.nodes if n.name == untouched] == [
        ("1.34.12", "1.7.30")]
    problems = live_skew_problems(obs, step, CAT)
    assert problems == [], [f"{p.when}: {p.violation.message}" for p in problems]

    # every point of the step, for the node part-way, is judged as a resume would find it
    for i, at in enumerate(pos):
        obs = _observed(tmp_path / str(i), doc, "1.36.5", {done: pos[-1], part: at})
        problems = live_skew_problems(obs, step, CAT)
        assert problems == [], (i, at, [p.violation.message for p in problems])


def test_the_remaining_changes_are_still_judged(tmp_path: Path) -> None:
    """A node part-way whose next changes take its kubelet past an apiserver rolled back by hand
    still pauses the run: what is left of the step is judged, not skipped."""
    doc, plan = _multi_hop_plan()
    step = next(s for s in plan.steps if s.action == "upgrade-nodes" and len(s.targets) >= 3)
    pos = _positions(step)
    part, untouched = step.targets[1:3]
    part_way = next(p for p in pos if p[2] == "2.1.9")
    obs = _observed(tmp_path, doc, "1.36.5", {part: part_way})
    back = replace(obs, apiservers={**obs.apiservers, "cp-1": "1.35.8"})
    found = [(p.when, p.violation.rule, p.violation.message)
             for p in live_skew_problems(back, step, CAT)]
    assert {rule for when, rule, _ in found if when == "now"} == {"controller-skew"}, found
    later = [f for f in found if f[0] != "now"]
    assert ("after kubelet 1.36.5 on " in later[0][0] and part in later[0][0]
            and untouched in later[0][0]), found
    assert later[0][1:] == ("kubelet-skew",
                            "kubelet 1.36.5 in pool p is newer than kube-apiserver 1.35.8"), found
