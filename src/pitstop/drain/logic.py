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

Evictions (policy/v1): 201 → wait until the pod is gone or its uid changed; 404 → done;
429 → the budget is exhausted: wait ``retry_interval`` and try again; 500 "more than one
PodDisruptionBudget" → stop, name them; 403 in a terminating namespace → wait if the pod is
already deleting. A global timeout ends the drain as TIMED_OUT with the pods still there and the
PDBs that hold them named — the caller pauses, never force-deletes unless the policy says so.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from pitstop.backend import (
    Backend,
    ClusterObservation,
    EvictionResult,
    PdbObservation,
    PodObservation,
    call_concurrency,
)

__all__ = ["DrainOptions", "DrainState", "DrainStatus", "Drainer", "FilterResult", "filter_pods",
           "pdbs_selecting"]


@dataclass(frozen=True, slots=True)
class DrainOptions:
    ignore_daemonsets: bool = True
    delete_empty_dir_data: bool = False
    force: bool = False
    timeout_s: float = 900.0
    skip_wait_for_delete_timeout_s: float = 0.0
    retry_interval_s: float = 5.0  # kubectl waits 5 s after a 429
    disable_eviction: bool = False  # DELETE instead of evict: bypasses PDBs; never the default


@dataclass(frozen=True, slots=True)
class FilterResult:
    evict: tuple[PodObservation, ...]
    skipped: tuple[tuple[str, str], ...]  # (pod, why)
    errors: tuple[tuple[str, str], ...]  # (pod, why) — the drain cannot proceed
    warnings: tuple[tuple[str, str], ...]


def _finished(p: PodObservation) -> bool:
    return p.phase in ("Succeeded", "Failed")


def filter_pods(pods: list[PodObservation], opts: DrainOptions) -> FilterResult:
    """Decide, pod by pod, what a drain does with the pods on a node."""
    evict: list[PodObservation] = []
    skipped: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
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
                errors.append((p.key, "DaemonSet-managed pod (use ignore-daemonsets)"))
            continue
        if p.mirror:
            skipped.append((p.key, "mirror (static) pod"))
            continue
        if p.empty_dir and not _finished(p) and not opts.delete_empty_dir_data:
            errors.append((p.key, "pod with local storage (emptyDir); deleting it loses the data"
                                  " (use deleteEmptyDirData)"))
            continue
        if p.owner_kind is None and not _finished(p):
            if opts.force:
                warnings.append((p.key, "pod without a controller deleted for good (force)"))
            else:
                errors.append((p.key, "pod declares no controller: nothing would recreate it "
                                      "(use force)"))
                continue
        evict.append(p)
    return FilterResult(tuple(evict), tuple(skipped), tuple(errors), tuple(warnings))


def pdbs_selecting(pod: PodObservation, pdbs: tuple[PdbObservation, ...]) -> list[PdbObservation]:
    return [b for b in pdbs if b.selects(pod.namespace, pod.labels)]


class DrainState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # a filter error or a multiple-PDB answer: needs a person
    TIMED_OUT = "timed-out"  # pods still held by PDBs at the deadline


@dataclass
class DrainStatus:
    state: DrainState
    message: str = ""
    remaining: list[str] = field(default_factory=list)  # pods not yet gone
    blocking_pdbs: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _PodTrack:
    uid: str
    requested: bool = False  # an eviction was accepted (or the pod deleted)
    next_try: float = 0.0
    refusals: int = 0


