"""Deadline waits: the only way a test waits for the cluster.

Why not ``time.sleep``: a fixed sleep is either too short on a loaded CI machine (flaky) or too
long everywhere else (slow). ``wait_for`` polls a predicate until it returns something truthy
and, on timeout, says what it waited for and what it saw last, which is usually the whole
diagnosis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A ``wait_for`` deadline passed; ``last`` is the final observed value or exception."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    message: str = "condition",
    *,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value; return it.

    Exceptions listed in ``ignore`` count as "not yet" (e.g. a 404 before an object exists).
    Raises WaitTimeout (a TimeoutError) with ``message`` and the last value after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {message}; last observed: {last!r}",
                last,
            )
        time.sleep(min(interval, remaining))


def hold_for(
    predicate: Callable[[], T | None],
    duration: float,
    interval: float = 0.5,
    message: str = "condition",
) -> list[T]:
    """Assert that ``predicate`` stays truthy for ``duration`` seconds; return the observations.

    The dual of ``wait_for``, for "this must NOT change" checks (a never-ready pod stays
    unready): polls at least twice and raises AssertionError on the first falsy observation.
    """
    observations: list[T] = []
    start = time.monotonic()
    while True:
        value = predicate()
        if not value:
            raise AssertionError(
                f"{message} stopped holding after {time.monotonic() - start:.1f}s "
                f"(observation {len(observations) + 1}): {value!r}"
            )
        observations.append(value)
        if time.monotonic() - start >= duration and len(observations) >= 2:
            return observations
        time.sleep(interval)
