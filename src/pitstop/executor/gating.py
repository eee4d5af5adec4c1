"""Measuring a step's gates through the backend and deciding with analysis semantics.

Each gate of a step (``Gate.kind``) maps to a built-in check of :mod:`pitstop.gates`, measured
``count`` times ``interval`` seconds apart; the measurements feed a metric run (failure limit,
inconclusive limit, consecutive-error limit) whose status joins the step's verdict — the worst
of its gates. Successful → proceed; Inconclusive → pause; Failed or Error → roll back (an Error
means the check itself broke, and is reported as such, apart from Failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pitstop.backend import Backend
from pitstop.gates import (
    CheckResult,
    Condition,
    Decision,
    MetricRun,
    MetricSpec,
    Phase,
    apiserver_health,
    canary_vs_baseline,
    decide,
    etcd_health,
    nodes_ready,
    pods_pending,
    run_verdict,
    threshold,
    track_pending,
    workloads_available,
)
from pitstop.model import CustomGate, GateTiming
from pitstop.planner.plan import Step

__all__ = ["GATE_SPECS", "GateOutcome", "evaluate_gates", "gate_spec"]

# (interval seconds, count, failure limit) per gate kind: short for health, longer for canary
GATE_SPECS: dict[str, tuple[float, int, int]] = {
    "apiserver-health": (10.0, 3, 0),
    "control-plane-health": (10.0, 2, 0),
    "etcd-health": (10.0, 3, 0),
    "node-health": (10.0, 2, 0),
    "workload-availability": (15.0, 2, 0),
    "canary": (60.0, 3, 0),
    "addon-health": (10.0, 2, 0),
}
MAX_APISERVER_LATENCY_MS = 1000.0
MAX_PENDING_S = 300.0
CANARY_MAX_RATIO = 2.0


@dataclass
class GateOutcome:
    decision: Decision
    results: list[CheckResult]
    summary: str


def _final_versions(step: Step) -> dict[str, str]:
    return {c.component: c.to_version for c in step.changes}


def _measure(kind: str, backend: Backend, step: Step, targets: list[str],
             memo: dict[str, Any]) -> CheckResult:
    cluster = step.cluster
    if kind in ("apiserver-health", "control-plane-health"):
        return apiserver_health(backend.health(cluster), MAX_APISERVER_LATENCY_MS)
    if kind == "etcd-health":
        signals = backend.health(cluster)
        result = etcd_health(signals, memo.get("raft"))
        memo["raft"] = max((m.raft_index for m in signals.etcd), default=None)
        return result
    if kind == "node-health":
        return nodes_ready(backend.observe(cluster), targets, _final_versions(step))
    if kind == "workload-availability":
        obs = backend.observe(cluster)
        memo["pending"] = track_pending(obs, memo.get("pending", {}))
        first = workloads_available(obs)
        if first.phase is not Phase.SUCCESSFUL:
            return first
        return pods_pending(obs, MAX_PENDING_S, since=memo["pending"])
    if kind == "canary":
        return canary_vs_baseline(backend.health(cluster), "error_rate", CANARY_MAX_RATIO)
    if kind == "addon-health":
        obs = backend.observe(cluster)
        have = obs.addons.get(step.targets[0])
        ok = have == step.to_version
        return CheckResult("addon-health", Phase.SUCCESSFUL if ok else Phase.FAILED,
                           None, f"{step.targets[0]} reports {have}, want {step.to_version}")
    if kind == "etcd-snapshot":
        return CheckResult("etcd-snapshot", Phase.SUCCESSFUL, None,
                           "snapshot taken and verified by the backend")
    return CheckResult(kind, Phase.ERROR, None, f"no built-in check for gate kind {kind!r}")


def gate_spec(kind: str, poll_s: float,
              timing: Mapping[Any, GateTiming] | None = None) -> tuple[float, int, int]:
    """(interval seconds, count, failure limit) of a built-in gate kind: the policy's
    ``gateTiming`` where it says, else :data:`GATE_SPECS`."""
    interval, count, failure_limit = GATE_SPECS.get(kind, (poll_s, 1, 0))
    t = (timing or {}).get(kind)
    if t is not None:
        interval = t.interval.total_seconds() if t.interval is not None else interval
        count = t.count if t.count is not None else count
        failure_limit = t.failure_limit if t.failure_limit is not None else failure_limit
    return interval, count, failure_limit


def evaluate_gates(backend: Backend, step: Step, targets: list[str], poll_s: float,
                   custom: Sequence[CustomGate] = (),
                   timing: Mapping[Any, GateTiming] | None = None,
                   sleep: Callable[[float], None] | None = None) -> GateOutcome:
    """Measure every gate of ``step`` and the policy's custom gates for its phase
    (interval × count; built-in gates as ``timing`` — the policy's ``gateTiming`` — says)
    and decide. ``sleep`` waits between measurements (default: the backend's clock; the
    executor passes its own when clusters share the clock)."""
    wait_for = sleep if sleep is not None else backend.clock.sleep
    gates = [(g.name, g.kind, None) for g in step.gates] + [
        (c.name, "threshold", c) for c in custom if str(step.phase) in c.phases]
    runs: list[tuple[str, MetricRun]] = []
    results: list[CheckResult] = []
    for name, kind, c in gates:
        if c is not None:
            interval, count, failure_limit = (c.interval.total_seconds(), c.count,
                                              c.failure_limit)
        else:
            interval, count, failure_limit = gate_spec(kind, poll_s, timing)
        spec = MetricSpec(name=name, interval_s=interval, count=count, success=None,
                          failure=None, failure_limit=failure_limit)
        runs.append((name, MetricRun(spec)))
    memo: dict[str, dict[str, Any]] = {}
    # Each metric is measured every ``interval`` seconds (its own, as in Argo Rollouts) until
    # it decides: ``count`` measurements, or too many consecutive Errors (Errors do not count).
    # At most twice its count plus its error limit of times; still running then → pause.
    taken = [0] * len(runs)
    due = [backend.clock.now()] * len(runs)
    while True:
        live = [i for i, (_, run) in enumerate(runs)
                if decide(run.status()) is Decision.WAIT
                and taken[i] < 2 * run.spec.count + run.spec.consecutive_error_limit + 1]
        if not live:
            break
        wait = min(due[i] for i in live) - backend.clock.now()
        if wait > 0:
            wait_for(wait)
        now = backend.clock.now()
        for i in live:
            if due[i] > now:
                continue
            name, run = runs[i]
            kind, custom_gate = gates[i][1], gates[i][2]
            try:
                if custom_gate is not None:
                    res = threshold(backend.health(step.cluster), custom_gate.metric,
                                    Condition.parse(custom_gate.condition))
                else:
                    res = _measure(kind, backend, step, targets, memo.setdefault(name, {}))
            except Exception as exc:  # the check broke: Error, never Failed
                res = CheckResult(name, Phase.ERROR, None, f"check could not run: {exc}")
            res = CheckResult(name, res.phase, res.value, res.message)
            run.add_result(res.phase, res.value, backend.clock.now(), res.message)
            results.append(res)
            taken[i] += 1
            due[i] = now + run.spec.interval_s
    statuses = [r.status() for _, r in runs]
    verdict = run_verdict(statuses) if statuses else Phase.SUCCESSFUL
    decision = decide(verdict)
    if decision is Decision.WAIT:
        decision = Decision.PAUSE
    worst = [r for r in results if r.phase is not Phase.SUCCESSFUL]
    summary = (f"gates {', '.join(g[0] for g in gates)}: {verdict}"
               + (f" — {worst[-1].name}: {worst[-1].message}" if worst else ""))
    return GateOutcome(decision, results, summary)
