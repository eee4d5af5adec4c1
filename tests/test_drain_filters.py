"""kubectl's drain filters, pod by pod (the pods are plain observation values)."""

from __future__ import annotations

from pitstop.backend import PodObservation
from pitstop.drain import DrainOptions, filter_pods


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
    assert r.errors and "DaemonSet" in r.errors[0][1]
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
    assert r.errors and "no controller" in r.errors[0][1] and not r.evict
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
