"""The live skew check: before a step starts, the cluster as observed *now*, moved by what the
step will change, must still satisfy every rule of :func:`pitstop.catalog.rules.check_cluster`.

The plan was checked against the fleet as it was when it was planned; the live cluster may have
moved since (someone rolled an apiserver back by hand, an instance came back from a restore at
its old version). So before a control-plane, etcd or node step the executor observes the cluster
through the backend, builds the same :class:`~pitstop.catalog.rules.ClusterVersions` the planner
uses, moves it through the step with the planner's own transition
(:func:`pitstop.planner.transition.states_through`) and runs the same rules. Nothing here
restates a rule or a transition: it only builds states and asks ``check_cluster``.

A node step is judged node by node from where each node is: a step resumed after a crash may
find some targets done and one part-way through its drain, and only the changes still to make on
each node are applied (a node at the final versions gets none). Nodes the step does not touch
are judged as observed.

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
from dataclasses import dataclass

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
from pitstop.planner.transition import node_position, states_through
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


def _reached(step: Step, obs: ClusterObservation) -> dict[str, int]:
    """For a node step: how many of its changes each target node has made, read from the
    versions it reports (:func:`node_position`). A node at the final versions has made them all;
    a node part-way (a crash between two changes of its drain) continues from there. A node
    whose versions are no point of the step (moved by hand) counts as untouched, so every change
    is judged on top of what it runs."""
    if step.action != "upgrade-nodes":
        return {}
    out: dict[str, int] = {}
    for name in step.targets:
        node = obs.node(name)
        if node is None:
            continue
        at = node_position(step.changes, node.version_of)
        out[name] = at if at is not None else 0
    return out


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
    for when, after in states_through(state, step, reached=_reached(step, obs)):
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
