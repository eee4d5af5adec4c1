"""Test helpers: build fleets compactly, and replay a plan's steps on a cluster state, checking
every intermediate state with the catalog's rules (independently of how the planner built it)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pitstop.catalog import Catalog
from pitstop.catalog.rules import ClusterVersions, check_cluster
from pitstop.model import Cluster, Fleet, UpgradePolicy, UpgradeTarget
from pitstop.model.common import Metadata
from pitstop.planner import Plan, Step
from pitstop.versions import parse_version

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def node(name: str, kubelet: str, runtime: str = "1.7.24", rt: str = "containerd",
         **extra: Any) -> dict[str, Any]:
    return {"name": name, "kubelet": kubelet, "containerRuntime": {"name": rt, "version": runtime},
            **extra}


def cluster(name: str, version: str, *, apiservers: int = 3, etcd: str | None = "3.5.26",
            pools: dict[str, list[dict[str, Any]]] | None = None, **extra: Any) -> dict[str, Any]:
    cp: dict[str, Any] = {
        "apiServers": [{"name": f"cp-{i}", "version": version} for i in range(1, apiservers + 1)],
        "controllerManager": {"version": version},
        "scheduler": {"version": version},
    }
    if etcd:
        cp["etcd"] = {"version": etcd,
                      "members": [{"name": f"etcd-{i}"} for i in range(1, apiservers + 1)]}
    pools = pools or {"general": [node(f"{name}-n{i}", version) for i in range(3)]}
    return {"name": name, "controlPlane": cp,
            "nodePools": [{"name": p, "nodes": ns} for p, ns in pools.items()], **extra}


def fleet(*clusters: dict[str, Any]) -> Fleet:
    return Fleet.model_validate({"apiVersion": "pitstop.dev/v1alpha1", "kind": "Fleet",
                                 "metadata": {"name": "test"},
                                 "spec": {"clusters": list(clusters)}})


def policy(spec: dict[str, Any] | None = None) -> UpgradePolicy:
    return UpgradePolicy.model_validate({"metadata": {"name": "test"}, "spec": spec or {}})


def default_policy() -> UpgradePolicy:
    return UpgradePolicy(metadata=Metadata(name="default"))


def target(**versions: str) -> UpgradeTarget:
    return UpgradeTarget.model_validate(
        {"spec": {"versions": {k.replace("_", "-"): v for k, v in versions.items()}}})


class ReplayError(AssertionError):
    pass


def apply_step(state: ClusterVersions, step: Step, catalog: Catalog,
               tolerated: set[tuple[str, str]],
               waived: set[tuple[str, str, str]] | None = None) -> ClusterVersions:
    """Apply one step; check the state after every change it makes."""

    def check(s: ClusterVersions, what: str) -> None:
        bad = [v for v in check_cluster(s, catalog) if (v.rule, v.message) not in tolerated
               and (v.rule, v.component, v.version) not in (waived or set())]
        if bad:
            raise ReplayError(f"{step.id}: {what} breaks {bad}")

    to = parse_version(step.to_version) if step.to_version else None
    if step.action == "upgrade-apiserver":
        assert to is not None
        (name,) = step.targets
        state = state.with_apiserver(name, to)
    elif step.action in ("upgrade-controller-manager", "upgrade-scheduler",
                         "upgrade-cloud-controller-manager"):
        attr = step.action.removeprefix("upgrade-").replace("-", "_")
        state = replace(state, **{attr: to})
    elif step.action == "provider-upgrade-control-plane":
        assert to is not None
        for n, _ in state.apiservers:
            state = state.with_apiserver(n, to)
        state = replace(state, controller_manager=to, scheduler=to)
    elif step.action == "upgrade-etcd-member":
        assert to is not None
        (name,) = step.targets
        state = state.with_etcd_member(name, to)
    elif step.action == "upgrade-nodes":
        # a replaced node appears with all new versions at once; in place, each change is a state
        for n, ch in enumerate(step.changes, 1):
            v = parse_version(ch.to_version)
            if ch.component == "kubelet":
                state = state.with_nodes(step.pool, step.targets, kubelet=v)
            elif ch.component == "kube-proxy":
                state = state.with_nodes(step.pool, step.targets, kube_proxy=v)
            else:
                state = state.with_nodes(step.pool, step.targets, runtime_version=v)
            atomic = step.strategy == "replace" or any(
                c.component == "cri-o" for c in step.changes)
            if not atomic or n == len(step.changes):
                check(state, f"{ch.component} → {ch.to_version}")
        return state
    elif step.action in ("etcd-snapshot", "upgrade-addon"):
        return state
    else:
        raise ReplayError(f"unknown action {step.action}")
    check(state, step.action)
    return state


def replay(plan: Plan, fleet_: Fleet, catalog: Catalog,
           tolerate: set[tuple[str, str, str]] | None = None) -> dict[str, ClusterVersions]:
    """Replay every cluster's steps; returns final states. Support gaps that exist today (a
    runtime or etcd below the catalog's minimum) are tolerated while they stay exactly as they
    are; skew violations never are. ``tolerate`` adds (rule, component, version) triples a
    waiver allows."""
    out: dict[str, ClusterVersions] = {}
    for c in fleet_.spec.clusters:
        state = ClusterVersions.from_cluster(c)
        today = check_cluster(state, catalog)
        assert all(v.rule in ("runtime-unsupported", "etcd-unsupported") for v in today), today
        tolerated = {(v.rule, v.message) for v in today}
        for step in plan.steps_of(c.name):
            state = apply_step(state, step, catalog, tolerated, tolerate)
        out[c.name] = state
    return out


def cluster_of(f: Fleet, name: str) -> Cluster:
    return f.cluster(name)
