"""What the operator remembers of each ProgressiveService (rollwise.controller.service_memory),
and that deleting the service forgets all of it, in the memory and in every part that keeps
something of its own: the work queue, the latest bodies, the Event series, the phase gauge.

The operator is assembled by `runner.build`, as `rollwise run` does, and its watch handlers are
called with watch-event dicts. Unit tests have no API server: a canned one answers in its place
(see `GoneApiServer`); the same deletions against a real one are covered by tests/integration.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.cache import ServiceBodies
from rollwise.adapters.events import EventRecorder
from rollwise.adapters.kubeapi import KubeApi, connect
from rollwise.adapters.manifests.types import ServiceRef
from rollwise.controller import handlers
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.queue import Key, WorkQueue
from rollwise.controller.runner import Operator, build
from rollwise.controller.service_memory import ServiceMemories, ServiceMemory
from rollwise.controller.settings import OperatorSettings
from rollwise.core.model import EventRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class GoneApiServer(ThreadingHTTPServer):
    """A stand-in API server on which nothing exists any more: every GET answers 404 Not Found,
    as a real one does for a deleted ProgressiveService; creates and patches (Events) succeed
    and echo their body. `requests` records (method, path)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))


class _Answer(BaseHTTPRequestHandler):
    server: GoneApiServer
    protocol_version = "HTTP/1.1"  # one connection for all requests, as the client keeps it
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

    def _answer(self, status: int, body: Any) -> None:
        self.server.record(self.command, self.path)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or "{}")

    def do_GET(self) -> None:
        self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

    def do_POST(self) -> None:
        self._answer(201, self._body())

    def do_PATCH(self) -> None:
        self._answer(200, self._body())

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def api_server() -> Iterator[GoneApiServer]:
    server = GoneApiServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def kubeconfig(api_server: GoneApiServer, tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    server = f"http://127.0.0.1:{api_server.server_address[1]}"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


@pytest.fixture
def operator(kubeconfig: str) -> Operator:
    settings = OperatorSettings(namespaces=("shop",), kubeconfig=kubeconfig, workers=1)
    return build(settings, OperatorMetrics(CollectorRegistry()))


def event(kind: str | None, name: str, uid: str) -> dict[str, Any]:
    metadata = {"namespace": "shop", "name": name, "uid": uid, "generation": 1}
    spec = {"strategy": {"canary": {"analysis": {"gates": [{"name": "error-rate"}]}}}}
    return {"type": kind, "object": {"metadata": metadata, "spec": spec}}


def deliver(operator: Operator, *events: dict[str, Any]) -> None:
    """The ProgressiveService watch delivers `events`, in order, on one event loop."""

    async def all_of_them() -> None:
        for one in events:
            await handlers.progressive_service_event(event=one, memo=operator.runtime)

    asyncio.run(all_of_them())


def run_passes(queue: WorkQueue, reconcile: Callable[[Key], float | None]) -> None:
    """What a worker does with each waiting key, until none waits."""
    while (key := queue.get(0)) is not None:
        try:
            delay = reconcile(key)
        finally:
            queue.done(key)
        queue.schedule(key, delay)


def healthy_pass(memory: ServiceMemories, uid: str = "") -> Callable[[Key], float | None]:
    """A pass that found the service Healthy (under `uid`, or uid-<name>) and asked to come
    back in a minute."""

    def reconcile(key: Key) -> float:
        found = uid or f"uid-{key[1]}"
        memory.claim(key, found)
        memory.record_phase(key, found, "Healthy")
        return 60.0

    return reconcile


def services_in(operator: Operator, phase: str) -> float | None:
    registry = operator.metrics.registry
    return registry.get_sample_value("rollwise_rollouts", {"phase": phase})


# ----------------------------------------------------------------------------- deletion


def test_a_thousand_deleted_services_leave_nothing_behind(operator: Operator) -> None:
    runtime, memory = operator.runtime, operator.runtime.memory
    names = [f"svc-{i}" for i in range(1000)]
    deliver(operator, *(event(None, name, f"uid-{name}") for name in names))
    run_passes(runtime.queue, healthy_pass(memory))
    assert runtime.queue.pending_timers() == 1000 and services_in(operator, "Healthy") == 1000

    deliver(operator, *(event("DELETED", name, f"uid-{name}") for name in names))
    run_passes(runtime.queue, operator.reconciler.reconcile)  # each finds its service gone

    assert runtime.queue.tracked() == 0
    assert runtime.queue.pending_timers() == 0
    assert len(memory) == 0
    assert runtime.bodies.size() == 0
    assert services_in(operator, "Healthy") == 0


def test_a_service_deleted_and_created_again_is_new_to_the_queue_and_the_memory(
    operator: Operator,
) -> None:
    runtime, memory = operator.runtime, operator.runtime.memory
    deliver(operator, event(None, "payment", "u1"), event(None, "orders", "u2"))
    run_passes(runtime.queue, healthy_pass(memory))
    operator.reconciler.backoff(("shop", "payment"))  # a failed pass, counted for backoff

    deliver(operator, event("DELETED", "payment", "u1"))
    run_passes(runtime.queue, operator.reconciler.reconcile)
    deliver(operator, event("ADDED", "payment", "u3"))
    runtime.queue.add(("shop", "orders"))

    assert runtime.queue.get(0) == ("shop", "orders"), "known keys first: payment is new"
    again = memory.get(("shop", "payment"))
    assert (again.uid, again.failures, again.phase) == (None, 0, None)
    assert again.gate_refs == frozenset({("error-rate", False)})


def test_a_pass_that_outlived_its_service_is_forgotten_by_the_pass_after_it(
    operator: Operator,
) -> None:
    runtime, memory = operator.runtime, operator.runtime.memory
    key = ("shop", "payment")
    deliver(operator, event(None, "payment", "u1"))
    memory.claim(key, "u1")  # a pass has begun ...

    deliver(operator, event("DELETED", "payment", "u1"))
    memory.record_phase(key, "u1", "Progressing")  # ... and ends after the deletion
    run_passes(runtime.queue, operator.reconciler.reconcile)

    assert len(memory) == 0
    assert runtime.queue.tracked() == 0
    assert services_in(operator, "Progressing") == 0


def test_a_deleted_service_no_longer_wakes_for_its_gates(operator: Operator) -> None:
    deliver(operator, event(None, "payment", "u1"), event("DELETED", "payment", "u1"))

    assert operator.runtime.memory.gate_users("error-rate", cluster=False) == []


# ----------------------------------------------------------------------------- recreation


@pytest.fixture
def events(api_server: GoneApiServer, kubeconfig: str) -> EventRecorder:
    return EventRecorder(KubeApi(connect(kubeconfig, pool_size=1)), "test")


def test_another_uid_under_the_name_starts_from_a_fresh_record(
    api_server: GoneApiServer, events: EventRecorder
) -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    queue = WorkQueue()
    memory = ServiceMemories(queue=queue, bodies=ServiceBodies(), events=events, metrics=metrics)
    key, before = ("shop", "payment"), ServiceRef(namespace="shop", name="payment", uid="u1")
    record = EventRecord("GateFailed", "error-rate 0.04 > max 0.01", warning=True)
    memory.claim(key, "u1")
    memory.count_failure(key)
    memory.record_phase(key, "u1", "RolledBack")
    events.post(before, record, T0)
    events.post(before, record, T0)  # a repeat: counted on the first Event

    memory.claim(key, "u2")  # deleted and created again, the deletion unseen
    events.post(before, record, T0)

    assert memory.get(key) == ServiceMemory(uid="u2")
    assert metrics.registry.get_sample_value("rollwise_rollouts", {"phase": "RolledBack"}) == 0
    methods = [method for method, path in api_server.requests if "/events" in path]
    assert methods == ["POST", "PATCH", "POST"], "the old series is forgotten"


def test_the_same_uid_keeps_its_record() -> None:
    memory = ServiceMemories()
    key = ("shop", "payment")
    memory.claim(key, "u1")
    memory.count_failure(key)

    memory.claim(key, "u1")

    assert memory.get(key) == ServiceMemory(uid="u1", failures=1)
