"""The canary judge in the executor: journaling its judgements, and judged soaks.

* :func:`record_judgements` — every judgement the ``canary-judge`` gate made its decision on
  goes to the journal (run-level key :data:`JUDGEMENTS`, a JSON list: step, when — ``gate`` or
  ``soak`` —, time, and the judge's document), for the report and ``-o json``.
* :func:`judged_soak` — the soak after a canary node step when ``spec.canaryJudge.soak`` is
  set: the judge every ``interval``; a pass once ``min`` has passed ends the soak early, a
  marginal verdict extends it up to ``max`` (then the run pauses for a person), a fail rolls
  the wave back at once. An Error (the judge could not tell) more than
  :data:`SOAK_ERROR_LIMIT` times in a row rolls back as an Error, apart from Failed. The soak's
  start is journaled, so a soak interrupted by a crash goes on after ``resume`` with what is
  left of it; a soak that ended in a pause starts again on ``resume``.
"""

from __future__ import annotations

import json
from typing import Any

from pitstop.backend.metrics import metric_source
from pitstop.executor.context import RunContext
from pitstop.executor.gating import GateOutcome
from pitstop.gates import Decision, Reading
from pitstop.gates.canary_judge import JudgeResult, Verdict
from pitstop.gates.judging import CANARY_JUDGE, JUDGEMENT, judge_document, measure_judge
from pitstop.model import CanaryJudgePolicy
from pitstop.planner.plan import Step

__all__ = ["JUDGEMENTS", "MAX_JUDGEMENTS", "SOAK_ERROR_LIMIT", "judged_soak", "judgements",
           "latest_judgements", "record_judgement", "record_judgements"]

JUDGEMENTS = "judgements"
MAX_JUDGEMENTS = 200
"""Judgements kept in the journal (the latest)."""
SOAK_ERROR_LIMIT = 4
"""As a gate's consecutiveErrorLimit: this many Errors in a row are tolerated."""


def judgements(ctx_or_journal: Any) -> list[dict[str, Any]]:
    """The journaled judgements, oldest first (a RunContext or a journal)."""
    journal = getattr(ctx_or_journal, "journal", ctx_or_journal)
    text = journal.get(JUDGEMENTS)
    if not text:
        return []
    data = json.loads(text)
    return data if isinstance(data, list) else []


def latest_judgements(journal: Any) -> list[dict[str, Any]]:
    """Per step (in the order first judged): its last judgement, with how many it had and
    their verdicts — what the report and ``-o json`` show."""
    out: dict[str, dict[str, Any]] = {}
    for entry in judgements(journal):
        step = str(entry.get("step", ""))
        before = out.get(step)
        verdicts: dict[str, int] = dict(before["verdicts"]) if before else {}
        verdict = str(entry.get("judgement", {}).get("verdict", "?"))
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        out[step] = {**entry, "count": (before["count"] if before else 0) + 1,
                     "verdicts": verdicts}
    return list(out.values())


def record_judgement(ctx: RunContext, step: Step, when: str, result: JudgeResult) -> None:
    entries = judgements(ctx)
    entries.append({"step": step.id, "cluster": step.cluster, "gate": CANARY_JUDGE,
                    "when": when, "at": ctx.now(), "judgement": judge_document(result)})
    ctx.journal.set(JUDGEMENTS, json.dumps(entries[-MAX_JUDGEMENTS:]))


def record_judgements(ctx: RunContext, step: Step, outcome: GateOutcome) -> None:
    """Journal the judgement each judge gate of ``outcome`` ended on."""
    for g in outcome.gates:
        if isinstance(g.evidence, JudgeResult):
            record_judgement(ctx, step, "gate", g.evidence)


def _measure(ctx: RunContext, step: Step, targets: list[str], judge: CanaryJudgePolicy,
             memo: dict[str, Any]) -> Reading:
    try:
        obs = ctx.backend.observe(step.cluster)
        return measure_judge(judge, metric_source(ctx.backend), obs, step, targets, ctx.now(),
                             memo)
    except Exception as exc:  # the judge broke: Error, never Failed
        return Reading.broken(f"cannot judge: {exc}")


def judged_soak(ctx: RunContext, step: Step, targets: list[str],
                judge: CanaryJudgePolicy) -> tuple[Decision, str]:
    """Soak ``step`` judged by the canary judge (see the module docstring): the decision
    (proceed, pause or rollback) and why."""
    soak = judge.soak
    if soak is None:
        raise ValueError("judged_soak needs spec.canaryJudge.soak")
    min_s, max_s = soak.min.total_seconds(), soak.max.total_seconds()
    interval = max(judge.interval.total_seconds(), 1.0)
    key = f"judged-soak-since/{step.id}"
    since_text = ctx.journal.get(key)
    since = float(since_text) if since_text else ctx.now()
    if not since_text:
        ctx.journal.set(key, repr(since))
        ctx.audit("soak-judged", f"step {step.id}: soaking at least {min_s:.0f}s, at most "
                  f"{max_s:.0f}s, judged by the canary judge every {interval:.0f}s", step.id,
                  cluster=step.cluster)
    errors = 0
    last = ""
    while True:
        elapsed = ctx.now() - since
        memo: dict[str, Any] = {}
        reading = _measure(ctx, step, targets, judge, memo)
        result = memo.get(JUDGEMENT)
        if isinstance(result, JudgeResult):
            record_judgement(ctx, step, "soak", result)
        soaked = f"after {elapsed:.0f}s of soak (min {min_s:.0f}s, max {max_s:.0f}s)"
        if reading.error is not None or not isinstance(result, JudgeResult):
            errors += 1
            last = reading.error or "no judgement"
            if errors > SOAK_ERROR_LIMIT:
                return _end(ctx, step, key, Decision.ROLLBACK, f"canary judge Error {soaked}: "
                            f"{errors} errors in a row (the judge could not tell, not a "
                            f"health failure); last: {last}")
        else:
            errors = 0
            last = f"judge {result.verdict}: {result.reason}"
            if result.verdict is Verdict.FAIL:
                return _end(ctx, step, key, Decision.ROLLBACK,
                            f"canary judge fail {soaked}: {result.reason}")
            if result.verdict is Verdict.PASS and elapsed >= min_s:
                early = "ended early" if elapsed < max_s else "ended at its maximum"
                return _end(ctx, step, key, Decision.PROCEED,
                            f"soak {early}: canary judge pass {soaked}: {result.reason}")
        if elapsed >= max_s:
            if reading.error is not None:
                return _end(ctx, step, key, Decision.ROLLBACK, f"canary judge Error {soaked}"
                            f" (the judge could not tell, not a health failure): {last}")
            return _end(ctx, step, key, Decision.PAUSE, f"canary judge marginal {soaked}: "
                        f"the soak reached its maximum without a pass; {last}")
        if isinstance(result, JudgeResult) and result.verdict is Verdict.MARGINAL \
                and elapsed >= min_s:
            ctx.audit("soak-extended", f"step {step.id}: canary judge marginal {soaked}: "
                      f"soaking on (up to {max_s:.0f}s); {result.reason}", step.id,
                      cluster=step.cluster)
        ctx.sleep_checked(min(interval, max(max_s - elapsed, 0.0)) or interval)


def _end(ctx: RunContext, step: Step, key: str, decision: Decision,
         why: str) -> tuple[Decision, str]:
    ctx.audit("soak-judged", f"step {step.id}: {why}", step.id, decision=str(decision),
              cluster=step.cluster)
    if decision is Decision.PAUSE:
        ctx.journal.set(key, "")  # resuming judges a fresh soak
    return decision, why
