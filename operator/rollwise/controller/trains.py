"""ReleaseTrain passes: observe the train and its members -> decide_train -> write, on the
shared loop of every kind (controller/loop.py: capped backoff, lenient status reader, the one
status writer and Event recorder).

Trains have a work queue and worker of their own (their keys would collide with services of the
same name, and a train pass must never wait behind thousands of service passes). A train is
queued by its own watch events (spec, request annotation) and by every event of a member
ProgressiveService (its phase moved). After a pass changed what a member runs
(`status.members[].release`), the member itself is queued: its pass reads the train and rolls
the release out.

Writes go through the same fenced KubeApi as the services' (only the leader writes); a standby
runs no train pass, and on takeover every train known from the watch is queued.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubernetes import KubernetesAdapter
from rollwise.adapters.manifests.types import TrainRef
from rollwise.adapters.trains import TrainAdapter, observe_member
from rollwise.adapters.validation import validation_summary
from rollwise.api import train as train_api
from rollwise.api.train import TrainSpec, TrainStatus
from rollwise.controller import logs
from rollwise.controller.loop import Backoff, KindLoop, RetryLater
from rollwise.controller.queue import Key, WorkerPool, WorkQueue
from rollwise.core import naming
from rollwise.core.model import EventRecord
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.requests import read_request
from rollwise.core.train.decide import decide_train
from rollwise.core.train.model import TrainObserved, TrainPlan
from rollwise.core.train.status import invalid_status

log = logging.getLogger("rollwise.trains")


def train_fingerprint(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What in a train's event can need a pass: its spec, a request, a deletion (status-only
    events are its own pass's writes)."""
    metadata = body.get("metadata") or {}
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        (metadata.get("annotations") or {}).get(naming.ANNOTATION_REQUEST),
        metadata.get("deletionTimestamp"),
    )


@dataclass
class TrainRuntime:
    """The trains' queue and worker, and which trains the watch has seen (for a takeover)."""

    queue: WorkQueue
    pool: WorkerPool
    _fingerprints: dict[Key, tuple[Any, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def noted(self, key: Key, fingerprint: tuple[Any, ...] | None) -> bool:
        """Keep a train's fingerprint (None: it was deleted); whether it changed."""
        with self._lock:
            if fingerprint is None:
                self._fingerprints.pop(key, None)
                return True
            changed = self._fingerprints.get(key) != fingerprint
            self._fingerprints[key] = fingerprint
            return changed

    def queue_all(self) -> int:
        """Queue every train known from the watch (a new leader's first passes)."""
        with self._lock:
            keys = list(self._fingerprints)
        for key in keys:
            self.queue.add(key)
        return len(keys)


class TrainReconciler(KindLoop):
    """`reconcile(key) -> requeue delay` for the trains' worker."""

    kind = "train"
    plural = train_api.PLURAL

    def __init__(
        self,
        kube: KubernetesAdapter,
        service_queue: WorkQueue | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        super().__init__(Backoff(backoff_initial_s, backoff_max_s), log, registry)
        self.kube = kube
        self.trains = TrainAdapter(kube.api)
        self.service_queue = service_queue
        self._clock = clock

    def run_pass(self, key: Key) -> float | None:
        namespace, name = key
        obj = self.trains.read_train(namespace, name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        metadata = obj["metadata"]
        ref = TrainRef(namespace, name, str(metadata["uid"]))
        generation = int(metadata.get("generation") or 0)
        raw_status: dict[str, Any] = obj.get("status") or {}
        status = self.read_status(TrainStatus, raw_status, logs.ref(namespace, name))
        now = self._clock()
        try:
            spec = TrainSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            self._invalid(ref, obj, raw_status, status, validation_summary(err), now)
            return None

        members = {}
        for member in spec.members:
            body = self.kube.read_service(namespace, member.service)
            members[member.service] = observe_member(
                body, name, member, status.member(member.service)
            )
        request, request_error = read_request(metadata.get("annotations"))
        observed = TrainObserved(
            namespace=namespace,
            name=name,
            generation=generation,
            members=members,
            request=request,
            request_error=request_error,
        )
        plan = decide_train(spec, status, observed, now)
        self._apply(ref, obj, raw_status, status, plan, now)
        return plan.requeue_after

    def _apply(
        self,
        ref: TrainRef,
        obj: Mapping[str, Any],
        raw_status: dict[str, Any],
        status: TrainStatus,
        plan: TrainPlan,
        now: datetime,
    ) -> None:
        context = logs.ref(ref.namespace, ref.name)
        # Requests first: a failed status write repeats them with the same ids, and a member
        # acts once per id.
        for request in plan.member_requests:
            self.trains.request_member(ref.namespace, request)
        self._patch_status(ref, obj, raw_status, plan.status, now)
        self.post_events(self.kube.post_event, ref, plan.events, now, context)
        if plan.status.phase != status.phase:
            log.info(
                "train phase %s -> %s: %s",
                status.phase.value,
                plan.status.phase.value,
                plan.status.message or "",
                extra=context,
            )
        before = {m.service: m.release for m in status.members}
        for member in plan.status.members:
            if self.service_queue is not None and before.get(member.service) != member.release:
                self.service_queue.add((ref.namespace, member.service))
        gone = set(before) - {m.service for m in plan.status.members}
        for service in gone:  # left the train: back to its own spec
            if self.service_queue is not None:
                self.service_queue.add((ref.namespace, service))

    def _invalid(
        self,
        ref: TrainRef,
        obj: Mapping[str, Any],
        raw_status: dict[str, Any],
        status: TrainStatus,
        summary: str,
        now: datetime,
    ) -> None:
        """A spec that does not validate (a cycle in `after`, a bad time zone): Invalid=True
        and one Event per distinct problem; nothing starts, what runs keeps running."""
        message = f"invalid spec: {summary}"
        generation = int(obj["metadata"].get("generation") or 0)
        already = any(
            c.type == ConditionType.INVALID and c.status == "True" and c.message == message
            for c in status.conditions
        )
        new = invalid_status(status, message, generation, now)
        self._patch_status(ref, obj, raw_status, new, now)
        if not already:
            context = logs.ref(ref.namespace, ref.name)
            log.warning("%s", message, extra=context)
            record = EventRecord(Reason.TRAIN_INVALID, message, warning=True)
            self.post_events(self.kube.post_event, ref, [record], now, context)

    def _patch_status(
        self,
        ref: TrainRef,
        obj: Mapping[str, Any],
        raw_status: dict[str, Any],
        new: TrainStatus,
        now: datetime,
    ) -> None:
        """The status write; a refusal is made visible (Event, metric, log) and retried."""
        try:
            self.trains.patch_status(
                ref.namespace,
                ref.name,
                ref.uid,
                str(obj["metadata"]["resourceVersion"]),
                raw_status,
                new,
            )
        except AdapterError as err:
            context = logs.ref(ref.namespace, ref.name)
            self.status_refused(self.kube.post_event, ref, err, now, context)
            raise RetryLater from err
