"""Alert gates: firing alerts that hold the run (the policy's ``spec.alertGates``), as kured
holds reboots while alerts fire.

Before each step of a gate's phases (:func:`await_alerts`, from the run loop) and before each
node of a node step is admitted (:func:`alerts_hold` then :func:`await_alerts`, from
:mod:`~pitstop.executor.nodestep`), the cluster's firing alerts are read from the backend's
metric source and matched (:func:`pitstop.gates.promql.blocking_alerts`). None → go on. Some →
if every gate that matched says ``resumeWhenClear``, wait, asking again every ``interval``
(the shortest of those gates), for at most ``maxWait`` (the shortest); they clear → go on;
still firing then → pause. A gate without ``resumeWhenClear`` pauses at once. The pause names
the alerts and says to ``pitstop resume`` (which checks again). An alert query that breaks,
or a backend without a metric source, pauses too: the run never goes on without knowing,
and never rolls back for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitstop.backend.metrics import MetricQueryError, metric_source
from pitstop.executor.context import RunContext, Stop
from pitstop.executor.vocabulary import RunStatus, StepStatus
from pitstop.gates.promql import AlertMatch, blocking_alerts
from pitstop.model.policy import AlertGate
from pitstop.planner.plan import Step

__all__ = ["Hold", "alerts_hold", "await_alerts"]


@dataclass(frozen=True, slots=True)
class Hold:
    """Why the run may not go on now: the alerts matched (empty when they could not be read,
    ``error`` saying why), whether every matching gate waits for them to clear, how often to
    ask again and how long at most."""

    matches: tuple[AlertMatch, ...]
    error: str | None
    resumable: bool
    interval_s: float
    max_wait_s: float

    @property
    def text(self) -> str:
        if self.error is not None:
            return self.error
        return "firing: " + "; ".join(m.text for m in self.matches)


def _gates(ctx: RunContext, step: Step) -> list[AlertGate]:
    return [g for g in ctx.run.policy.spec.alert_gates if str(step.phase) in g.phases]


def alerts_hold(ctx: RunContext, step: Step) -> Hold | None:
    """Whether firing alerts (or not knowing) hold ``step`` now; None → go on."""
    gates = _gates(ctx, step)
    if not gates:
        return None
    source = metric_source(ctx.backend)
    if source is None:
        return Hold((), f"alert gate(s) {', '.join(g.name for g in gates)} cannot read "
                    f"cluster {step.cluster}'s alerts: the backend has no metric source. Fix: "
                    "set spec.clusters[].telemetry.prometheus.url in the fleet", False, 0, 0)
    try:
        alerts = source.alerts(step.cluster)
    except MetricQueryError as exc:
        return Hold((), f"cannot read cluster {step.cluster}'s firing alerts: {exc}", False,
                    0, 0)
    matches = blocking_alerts(alerts, [(g.name, tuple(g.alert_names), g.match_labels,
                                        g.match_regex) for g in gates])
    if not matches:
        return None
    holding = [g for g in gates if any(m.gate == g.name for m in matches)]
    return Hold(tuple(matches), None, all(g.resume_when_clear for g in holding),
                min(g.interval.total_seconds() for g in holding),
                min(g.max_wait.total_seconds() for g in holding))


def _pause(ctx: RunContext, step: Step, before: str, hold: Hold, waited: float) -> Stop:
    after = f" (still, after waiting {waited:g}s)" if waited else ""
    why = (f"{before} not started: {hold.text}{after}. When they have cleared (or the "
           f"policy's alertGates allow them), `pitstop resume {ctx.run.path}`: the alerts "
           "are checked again first")
    ctx.journal.set_step(step.id, StepStatus.PAUSED, ctx.now(), why)
    ctx.audit("alert-pause", why, step.id, cluster=step.cluster,
              alerts=[m.text for m in hold.matches])
    return Stop(RunStatus.PAUSED, why, cluster=step.cluster)


def await_alerts(ctx: RunContext, step: Step, before: str | None = None) -> None:
    """Go on when no alert gate holds ``step``; wait while the holding gates allow it; pause
    otherwise (module docstring). ``before``: what would start, for messages (default: the
    step)."""
    what = before or f"step {step.id}"
    hold = alerts_hold(ctx, step)
    waited = 0.0
    while hold is not None:
        if not hold.resumable or waited >= hold.max_wait_s:
            raise _pause(ctx, step, what, hold, waited)
        if waited == 0:
            ctx.audit("alert-wait", f"{what} waits (at most {hold.max_wait_s:g}s): "
                      f"{hold.text}", step.id, cluster=step.cluster)
        pause = min(hold.interval_s, hold.max_wait_s - waited)
        ctx.sleep_checked(pause)
        waited += pause
        hold = alerts_hold(ctx, step)
        if hold is None:
            ctx.audit("alerts-cleared", f"{what}: the alerts cleared after {waited:g}s",
                      step.id, cluster=step.cluster)
