"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Several replicas run; the one holding the Lease writes, the others stand by with their watches
and caches warm (controller/fencing.py keeps their workers from writing). Each candidate tries
every `retry_period_s`:

- a Lease held by someone else is taken only once it has stayed unchanged for
  `lease_duration_s` by this process's own monotonic clock, counted from when this process
  first saw its current record (never from the timestamps in it: clocks of two machines
  disagree, their rates barely do);
- the holder renews it; it counts as leader until `renew_deadline_s` after the moment its last
  successful renewal was *sent*. Any rival saw that renewal later still, and waits
  `lease_duration_s` from then: between the leader's last possible write and the first possible
  write of its successor lie at least `lease_duration_s - renew_deadline_s` (5 s by default), a
  margin for writes in flight and for clocks that run at slightly different rates.

The decisions are pure functions of (record, identity, times) at the top of this module; the
elector around them only does the I/O, in its own thread with the synchronous client.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import KubeApi, Resource
from rollwise.adapters.manifests.types import Manifest

log = logging.getLogger("rollwise.leadership")

LEASES = Resource("Lease", "coordination.k8s.io", "v1", "leases")
# client-go's JitterFactor: candidates spread their tries so they do not collide in lock-step.
JITTER = 1.2


# ----------------------------------------------------------------------------- pure decisions


@dataclass(frozen=True)
class LeaseRecord:
    """The election fields of a Lease's spec."""

    holder: str = ""
    duration_s: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Manifest) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_s=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_s,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


