"""The write fence: nothing reaches the API server from a process that does not lead.

Every write of rollwise goes through `KubeApi.request` (creates, scales, status patches, Events,
router weights); `FencedKubeApi` asks the fence right before each one, so a pass that began as
leader and outlived its lease stops at its next write, not at its end. Reads always pass: a
standby keeps its watch cache warm and may GET.

A standby does not run passes at all (`only_when_leading`): a pass would measure gates against
Prometheus for nothing and stop at its first write. When it becomes leader, `take_over` queues
every service it knows, so the takeover is one pass over warm caches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry, Counter, Gauge

from rollwise.adapters.cache import ServiceBodies
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import KubeApi
from rollwise.adapters.manifests.types import Manifest
from rollwise.controller.queue import Key, Reconcile, WorkQueue

log = logging.getLogger("rollwise.fencing")

Fence = Callable[[], bool]


class NotLeaderError(AdapterError):
    """A write refused before it was sent: this process does not hold the lease."""

    def __init__(self, obj: str, verb: str) -> None:
        super().__init__(
            obj,
            f"{verb} not sent: this operator does not hold the leader lease",
            fix="only the leader writes; this process stands by or is shutting down",
            transient=True,
        )


class LeadershipMetrics:
    """`rollwise_leader` and the writes this process sent or refused."""

    def __init__(self, registry: CollectorRegistry, leads: Fence) -> None:
        self.leader = Gauge(
            "rollwise_leader",
            "1 while this process holds the leader lease (always 1 without --leader-elect)",
            registry=registry,
        )
        self.leader.set_function(lambda: 1.0 if leads() else 0.0)
        self.writes = Counter(
            "rollwise_api_writes_total",
            "Write requests this process sent to the API server, by HTTP method",
            ["method"],
            registry=registry,
        )
        self.refused = Counter(
            "rollwise_api_writes_refused_total",
            "Write requests the fence kept from being sent (this process did not lead)",
            registry=registry,
        )


class FencedKubeApi(KubeApi):
    """A KubeApi whose writes pass only while `fence()` is true; counts them and knows how
    many are in flight, so a leader stepping down can wait for them before it releases."""

    def __init__(
        self,
        client: ApiClient,
        fence: Fence,
        metrics: LeadershipMetrics,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(client, timeout)
        self.fence = fence
        self.metrics = metrics
        self._in_flight = 0
        self._idle = threading.Condition()

    def request(
        self,
        method: str,
        path: str,
        obj: str,
        verb: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Manifest:
        if method == "GET":
            return super().request(
                method, path, obj, verb, query=query, body=body, content_type=content_type
            )
        with self._idle:
            if not self.fence():
                self.metrics.refused.inc()
                raise NotLeaderError(obj, verb)
            self._in_flight += 1
        self.metrics.writes.labels(method=method).inc()
        try:
            return super().request(
                method, path, obj, verb, query=query, body=body, content_type=content_type
            )
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no write is in flight (call once the fence is closed): whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


def only_when_leading(reconcile: Reconcile, leads: Fence) -> Reconcile:
    """The worker pool's pass: a standby skips it (the key is queued again on takeover)."""

    def pass_if_leading(key: Key) -> float | None:
        if not leads():
            return None
        return reconcile(key)

    return pass_if_leading


def take_over(bodies: ServiceBodies, queue: WorkQueue) -> int:
    """On becoming leader: queue every service known from the watch; the count.

    The previous leader's last status writes may still be on their way through this process's
    watch, and a pass must never decide from a body older than a status already stored (it
    would repeat a step): each key reads its object by GET until the watch delivers this
    process's own first status write to it.
    """
    keys: list[Key] = bodies.keys()
    for namespace, name in keys:
        bodies.written(namespace, name, "")
        queue.add((namespace, name))
    log.info("leading: %d ProgressiveServices queued for a pass", len(keys))
    return len(keys)
