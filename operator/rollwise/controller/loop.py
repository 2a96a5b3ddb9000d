"""The loop every kind runs on: one pass per queued key, observe -> decide -> ordered writes.

A kind (ProgressiveService, ReleaseTrain, FleetRollout) is a `KindLoop` with its own `run_pass`
(how it observes, which pure decide it calls, what it writes and in which order). What is the
same for every kind lives here, once:

- `reconcile(key)` never raises: a pass that fails is logged with the object's namespace/name
  and retried after a capped exponential backoff (`Backoff`); a pass that already logged what
  went wrong (and wrote what it could, e.g. Degraded=True) raises `RetryLater`;
- the status is read leniently (`read_status`: one unreadable field costs that field, never the
  whole status) and written by the one StatusWriter (adapters/status_writer.py: conflicts
  re-read and retried, refusals raised); a refused write is made visible by `status_refused`
  (controller/status_failures.py: a Warning Event naming the real cause, a metric, a log line);
- Events go through the one EventRecorder (`post_events`): a failed post is logged, never
  fatal to the pass (the status has the facts);
- the leader fence (controller/fencing.py) wraps `reconcile` for a process that elects a
  leader: a standby runs no pass, and every write of a pass asks the fence first;
- `checkpoint(moment)` marks the moments between two writes of a pass ("applied:<Action>",
  "patching:<cluster>", ...). Production installs nothing there; the reliability tests install
  a hook (tests/harness/crash_points.py) that kills the process at one of them, the moments a
  real crash cannot be timed from outside.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import BaseModel

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.manifests.types import ObjectRef
from rollwise.api.stored_status import read_stored_model
from rollwise.controller import logs, status_failures
from rollwise.controller.queue import Key
from rollwise.core.model import EventRecord

StatusT = TypeVar("StatusT", bound=BaseModel)


Checkpoint = Callable[[str], None]
_checkpoint: Checkpoint | None = None


def install_checkpoint(hook: Checkpoint | None) -> None:
    """Install (None: remove) the hook `checkpoint` calls; for tests only."""
    global _checkpoint
    _checkpoint = hook


def checkpoint(moment: str) -> None:
    """A moment between two writes of a pass; calls the installed hook, if any."""
    if _checkpoint is not None:
        _checkpoint(moment)


class RetryLater(Exception):
    """The pass logged what failed (and wrote what it could): back off, log nothing more."""


class Failures(Protocol):
    """Where a kind counts its failed passes (services keep theirs in ServiceMemories)."""

    def count_failure(self, key: Key) -> int: ...

    def clear_failures(self, key: Key) -> None: ...


class FailureCounts:
    """Failed passes per key, in memory (a restart starts every key afresh)."""

    def __init__(self) -> None:
        self._counts: dict[Key, int] = {}
        self._lock = threading.Lock()

    def count_failure(self, key: Key) -> int:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def clear_failures(self, key: Key) -> None:
        with self._lock:
            self._counts.pop(key, None)


class Backoff:
    """The delay after a failed pass: `initial_s * 2**(failures - 1)`, at most `max_s`.

    A failed pass that ran before the key's backoff was due (a watch event woke it) is no
    further step: events never push a blocked object's backoff toward the cap (the issue: 234 s
    to recover from a 30 s block of status writes)."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        failures: Failures | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures: Failures = failures if failures is not None else FailureCounts()
        self._clock = clock
        self._due: dict[Key, float] = {}
        self._lock = threading.Lock()

    def failed(self, key: Key) -> float:
        now = self._clock()
        with self._lock:
            due = self._due.get(key)
            if due is not None and now < due:
                return due - now
        failures = self.failures.count_failure(key)
        delay = float(min(self.max_s, self.initial_s * 2 ** (failures - 1)))
        with self._lock:
            self._due[key] = now + delay
        return delay

    def succeeded(self, key: Key) -> None:
        self.failures.clear_failures(key)
        with self._lock:
            self._due.pop(key, None)


def read_lenient(
    model: type[StatusT],
    raw: object,
    log: logging.Logger,
    context: Mapping[str, Any],
    history_limit: int | None = None,
) -> StatusT:
    """The stored status, read field by field (`api.stored_status`); what could not be read is
    logged with the object and rewritten from observed state by this pass."""
    reading = read_stored_model(raw, model, history_limit)
    if reading.problems:
        log.warning(
            "status not fully readable (%s); rewritten from observed state",
            "; ".join(reading.problems),
            extra=context,
        )
    status = reading.status
    assert isinstance(status, model)
    return status


class KindLoop:
    """`reconcile(key) -> requeue delay` for the worker pool, for one kind."""

    kind = "object"  # how logs name it: "train pass failed: ..."
    plural = "progressiveservices"  # its resource, as RBAC and admission rules name it

    def __init__(
        self, backoff: Backoff, log: logging.Logger, registry: CollectorRegistry = REGISTRY
    ) -> None:
        self._backoff = backoff
        self.log = log
        self.registry = registry

    def run_pass(self, key: Key) -> float | None:
        """One pass: observe, decide, write; the requeue delay (None: wait for an event).
        Raises AdapterError (logged here), RetryLater (already logged) or anything else (a
        bug: logged with its traceback); each backs off."""
        raise NotImplementedError

    def reconcile(self, key: Key) -> float | None:
        """One pass; never raises (failures are logged with the object and backed off)."""
        try:
            delay = self.run_pass(key)
        except RetryLater:
            return self.backoff(key)
        except AdapterError as err:
            self.log.warning("%s pass failed: %s", self.kind, err, extra=logs.ref(*key))
            return self.backoff(key)
        except Exception:
            self.log.exception("%s pass failed unexpectedly", self.kind, extra=logs.ref(*key))
            return self.backoff(key)
        self._backoff.succeeded(key)
        return delay

    def backoff(self, key: Key) -> float:
        """Count a failed pass; the delay before the next one (doubling, capped)."""
        return self._backoff.failed(key)

    def read_status(
        self,
        model: type[StatusT],
        raw: object,
        context: Mapping[str, Any],
        history_limit: int | None = None,
    ) -> StatusT:
        """The stored status, read leniently (see `read_lenient`)."""
        return read_lenient(model, raw, self.log, context, history_limit)

    def status_refused(
        self,
        post: Callable[[ObjectRef, EventRecord, Any], None],
        ref: ObjectRef,
        err: AdapterError,
        now: Any,
        context: Mapping[str, Any],
    ) -> None:
        """A status write the API server refused: a Warning Event naming the real cause (too
        large, admission, RBAC, a conflict storm), `rollwise_status_write_failures_total` and a
        log line. The caller raises RetryLater (or goes on, where the write was a side note)."""
        status_failures.report(post, self.registry, ref, err, now, context, plural=self.plural)

    def post_events(
        self,
        post: Callable[[ObjectRef, EventRecord, Any], None],
        ref: ObjectRef,
        records: Iterable[EventRecord],
        now: Any,
        context: Mapping[str, Any],
    ) -> None:
        """Post each Event; a failure is logged, never fatal to the pass."""
        for record in records:
            try:
                post(ref, record, now)
            except AdapterError as err:
                self.log.warning(
                    "could not post Event %s (%s): %s",
                    record.reason,
                    record.message,
                    err,
                    extra=context,
                )
