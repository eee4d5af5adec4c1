"""The twin's metric series: what a rehearsal's telemetry gates read (a :class:`MetricSource`).

The twin has no PromQL engine. It answers a :class:`~pitstop.backend.metrics.MetricQuery` by
its ``template`` name, which must be one of :data:`SIGNALS` — per-node signals, one series per
node (labels ``cluster``, ``node``, ``pool``), for the nodes of the ``nodes`` fill (a regex
alternation ``a|b|c`` of names, as the templates fill it) or every node of the cluster. Any
other name raises :class:`~pitstop.backend.metrics.MetricQueryError` naming the known ones (the
gate reports Error, never Failed).

A value is deterministic in (seed, cluster, node, signal, scrape): the signal's base level
times ``1 + noise``, the noise drawn uniformly from ±:data:`NOISE` per :data:`SCRAPE_S` second
scrape. A ``metricRegression`` fault multiplies it by ``1 + shift`` on upgraded nodes from
``after`` past the node's upgrade (the end of its first succeeded kubelet or runtime upgrade,
or its creation for an added node). Nothing is stored: the series are computed from the world
as it is, so a resumed twin answers the same. (A node that was rolled back is no longer
upgraded: its past points lose the shift too — a simplification of the twin.)

:meth:`TwinMetrics.alerts` reports no alert: the twin has no alert rules (an ``alertFires``
fault does not exist yet).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from pitstop.backend import OperationState, UpgradeComponent
from pitstop.backend.metrics import FiringAlert, MetricQuery, MetricQueryError, Sample, Series
from pitstop.model import MetricRegression
from pitstop.twin.actions import RUNTIMES
from pitstop.twin.timings import draw

if TYPE_CHECKING:
    from pitstop.twin.state import NodeState
    from pitstop.twin.world import World

__all__ = ["MAX_POINTS", "NOISE", "SCRAPE_S", "SIGNALS", "TwinMetrics"]

SIGNALS: Mapping[str, float] = MappingProxyType({
    "pod-startup-p99": 2.0,  # seconds: the 99th percentile of pod start-up on the node
    "kubelet-p99-latency": 0.08,  # seconds: kubelet's request latency
    "container-restarts": 0.5,  # restarts per 10 minutes on the node
    "node-cpu-utilisation": 0.35,  # share of allocatable CPU in use
})
"""The signals the twin answers (a query's ``template``), with their base level."""
NOISE = 0.05
"""Each point is the base level × (1 ± at most 5 %)."""
SCRAPE_S = 15.0
"""A value is constant within one scrape interval."""
MAX_POINTS = 11_000
"""Points of one series at most (a query asking for more raises MetricQueryError)."""
_NODE_COMPONENTS = frozenset(RUNTIMES | {"kubelet"})


class TwinMetrics:
    """The :class:`~pitstop.backend.metrics.MetricSource` of a twin's world."""

    def __init__(self, world: World) -> None:
        self._world = world

    @property
    def name(self) -> str:
        return "the twin's series"

    # -- the source ------------------------------------------------------------------------
    def instant(self, cluster: str, query: MetricQuery, at: float) -> tuple[Sample, ...]:
        signal = self._signal(query)
        return tuple(Sample(self._labels(n), self._value(n, signal, at))
                     for n in self._nodes(cluster, query))

    def range(self, cluster: str, query: MetricQuery, start: float, end: float,
              step_s: float) -> tuple[Series, ...]:
        signal = self._signal(query)
        if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(step_s)) \
                or step_s <= 0 or end < start:
            raise MetricQueryError(f"range query of {signal}: start {start}, end {end}, step "
                                   f"{step_s} is not a window (end >= start, step > 0)")
        end = min(end, self._world.now)  # no point from the future
        count = math.floor((end - start) / step_s) + 1 if end >= start else 0
        if count > MAX_POINTS:
            raise MetricQueryError(f"range query of {signal}: {count} points per series, at "
                                   f"most {MAX_POINTS}; use a longer step")
        times = [start + i * step_s for i in range(count)]
        return tuple(Series(self._labels(n), tuple((t, self._value(n, signal, t))
                                                   for t in times))
                     for n in self._nodes(cluster, query))

    def alerts(self, cluster: str) -> tuple[FiringAlert, ...]:
        self._cluster_nodes(cluster)
        return ()

    # -- the series ------------------------------------------------------------------------
    @staticmethod
    def _signal(query: MetricQuery) -> str:
        if query.template is None or query.template not in SIGNALS:
            what = (f"template {query.template!r}" if query.template
                    else f"PromQL {query.promql[:80]!r} without a template")
            raise MetricQueryError(f"the twin has no series for {what}: it answers the "
                                   f"signals {', '.join(SIGNALS)}")
        return query.template

    def _cluster_nodes(self, cluster: str) -> Mapping[str, NodeState]:
        nodes = self._world.nodes.get(cluster)
        if nodes is None:
            raise MetricQueryError(f"the twin has no cluster {cluster!r}")
        return nodes

    def _nodes(self, cluster: str, query: MetricQuery) -> list[NodeState]:
        nodes = self._cluster_nodes(cluster)
        wanted = query.fills.get("nodes")
        if wanted is None:
            return [nodes[name] for name in sorted(nodes)]
        names = {re.sub(r"\\(.)", r"\1", part) for part in wanted.split("|") if part}
        return [nodes[name] for name in sorted(names) if name in nodes]

    @staticmethod
    def _labels(node: NodeState) -> Mapping[str, str]:
        return MappingProxyType({"cluster": node.cluster, "node": node.name,
                                 "pool": node.pool})

    def _value(self, node: NodeState, signal: str, t: float) -> float:
        w = self._world
        scrape = math.floor(t / SCRAPE_S)
        noise = (2.0 * draw(w.seed, "metric", node.cluster, node.name, signal, scrape) - 1.0)
        value = SIGNALS[signal] * (1.0 + NOISE * noise)
        return round(value * (1.0 + self._shift(node, signal, t)), 6)

    def _shift(self, node: NodeState, signal: str, t: float) -> float:
        faults = [f for f in self._world.faults.faults if isinstance(f, MetricRegression)
                  and f.signal == signal and f.cluster in (None, node.cluster)
                  and f.pool in (None, node.pool) and (not f.nodes or node.name in f.nodes)]
        if not faults or not node.upgraded:
            return 0.0
        since = self._upgraded_at(node)
        if since is None:
            return 0.0
        return sum(f.shift for f in faults if t >= since + f.after.total_seconds())

    def _upgraded_at(self, node: NodeState) -> float | None:
        """When the node's first succeeded kubelet or runtime upgrade ended (an added node:
        when the operation that added it ended)."""
        ops = self._world.ops.get(node.cluster, {})
        if node.origin != "fleet":
            op = ops.get(node.origin)
            return op.finished if op is not None else None
        ends = [op.finished for op in ops.values()
                if isinstance(op.action, UpgradeComponent) and op.action.target == node.name
                and op.action.component in _NODE_COMPONENTS and op.finished is not None
                and op.state is OperationState.SUCCEEDED]
        return min(ends) if ends else None
