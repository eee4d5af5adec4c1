"""kubectl's drain filters, pod by pod (the pods are plain observation values), and the Drainer
on the twin when errors mix: what kubectl drain does in each case is in pitstop.drain.logic's
docstring, checked against the real kubectl in tests/k8s/test_drain_conformance.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness.drain import SeenEvictions

from pitstop.backend import PodObservation
from pitstop.drain import (
    Drainer,
    DrainErrorKind,
    DrainOptions,
    DrainState,
    DrainStatus,
    filter_pods,
)
from pitstop.twin import Twin, TwinEvent
from tests.twin.twinlib import C, fleet, node, pdb, twin, workload


def pod(name: str, *, owner: str | None = "ReplicaSet", phase: str = "Running",
        empty_dir: bool = False, mirror: bool = False, deleting_for: float = 0.0) -> PodObservation:
    return PodObservation(
        namespace="ns", name=name, uid=f"uid-{name}", node="n1", phase=phase, ready=True,
        labels={"app": name}, owner_kind=owner, owner_name=f"{name}-owner" if owner else None,
        workload=f"ns/{name}", deleting=deleting_for > 0, deleting_for=deleting_for,
        mirror=mirror, empty_dir=empty_dir)


def keys(pods: tuple[PodObservation, ...]) -> list[str]:
    return [p.name for p in pods]


def test_replicated_pods_are_evicted() -> None:
    r = filter_pods([pod("web"), pod("db", owner="StatefulSet")], DrainOptions())
    assert keys(r.evict) == ["db", "web"] and not r.errors


def test_daemonset_pods_left_with_warning_or_error() -> None:
    ds = pod("agent", owner="DaemonSet")
    r = filter_pods([ds], DrainOptions(ignore_daemonsets=True))
    assert not r.evict and r.warnings == (("ns/agent", "DaemonSet-managed pod left in place"),)
    r = filter_pods([ds], DrainOptions(ignore_daemonsets=False))
    assert r.errors and "DaemonSet" in r.errors[0].why
    done = pod("agent", owner="DaemonSet", phase="Succeeded")
    assert keys(filter_pods([done], DrainOptions(ignore_daemonsets=False)).evict) == ["agent"]


def test_mirror_pods_skipped() -> None:
    r = filter_pods([pod("etcd", owner="Node", mirror=True)], DrainOptions())
    assert not r.evict and r.skipped[0][1] == "mirror (static) pod"


def test_empty_dir_needs_permission_unless_finished() -> None:
    cache = pod("cache", empty_dir=True)
    assert filter_pods([cache], DrainOptions()).errors
    assert keys(filter_pods([cache], DrainOptions(delete_empty_dir_data=True)).evict) == ["cache"]
    finished = pod("cache", empty_dir=True, phase="Failed")
    assert keys(filter_pods([finished], DrainOptions()).evict) == ["cache"]


def test_unreplicated_pods_need_force() -> None:
    bare = pod("debug", owner=None)
    r = filter_pods([bare], DrainOptions())
    assert r.errors and "no controller" in r.errors[0].why and not r.evict
    r = filter_pods([bare], DrainOptions(force=True))
    assert keys(r.evict) == ["debug"] and r.warnings


def test_filter_order_daemonset_before_empty_dir() -> None:
    # a DaemonSet pod with emptyDir is left alone (the DaemonSet filter decides first)
    r = filter_pods([pod("agent", owner="DaemonSet", empty_dir=True)], DrainOptions())
    assert not r.errors and not r.evict


def test_long_deleting_pods_skipped_only_with_timeout() -> None:
    stuck = pod("old", deleting_for=600)
    assert keys(filter_pods([stuck], DrainOptions()).evict) == ["old"]
    r = filter_pods([stuck], DrainOptions(skip_wait_for_delete_timeout_s=60))
    assert not r.evict and r.skipped


# -- the Drainer, on the twin (its eviction API answers as the API server's does) ------------
# Every pod of these fleets starts on node n0; n1 takes the replacements. The twin runs in
# virtual time: the loop below advances the drain once per virtual second.


def _drain(tmp_path: Path, workloads: list[dict[str, Any]], pdbs: list[dict[str, Any]],
           timeout_s: float = 120.0, **opts: Any
           ) -> tuple[Twin, DrainStatus, list[str], dict[str, list[str]]]:
    """(twin, final status, hook calls, the pods on n0 before the drain by app label)."""
    t = twin(tmp_path, fleet([node("n0"), node("n1")], workloads, pdbs))
    first = t.observe(C).pods
    assert {p.node for p in first} == {"n0"}
    before: dict[str, list[str]] = {}
    for p in sorted(first, key=lambda p: p.key):
        before.setdefault(p.labels["app"], []).append(p.key)
    t.cordon(C, "n0", "drain test")
    hooks: list[str] = []  # "evict <pod>" before each call, "<answer> <pod>" after it
    seen = SeenEvictions(t, C, before=lambda p, how: hooks.append(f"{how} {p.key}"),
                         after=lambda p, answer: hooks.append(f"{answer} {p.key}"))
    d = Drainer(seen, "n0", DrainOptions(timeout_s=timeout_s, **opts), started=t.clock.now())
    for _ in range(int(timeout_s) + 60):
        if d.advance(t.observe(C)).state is not DrainState.RUNNING:
            break
        t.clock.sleep(1.0)
    assert d.status.state is not DrainState.RUNNING, d.status
    return t, d.status, hooks, before


def _on_n0(name: str, replicas: int) -> dict[str, Any]:
    return workload(name, replicas, nodes=["n0"] * replicas)


def _evict_calls(t: Twin) -> list[TwinEvent]:
    return [e for e in t.events(source="call") if e.kind == "evict"]


def _announced_before_each_call(t: Twin, hooks: list[str]) -> None:
    calls = _evict_calls(t)
    asked = [h for h in hooks if h.startswith("evict ")]
    answered = [h for h in hooks if not h.startswith("evict ")]
    assert asked == [f"evict {e.subject}" for e in calls]
    assert [h.split(" ")[1] for h in answered] == [e.subject for e in calls]
    assert [h.split(" ")[0] for h in answered] == [e.detail for e in calls]
    # every call announced before it is made (a round's announcements first), answered after
    pending: dict[str, int] = {}
    for h in hooks:
        what, pod = h.split(" ")
        if what == "evict":
            pending[pod] = pending.get(pod, 0) + 1
        else:
            assert pending.get(pod), f"{pod} answered before it was asked: {hooks}"
            pending[pod] -= 1


OVERLAP = [pdb("web-a", "web", maxUnavailable=1), pdb("web-b", "web", maxUnavailable=1)]


def test_a_pod_under_two_pdbs_is_an_error_while_the_others_are_retried_until_gone(
        tmp_path: Path) -> None:
    # web: two PDBs (500, never retried); worker: one disruption at a time, so the second
    # worker pod gets 429 until the first one's replacement is ready, then goes
    t, status, hooks, before = _drain(tmp_path, [_on_n0("web", 2), _on_n0("worker", 2)],
                                      [*OVERLAP, pdb("worker", "worker", maxUnavailable=1)])
    web, worker = before["web"], before["worker"]
    assert len(web) == len(worker) == 2
    assert status.state is DrainState.FAILED, status
    assert sorted(status.evicted) == worker  # both, the second after its 429s
    assert status.remaining == web
    assert [(e.kind, e.pod, e.pdbs) for e in status.errors] == [
        (DrainErrorKind.MULTIPLE_PDBS, p, ("default/web-a", "default/web-b")) for p in web]
    assert status.blocking_pdbs == ["default/web-a", "default/web-b"]
    for name in [*web, "default/web-a", "default/web-b"]:
        assert name in status.message
    calls = Counter((e.subject, e.detail) for e in _evict_calls(t))
    assert {p: calls[(p, "multiple-pdbs")] for p in web} == dict.fromkeys(web, 1)  # no retry
    assert sum(calls[(p, "budget-exhausted")] for p in worker) >= 1  # it was retried
    _announced_before_each_call(t, hooks)


def test_at_the_timeout_every_remaining_pod_every_pdb_and_every_error_are_named(
        tmp_path: Path) -> None:
    # + strict: maxUnavailable 0, never evicted: the drain runs to its timeout
    t, status, hooks, before = _drain(
        tmp_path, [_on_n0("web", 2), _on_n0("worker", 2), _on_n0("strict", 1)],
        [*OVERLAP, pdb("worker", "worker", maxUnavailable=1),
         pdb("strict", "strict", maxUnavailable=0)], timeout_s=60.0)
    web, worker, strict = before["web"], before["worker"], before["strict"]
    assert status.state is DrainState.TIMED_OUT, status
    assert sorted(status.evicted) == worker
    assert status.remaining == sorted([*strict, *web])
    assert sorted((e.kind, e.pod) for e in status.errors) == sorted(
        [(DrainErrorKind.MULTIPLE_PDBS, p) for p in web]
        + [(DrainErrorKind.TIMEOUT, p) for p in strict])
    assert status.blocking_pdbs == ["default/strict", "default/web-a", "default/web-b"]
    for name in [*web, *strict, *status.blocking_pdbs]:
        assert name in status.message
    assert "more than one PodDisruptionBudget" in status.message
    calls = _evict_calls(t)
    strict_calls = [e for e in calls if e.subject in strict]
    assert len(strict_calls) > 1 and {e.detail for e in strict_calls} == {"budget-exhausted"}
    assert all(e.time < 60.0 for e in calls)  # no eviction asked after the timeout
    _announced_before_each_call(t, hooks)


def test_a_refused_pod_stops_the_drain_before_any_eviction_even_beside_pdb_errors(
        tmp_path: Path) -> None:
    # kubectl runs the filters first and evicts nothing when one refuses a pod
    bare = {"kind": "Pod", "name": "debug", "namespace": "default", "labels": {"app": "debug"},
            "nodes": ["n0"]}
    t, status, hooks, before = _drain(tmp_path, [_on_n0("web", 2), bare], OVERLAP)
    assert status.state is DrainState.FAILED, status
    assert [(e.kind, e.pod) for e in status.errors] == [
        (DrainErrorKind.NO_CONTROLLER, "default/debug")]
    assert before["debug"] == ["default/debug"]
    assert status.remaining == sorted(["default/debug", *before["web"]])
    assert status.evicted == [] and hooks == [] and _evict_calls(t) == []


def test_a_clean_drain_lists_every_eviction(tmp_path: Path) -> None:
    t, status, hooks, before = _drain(tmp_path, [_on_n0("web", 3)],
                                      [pdb("web", "web", maxUnavailable=1)])
    assert status.state is DrainState.DONE, status
    assert sorted(status.evicted) == before["web"] and status.remaining == []
    assert status.errors == [] and status.blocking_pdbs == []
    _announced_before_each_call(t, hooks)
