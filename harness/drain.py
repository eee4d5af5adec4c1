"""Draining outside a run, for tests and benchmarks: a backend's evictions with each call seen
before it is made and its answer after (a run's drains journal them instead:
:class:`pitstop.executor.effects.Effects`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pitstop.backend import Backend, Clock, EvictionResult, PodObservation
from pitstop.drain import Answer, call_all

__all__ = ["SeenEvictions"]


@dataclass
class SeenEvictions:
    """:class:`pitstop.drain.BackendEvictions` that tells ``before(pod, how)`` of every call
    before the calls go out, and ``after(pod, answer)`` of every answer in order."""

    backend: Backend
    cluster: str
    before: Callable[[PodObservation, str], None] | None = None
    after: Callable[[PodObservation, EvictionResult], None] | None = None

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    def evict_all(self, pods: Sequence[PodObservation], *, delete: bool) -> list[Answer]:
        for pod in pods:
            if self.before is not None:
                self.before(pod, "delete" if delete else "evict")
        answers = call_all(self.backend, self.cluster, pods, delete=delete)
        for pod, answer in zip(pods, answers, strict=True):
            if self.after is not None and not isinstance(answer, BaseException):
                self.after(pod, answer)
        return answers
