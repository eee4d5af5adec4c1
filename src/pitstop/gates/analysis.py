"""Analysis semantics: measurements, metric runs, the run verdict and what to do about it.

Modelled on Argo Rollouts' analysis (its AnalysisRun: measurements, metric runs with
``failureLimit``/``inconclusiveLimit``/``consecutiveErrorLimit``, the worst metric decides), in
our own code:

* A **measurement** is Successful, Failed, Inconclusive or **Error**. Error means the check
  itself broke (no value, the query raised) and is kept apart from Failed (the system is
  unhealthy) everywhere, including the messages people read.
* A gate provider (:mod:`~pitstop.gates.providers`) reads one value, or says why it could not:
  a :class:`Reading`. :func:`judge_reading` (and :meth:`MetricRun.take`) turns it into a
  measurement by :func:`assess`, for built-in and custom gates alike.
* :func:`assess` judges one value against a :class:`MetricSpec`: no value (``None``, NaN) or a
  raised query error → Error; the failure condition true → Failed (it wins when both are true);
  the success condition true → Successful; neither → Inconclusive. With only a success condition,
  a value that misses it is Failed; with only a failure condition, a value that does not meet it
  is Successful; with neither, every value is Successful. (This is how Argo treats a missing
  condition: as the negation of the one given.)
* A :class:`MetricRun` takes ``count`` measurements, one every ``interval_s``. Its status is
  Pending before the first; then, checked in this order and as soon as it happens (the run stops
  early rather than waiting out ``count``, as Argo does): Failed when failed > ``failure_limit``;
  Error when consecutive errors > ``consecutive_error_limit``; Inconclusive when inconclusive >
  ``inconclusive_limit``; Successful once ``count`` measurements were taken; Running otherwise.
  Errors do not count towards ``count`` — a broken query never completes a metric.
* The verdict of several metrics or checks is the worst (:func:`run_verdict`), by
  Successful < Running < Pending < Inconclusive < Error < Failed.
* :func:`decide`: Successful → proceed; Running or Pending → wait for more measurements;
  Inconclusive → pause for a person; Failed or Error → roll back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pitstop.gates.condition import Condition

__all__ = [
    "CheckResult",
    "Decision",
    "Judgement",
    "Measurement",
    "MetricRun",
    "MetricSpec",
    "Phase",
    "Reading",
    "assess",
    "decide",
    "judge",
    "judge_reading",
    "measure",
    "run_verdict",
    "worst",
]


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    RUNNING = "Running"
    PENDING = "Pending"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    FAILED = "Failed"

    @property
    def severity(self) -> int:
        """Position in Successful < Running < Pending < Inconclusive < Error < Failed."""
        return _SEVERITY[self]

    @property
    def concluded(self) -> bool:
        return self not in (Phase.RUNNING, Phase.PENDING)


_SEVERITY = {p: i for i, p in enumerate(Phase)}
_MEASURED = frozenset({Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR})


@dataclass(frozen=True, slots=True)
class Measurement:
    value: float | None
    phase: Phase  # Successful | Failed | Inconclusive | Error
    at: float  # backend clock seconds
    message: str = ""

    def __post_init__(self) -> None:
        if self.phase not in _MEASURED:
            raise ValueError(f"a measurement is Successful, Failed, Inconclusive or Error, "
                             f"not {self.phase}")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a gate provider read for one measurement, before it is judged: a ``value`` with
    optional ``evidence`` (text that explains the value, e.g. which nodes are not Ready), or an
    ``error`` — the check broke (a signal missing, a query that failed). ``label`` names the
    value in messages when there is no evidence (e.g. the metric ``error_rate``)."""

    value: float | None = None
    evidence: str = ""
    error: str | None = None
    label: str = ""
    failed: str | None = None
    """Failed whatever the conditions say, for this reason (a query whose empty answer the
    gate treats as a failure: ``emptyResult: fail``)."""

    def __post_init__(self) -> None:
        if self.error is not None and self.value is not None:
            raise ValueError("a reading is a value or an error, not both")
        if self.failed is not None and (self.error is not None or self.value is not None):
            raise ValueError("a failed reading has neither a value nor an error")

    @classmethod
    def broken(cls, error: str) -> Reading:
        """The check could not tell: the reading is an error (Error, never Failed)."""
        return cls(error=error)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check (or the status of one metric run), named for people.
    ``problems`` is how many signs of ill health a check found (the entries its message
    lists); a gate provider reports it as the value its failure condition judges."""

    name: str
    phase: Phase
    value: float | None
    message: str
    problems: int = 0

    def measurement(self, at: float) -> Measurement:
        """This result as one measurement of a :class:`MetricRun` (a check that is repeated
        ``count`` times every ``interval_s`` with limits)."""
        return Measurement(self.value, self.phase, at, self.message)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    interval_s: float
    count: int
    success: Condition | None = None
    failure: Condition | None = None
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"metric {self.name}: count must be at least 1, not {self.count}")
        if self.interval_s < 0:
            raise ValueError(f"metric {self.name}: interval_s must not be negative")
        for limit in ("failure_limit", "inconclusive_limit", "consecutive_error_limit"):
            if getattr(self, limit) < 0:
                raise ValueError(f"metric {self.name}: {limit} must not be negative")


def assess(spec: MetricSpec, value: float | BaseException | None) -> Phase:
    """The phase of one measured value (see the module docstring for the rules)."""
    return _assess(spec, value)[0]


def measure(spec: MetricSpec, value: float | BaseException | None, at: float) -> Measurement:
    """A :class:`Measurement` of ``value`` with a message saying why it got its phase."""
    phase, message = _assess(spec, value)
    number = value if isinstance(value, int | float) and math.isfinite(value) else None
    return Measurement(number, phase, at, message)


def judge_reading(spec: MetricSpec, reading: Reading, at: float) -> Measurement:
    """One measurement from a provider's reading: an error is Error (its text the message);
    a value is judged by :func:`assess` against ``spec``'s conditions. The message is the
    reading's evidence when it has some (the check explains itself), else which condition
    held for ``label = value``."""
    if reading.error is not None:
        return Measurement(None, Phase.ERROR, at, reading.error)
    if reading.failed is not None:
        return Measurement(None, Phase.FAILED, at, reading.failed)
    phase, message = _assess(spec, reading.value, reading.label or spec.name)
    if reading.evidence and phase is not Phase.ERROR:
        message = reading.evidence
    number = reading.value if phase is not Phase.ERROR else None
    return Measurement(number, phase, at, message)


def _assess(spec: MetricSpec, value: float | BaseException | None,
            label: str | None = None) -> tuple[Phase, str]:
    name = label or spec.name
    if value is None:
        return Phase.ERROR, f"{name}: no value (the check broke)"
    if isinstance(value, BaseException):
        return Phase.ERROR, f"{name}: query failed: {value}"
    if math.isnan(value):
        return Phase.ERROR, f"{name}: the value is not a number (the check broke)"
    shown = f"{name} = {value:g}"
    if spec.failure is not None and spec.failure.holds(value):
        return Phase.FAILED, f"{shown}: failure condition '{spec.failure}' holds"
    if spec.success is not None:
        if spec.success.holds(value):
            return Phase.SUCCESSFUL, f"{shown}: success condition '{spec.success}' holds"
        if spec.failure is None:
            return Phase.FAILED, f"{shown}: success condition '{spec.success}' does not hold"
        return Phase.INCONCLUSIVE, (f"{shown}: neither '{spec.success}' nor '{spec.failure}' "
                                    "holds")
    if spec.failure is not None:
        return Phase.SUCCESSFUL, f"{shown}: failure condition '{spec.failure}' does not hold"
    return Phase.SUCCESSFUL, f"{shown}: no conditions to meet"


class MetricRun:
    """The measurements of one metric so far, with Argo's counters. Pure bookkeeping: the caller
    takes the measurements (when :meth:`next_at` says) and records them here."""

    def __init__(self, spec: MetricSpec, started: float = 0.0) -> None:
        self.spec = spec
        self.started = started
        self._measurements: list[Measurement] = []
        self.successful = 0
        self.failed = 0
        self.inconclusive = 0
        self.errors = 0
        self.consecutive_errors = 0

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(self._measurements)

    @property
    def count(self) -> int:
        """Measurements that count towards ``spec.count`` (every phase but Error)."""
        return self.successful + self.failed + self.inconclusive

    def record(self, m: Measurement) -> Phase:
        """Add a measurement; returns the status after it. A concluded run takes no more."""
        status = self.status()
        if status.concluded:
            raise ValueError(f"metric {self.spec.name} has already concluded ({status})")
        self._measurements.append(m)
        if m.phase is Phase.ERROR:
            self.errors += 1
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 0
            if m.phase is Phase.SUCCESSFUL:
                self.successful += 1
            elif m.phase is Phase.FAILED:
                self.failed += 1
            else:
                self.inconclusive += 1
        return self.status()

    def add_result(self, phase: Phase, value: float | None, at: float,
                   message: str = "") -> Phase:
        """Record a measurement judged elsewhere (a built-in check's result)."""
        return self.record(Measurement(value, phase, at, message))

    def measure(self, value: float | BaseException | None, at: float) -> Measurement:
        """Assess ``value`` and record it."""
        m = measure(self.spec, value, at)
        self.record(m)
        return m

    def take(self, reading: Reading, at: float) -> Measurement:
        """Judge a provider's reading (:func:`judge_reading`) and record it."""
        m = judge_reading(self.spec, reading, at)
        self.record(m)
        return m

    def status(self) -> Phase:
        spec = self.spec
        if not self._measurements:
            return Phase.PENDING
        if self.failed > spec.failure_limit:
            return Phase.FAILED
        if self.consecutive_errors > spec.consecutive_error_limit:
            return Phase.ERROR
        if self.inconclusive > spec.inconclusive_limit:
            return Phase.INCONCLUSIVE
        if self.count >= spec.count:
            return Phase.SUCCESSFUL
        return Phase.RUNNING

    def next_at(self) -> float | None:
        """When the next measurement is due, or None once the run has concluded."""
        if self.status().concluded:
            return None
        if not self._measurements:
            return self.started
        return self._measurements[-1].at + self.spec.interval_s

    def result(self) -> CheckResult:
        """The run's status as a check result, for :func:`judge`."""
        last = self._measurements[-1].value if self._measurements else None
        return CheckResult(self.spec.name, self.status(), last, self.summary())

    def summary(self) -> str:
        spec = self.spec
        text = (f"{spec.name}: {self.status()} after {self.count}/{spec.count} measurements "
                f"(failed {self.failed}/limit {spec.failure_limit}, inconclusive "
                f"{self.inconclusive}/limit {spec.inconclusive_limit}, errors in a row "
                f"{self.consecutive_errors}/limit {spec.consecutive_error_limit})")
        if self._measurements and self._measurements[-1].message:
            text += f"; last: {self._measurements[-1].message}"
        return text


def worst(phases: Iterable[Phase]) -> Phase:
    """The most severe phase; Successful for none."""
    return max(phases, key=lambda p: p.severity, default=Phase.SUCCESSFUL)


def run_verdict(statuses: Iterable[Phase]) -> Phase:
    """The verdict of an analysis: the worst status of its metrics (Successful when it has
    none — a step without gates has nothing to hold it back)."""
    return worst(statuses)


class Decision(StrEnum):
    PROCEED = "proceed"
    WAIT = "wait"  # measurements still to take
    PAUSE = "pause"  # inconclusive: a person decides
    ROLLBACK = "rollback"  # failed, or the check broke


def decide(verdict: Phase) -> Decision:
    if verdict is Phase.SUCCESSFUL:
        return Decision.PROCEED
    if verdict in (Phase.RUNNING, Phase.PENDING):
        return Decision.WAIT
    if verdict is Phase.INCONCLUSIVE:
        return Decision.PAUSE
    return Decision.ROLLBACK


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict over named results, what to do, and a message that keeps broken checks (Error)
    apart from unhealthy systems (Failed)."""

    verdict: Phase
    decision: Decision
    message: str
    failed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    inconclusive: tuple[str, ...] = ()


def judge(results: Sequence[CheckResult]) -> Judgement:
    """Judge check results (or :meth:`MetricRun.result`\\ s): verdict, decision, message."""
    verdict = run_verdict(r.phase for r in results)
    decision = decide(verdict)

    def named(*phases: Phase) -> list[str]:
        return [f"{r.name}: {r.message}" if r.message else r.name
                for r in results if r.phase in phases]

    failed, errors = named(Phase.FAILED), named(Phase.ERROR)
    inconclusive, waiting = named(Phase.INCONCLUSIVE), named(Phase.RUNNING, Phase.PENDING)
    parts: list[str] = []
    if failed:
        parts.append(f"unhealthy ({len(failed)} failed): " + "; ".join(failed))
    if errors:
        parts.append(f"check errors, not health failures ({len(errors)}): " + "; ".join(errors))
    if inconclusive:
        parts.append(f"inconclusive ({len(inconclusive)}): " + "; ".join(inconclusive))
    if waiting:
        parts.append(f"still measuring ({len(waiting)}): " + "; ".join(waiting))
    if decision is Decision.PROCEED:
        message = f"proceed: {len(results)} gate(s) passed" if results else "proceed: no gates"
    else:
        message = f"{decision}: " + " | ".join(parts)
    return Judgement(verdict, decision, message, tuple(failed), tuple(errors),
                     tuple(inconclusive))
