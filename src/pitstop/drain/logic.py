"""Draining a node: kubectl's pod filters and eviction handling, as a state machine the
executor advances with fresh observations, so many nodes drain in parallel under one clock.

Pod filters, in kubectl's order (``k8s.io/kubectl/pkg/drain/filters.go``); the first that says
"don't delete" decides:

1. pods already deleting for longer than ``skip_wait_for_delete_timeout`` are skipped;
2. DaemonSet pods: finished ones may go; otherwise an error unless ``ignore_daemonsets``
   (then left alone, with a warning);
3. mirror (static) pods are skipped;
4. pods with ``emptyDir`` data: an error unless ``delete_empty_dir_data`` (finished pods go);
5. pods without a controller: an error unless ``force`` (finished pods go).

What ``kubectl drain`` does (``k8s.io/kubectl/pkg/drain/drain.go`` and
``pkg/cmd/drain/drain.go``, v1.35/v1.36, checked against the real kubectl and API server in
``tests/k8s/test_drain_conformance.py``):

* It lists the node's pods once and runs every pod through the filters. If any pod is refused,
  it evicts nothing: it reports every refused pod at once, grouped by filter ("cannot delete
  Pods that declare no controller …: ns/a, ns/b"), and fails. Eviction errors (below) are
  never reported together with filter refusals, because no eviction is attempted then.
* Otherwise it starts one goroutine per pod, all at once, under one global timeout
  (``--timeout``; 0 means none). Each goroutine loops: if the timeout has passed, that pod
  ends with "global timeout reached"; else it evicts the pod, and on the answer
  - 201: it waits until the pod is gone or its uid changed (the wait also ends at the global
    timeout, as "context deadline exceeded");
  - 404: the pod is done;
  - 429 (a PDB allows no disruption now): it prints the refusal, sleeps 5 s, reads the pod
    again and loops — so it retries until the eviction is accepted or the timeout passes;
  - 403 in a terminating namespace: if the pod is already deleting it waits for it as after
    a 201, otherwise it retries after 5 s like a 429;
  - anything else — the 500 "This pod has more than one PodDisruptionBudget, which the
    eviction subresource does not support" among them: that pod ends with this error, at
    once, and is never retried.
  One pod's error stops nothing else: the other goroutines go on retrying their pods.
* It waits for every goroutine, then fails if any pod ended with an error, reporting all of
  them together (one error per pod: every multiple-PDB pod and every pod still refused at the
  timeout), and lists the pods still on the node ("There are pending pods in node …").

So on a node with pods selected by two PDBs (500), pods whose budget is spent for a while (429,
then 201 once replacements are ready) and a pod under ``maxUnavailable: 0`` (429 forever),
kubectl evicts every pod it can before its timeout, and fails only at the timeout, naming the
multiple-PDB pods and the pod that timed out. Without the ``maxUnavailable: 0`` pod it fails
as soon as the retried pods are gone, naming only the multiple-PDB pods.

:class:`Drainer` does the same, pod by pod, one step per observation: every due eviction of a
round goes out (together, when the backend takes concurrent calls); a 429 makes the pod due
again ``retry_interval_s`` later; a multiple-PDB answer makes that pod an error (not retried)
while the others keep being retried; no eviction is retried after ``timeout_s``. The drain is
DONE when every pod is gone; FAILED when every pod is gone or an error and at least one is an
error; TIMED_OUT at the timeout while any pod that is no error is still there. The status
names every remaining pod, every error (:class:`DrainError`, one per pod, as kubectl's) and
every PDB that holds a remaining pod; ``evicted`` lists every accepted eviction.

Deliberate differences, for safety: the filters run on every observation, not once, so a pod
that appears on the cordoned node mid-drain and is refused fails the drain instead of being
left behind unnoticed; and the caller of a TIMED_OUT or FAILED drain pauses, it never
force-deletes unless the policy says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pitstop.backend import (
    Backend,
    Clock,
    ClusterObservation,
    EvictionResult,
    PdbObservation,
    PodObservation,
    call_concurrency,
)

Answer = EvictionResult | BaseException
"""What one eviction call gave: the API's answer, or the error the call raised."""


class Evictions(Protocol):
    """How a drain asks for evictions: all of a round's pods at once, the answers in the same
    order. The executor's implementation journals every call before it is made and its answer
    after (:class:`pitstop.executor.effects.Effects`); :class:`BackendEvictions` only calls."""

    @property
    def clock(self) -> Clock: ...

    def evict_all(self, pods: Sequence[PodObservation], *, delete: bool) -> list[Answer]: ...


