"""Capacity during a drain: can the pods of the biggest disruption batch be scheduled elsewhere?

For every pool the check takes the largest set of nodes the policy lets be drained at once —
``max(canaryNodes, maxUnavailable)`` resolved against the pool size, percentages rounded up
(at least 1 node) — and, as a worst case, picks the nodes whose movable pods request the most.
Those pods (every pod with a controller that would recreate it; DaemonSet pods stay with their
node and bare pods are not recreated) must be re-packed onto the schedulable nodes they may run
on (their ``nodePool``, else any non-control-plane pool), next to the pods already there; with
``strategy: replace`` the pool also gets ``maxSurge`` new nodes of its typical allocatable.

Re-packing is first-fit-decreasing by requests (CPU millicores, memory bytes, one pod slot each).
A node's room is its ``allocatable``, falling back to ``capacity`` per resource; a node with
neither is unlimited (and reported once per cluster as ``capacity-unknown``). First fit is a
heuristic for an NP-hard problem: when it places every pod the pods fit for certain; when it
does not, they almost certainly do not fit either (a finding names them so a person can judge).

Speed: nodes are visited lazily in name order (a heap merges the sorted pools), so a pool whose
pods fit on the first few free nodes costs almost nothing beyond a pass over its node list; bins
that can no longer take any remaining pod are pruned.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pitstop.model import Node, NodePool
from pitstop.model.common import parse_cpu, parse_memory
from pitstop.model.fleet import Workload
from pitstop.preflight.context import (
    ClusterContext,
    Resources,
    fmt_cpu,
    fmt_memory,
    listed,
    objects,
)
from pitstop.preflight.findings import Finding, Severity
from pitstop.preflight.placement import Pod

__all__ = [
    "UNLIMITED",
    "Bin",
    "Item",
    "check_capacity",
    "disruption_batch",
    "ffd_order",
    "first_fit_decreasing",
    "node_room",
]

#: Room of a resource nobody stated (larger than any real request sum).
UNLIMITED = 1 << 62


@dataclass(slots=True)
class Bin:
    """A node that can take pods, with the room it has left (mutated by packing)."""

    name: str
    pool: str
    control_plane: bool
    cpu: int
    memory: int
    pods: int


@dataclass(frozen=True, slots=True)
class Item:
    """A pod to place: its requests, and the pool it must run in (None: any non-control-plane
    pool)."""

    name: str
    cpu: int
    memory: int
    pool: str | None = None


def ffd_order(items: Sequence[Item]) -> list[int]:
    """Indices of ``items``, biggest first. Size is the pod's share of the total CPU requested
    plus its share of the total memory requested (so neither unit dominates); ties by name."""
    total_cpu = sum(i.cpu for i in items) or 1
    total_mem = sum(i.memory for i in items) or 1
    return sorted(range(len(items)),
                  key=lambda k: (-(items[k].cpu / total_cpu + items[k].memory / total_mem),
                                 items[k].name))


def _eligible(pool: str | None, b: Bin) -> bool:
    return b.pool == pool if pool is not None else not b.control_plane


def first_fit_decreasing(items: Sequence[Item], bins: Iterable[Bin]) -> list[Bin | None]:
    """Place ``items`` biggest first (:func:`ffd_order`), each on the first bin of ``bins`` (in
    their order) it may run on and fits in; returns the bin of each item (None: no bin fits).
    Mutates the bins' room. ``bins`` is consumed lazily: only as far as needed."""
    order = ffd_order(items)
    by_class: dict[str | None, list[int]] = {}
    for k in order:
        by_class.setdefault(items[k].pool, []).append(k)
    # Smallest CPU and memory still to come in each class: a bin with less can be dropped.
    rank: dict[int, int] = {}
    suffix: dict[str | None, list[tuple[int, int]]] = {}
    for cls, ks in by_class.items():
        mins: list[tuple[int, int]] = [(0, 0)] * len(ks)
        c = m = UNLIMITED
        for r in range(len(ks) - 1, -1, -1):
            it = items[ks[r]]
            c, m = min(c, it.cpu), min(m, it.memory)
            mins[r] = (c, m)
            rank[ks[r]] = r
        suffix[cls] = mins
    open_bins: dict[str | None, list[Bin]] = {cls: [] for cls in by_class}
    source: Iterator[Bin] = iter(bins)
    result: list[Bin | None] = [None] * len(items)
    for k in order:
        it = items[k]
        cpu, mem = it.cpu, it.memory
        lst = open_bins[it.pool]
        min_cpu, min_mem = suffix[it.pool][rank[k]]
        found: Bin | None = None
        keep: list[Bin] | None = None  # the scanned bins still alive, once one was dropped
        i, n = 0, len(lst)
        while i < n:
            b = lst[i]
            if b.pods >= 1 and b.cpu >= cpu and b.memory >= mem:
                found = b
                break
            if b.pods < 1 or b.cpu < min_cpu or b.memory < min_mem:
                if keep is None:
                    keep = lst[:i]
            elif keep is not None:
                keep.append(b)
            i += 1
        if keep is not None:
            lst[:i] = keep
        if found is None:
            for b in source:
                if b.pool in open_bins:
                    open_bins[b.pool].append(b)
                if None in open_bins and not b.control_plane:
                    open_bins[None].append(b)
                if (_eligible(it.pool, b) and b.pods >= 1 and b.cpu >= cpu
                        and b.memory >= mem):
                    found = b
                    break
        if found is not None:
            found.cpu -= cpu
            found.memory -= mem
            found.pods -= 1
            result[k] = found
    return result


