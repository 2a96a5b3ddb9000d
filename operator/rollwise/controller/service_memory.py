"""What the operator remembers about each ProgressiveService between passes, and the one path
by which all of it is forgotten.

Decisions never depend on this memory: every pass starts from the stored status and the objects
that exist, so a restart, which loses it all, costs a little work and nothing else. It saves work
and shapes timing, one `ServiceMemory` per service, keyed by (namespace, name):

- `uid`: the incarnation the record is about. A service deleted and created again under the
  same name (its deletion unseen, as after a watch that had to list again) gets a fresh record.
- `failures`: consecutive failed passes, for the exponential backoff.
- `fresh_at`: when a steady-state pass last read from the API server instead of the watch cache.
- `phase`: the phase the service is counted under in the `rollwise_rollouts` gauge.
- `fingerprint`: what of the last watch event can need a pass; status-only events (mostly our
  own writes) that leave it unchanged wake nobody.
- `gate_refs`: the gates the last seen spec refers to, so that a changed MetricGate wakes
  exactly the services that use it.

Other parts keep per-service state for their own reasons and are told to drop it by the same
`ServiceMemories.forget`: the work queue (pending timer, seen-before lane), the latest bodies
(`ServiceBodies`), the Event series (`EventRecorder`, by uid) and the phase gauge. The watch cache
of owned objects is not: it mirrors objects that exist, each dropped when its own watch reports
it deleted, and an orphaned ReplicaSet still exists after its owner is gone.

`forget` runs when the ProgressiveService's watch reports it deleted, when a pass finds it gone
or terminating, and when a pass finds another uid under its name. The watch handler also enqueues
the deleted key: a pass that was in flight may have written to the record after it was
forgotten, and the pass that follows, finding the service gone, forgets again.

Thread-safe: the watch handlers write on Kopf's event loop, the passes in worker threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from rollwise.adapters.cache import ServiceBodies
from rollwise.adapters.events import EventRecorder
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.queue import Key, WorkQueue

GateRefKey = tuple[str, bool]  # (gate name, cluster)


@dataclass(frozen=True)
class ServiceMemory:
    """What is remembered of one ProgressiveService (see the module docstring)."""

    uid: str | None = None
    failures: int = 0
    fresh_at: float | None = None
    phase: str | None = None
    fingerprint: tuple[Any, ...] | None = None
    gate_refs: frozenset[GateRefKey] = frozenset()


class ServiceMemories:
    """One ServiceMemory per ProgressiveService, and `forget`, the one way to drop it all."""

    def __init__(
        self,
        *,
        queue: WorkQueue | None = None,
        bodies: ServiceBodies | None = None,
        events: EventRecorder | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self._queue = queue
        self._bodies = bodies
        self._events = events
        self._metrics = metrics
        self._lock = threading.Lock()
        self._records: dict[Key, ServiceMemory] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def get(self, key: Key) -> ServiceMemory:
        """The record of `key` (an empty one when nothing is remembered)."""
        with self._lock:
            return self._records.get(key) or ServiceMemory()

    # ---- the one forget path

    def forget(self, key: Key) -> None:
        """The service is gone (or is another one now): drop everything kept about it."""
        with self._lock:
            record = self._records.pop(key, None)
            if record is not None:
                self._count_phase(record.phase, None)
        if self._metrics is not None:
            self._metrics.services.forget(key)
        if self._queue is not None:
            self._queue.forget(key)
        if self._bodies is not None:
            self._bodies.remove(*key)
        if self._events is not None and record is not None and record.uid is not None:
            self._events.forget(record.uid)

    def claim(self, key: Key, uid: str) -> None:
        """A pass found the service with `uid`: a record about another uid is forgotten first."""
        if self.get(key).uid not in (None, uid):
            self.forget(key)  # deleted and created again under the same name
        with self._lock:
            self._records[key] = replace(self._records.get(key) or ServiceMemory(), uid=uid)

    # ---- what the passes record

    def count_failure(self, key: Key) -> int:
        """One more failed pass in a row; how many there are now."""
        with self._lock:
            record = self._records.get(key) or ServiceMemory()
            self._records[key] = replace(record, failures=record.failures + 1)
            return record.failures + 1

    def clear_failures(self, key: Key) -> None:
        """A pass did its work: the backoff starts over."""
        with self._lock:
            record = self._records.get(key)
            if record is not None and record.failures:
                self._records[key] = replace(record, failures=0)

    def record_phase(self, key: Key, uid: str, phase: str) -> None:
        """The phase a pass wrote, counted in the gauge. It brings back the uid of a record
        forgotten while the pass ran, so the pass after it forgets that uid's Event series."""
        with self._lock:
            record = self._records.get(key) or ServiceMemory(uid=uid)
            if record.uid not in (None, uid):
                return  # about an incarnation the record no longer is
            self._count_phase(record.phase, phase)
            self._records[key] = replace(record, uid=uid, phase=phase)

    def fresh_read_due(self, key: Key, now: float, every: float) -> bool:
        """Whether a steady-state pass at `now` (monotonic) reads from the API server: once per
        `every` seconds, counted from the service's first pass."""
        with self._lock:
            record = self._records.get(key) or ServiceMemory()
            last = now if record.fresh_at is None else record.fresh_at
            due = now - last >= every
            if due or record.fresh_at is None:
                self._records[key] = replace(record, fresh_at=now)
            return due

    # ---- what the watch handlers record

    def note_event(
        self, key: Key, fingerprint: tuple[Any, ...], gate_refs: frozenset[GateRefKey]
    ) -> bool:
        """Keep what a ProgressiveService event says; whether its fingerprint changed."""
        with self._lock:
            record = self._records.get(key) or ServiceMemory()
            self._records[key] = replace(record, fingerprint=fingerprint, gate_refs=gate_refs)
            return record.fingerprint != fingerprint

    def gate_users(self, name: str, cluster: bool, namespace: str | None = None) -> list[Key]:
        """Services referring to the gate; a namespaced MetricGate only within its namespace."""
        wanted = (name, cluster)
        with self._lock:
            return [
                key
                for key, record in self._records.items()
                if wanted in record.gate_refs and (namespace is None or key[0] == namespace)
            ]

    def _count_phase(self, before: str | None, after: str | None) -> None:
        if self._metrics is not None and before != after:
            self._metrics.phase_changed(before, after)