@dataclass
class Drainer:
    """One node's drain. Call :meth:`advance` with a fresh observation until it is not
    RUNNING. ``on_evict`` is called *before* each eviction or deletion (the executor journals
    the intent there) and ``on_evicted`` after an accepted one."""

    backend: Backend
    cluster: str
    node: str
    options: DrainOptions
    started: float
    on_evict: Callable[[PodObservation, str], None] | None = None
    on_evicted: Callable[[PodObservation, EvictionResult], None] | None = None
    _tracks: dict[str, _PodTrack] = field(default_factory=dict)
    _filtered: bool = False
    status: DrainStatus = field(default_factory=lambda: DrainStatus(DrainState.RUNNING))

    def advance(self, obs: ClusterObservation) -> DrainStatus:
        if self.status.state is not DrainState.RUNNING:
            return self.status
        now = self.backend.clock.now()
        on_node = obs.pods_on(self.node)
        result = filter_pods(on_node, self.options)
        if result.errors:
            self.status = DrainStatus(
                DrainState.FAILED,
                "cannot drain: " + "; ".join(f"{p}: {why}" for p, why in result.errors),
                remaining=[p for p, _ in result.errors])
            return self.status
        if not self._filtered:
            self.status.warnings = [f"{p}: {why}" for p, why in result.warnings]
            self._filtered = True
        # Pods this drain must see gone: those the filters chose, tracked by uid.
        current = {p.key: p for p in result.evict}
        for key, pod in current.items():
            track = self._tracks.get(key)
            if track is None or track.uid != pod.uid:
                # a pod not seen before, or a replacement (new uid, same name) on this node
                self._tracks[key] = _PodTrack(pod.uid)
        waiting = []
        due: list[tuple[PodObservation, _PodTrack]] = []
        for key, track in self._tracks.items():
            seen = current.get(key)
            if seen is None or seen.uid != track.uid:
                continue  # gone, or replaced by a pod elsewhere
            waiting.append(key)
            if not (track.requested or seen.deleting or now < track.next_try):
                due.append((seen, track))
        self._evict_all(obs, due, now)
        if self.status.state is not DrainState.RUNNING:
            return self.status
        self.status.remaining = waiting
        if not waiting:
            self.status.state = DrainState.DONE
            self.status.message = f"drained {self.node}: {len(self.status.evicted)} pod(s) evicted"
            return self.status
        if now - self.started >= self.options.timeout_s:
            blocking = sorted({b.key for k in waiting if k in current
                               for b in pdbs_selecting(current[k], obs.pdbs)})
            self.status.state = DrainState.TIMED_OUT
            self.status.blocking_pdbs = blocking
            self.status.message = (
                f"drain of {self.node} timed out after {self.options.timeout_s:.0f}s: "
                f"{len(waiting)} pod(s) still there ({', '.join(waiting[:5])}"
                + (", …" if len(waiting) > 5 else "") + ")"
                + (f", held by PodDisruptionBudget(s) {', '.join(blocking)}" if blocking else ""))
        return self.status

    def _evict_all(self, obs: ClusterObservation,
                   due: list[tuple[PodObservation, _PodTrack]], now: float) -> None:
        """Ask for every due eviction: one at a time, or — when the backend takes concurrent
        calls (``concurrent_calls``, as a real API server does and ``kubectl drain`` uses) —
        at once: every intent is announced (journaled) first, then the calls go out together,
        then every answer is recorded in order. A refusal that fails the drain (more than one
        PDB) still records the answers of the calls already made."""
        how = "delete" if self.options.disable_eviction else "evict"
        width = min(len(due), call_concurrency(self.backend))
        if width <= 1:
            for pod, track in due:
                if self.on_evict is not None:
                    self.on_evict(pod, how)
                self._answer(obs, pod, track, self._call(pod), now)
                if self.status.state is not DrainState.RUNNING:
                    return
            return
        for pod, _ in due:
            if self.on_evict is not None:
                self.on_evict(pod, how)
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="evict") as pool:
            answers = list(pool.map(self._call, [pod for pod, _ in due]))
        for (pod, track), answer in zip(due, answers, strict=True):
            self._answer(obs, pod, track, answer, now)

    def _call(self, pod: PodObservation) -> EvictionResult:
        if self.options.disable_eviction:
            self.backend.delete_pod(self.cluster, pod.namespace, pod.name, pod.uid)
            return EvictionResult.EVICTED
        return self.backend.evict(self.cluster, pod.namespace, pod.name, pod.uid)

    def _answer(self, obs: ClusterObservation, pod: PodObservation, track: _PodTrack,
                answer: EvictionResult, now: float) -> None:
        if self.on_evicted is not None:
            self.on_evicted(pod, answer)
        if self.status.state is not DrainState.RUNNING:
            return  # an earlier answer of this round failed the drain; this one is recorded
        if answer in (EvictionResult.EVICTED, EvictionResult.GONE):
            track.requested = True
            self.status.evicted.append(pod.key)
        elif answer is EvictionResult.BUDGET_EXHAUSTED:
            track.refusals += 1
            track.next_try = now + self.options.retry_interval_s
        elif answer is EvictionResult.MULTIPLE_PDBS:
            names = [b.key for b in pdbs_selecting(pod, obs.pdbs)]
            self.status = DrainStatus(
                DrainState.FAILED,
                f"cannot evict {pod.key}: more than one PodDisruptionBudget selects it "
                f"({', '.join(names) or 'unknown'}); the eviction API refuses such pods",
                remaining=[pod.key], blocking_pdbs=names)
        elif answer is EvictionResult.TERMINATING_NAMESPACE:
            track.next_try = now + self.options.retry_interval_s