# ---------------------------------------------------------------------------------------------


RoomKey = tuple[str | int | float | None, str | int | None, int | None]


def node_room(node: Node, cache: dict[RoomKey, Resources] | None = None) -> Resources | None:
    """(millicores, bytes, pods) a node offers: ``allocatable``, each resource falling back to
    ``capacity``, unstated resources unlimited. None when the node states neither."""
    a, c = node.allocatable, node.capacity
    if a is None:
        if c is None:
            return None
        key: RoomKey = (c.cpu, c.memory, c.pods)
    elif c is None:
        key = (a.cpu, a.memory, a.pods)
    else:
        key = (a.cpu if a.cpu is not None else c.cpu,
               a.memory if a.memory is not None else c.memory,
               a.pods if a.pods is not None else c.pods)
    if cache is not None:
        got = cache.get(key)
        if got is not None:
            return got
    cpu, mem, pods = key
    room = (UNLIMITED if cpu is None else parse_cpu(cpu),
            UNLIMITED if mem is None else parse_memory(mem),
            UNLIMITED if pods is None else pods)
    if cache is not None:
        cache[key] = room
    return room


def disruption_batch(ctx: ClusterContext, pool: NodePool) -> tuple[int, int, str]:
    """(nodes drained at once, surge nodes added, why) for ``pool`` under its pool policy."""
    pp = ctx.pool_policy(pool)
    batch, surge, _ = pp.disruption(len(pool.nodes))
    why = f"maxUnavailable {pp.max_unavailable}"
    return batch, surge, why


