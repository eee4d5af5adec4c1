"""The live skew check: before a step starts, the cluster as observed *now*, moved by what the
step will change, must still satisfy every rule of :func:`pitstop.catalog.rules.check_cluster`.

The plan was checked against the fleet as it was when it was planned; the live cluster may have
moved since (someone rolled an apiserver back by hand, an instance came back from a restore at
its old version). So before a control-plane, etcd or node step the executor observes the cluster
through the backend, builds the same :class:`~pitstop.catalog.rules.ClusterVersions` the planner
uses, applies the step to it (each change of a node step in turn, as the planner does) and runs
the same rules. Nothing here restates a rule: it only builds states and asks ``check_cluster``.

Tolerated, as the planner tolerates them: support gaps (``runtime-unsupported``,
``etcd-unsupported``) that exist *now* with exactly the same message. Any other violation — in
the state now or in a state the step would create — pauses the run (see
:meth:`pitstop.executor.core.Executor`).

What the backend cannot see is not judged: a backend that reports no apiserver versions (the
hosts backend) gets no check, and components it cannot parse are left out. An apiserver instance
that the backend knows (in ``health``) but that does not answer has an unknown version — it
may be the old one — so it pauses the run too (:func:`silent_apiservers`), except the instance
an apiserver step is about to upgrade (it may be down because that upgrade is under way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pitstop.backend import ClusterObservation, HealthSignals
from pitstop.catalog import Catalog
from pitstop.catalog.rules import (
    SUPPORT_GAPS,
    ClusterVersions,
    NodeGroup,
    Violation,
    check_cluster,
    waiver_for,
)
from pitstop.model.policy import Waiver
from pitstop.planner.plan import Step
from pitstop.versions import Version, parse_version

__all__ = ["CHECKED_ACTIONS", "SkewProblem", "describe_apiservers", "live_skew_problems",
           "observed_versions", "silent_apiservers"]

CHECKED_ACTIONS = frozenset({
    "upgrade-apiserver", "upgrade-controller-manager", "upgrade-scheduler",
    "upgrade-cloud-controller-manager", "upgrade-etcd-member", "provider-upgrade-control-plane",
    "upgrade-nodes"})


@dataclass(frozen=True, slots=True)
class SkewProblem:
    """A violation the live cluster has now (``when`` = "now") or would have during or after the
    step (``when`` names the change)."""

    when: str
    violation: Violation


def _v(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return parse_version(text)
    except ValueError:
        return None


def observed_versions(obs: ClusterObservation) -> ClusterVersions | None:
    """The observation as the planner's :class:`ClusterVersions`; None when it has no apiserver
    version to judge against. The controller-manager or scheduler, when unknown, count as the
    oldest apiserver (the highest version the skew policy allows them)."""
    apiservers = tuple((n, v) for n, text in sorted(obs.apiservers.items())
                       if (v := _v(text)) is not None)
    if not apiservers:
        return None
    oldest = min(v for _, v in apiservers)
    groups: dict[tuple[str, Version, Version | None, str, Version], list[str]] = {}
    for n in obs.nodes:
        kubelet, runtime = _v(n.kubelet), _v(n.runtime_version)
        if kubelet is None or runtime is None:
            continue  # versions unknown (node unreachable): nothing to judge
        groups.setdefault((n.pool, kubelet, _v(n.kube_proxy), n.runtime, runtime),
                          []).append(n.name)
    return ClusterVersions(
        cluster=obs.cluster, apiservers=apiservers,
        controller_manager=_v(obs.controller_manager) or oldest,
        scheduler=_v(obs.scheduler) or oldest, cloud_controller_manager=None,
        etcd=tuple((m.name, v) for m in obs.etcd if (v := _v(m.version)) is not None),
        node_groups=tuple(NodeGroup(pool, k, p, rt, rv, tuple(sorted(names)))
                          for (pool, k, p, rt, rv), names in sorted(
                              groups.items(), key=lambda kv: kv[1][0])))


def _with_apiserver(state: ClusterVersions, name: str, v: Version) -> ClusterVersions:
    if any(n == name for n, _ in state.apiservers):
        return state.with_apiserver(name, v)
    # not answering now: it will be there, at v, once the step is done
    return replace(state, apiservers=(*state.apiservers, (name, v)))


def _states_after(state: ClusterVersions, step: Step,
                  obs: ClusterObservation) -> list[tuple[str, ClusterVersions]]:
    """The states the step passes through, in order (as :mod:`pitstop.planner.cluster` builds
    them: each change of an in-place node step is a state; a replaced node only its last)."""
    to = _v(step.to_version)
    if step.action == "upgrade-nodes":
        pools: dict[str, list[str]] = {}
        for name in step.targets:
            node = obs.node(name)
            pools.setdefault(node.pool if node is not None else step.pool, []).append(name)
        atomic = step.strategy == "replace" or any(c.component == "cri-o" for c in step.changes)
        out: list[tuple[str, ClusterVersions]] = []
        for i, ch in enumerate(step.changes, 1):
            v = _v(ch.to_version)
            if v is None:
                continue
            for pool, names in pools.items():
                if ch.component == "kubelet":
                    state = state.with_nodes(pool, names, kubelet=v)
                elif ch.component == "kube-proxy":
                    state = state.with_nodes(pool, names, kube_proxy=v)
                else:
                    state = state.with_nodes(pool, names, runtime_version=v)
            if not atomic or i == len(step.changes):
                out.append((f"{ch.component} {ch.to_version} on {', '.join(step.targets)}",
                            state))
        return out
    if to is None:
        return []
    if step.action == "upgrade-apiserver":
        for t in step.targets:
            state = _with_apiserver(state, t, to)
    elif step.action == "upgrade-controller-manager":
        state = replace(state, controller_manager=to)
    elif step.action == "upgrade-scheduler":
        state = replace(state, scheduler=to)
    elif step.action == "upgrade-etcd-member":
        for t in step.targets:
            state = state.with_etcd_member(t, to)
    elif step.action == "provider-upgrade-control-plane":
        for n, _ in state.apiservers:
            state = state.with_apiserver(n, to)
        state = replace(state, controller_manager=to, scheduler=to)
    else:  # cloud-controller-manager: not observed, so not judged
        return []
    return [(f"{step.component} {step.to_version} on {', '.join(step.targets)}", state)]


def live_skew_problems(obs: ClusterObservation, step: Step, catalog: Catalog,
                       waivers: Sequence[Waiver] = ()) -> list[SkewProblem]:
    """The rule violations of the observed cluster now and of every state ``step`` would pass
    through; support gaps that exist now, unchanged, are tolerated (as the planner does), and
    so is what an active waiver of the policy allows (``waivers``: the active ones)."""
    if step.action not in CHECKED_ACTIONS:
        return []
    state = observed_versions(obs)
    if state is None:
        return []
    now = [v for v in check_cluster(state, catalog) if waiver_for(v, waivers) is None]
    tolerated = {(v.rule, v.message) for v in now if v.rule in SUPPORT_GAPS}
    out = [SkewProblem("now", v) for v in now if (v.rule, v.message) not in tolerated]
    seen = {(p.violation.rule, p.violation.message) for p in out}
    for when, after in _states_after(state, step, obs):
        for v in check_cluster(after, catalog):
            if (v.rule, v.message) in tolerated or (v.rule, v.message) in seen or \
                    waiver_for(v, waivers) is not None:
                continue
            seen.add((v.rule, v.message))
            out.append(SkewProblem(f"after {when}", v))
    return out


def describe_apiservers(obs: ClusterObservation) -> str:
    """``kube-apiserver cp-a 1.36.3, cp-b 1.35.4`` — which instance runs what."""
    return "kube-apiserver " + ", ".join(f"{n} {v}" for n, v in sorted(obs.apiservers.items()))


def silent_apiservers(obs: ClusterObservation, health: HealthSignals, step: Step) -> list[str]:
    """apiserver instances the backend knows but that answer no version, for a checked step;
    the targets of an apiserver step (or of a provider upgrade) are exempt."""
    if step.action not in CHECKED_ACTIONS or step.action == "provider-upgrade-control-plane":
        return []
    exempt = set(step.targets) if step.action == "upgrade-apiserver" else set()
    return sorted(n for n, ok in health.apiserver_ok.items()
                  if not ok and n not in obs.apiservers and n not in exempt)
