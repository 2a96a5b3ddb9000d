"""A level-based work queue of ProgressiveService keys, and the worker threads that drain it.

Semantics of client-go's workqueue: a key waits in the queue at most once however often it is
added; a key is processed by at most one worker at a time; a key added while it is processed
is processed again afterwards (its first pass may have read the world before the change).
Delayed adds (`add_after`) wait in a timer heap; for a key only the earliest deadline counts.

Two lanes, unlike client-go: keys never processed since this process started (the start-up
listing, newly created services) wait in their own FIFO, served once for every
`NEW_LANE_SHARE - 1` keys from the lane of known keys. With thousands of first passes queued
(a restart, a mass apply), a service already mid-rollout whose pods just turned Ready, or whose
pause deadline fell due, no longer waits behind all of them; new keys still get a fixed share.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]  # (namespace, name)

# One key in this many comes from the lane of never-processed keys while both lanes wait.
# 2 alternates: a known key waits for at most one first pass per key ahead of it in its own
# lane, and first passes (what "every rollout progressing again" after a restart waits for)
# take at most twice as long as with one FIFO.
NEW_LANE_SHARE = 2

log = logging.getLogger("rollwise.controller.queue")


class ShutDown(Exception):
    """The queue was shut down; workers exit."""


class WorkQueue:
    """Deduplicated keys, one worker per key, delayed requeue. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()  # keys processed before: timers, watch events
        self._new: deque[Key] = deque()  # keys never processed by this process
        self._seen: set[Key] = set()
        self._known_in_a_row = 0  # keys taken from _queue since the last one from _new
        self._dirty: set[Key] = set()  # waiting in _queue, or to be re-queued after processing
        self._processing: set[Key] = set()
        self._timers: list[tuple[float, int, Key]] = []
        self._deadlines: dict[Key, float] = {}
        self._seq = itertools.count()
        self._shutdown = False

    def add(self, key: Key) -> None:
        """Process `key` as soon as a worker is free (once, however often it is added)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Key) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            (self._queue if key in self._seen else self._new).append(key)
            self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        """Process `key` after `delay` seconds; an earlier pending deadline wins."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            deadline = self._clock() + delay
            current = self._deadlines.get(key)
            if current is not None and current <= deadline:
                return
            self._deadlines[key] = deadline
            heapq.heappush(self._timers, (deadline, next(self._seq), key))
            self._cond.notify()

    def schedule(self, key: Key, delay: float | None) -> None:
        """Replace the key's pending deadline with `delay` (None: no timed pass at all).

        Used with the answer of a pass that just finished: it saw the freshest world, so any
        deadline an older pass asked for is obsolete.
        """
        with self._cond:
            self._deadlines.pop(key, None)
        if delay is not None:
            self.add_after(key, delay)

    def _promote_due_locked(self) -> float | None:
        """Move due timers into the queue; the seconds until the next one (None: none)."""
        now = self._clock()
        while self._timers:
            deadline, _, key = self._timers[0]
            if self._deadlines.get(key) != deadline:
                heapq.heappop(self._timers)  # superseded by an earlier deadline
                continue
            if deadline > now:
                return deadline - now
            heapq.heappop(self._timers)
            del self._deadlines[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> Key | None:
        """The next key to process (the caller must call `done(key)`); None on timeout.

        Raises ShutDown once the queue is shut down.
        """
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    raise ShutDown
                wait = self._promote_due_locked()
                if self._queue or self._new:
                    key = self._pop_locked()
                    self._seen.add(key)
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                if end is not None:
                    left = end - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _pop_locked(self) -> Key:
        """Known keys first, but one in NEW_LANE_SHARE from the new lane when it waits."""
        take_new = not self._queue or (self._new and self._known_in_a_row >= NEW_LANE_SHARE - 1)
        if take_new:
            self._known_in_a_row = 0
            return self._new.popleft()
        self._known_in_a_row += 1
        return self._queue.popleft()

    def done(self, key: Key) -> None:
        """Finish processing `key`; if it was added meanwhile, it goes back in the queue."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutdown:
                self._queue.append(key)
                self._cond.notify()

    def forget(self, key: Key) -> None:
        """Drop a pending delayed add and what is known of the key (the object is gone).

        A timer of the key stays in the heap until it falls due and is skipped there: removing
        it now would cost a scan of the heap."""
        with self._cond:
            self._deadlines.pop(key, None)
            self._seen.discard(key)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._new)

    def pending_timers(self) -> int:
        with self._cond:
            return len(self._deadlines)

    def tracked(self) -> int:
        """How many keys the queue holds anything about: waiting, in process, timed or seen."""
        with self._cond:
            return len(self._seen | self._dirty | self._processing | self._deadlines.keys())


Reconcile = Callable[[Key], "float | None"]


class WorkerPool:
    """N threads: take a key, reconcile it, schedule it again after the delay the pass asked for.

    `reconcile` is expected to handle its own errors; anything it lets escape is logged with the
    key and retried with backoff, so one bad object never stops a worker.
    """

    def __init__(
        self,
        queue: WorkQueue,
        reconcile: Reconcile,
        workers: int,
        *,
        error_delay: Callable[[Key], float] = lambda key: 5.0,
        name: str = "rollwise-worker",
    ) -> None:
        self.queue = queue
        self._reconcile = reconcile
        self._error_delay = error_delay
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self.busy = 0
        self._busy_lock = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking keys; wait up to `timeout` for passes in flight to finish."""
        self.queue.shutdown()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            try:
                key = self.queue.get()
            except ShutDown:
                return
            if key is None:  # pragma: no cover - get() without timeout never times out
                continue
            with self._busy_lock:
                self.busy += 1
            delay: float | None
            try:
                delay = self._reconcile(key)
            except Exception:
                log.exception(
                    "reconcile failed unexpectedly",
                    extra={"k8s_ref": {"namespace": key[0], "name": key[1]}},
                )
                delay = self._error_delay(key)
            finally:
                with self._busy_lock:
                    self.busy -= 1
                self.queue.done(key)
            self.queue.schedule(key, delay)