def _typical_room(pool: NodePool, cache: dict[RoomKey, Resources]) -> Resources:
    rooms = Counter(r for n in pool.nodes if (r := node_room(n, cache)) is not None)
    if not rooms:
        return (UNLIMITED, UNLIMITED, UNLIMITED)
    return max(rooms.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _add(acc: dict[str, list[int]], key: str, d: Resources) -> None:
    got = acc.get(key)
    if got is None:
        acc[key] = [d[0], d[1], d[2]]
    else:
        got[0] += d[0]
        got[1] += d[1]
        got[2] += d[2]


_ZERO = [0, 0, 0]


def _tagged(pool: NodePool, nodes: list[Node]) -> Iterator[tuple[str, NodePool, Node]]:
    for n in nodes:
        yield n.name, pool, n


def check_capacity(ctx: ClusterContext) -> list[Finding]:
    """``capacity-shortfall`` (blocking): for each pool, the pods of its biggest disruption batch
    cannot all be re-packed onto the nodes left (see the module docstring); names the pods that
    do not fit and what they request. ``capacity-unknown`` (info): nodes with neither
    allocatable nor capacity, counted as unlimited."""
    cluster = ctx.cluster
    pl = ctx.placement
    out: list[Finding] = []
    unknown = [n.name for p in cluster.node_pools for n in p.nodes
               if n.allocatable is None and n.capacity is None]
    if unknown:
        out.append(ctx.finding(
            "capacity-unknown", Severity.INFO,
            f"{len(unknown)} node(s) state neither allocatable nor capacity ({listed(unknown)}): "
            "preflight counts them as unlimited, so a capacity shortfall on them goes unseen.",
            "Add allocatable cpu, memory and pods for these nodes to the fleet file (pitstop "
            "inventory reads them from the cluster).",
            objects(unknown),
        ))

    # Load of the cluster: DaemonSet overhead per pool, pods that stay put, pods that move.
    ds_overhead: dict[str, list[int]] = {}
    fixed: dict[str, list[int]] = {}
    load: dict[str, list[int]] = {}
    movable: dict[str, list[tuple[Workload, int]]] = {}
    loaded_by_pool: dict[str, list[str]] = {}
    for w in cluster.workloads:
        d = ctx.demand(w)
        if pl.is_pool_daemonset(w):
            for p in pl.pools_for(w):
                _add(ds_overhead, p.name, d)
            continue
        moves = w.kind not in ("DaemonSet", "Pod")
        for ordinal, node in enumerate(pl.nodes_of(w)):
            if node is None:
                continue
            if not moves:
                _add(fixed, node, d)
                continue
            _add(load, node, d)
            pods = movable.get(node)
            if pods is None:
                movable[node] = pods = []
                loaded_by_pool.setdefault(pl.pool_of(node).name, []).append(node)
            pods.append((w, ordinal))
    if not movable:
        return out

    room_cache: dict[RoomKey, Resources] = {}
    for pool in cluster.node_pools:
        loaded = loaded_by_pool.get(pool.name)
        if not loaded:
            continue
        size, surge, why = disruption_batch(ctx, pool)
        tot = [sum(load[n][i] for n in loaded) or 1 for i in range(3)]

        def score(n: str, tot: list[int] = tot) -> tuple[float, str]:
            used = load[n]
            return (-(used[0] / tot[0] + used[1] / tot[1] + used[2] / tot[2]), n)

        batch = sorted(loaded, key=score)[:size]
        drained = set(batch)
        if len(batch) < size:
            for name in pl.schedulable_nodes(pool.name):
                if len(drained) >= size:
                    break
                drained.add(name)

        items: list[Item] = []
        for n in batch:
            for w, ordinal in movable[n]:
                d = ctx.demand(w)
                items.append(Item(Pod(w, ordinal, n).name, d[0], d[1], w.node_pool))
        needed: set[str] = set()
        for it in items:
            if it.pool is not None:
                needed.add(it.pool)
            else:
                needed.update(p.name for p in cluster.node_pools if not p.control_plane)

        def bins(pool: NodePool = pool, surge: int = surge, needed: set[str] = needed,
                 drained: set[str] = drained) -> Iterator[Bin]:
            streams = [_tagged(p, pl.schedulable(p.name))
                       for p in cluster.node_pools if p.name in needed]
            for name, p, n in heapq.merge(*streams):
                if name in drained:
                    continue
                room = node_room(n, room_cache) or (UNLIMITED, UNLIMITED, UNLIMITED)
                over = ds_overhead.get(p.name, _ZERO)
                fx = fixed.get(name, _ZERO)
                ld = load.get(name, _ZERO)
                yield Bin(name, p.name, p.control_plane,
                          room[0] - over[0] - fx[0] - ld[0],
                          room[1] - over[1] - fx[1] - ld[1],
                          room[2] - over[2] - fx[2] - ld[2])
            if surge and pool.name in needed:
                typical = _typical_room(pool, room_cache)
                over = ds_overhead.get(pool.name, _ZERO)
                for i in range(surge):
                    yield Bin(f"{pool.name}-surge-{i + 1}", pool.name, pool.control_plane,
                              typical[0] - over[0], typical[1] - over[1], typical[2] - over[2])

        placed = first_fit_decreasing(items, bins())
        stuck = sorted((it for it, b in zip(items, placed, strict=True) if b is None),
                       key=lambda it: it.name)
        if not stuck:
            continue
        names = [it.name for it in stuck]
        cpu = sum(it.cpu for it in stuck)
        mem = sum(it.memory for it in stuck)
        short = ", ".join(
            x for x in (fmt_cpu(cpu) if cpu else "", f"{fmt_memory(mem)} memory" if mem else "",
                        f"{len(stuck)} pod slot(s)") if x)
        surge_txt = f" plus {surge} surge node(s)" if surge else ""
        drained_sorted = sorted(drained)
        out.append(ctx.finding(
            "capacity-shortfall", Severity.BLOCKING,
            f"Draining {len(drained)} node(s) of pool {pool.name} at once ({why}) leaves no room "
            f"on the remaining nodes{surge_txt} for {len(stuck)} pod(s): {listed(names)}. "
            f"Short by {short}; those pods would stay Pending until the nodes return.",
            f"Add nodes (or room) to pool {pool.name}, lower maxUnavailable/canaryNodes of its "
            "pool policy, or use strategy: replace with maxSurge of at least 1.",
            objects(names, drained_sorted),
        ))
    return out