def micro_time(at: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def held_by_other(record: LeaseRecord, me: str, observed_at: float, now: float) -> bool:
    """Whether someone else holds the lease: it names another holder and has not stayed
    unchanged for its own leaseDurationSeconds since this process first saw it so."""
    if not record.holder or record.holder == me:
        return False
    return now < observed_at + record.duration_s


def claim(record: LeaseRecord | None, me: str, at: datetime, duration_s: int) -> LeaseRecord:
    """The record that makes `me` the holder: a renewal keeps the acquire time and the count
    of transitions, a takeover (or a first holder) starts its own."""
    stamp = micro_time(at)
    if record is not None and record.holder == me:
        return replace(record, duration_s=duration_s, renew_time=stamp)
    transitions = 0 if record is None else record.transitions + (1 if record.holder else 0)
    return LeaseRecord(
        holder=me,
        duration_s=duration_s,
        acquire_time=stamp,
        renew_time=stamp,
        transitions=transitions,
    )


def released(record: LeaseRecord, at: datetime) -> LeaseRecord:
    """The record a leader leaves behind on a clean stop: no holder, so a standby takes over
    at its next try instead of waiting out the lease (client-go's ReleaseOnCancel)."""
    return replace(record, holder="", duration_s=1, renew_time=micro_time(at))


def leads(renewed_at: float | None, now: float, renew_deadline_s: float) -> bool:
    """The fence: whether this process may still write, by its own clock. `renewed_at` is when
    its last successful acquire or renewal was sent (None: never, or given up)."""
    return renewed_at is not None and now < renewed_at + renew_deadline_s


# ----------------------------------------------------------------------------- the elector


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


class LeaderElector:
    """Acquire, renew and release one Lease from a thread of its own.

    `on_started_leading` runs in the elector's thread once the lease is won; `on_stopped_leading`
    once it is lost (not renewed within the deadline, or taken by another). After a loss the
    elector stops for good: the process is expected to exit and start afresh as a standby.
    """

    def __init__(
        self,
        api: KubeApi,
        config: ElectionConfig,
        *,
        on_started_leading: Callable[[], object] = lambda: None,
        on_stopped_leading: Callable[[], object] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.Lock()
        self._renewed_at: float | None = None
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._resource_version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False  # the lease was lost: the process should exit non-zero
        self.leading_since: float | None = None  # monotonic, when this process became leader

    # ---- the fence and what probes show

    def is_leader(self) -> bool:
        """Whether this process holds an unexpired lease by its own clock (the write fence)."""
        with self._lock:
            return leads(self._renewed_at, self._monotonic(), self.config.renew_deadline_s)

    @property
    def holder(self) -> str:
        """The holder as last read from the Lease ("" when none or not yet read)."""
        with self._lock:
            return self._observed.holder if self._observed else ""

    # ---- one try

    def try_acquire_or_renew(self) -> bool:
        """One round trip (GET, then create or a conditional update): whether this process
        holds the lease now. API errors count as a failed try; they are logged."""
        cfg = self.config
        sent = self._monotonic()
        try:
            lease = self.api.get(LEASES, cfg.namespace, cfg.name)
            if lease is None:
                record = claim(None, cfg.identity, self._wall(), round(cfg.lease_duration_s))
                created = self.api.create(LEASES, cfg.namespace, self._manifest(record))
                self._won(sent, record, created)
                return True
            current = LeaseRecord.from_lease(lease)
            now = self._monotonic()
            with self._lock:
                if current != self._observed:
                    self._observed, self._observed_at = current, now
                observed_at = self._observed_at
            if held_by_other(current, cfg.identity, observed_at, now):
                return False
            record = claim(current, cfg.identity, self._wall(), round(cfg.lease_duration_s))
            version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
            self._won(sent, record, self._update(record, version))
            return True
        except AdapterError as err:
            level = logging.DEBUG if err.status == 409 else logging.WARNING
            log.log(level, "lease %s/%s: %s", cfg.namespace, cfg.name, err)
            return False

    def _won(self, sent: float, record: LeaseRecord, lease: Manifest) -> None:
        with self._lock:
            if not self._stop.is_set() and not self.lost:
                # A try that was in flight when `stop` closed the fence leaves it closed.
                self._renewed_at = sent
            self._observed, self._observed_at = record, self._monotonic()
            self._resource_version = (lease.get("metadata") or {}).get("resourceVersion")

    def _update(self, record: LeaseRecord, resource_version: str) -> Manifest:
        """PUT the Lease as `record`, conditional on `resource_version`: a rival that wrote
        in between makes it a 409 (the verb is `update`, as client-go's)."""
        cfg = self.config
        body = self._manifest(record)
        body["metadata"]["resourceVersion"] = resource_version
        return self.api.request(
            "PUT",
            LEASES.path(cfg.namespace, cfg.name),
            LEASES.describe(cfg.namespace, cfg.name),
            "update",
            body=body,
        )

    def _manifest(self, record: LeaseRecord) -> Manifest:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.config.name,
                "namespace": self.config.namespace,
                "labels": {"app.kubernetes.io/managed-by": "rollwise"},
            },
            "spec": record.to_spec(),
        }

    # ---- the loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="rollwise-elector", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Stand by until the lease is won, then renew until stopped or lost."""
        cfg = self.config
        log.info("standing by for lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        while not self._stop.is_set():
            if self.try_acquire_or_renew():
                break
            self._stop.wait(cfg.retry_period_s * random.uniform(1.0, JITTER))
        else:
            return
        self.leading_since = self._monotonic()
        log.info("became leader: lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        self.on_started_leading()
        while not self._stop.wait(cfg.retry_period_s):
            renewed = self.try_acquire_or_renew()
            if not renewed and self._gave_up():
                self._lose()
                return

    def _gave_up(self) -> bool:
        """Past the renew deadline, or the lease now names someone else."""
        with self._lock:
            taken = self._observed is not None and self._observed.holder not in (
                "",
                self.config.identity,
            )
        return taken or not self.is_leader()

    def _lose(self) -> None:
        with self._lock:
            self._renewed_at = None  # the fence closes now, whatever the clock says
            self.lost = True
        log.critical(
            "lost lease %s/%s (holder now %r): no more writes; the process exits",
            self.config.namespace,
            self.config.name,
            self.holder,
        )
        self.on_stopped_leading()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop trying or renewing, and close the fence. Does not release: see `release`."""
        self._stop.set()
        with self._lock:
            self._renewed_at = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def release(self) -> bool:
        """Hand the lease over (after `stop`, once nothing writes any more): whether it was
        held and is now free. Only a record this process wrote last is released."""
        with self._lock:
            record, version = self._observed, self._resource_version
        if record is None or record.holder != self.config.identity or version is None:
            return False
        try:
            self._update(released(record, self._wall()), version)
        except AdapterError as err:
            log.warning("could not release the lease: %s", err)
            return False
        log.info("released lease %s/%s", self.config.namespace, self.config.name)
        return True
