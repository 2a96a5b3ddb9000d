"""The controller's work queue and worker pool (rollwise.controller.queue): deduplicated keys, at
most one worker per key, a key added during its pass processed again after it, delayed requeue.

Real threads throughout; the only stand-in is a manual clock for the timer heap, so that
"after 30 seconds" is tested without waiting 30 seconds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from rollwise.controller.queue import NEW_LANE_SHARE, Key, ShutDown, WorkerPool, WorkQueue

A: Key = ("shop", "payment")
B: Key = ("shop", "orders")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


# ----------------------------------------------------------------------------- WorkQueue


def test_a_key_added_many_times_waits_once() -> None:
    queue = WorkQueue()

    for _ in range(3):
        queue.add(A)
    queue.add(B)

    assert len(queue) == 2
    assert [queue.get(0), queue.get(0), queue.get(0)] == [A, B, None]


def test_a_key_in_process_is_not_handed_to_a_second_worker() -> None:
    queue = WorkQueue()
    queue.add(A)
    assert queue.get(0) == A

    queue.add(A)  # changed while a worker is on it

    assert queue.get(0) is None


def test_a_key_added_during_its_pass_is_processed_again_after() -> None:
    queue = WorkQueue()
    queue.add(A)
    key = queue.get(0)
    queue.add(A)

    queue.done(A)

    assert key == A and queue.get(0) == A


def test_a_finished_key_not_added_again_is_not_requeued() -> None:
    queue = WorkQueue()
    queue.add(A)
    queue.get(0)

    queue.done(A)

    assert queue.get(0) is None


def process_once(queue: WorkQueue, *keys: Key) -> None:
    for key in keys:
        queue.add(key)
        assert queue.get(0) == key
        queue.done(key)


def test_a_known_key_does_not_wait_behind_a_backlog_of_first_passes() -> None:
    queue = WorkQueue()
    process_once(queue, A)
    backlog = [("shop", f"new-{i}") for i in range(100)]
    for key in backlog:
        queue.add(key)

    queue.add(A)  # e.g. its canary pods turned Ready

    assert queue.get(0) == A
    assert len(queue) == 100


def test_new_keys_keep_their_share_while_known_keys_keep_coming() -> None:
    queue = WorkQueue()
    known = [("shop", f"known-{i}") for i in range(50)]
    process_once(queue, *known)
    new = [("shop", f"new-{i}") for i in range(10)]
    for key in new:
        queue.add(key)
    for key in known:
        queue.add(key)

    order = [queue.get(0) for _ in range(60)]

    assert order[:NEW_LANE_SHARE] == [*known[: NEW_LANE_SHARE - 1], new[0]]
    taken_new = [k for k in order if k in new]
    assert taken_new == new, "new keys keep their FIFO order"
    assert order.index(new[-1]) == 10 * NEW_LANE_SHARE - 1
    assert sorted(k for k in order if k in known) == sorted(known)


def test_with_one_lane_empty_the_other_is_served_in_order() -> None:
    queue = WorkQueue()
    keys = [("shop", f"s-{i}") for i in range(5)]
    for key in keys:
        queue.add(key)
    assert [queue.get(0) for _ in keys] == keys
    for key in keys:
        queue.done(key)
    for key in reversed(keys):
        queue.add(key)
    assert [queue.get(0) for _ in keys] == list(reversed(keys))


def test_a_forgotten_key_counts_as_new_again() -> None:
    queue = WorkQueue()
    process_once(queue, A)
    queue.forget(A)
    process_once(queue, B)
    queue.add(A)
    queue.add(B)

    assert queue.get(0) == B


def test_add_after_waits_for_its_deadline() -> None:
    clock = ManualClock()
    queue = WorkQueue(clock=clock)

    queue.add_after(A, 30)
    before = queue.get(0)
    clock.now += 30
    after = queue.get(0)

    assert (before, after) == (None, A)


def test_the_earliest_pending_deadline_wins() -> None:
    clock = ManualClock()
    queue = WorkQueue(clock=clock)

    queue.add_after(A, 30)
    queue.add_after(A, 5)
    queue.add_after(A, 60)
    clock.now += 5

    assert queue.get(0) == A
    queue.done(A)
    clock.now += 60
    assert queue.get(0) is None  # the 30s and 60s timers were superseded


def test_schedule_replaces_a_pending_deadline_with_the_latest_pass_answer() -> None:
    clock = ManualClock()
    queue = WorkQueue(clock=clock)
    queue.add_after(A, 5)

    queue.schedule(A, 300)
    clock.now += 5
    early = queue.get(0)
    clock.now += 295
    late = queue.get(0)

    assert (early, late) == (None, A)


def test_schedule_none_cancels_the_timed_pass() -> None:
    clock = ManualClock()
    queue = WorkQueue(clock=clock)
    queue.add_after(A, 5)

    queue.schedule(A, None)
    clock.now += 10

    assert queue.get(0) is None


def test_a_due_timer_for_a_key_in_process_runs_after_the_pass() -> None:
    clock = ManualClock()
    queue = WorkQueue(clock=clock)
    queue.add(A)
    queue.get(0)
    queue.add_after(A, 1)
    clock.now += 1

    during = queue.get(0)
    queue.done(A)
    after = queue.get(0)

    assert (during, after) == (None, A)


def test_get_blocks_until_a_key_arrives() -> None:
    queue = WorkQueue()
    threading.Timer(0.05, queue.add, args=(A,)).start()

    assert queue.get(timeout=5) == A


def test_get_wakes_up_for_a_real_delayed_add() -> None:
    queue = WorkQueue()
    started = time.monotonic()

    queue.add_after(A, 0.1)

    assert queue.get(timeout=5) == A
    assert time.monotonic() - started >= 0.09


def test_shutdown_stops_waiting_workers() -> None:
    queue = WorkQueue()
    threading.Timer(0.05, queue.shutdown).start()

    with pytest.raises(ShutDown):
        queue.get(timeout=5)


# ----------------------------------------------------------------------------- WorkerPool


def test_workers_never_run_one_key_twice_at_once_but_run_keys_in_parallel() -> None:
    queue = WorkQueue()
    lock = threading.Lock()
    running: Counter[Key] = Counter()
    overlap_same_key = 0
    max_parallel = 0
    passes: Counter[Key] = Counter()

    def reconcile(key: Key) -> float | None:
        nonlocal overlap_same_key, max_parallel
        with lock:
            running[key] += 1
            overlap_same_key = max(overlap_same_key, running[key])
            max_parallel = max(max_parallel, sum(running.values()))
        time.sleep(0.02)
        with lock:
            running[key] -= 1
            passes[key] += 1
        return None

    pool = WorkerPool(queue, reconcile, workers=4)
    pool.start()
    try:
        keys = [("ns", f"svc-{i}") for i in range(4)]
        for _ in range(5):
            for key in keys:
                queue.add(key)
            time.sleep(0.005)
        wait_until(lambda: len(queue) == 0 and pool.busy == 0 and sum(passes.values()) >= 4)
    finally:
        pool.stop()

    assert overlap_same_key == 1
    assert max_parallel > 1
    assert all(passes[k] >= 1 for k in keys)


def test_the_pool_requeues_after_the_delay_a_pass_returns() -> None:
    queue = WorkQueue()
    times: list[float] = []

    def reconcile(key: Key) -> float | None:
        times.append(time.monotonic())
        return 0.1 if len(times) < 2 else None

    pool = WorkerPool(queue, reconcile, workers=2)
    pool.start()
    try:
        queue.add(A)
        wait_until(lambda: len(times) == 2)
    finally:
        pool.stop()

    assert times[1] - times[0] >= 0.09


def test_an_exception_escaping_a_pass_is_retried_with_the_error_delay() -> None:
    queue = WorkQueue()
    calls: list[Key] = []

    def reconcile(key: Key) -> float | None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return None

    pool = WorkerPool(queue, reconcile, workers=1, error_delay=lambda key: 0.01)
    pool.start()
    try:
        queue.add(A)
        wait_until(lambda: len(calls) == 2)
    finally:
        pool.stop()

    assert calls == [A, A]
    assert pool.alive() == 0


def test_stop_waits_for_the_pass_in_flight() -> None:
    queue = WorkQueue()
    finished = threading.Event()
    started = threading.Event()

    def reconcile(key: Key) -> float | None:
        started.set()
        time.sleep(0.1)
        finished.set()
        return None

    pool = WorkerPool(queue, reconcile, workers=1)
    pool.start()
    queue.add(A)
    started.wait(5)

    pool.stop(timeout=5)

    assert finished.is_set()
    assert pool.alive() == 0
