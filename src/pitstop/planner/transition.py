"""The state after a step: the one transition that both the planner (as it checks every state a
plan passes through) and the executor's live skew check (as it judges what is left of a step on
the cluster it observes) use, so the way a step moves a cluster is written once.

:func:`states_through` returns the states a :class:`~pitstop.catalog.rules.ClusterVersions`
passes through while a step runs, in order, each with what changed:

- an in-place node step: one state per change, in the step's order (the node is drained, and
  every change inside the drain is a state the node really runs in);
- a replaced node (``strategy: replace``) or a CRI-O node (CRI-O and the kubelet change
  together): only the final state;
- one state for an apiserver, controller-manager, scheduler, cloud-controller-manager, etcd
  member or provider control-plane step; none for a snapshot or an add-on.

Node steps start where each node is: ``reached`` gives, per target node, how many of the step's
changes it has already made (:func:`node_position` reads that from the versions it reports), so
a node at the final versions passes through nothing more, and a node part-way continues from
there. Without ``reached`` every target starts at the step's beginning, as in planning.

``tests/planlib.py`` replays plans with its own code on purpose: it is the independent oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from pitstop.catalog.rules import ClusterVersions
from pitstop.planner.plan import Change, Step
from pitstop.versions import Version, VersionError, parse_version

__all__ = ["node_position", "states_through"]

NODE_ACTION = "upgrade-nodes"


def _v(text: str) -> Version | None:
    try:
        return parse_version(text)
    except VersionError:
        return None


def atomic(step: Step) -> bool:
    """Whether the nodes of a node step appear only in their final state: a replaced node comes
    up with every new version at once, and CRI-O changes together with its kubelet."""
    return step.strategy == "replace" or any(c.component == "cri-o" for c in step.changes)


def node_position(changes: Sequence[Change], version_of: Callable[[str], str | None]
                  ) -> int | None:
    """How many of ``changes`` a node has made, judged by the versions it reports
    (``version_of(component)``): the last point of the sequence whose versions it runs —
    0 untouched, ``len(changes)`` done. None when it runs versions of no point of the sequence
    (moved by hand, or a version the step does not know)."""
    at: dict[str, str] = {}
    for c in changes:
        at.setdefault(c.component, c.from_version)
    seen = {comp: version_of(comp) for comp in at}
    found = 0 if seen == at else None
    for i, c in enumerate(changes, 1):
        at[c.component] = c.to_version
        if seen == at:
            found = i
    return found


def _listed(nodes: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(nodes[:most])
    return shown + (f" and {len(nodes) - most} more" if len(nodes) > most else "")


def _node_states(state: ClusterVersions, step: Step, reached: Mapping[str, int] | None
                 ) -> list[tuple[str, ClusterVersions]]:
    pools: dict[str, list[str]] = {}
    if reached is None:  # planning: every target is in the step's pool, at its start
        pools[step.pool] = list(step.targets)
    else:  # a live state: each target where it is observed, if it is
        targets = set(step.targets)
        for g in state.node_groups:
            if not targets.isdisjoint(g.nodes):
                pools.setdefault(g.pool, []).extend(n for n in g.nodes if n in targets)
    changes = step.changes
    whole = atomic(step)
    out: list[tuple[str, ClusterVersions]] = []
    moved: set[str] = set()
    for i, ch in enumerate(changes):
        v = _v(ch.to_version)
        now_moving: list[str] = []
        for pool, names in pools.items() if v is not None else ():
            movers = names if reached is None else [n for n in names if reached.get(n, 0) <= i]
            if not movers:
                continue
            now_moving.extend(movers)
            if ch.component == "kubelet":
                state = state.with_nodes(pool, movers, kubelet=v)
            elif ch.component == "kube-proxy":
                state = state.with_nodes(pool, movers, kube_proxy=v)
            else:
                state = state.with_nodes(pool, movers, runtime_version=v)
        moved.update(now_moving)
        if whole:
            if i == len(changes) - 1 and moved:
                listed = ", ".join(f"{c.component} {c.to_version}" for c in changes)
                out.append((f"{listed} on {_listed(sorted(moved))}", state))
        elif now_moving:
            out.append((f"{ch.component} {ch.to_version} on {_listed(now_moving)}",
                        state))
    return out


def states_through(state: ClusterVersions, step: Step, *,
                   reached: Mapping[str, int] | None = None) -> list[tuple[str, ClusterVersions]]:
    """The states ``state`` passes through while ``step`` runs, in order, each with what
    changed (see the module's description). ``reached``: for a node step judged on a live
    state, how many changes each target node has already made (missing: none); targets
    ``state`` does not hold are not moved (their versions are unknown). Without it (planning),
    every target is in the step's pool, at the step's start."""
    if step.action == NODE_ACTION:
        return _node_states(state, step, reached)
    to = _v(step.to_version)
    if to is None:
        return []
    if step.action == "upgrade-apiserver":
        for t in step.targets:
            if any(n == t for n, _ in state.apiservers):
                state = state.with_apiserver(t, to)
            else:  # not answering now: it will be there, at ``to``, once the step is done
                state = replace(state, apiservers=(*state.apiservers, (t, to)))
    elif step.action == "upgrade-controller-manager":
        state = replace(state, controller_manager=to)
    elif step.action == "upgrade-scheduler":
        state = replace(state, scheduler=to)
    elif step.action == "upgrade-cloud-controller-manager":
        if state.cloud_controller_manager is None:
            return []  # not known (not observed): nothing to judge
        state = replace(state, cloud_controller_manager=to)
    elif step.action == "upgrade-etcd-member":
        for t in step.targets:
            state = state.with_etcd_member(t, to)
    elif step.action == "provider-upgrade-control-plane":
        for n, _ in state.apiservers:
            state = state.with_apiserver(n, to)
        state = replace(state, controller_manager=to, scheduler=to,
                        cloud_controller_manager=to if state.cloud_controller_manager else None)
    else:  # etcd-snapshot, upgrade-addon: no version the rules judge changes
        return []
    return [(f"{step.component} {step.to_version} on {_listed(list(step.targets))}", state)]