def call_all(backend: Backend, cluster: str, pods: Sequence[PodObservation], *,
             delete: bool) -> list[Answer]:
    """Ask for every pod's eviction (``delete``: a DELETE that bypasses PDBs), one at a time,
    or — when the backend takes concurrent calls (``concurrent_calls``, as a real API server
    does and ``kubectl drain`` uses) — at once; each answer, or the error its call raised."""

    def call(pod: PodObservation) -> EvictionResult:
        if delete:
            backend.delete_pod(cluster, pod.namespace, pod.name, pod.uid)
            return EvictionResult.EVICTED
        return backend.evict(cluster, pod.namespace, pod.name, pod.uid)

    width = min(len(pods), call_concurrency(backend))
    if width <= 1:
        out: list[Answer] = []
        for pod in pods:
            try:
                out.append(call(pod))
            except Exception as exc:  # recorded with the others, then raised by the drain
                out.append(exc)
        return out
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="evict") as pool:
        futures: list[Future[EvictionResult]] = [pool.submit(call, pod) for pod in pods]
    return [f.exception() or f.result() for f in futures]


@dataclass
class BackendEvictions:
    """Evictions straight through a backend, recorded nowhere: for drains outside a run (the
    conformance tests, the benchmarks). A run's drains go through the journal instead."""

    backend: Backend
    cluster: str

    @property
    def clock(self) -> Clock:
        return self.backend.clock

    def evict_all(self, pods: Sequence[PodObservation], *, delete: bool) -> list[Answer]:
        return call_all(self.backend, self.cluster, pods, delete=delete)

__all__ = ["DrainError", "DrainErrorKind", "DrainOptions", "DrainState", "DrainStatus",
           "Drainer", "FilterResult", "filter_pods", "pdbs_selecting"]


@dataclass(frozen=True, slots=True)
class DrainOptions:
    ignore_daemonsets: bool = True
    delete_empty_dir_data: bool = False
    force: bool = False
    timeout_s: float = 900.0
    skip_wait_for_delete_timeout_s: float = 0.0
    retry_interval_s: float = 5.0  # kubectl waits 5 s after a 429
    disable_eviction: bool = False  # DELETE instead of evict: bypasses PDBs; never the default


class DrainErrorKind(StrEnum):
    """Why a pod keeps a drain from finishing: a filter's refusal, the eviction API's 500, or
    the timeout."""

    DAEMONSET = "daemonset"
    LOCAL_STORAGE = "local-storage"
    NO_CONTROLLER = "no-controller"
    MULTIPLE_PDBS = "multiple-pdbs"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class DrainError:
    """One pod's error, as ``kubectl drain`` reports one per pod."""

    kind: DrainErrorKind
    pod: str  # namespace/name
    why: str
    pdbs: tuple[str, ...] = ()  # the PDBs that select the pod (namespace/name)

    def describe(self) -> str:
        return f"{self.pod}: {self.why}"


@dataclass(frozen=True, slots=True)
class FilterResult:
    evict: tuple[PodObservation, ...]
    skipped: tuple[tuple[str, str], ...]  # (pod, why)
    errors: tuple[DrainError, ...]  # refused pods — the drain cannot proceed
    warnings: tuple[tuple[str, str], ...]


def _finished(p: PodObservation) -> bool:
    return p.phase in ("Succeeded", "Failed")


def filter_pods(pods: list[PodObservation], opts: DrainOptions) -> FilterResult:
    """Decide, pod by pod, what a drain does with the pods on a node."""
    evict: list[PodObservation] = []
    skipped: list[tuple[str, str]] = []
    errors: list[DrainError] = []
    warnings: list[tuple[str, str]] = []
    for p in sorted(pods, key=lambda p: p.key):
        if (p.deleting and opts.skip_wait_for_delete_timeout_s > 0
                and p.deleting_for > opts.skip_wait_for_delete_timeout_s):
            skipped.append((p.key, "already deleting for longer than the skip timeout"))
            continue
        if p.owner_kind == "DaemonSet":
            if _finished(p):
                evict.append(p)
            elif opts.ignore_daemonsets:
                warnings.append((p.key, "DaemonSet-managed pod left in place"))
            else:
                errors.append(DrainError(DrainErrorKind.DAEMONSET, p.key,
                                         "DaemonSet-managed pod (use ignore-daemonsets)"))
            continue
        if p.mirror:
            skipped.append((p.key, "mirror (static) pod"))
            continue
        if p.empty_dir and not _finished(p) and not opts.delete_empty_dir_data:
            errors.append(DrainError(
                DrainErrorKind.LOCAL_STORAGE, p.key,
                "pod with local storage (emptyDir); deleting it loses the data "
                "(use deleteEmptyDirData)"))
            continue
        if p.owner_kind is None and not _finished(p):
            if opts.force:
                warnings.append((p.key, "pod without a controller deleted for good (force)"))
            else:
                errors.append(DrainError(
                    DrainErrorKind.NO_CONTROLLER, p.key,
                    "pod declares no controller: nothing would recreate it (use force)"))
                continue
        evict.append(p)
    return FilterResult(tuple(evict), tuple(skipped), tuple(errors), tuple(warnings))


