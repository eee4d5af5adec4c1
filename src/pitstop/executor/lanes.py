"""Several clusters of a wave worked on at once, one at a time.

Each cluster gets a *lane*: a thread that runs the executor's ordinary, blocking code for that
cluster. Only one lane runs at any moment; a lane gives the turn back whenever it would sleep
(polling an operation, waiting between gate measurements, soaking), and the scheduler hands it
to the lane that wakes first (ties: the lane started first), sleeping on the backend's clock
until then. So backend calls never overlap and need no locking, the twin's virtual clock moves
exactly as it does for one cluster, and a rehearsal stays deterministic: the same seed gives the
same interleaving.

At most ``width`` lanes exist; each takes the next cluster in plan order when its cluster is
done. When the work of one cluster raises, no lane takes a new cluster, ``on_error`` runs at
once (in that lane, holding the turn) so the executor can ask the others to stop at a safe
point, and every exception is returned once all lanes have ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pitstop.backend import Clock

__all__ = ["Lanes"]


@dataclass
class Lanes:
    clock: Clock
    width: int
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _wake: dict[int, float] = field(default_factory=dict)  # runnable lane -> when it wakes
    _turn: int | None = None  # the lane allowed to run now
    _queue: list[str] = field(default_factory=list)
    _failed: bool = False
    _errors: list[tuple[str, BaseException]] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    def in_lane(self) -> bool:
        """Whether the calling thread is one of this scheduler's lanes."""
        return getattr(self._local, "lane", None) is not None

    def sleep(self, seconds: float) -> None:
        """From inside a lane: give the turn back and continue ``seconds`` later."""
        lane: int = self._local.lane
        with self._cond:
            self._wake[lane] = self.clock.now() + max(0.0, seconds)
            self._turn = None
            self._cond.notify_all()
            while self._turn != lane:
                self._cond.wait()

    def run(self, items: Sequence[str], work: Callable[[str], None],
            on_error: Callable[[str, BaseException], None] | None = None,
            ) -> list[tuple[str, BaseException]]:
        """``work(item)`` for every item, at most ``width`` at once, in order; the exceptions
        raised, with their item, in the order they were raised."""
        self._queue = list(items)
        self._errors = []
        self._failed = False
        lanes = max(1, min(self.width, len(self._queue)))
        threads = []
        now = self.clock.now()
        with self._cond:
            for lane in range(lanes):
                self._wake[lane] = now
                t = threading.Thread(target=self._lane, args=(lane, work, on_error),
                                     name=f"pitstop-lane-{lane}", daemon=True)
                threads.append(t)
                t.start()
            while self._wake:
                lane = min(self._wake, key=lambda k: (self._wake[k], k))
                delay = self._wake[lane] - self.clock.now()
                if delay > 0:
                    self._cond.release()  # nothing runs while the clock sleeps
                    try:
                        self.clock.sleep(delay)
                    finally:
                        self._cond.acquire()
                del self._wake[lane]
                self._turn = lane
                self._cond.notify_all()
                while self._turn == lane:
                    self._cond.wait()
        for t in threads:
            t.join()
        return list(self._errors)

    def _lane(self, lane: int, work: Callable[[str], None],
              on_error: Callable[[str, BaseException], None] | None) -> None:
        self._local.lane = lane
        with self._cond:
            while self._turn != lane:
                self._cond.wait()
        try:
            while not self._failed and self._queue:
                item = self._queue.pop(0)
                try:
                    work(item)
                except BaseException as exc:  # handed back to the caller of run()
                    self._errors.append((item, exc))
                    self._failed = True
                    if on_error is not None:
                        on_error(item, exc)
        finally:
            with self._cond:
                self._turn = None
                self._cond.notify_all()
