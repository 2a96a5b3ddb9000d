"""The webhook sender against a real HTTP receiver on 127.0.0.1: outcomes, timeouts, refused
connections, the leader fence, de-duplication of attempts in flight, and its metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.webhooks import HookMetrics, HookSender
from rollwise.api.service_status import DeliveryResult, WebhookStatus
from rollwise.core.model import HookCall
from tests.harness.prometheus import free_port
from tests.harness.receiver import HANG, Receiver
from tests.harness.wait import wait_for

KEY = ("shop", "payment")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


class Woken:
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, key: tuple[str, str]) -> None:
        with self.lock:
            self.keys.append(key)


def call(url: str, *, attempt: int = 1, id: str = "c" * 64, timeout: float = 2.0) -> HookCall:
    return HookCall(
        id=id,
        attempt=attempt,
        name="ops",
        type="notification",
        url=url,
        body='{"hello": "world"}',
        content_type="application/json",
        timeout_s=timeout,
        last_attempt=attempt >= 2,
    )


def sender(woken: Woken, registry: CollectorRegistry, leads: bool = True) -> HookSender:
    return HookSender(wake=woken, leads=lambda: leads, metrics=HookMetrics(registry))


def count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value(
        "rollwise_notifications_total", {"receiver": "ops", "outcome": outcome}
    )
    return value or 0.0


def test_a_delivered_call_is_recorded_with_its_status_and_headers(receiver: Receiver) -> None:
    woken, registry = Woken(), CollectorRegistry()
    hooks = sender(woken, registry)

    hooks.send(KEY, [call(receiver.url("/ops"))])
    (outcome,) = wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="an outcome")

    assert outcome.ok and outcome.code == 200 and outcome.attempt == 1
    (got,) = receiver.received("/ops")
    assert got.json == {"hello": "world"}
    assert got.headers["x-rollwise-checksum"] == "c" * 64
    assert got.headers["x-rollwise-attempt"] == "1"
    assert got.headers["content-type"] == "application/json"
    assert woken.keys == [KEY]
    assert count(registry, "delivered") == 1


def test_a_500_a_timeout_and_a_closed_port_are_failures_never_exceptions(
    receiver: Receiver,
) -> None:
    woken, registry = Woken(), CollectorRegistry()
    hooks = sender(woken, registry)
    receiver.answer("/err", 500)
    receiver.answer("/hang", HANG)
    closed = f"http://127.0.0.1:{free_port()}/x"

    hooks.send(
        KEY,
        [
            call(receiver.url("/err"), id="a" * 64),
            call(receiver.url("/hang"), id="b" * 64, timeout=0.5),
            call(closed, id="d" * 64, attempt=2),
        ],
    )
    outcomes = wait_for(
        lambda: (o := hooks.outcomes(KEY)) and len(o) == 3 and o, timeout=15, message="3 outcomes"
    )

    by_id = {o.id[0]: o for o in outcomes}
    assert by_id["a"].code == 500 and not by_id["a"].ok
    assert by_id["b"].code is None and by_id["b"].error == "no answer within 0.5s"
    assert by_id["d"].code is None and "cannot connect" in (by_id["d"].error or "")
    assert count(registry, "retrying") == 2 and count(registry, "failed") == 1


def test_an_attempt_in_flight_or_answered_is_not_sent_again(receiver: Receiver) -> None:
    woken, registry = Woken(), CollectorRegistry()
    hooks = sender(woken, registry)
    receiver.answer("/hang", HANG)
    slow = call(receiver.url("/hang"), timeout=1.0)

    hooks.send(KEY, [slow])
    hooks.send(KEY, [slow])  # a second pass before the first answer
    wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="the outcome")
    hooks.send(KEY, [slow])  # a pass that did not fold it yet

    assert len(receiver.received("/hang")) == 1


def test_acknowledge_drops_only_what_status_records(receiver: Receiver) -> None:
    woken, registry = Woken(), CollectorRegistry()
    hooks = sender(woken, registry)
    hooks.send(KEY, [call(receiver.url("/ops"))])
    wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="the outcome")
    entry = WebhookStatus(
        id="c" * 64,
        name="ops",
        type="notification",
        revision="r",
        created_at=datetime.now(UTC),
    )

    hooks.acknowledge(KEY, [entry])  # still pending at attempt 0: not recorded yet
    assert hooks.outcomes(KEY)
    hooks.acknowledge(
        KEY, [entry.model_copy(update={"attempts": 1, "result": DeliveryResult.SUCCEEDED})]
    )
    assert hooks.outcomes(KEY) == ()


def test_a_process_that_does_not_lead_sends_nothing(receiver: Receiver) -> None:
    woken, registry = Woken(), CollectorRegistry()
    hooks = sender(woken, registry, leads=False)

    hooks.send(KEY, [call(receiver.url("/ops"))])
    hooks.stop()
    hooks._pool.shutdown(wait=True)

    assert receiver.received() == [] and hooks.outcomes(KEY) == () and woken.keys == []