def pdbs_selecting(pod: PodObservation, pdbs: tuple[PdbObservation, ...]) -> list[PdbObservation]:
    return [b for b in pdbs if b.selects(pod.namespace, pod.labels)]


class DrainState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # filter refusals or multiple-PDB answers, no pod left to wait for
    TIMED_OUT = "timed-out"  # pods still there at the deadline (errors named too)


@dataclass
class DrainStatus:
    state: DrainState
    message: str = ""
    remaining: list[str] = field(default_factory=list)  # every pod not yet gone
    blocking_pdbs: list[str] = field(default_factory=list)  # every PDB holding one of them
    evicted: list[str] = field(default_factory=list)  # every accepted eviction (or deletion)
    warnings: list[str] = field(default_factory=list)
    errors: list[DrainError] = field(default_factory=list)  # one per pod, as kubectl's


@dataclass
class _PodTrack:
    uid: str
    requested: bool = False  # an eviction was accepted (or the pod deleted), or it was gone
    next_try: float = 0.0
    attempts: int = 0  # eviction calls answered
    refusals: int = 0  # of them 429s
    error: DrainError | None = None  # the eviction API's final refusal: never retried


@dataclass
class Drainer:
    """One node's drain. Call :meth:`advance` with a fresh observation until it is not
    RUNNING. Every eviction goes through ``evictions`` (:class:`Evictions`)."""

    evictions: Evictions
    node: str
    options: DrainOptions
    started: float
    _tracks: dict[str, _PodTrack] = field(default_factory=dict)
    _errors: list[DrainError] = field(default_factory=list)  # eviction errors, as they came
    _evicted: list[str] = field(default_factory=list)
    _warnings: list[str] | None = None
    status: DrainStatus = field(default_factory=lambda: DrainStatus(DrainState.RUNNING))

    def advance(self, obs: ClusterObservation) -> DrainStatus:
        if self.status.state is not DrainState.RUNNING:
            return self.status
        now = self.evictions.clock.now()
        result = filter_pods(obs.pods_on(self.node), self.options)
        if self._warnings is None:
            self._warnings = [f"{p}: {why}" for p, why in result.warnings]
        # Pods this drain must see gone: those the filters chose, tracked by uid.
        current = {p.key: p for p in result.evict}
        for key, pod in current.items():
            track = self._tracks.get(key)
            if track is None or track.uid != pod.uid:
                # a pod not seen before, or a replacement (new uid, same name) on this node
                self._tracks[key] = _PodTrack(pod.uid)
        present = [(current[key], track) for key, track in self._tracks.items()
                   if key in current and current[key].uid == track.uid]
        if result.errors:
            # kubectl evicts nothing once a filter refuses a pod; a pod refused mid-drain
            # (it appeared on the cordoned node) stops the drain as well
            return self._end(DrainState.FAILED, obs, present, list(result.errors), now)
        expired = now - self.started >= self.options.timeout_s
        # no retry after the timeout (kubectl checks it before every attempt); a pod's first
        # eviction is always asked
        due = [(pod, track) for pod, track in present
               if track.error is None and not track.requested and not pod.deleting
               and now >= track.next_try and not (expired and track.attempts)]
        self._evict_all(obs, due, now)
        if all(track.error is not None for _, track in present):
            # every pod gone or refused for good
            return self._end(DrainState.FAILED if self._errors else DrainState.DONE,
                             obs, present, [], now)
        if expired:
            return self._end(DrainState.TIMED_OUT, obs, present, [], now)
        self.status = DrainStatus(DrainState.RUNNING, remaining=sorted(p.key for p, _ in present),
                                  evicted=list(self._evicted), warnings=list(self._warnings),
                                  errors=list(self._errors))
        return self.status

    # -- the end of a drain: a complete status ----------------------------------------------
    def _end(self, state: DrainState, obs: ClusterObservation,
             present: list[tuple[PodObservation, _PodTrack]], refused: list[DrainError],
             now: float) -> DrainStatus:
        errors = [*refused, *self._errors]
        remaining = sorted({*(p.key for p, _ in present), *(e.pod for e in refused)})
        held: dict[str, list[str]] = {}  # pod → PDBs, for pods whose eviction was refused
        timed_out: list[DrainError] = []
        terminating: list[str] = []
        if state is DrainState.TIMED_OUT:
            for pod, track in present:
                if track.error is not None:
                    continue
                names = tuple(b.key for b in pdbs_selecting(pod, obs.pdbs))
                if track.requested or pod.deleting:
                    why = "evicted, still terminating at the timeout"
                    terminating.append(pod.key)
                elif track.refusals:
                    why = (f"eviction refused {track.refusals} time(s) until the timeout "
                           f"(429: a PodDisruptionBudget allows no disruption)")
                    held[pod.key] = list(names)
                else:
                    why = "still there at the timeout"
                    held[pod.key] = list(names)
                timed_out.append(DrainError(DrainErrorKind.TIMEOUT, pod.key, why, names))
            errors += sorted(timed_out, key=lambda e: e.pod)
        for e in self._errors:
            held[e.pod] = list(e.pdbs)
        blocking = sorted({b for names in held.values() for b in names})
        warnings = list(self._warnings or [])
        if state is DrainState.DONE:
            message = f"drained {self.node}: {len(self._evicted)} pod(s) evicted"
        elif state is DrainState.TIMED_OUT:
            message = "; ".join([
                f"drain of {self.node} timed out after {self.options.timeout_s:.0f}s: "
                f"{len(remaining)} pod(s) still there ({', '.join(remaining)})"
                + (f", held by PodDisruptionBudget(s) {', '.join(blocking)}" if blocking else ""),
                *_refusals(self._errors),
                *([f"evicted, still terminating: {', '.join(terminating)}"] if terminating
                  else [])])
        else:
            message = "; ".join(
                ([f"cannot drain: {'; '.join(e.describe() for e in refused)}"] if refused
                 else []) + _refusals(self._errors))
        self.status = DrainStatus(state, message, remaining=remaining, blocking_pdbs=blocking,
                                  evicted=list(self._evicted), warnings=warnings, errors=errors)
        return self.status

    # -- evictions ---------------------------------------------------------------------------
    def _evict_all(self, obs: ClusterObservation,
                   due: list[tuple[PodObservation, _PodTrack]], now: float) -> None:
        """Ask for every due eviction at once (:class:`Evictions`), then take every answer in
        order. One pod's refusal stops no other eviction. If calls raise, the answers that
        came back are taken, then the first error is raised."""
        if not due:
            return
        answers = self.evictions.evict_all([pod for pod, _ in due],
                                           delete=self.options.disable_eviction)
        failure: BaseException | None = None
        for (pod, track), answer in zip(due, answers, strict=True):
            if isinstance(answer, BaseException):
                failure = failure or answer
                continue
            self._answer(obs, pod, track, answer, now)
        if failure is not None:
            raise failure

    def _answer(self, obs: ClusterObservation, pod: PodObservation, track: _PodTrack,
                answer: EvictionResult, now: float) -> None:
        track.attempts += 1
        if answer is EvictionResult.EVICTED:
            track.requested = True
            self._evicted.append(pod.key)
        elif answer is EvictionResult.GONE:
            track.requested = True  # nothing to evict: wait to see it gone
        elif answer is EvictionResult.BUDGET_EXHAUSTED:
            track.refusals += 1
            track.next_try = now + self.options.retry_interval_s
        elif answer is EvictionResult.MULTIPLE_PDBS:
            names = tuple(b.key for b in pdbs_selecting(pod, obs.pdbs))
            track.error = DrainError(
                DrainErrorKind.MULTIPLE_PDBS, pod.key,
                f"more than one PodDisruptionBudget selects it ({', '.join(names) or 'unknown'})"
                "; the eviction API refuses such pods", names)
            self._errors.append(track.error)
        elif answer is EvictionResult.TERMINATING_NAMESPACE:
            track.next_try = now + self.options.retry_interval_s


def _refusals(errors: list[DrainError]) -> list[str]:
    """The multiple-PDB errors, one phrase per set of PDBs: "cannot evict a, b: more than one
    PodDisruptionBudget selects each (x, y); the eviction API refuses such pods"."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for e in errors:
        if e.kind is DrainErrorKind.MULTIPLE_PDBS:
            groups.setdefault(e.pdbs, []).append(e.pod)
    return [f"cannot evict {', '.join(pods)}: more than one PodDisruptionBudget selects "
            f"{'it' if len(pods) == 1 else 'each'} ({', '.join(pdbs) or 'unknown'}); the "
            "eviction API refuses such pods" for pdbs, pods in groups.items()]
