"""Lifecycle webhooks and notifications end to end: the operator as a process on the real
control plane, calling real HTTP receivers on 127.0.0.1 (tests/harness/receiver.py) that
record every request and answer 2xx, 500, or nothing at all, as each test says."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import free_port
from tests.harness.receiver import HANG, Received, Receiver
from tests.harness.rollouts import (
    Rollouts,
    deploy_first_version,
    history_events,
    service_manifest,
)
from tests.harness.wait import wait_for

PAYLOAD_KEYS = {
    "service",
    "namespace",
    "revision",
    "version",
    "phase",
    "step",
    "weight",
    "type",
    "name",
    "transition",
    "message",
    "metadata",
    "createdAt",
    "checksum",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def with_webhooks(manifest: dict[str, Any], hooks: list[dict[str, Any]]) -> dict[str, Any]:
    manifest["spec"]["strategy"]["canary"]["webhooks"] = hooks
    return manifest


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def attempts_of(requests: list[Received]) -> list[int]:
    return [int(r.headers["x-rollwise-attempt"]) for r in requests]


def test_every_webhook_type_is_called_in_order_with_its_payload(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    v1 = deploy_first_version(rollouts)
    types = ["confirmRollout", "preRollout", "confirmPromotion", "postRollout", "event"]
    hooks = [
        {"name": t.lower(), "type": t, "url": receiver.url(f"/{t}"), "metadata": {"team": "pay"}}
        for t in types
    ]

    rollouts.apply(with_webhooks(service_manifest(rollouts.ns, "2.0.0"), hooks))
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    v2 = done["stable"]["revision"]
    wait_for(lambda: receiver.received("/postRollout"), timeout=30, message="postRollout")
    order = [r.path for r in receiver.received() if r.path != "/event"]
    assert order == ["/confirmRollout", "/preRollout", "/confirmPromotion", "/postRollout"]
    for request in receiver.received():
        body = request.json
        assert set(body) == PAYLOAD_KEYS
        assert (body["service"], body["namespace"]) == ("payment", rollouts.ns)
        assert (body["revision"], body["version"]) == (v2, "2.0.0")
        assert body["metadata"] == {"team": "pay"}
        assert body["checksum"] == request.headers["x-rollwise-checksum"]
        assert request.headers["x-rollwise-attempt"] == "1"
    assert receiver.received("/confirmPromotion")[0].json["step"] == 5
    assert receiver.received("/postRollout")[0].json["transition"] == "Promoted"
    wait_for(
        lambda: any(r.json["transition"] == "Promoted" for r in receiver.received("/event")),
        timeout=30,
        message="event hook for Promoted",
    )
    # Calls run in parallel: their order of arrival is not the order of the transitions.
    told = [(r.json["transition"], r.json["step"] or 0) for r in receiver.received("/event")]
    assert sorted(told) == sorted(
        [
            ("Started", 0),
            ("StepStarted", 0),
            ("StepStarted", 1),
            ("Paused", 1),
            ("StepStarted", 2),
            ("StepStarted", 3),
            ("StepStarted", 4),
            ("Paused", 4),
            ("Promoted", 0),
        ]
    )
    assert len({r.json["checksum"] for r in receiver.received()}) == len(receiver.received())
    recorded = rollouts.wait_status(
        lambda s: all(w.get("result") == "Succeeded" for w in s.get("webhooks") or [{}]),
        timeout=30,
        message="every delivery recorded as Succeeded",
    )
    assert {w["type"] for w in recorded["webhooks"]} == set(types)
    assert v1["stable"]["revision"] not in {w["revision"] for w in recorded["webhooks"]}


def test_a_failing_confirm_rollout_holds_the_rollout_until_it_answers_2xx(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    v1 = deploy_first_version(rollouts)
    receiver.answer("/confirm", 500)
    hooks = [{"name": "approve", "type": "confirmRollout", "url": receiver.url("/confirm")}]

    rollouts.apply(with_webhooks(service_manifest(rollouts.ns, "2.0.0"), hooks))
    wait_for(lambda: len(receiver.received("/confirm")) >= 3, timeout=60, message="three attempts")

    held = rollouts.wait_status(
        lambda s: (s.get("webhooks") or [{}])[0].get("attempts", 0) >= 2,
        timeout=30,
        message="attempts recorded",
    )
    assert held["phase"] == "Pending"
    assert "waiting for confirmRollout webhook approve" in held["message"]
    assert held["webhooks"][0]["code"] == 500 and held["webhooks"][0]["result"] == "Pending"
    assert set(rollouts.replica_sets()) == {v1["stable"]["revision"]}, "no canary ReplicaSet"
    assert len(rollouts.jobs()) == 1, "not even the migration of 2.0.0 ran"
    asked = receiver.received("/confirm")
    assert len({r.headers["x-rollwise-checksum"] for r in asked}) == 1, "one id for every retry"
    assert attempts_of(asked) == list(range(1, len(asked) + 1))

    receiver.answer("/confirm", 200)
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    assert done["webhooks"][0]["result"] == "Succeeded"


def test_a_failing_rollback_hook_is_retried_and_never_blocks_the_rollback(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    deploy_first_version(rollouts, migration=False)
    receiver.answer("/rollback", 500)
    hooks = [
        {"name": "page", "type": "rollback", "url": receiver.url("/rollback"), "maxAttempts": 3}
    ]

    manifest = service_manifest(rollouts.ns, "3.0.0", error_rate=0.5, migration=False)
    rollouts.apply(with_webhooks(manifest, hooks))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateFailed"
    failed = rollouts.wait_status(
        lambda s: (s.get("webhooks") or [{}])[0].get("result") == "Failed",
        timeout=60,
        message="the rollback hook given up after 3 attempts",
    )
    assert failed["phase"] == "RolledBack"
    assert failed["webhooks"][0]["attempts"] == 3 and failed["webhooks"][0]["code"] == 500
    asked = receiver.received("/rollback")
    assert attempts_of(asked) == [1, 2, 3]
    assert len({r.json["checksum"] for r in asked}) == 1
    assert asked[0].json["transition"] == "RollingBack" and asked[0].json["weight"] == 0
    assert "> max 0.05" in asked[0].json["message"], "the abort's reason is in the payload"
    events = wait_for(lambda: rollouts.events("WebhookFailed"), timeout=30, message="Event")
    assert "webhook page (RollingBack" in (events[0].message or "")
    assert events[0].type == "Warning"
    text = operator.metrics()
    assert metric(text, "rollwise_webhook_calls_total", type="rollback", outcome="failed") == 1
    assert metric(text, "rollwise_webhook_calls_total", type="rollback", outcome="retrying") == 2


def test_a_failing_pre_rollout_rolls_back_after_its_attempts(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    v1 = deploy_first_version(rollouts, migration=False)
    receiver.answer("/pre", 502)
    hooks = [{"name": "warm", "type": "preRollout", "url": receiver.url("/pre"), "maxAttempts": 2}]

    manifest = service_manifest(rollouts.ns, "2.0.0", migration=False)
    rollouts.apply(with_webhooks(manifest, hooks))
    rolled = rollouts.wait_phase("RolledBack", timeout=90)

    assert rolled["abort"]["reason"] == "WebhookFailed"
    assert "webhook warm (preRollout) failed 2 times, last: HTTP 502" in rolled["abort"]["message"]
    assert attempts_of(receiver.received("/pre")) == [1, 2]
    canary = rolled["canary"]["revision"]
    assert canary not in rollouts.replica_sets() or (
        rollouts.replica_sets()[canary].spec.replicas == 0
    )
    assert rolled["stable"]["revision"] == v1["stable"]["revision"]


NOTIFY_ALL = ["Started", "StepStarted", "Paused", "Promoted", "RolledBack", "MigrationFailed"]


def notifications(receiver: Receiver, *, on: list[str] = NOTIFY_ALL) -> dict[str, Any]:
    return {
        "when": on,
        "receivers": [
            {
                "name": "ops",
                "webhook": {
                    "url": receiver.url("/ops"),
                    "template": '{"what": "{{transition}}", "step": "{{step}}", '
                    '"revision": "{{revision}}", "id": "{{checksum}}"}',
                },
            },
            {"name": "chat", "slack": {"url": receiver.url("/slack"), "channel": "#deploys"}},
        ],
    }


def told(receiver: Receiver, revision: str) -> list[tuple[str, str]]:
    return [
        (r.json["what"], r.json["step"])
        for r in receiver.received("/ops")
        if r.json["revision"] == revision
    ]


def test_notifications_are_delivered_for_each_chosen_transition(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    deploy_first_version(rollouts, migration=False)

    def release(version: str, **kwargs: Any) -> None:
        manifest = service_manifest(rollouts.ns, version, **kwargs)
        manifest["spec"]["notifications"] = notifications(receiver)
        rollouts.apply(manifest)

    release("2.0.0", migration=False)
    v2 = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)["stable"]["revision"]
    wait_for(lambda: ("Promoted", "") in told(receiver, v2), timeout=30, message="Promoted")
    assert sorted(told(receiver, v2)) == sorted(
        [
            ("Started", "0"),
            ("StepStarted", "0"),
            ("StepStarted", "1"),
            ("Paused", "1"),
            ("StepStarted", "2"),
            ("StepStarted", "3"),
            ("StepStarted", "4"),
            ("Paused", "4"),
            ("Promoted", ""),
        ]
    )

    release("3.0.0", error_rate=0.5, migration=False)
    v3 = rollouts.wait_phase("RolledBack", timeout=120)["canary"]["revision"]
    wait_for(lambda: ("RolledBack", "") in told(receiver, v3), timeout=30, message="RolledBack")

    release("4.0.0", migration_fails=True)
    v4 = rollouts.wait_phase("MigrationFailed", timeout=120)["canary"]["revision"]
    wait_for(lambda: ("MigrationFailed", "") in told(receiver, v4), timeout=30, message="Migration")

    ops = receiver.received("/ops")
    slack = receiver.received("/slack")
    assert len({r.json["id"] for r in ops}) == len(ops), "each transition told once"
    assert len(slack) == len(ops), "both receivers told the same transitions"
    assert all(r.json["channel"] == "#deploys" for r in slack)
    texts = [r.json["text"] for r in slack]
    assert any(t.startswith(f"*{rollouts.ns}/payment* RolledBack: version 3.0.0") for t in texts)
    assert any("MigrationFailed" in t and "4.0.0" in t for t in texts)
    assert not rollouts.events("NotificationFailed")


def test_a_dead_receiver_does_not_slow_a_rollout_and_its_failures_are_visible(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    deploy_first_version(rollouts, migration=False)
    receiver.answer("/hang", HANG)
    closed = f"http://127.0.0.1:{free_port()}/gone"
    manifest = service_manifest(rollouts.ns, "2.0.0", migration=False)
    manifest["spec"]["notifications"] = {
        "when": NOTIFY_ALL,
        "receivers": [
            {
                "name": "hung",
                "webhook": {"url": receiver.url("/hang")},
                "timeout": "3s",
                "maxAttempts": 2,
            },
            {"name": "gone", "slack": {"url": closed}, "maxAttempts": 2},
        ],
    }
    manifest["spec"]["strategy"]["canary"]["webhooks"] = [
        {"name": "audit", "type": "event", "url": receiver.url("/hang"), "timeout": "3s"}
    ]

    rollouts.apply(manifest)
    # The deadline every rollout of these steps meets (test_rollouts.py): a receiver that
    # never answers and one that refuses connections change nothing of it.
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)

    assert history_events(done).count("StepCompleted") == 5
    assert receiver.received("/hang"), "the hung receiver was called"
    failed = wait_for(
        lambda: (
            (e := rollouts.events("NotificationFailed"))
            and {"hung", "gone"} <= {(x.message or "").split()[1] for x in e}
            and e
        ),
        timeout=90,
        message="NotificationFailed Events for both receivers",
    )
    assert all(e.type == "Warning" for e in failed)
    assert any("no answer within 3s" in (e.message or "") for e in failed)
    assert any("cannot connect" in (e.message or "") for e in failed)
    text = operator.metrics()
    assert metric(text, "rollwise_notifications_total", receiver="gone", outcome="failed") >= 1
    assert metric(text, "rollwise_notifications_total", receiver="hung", outcome="failed") >= 1


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (
            lambda s: s["strategy"]["canary"].update(
                webhooks=[
                    {"name": "a", "type": "event", "url": "http://127.0.0.1:1/"},
                    {"name": "a", "type": "rollback", "url": "http://127.0.0.1:1/"},
                ]
            ),
            "webhook names must be unique",
        ),
        (
            lambda s: s["strategy"]["canary"].update(
                webhooks=[{"name": "a", "type": "event", "url": "http://x/", "timeout": "2m"}]
            ),
            "timeout must be between 100ms and 60s",
        ),
        (
            lambda s: s["strategy"]["canary"].update(
                webhooks=[{"name": "a", "type": "event", "url": "ftp://x/"}]
            ),
            "spec.strategy.canary.webhooks[0].url",
        ),
        (
            lambda s: s.update(
                notifications={
                    "when": ["Started"],
                    "receivers": [
                        {
                            "name": "x",
                            "webhook": {"url": "http://x/"},
                            "slack": {"url": "http://x/"},
                        }
                    ],
                }
            ),
            "a receiver sets exactly one of webhook, slack",
        ),
        (
            lambda s: s.update(
                notifications={
                    "when": ["Started", "Started"],
                    "receivers": [{"name": "x", "webhook": {"url": "http://x/"}}],
                }
            ),
            "Duplicate value",
        ),
        (
            lambda s: s["strategy"]["canary"].update(
                webhooks=[
                    {
                        "name": "a",
                        "type": "event",
                        "url": "http://x/",
                        "headers": [{"name": "Authorization"}],
                    }
                ]
            ),
            "a header sets exactly one of value, valueSecretRef",
        ),
        (
            lambda s: s.update(
                notifications={
                    "when": ["Started"],
                    "receivers": [
                        {
                            "name": "x",
                            "webhook": {"url": "http://x/"},
                            "headers": [{"name": "Host", "value": "admin.internal"}],
                        }
                    ],
                }
            ),
            "headers may not set host",
        ),
        (
            lambda s: s.update(
                notifications={
                    "when": ["Started"],
                    "on": ["Started"],
                    "receivers": [{"name": "x", "webhook": {"url": "http://x/"}}],
                }
            ),
            "exactly once",
        ),
    ],
)
def test_the_api_server_refuses_invalid_webhooks_and_receivers(
    rollouts: Rollouts, change: Any, refused: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    manifest = service_manifest(rollouts.ns, "1.0.0")
    change(manifest["spec"])

    with pytest.raises(ApiException) as err:
        rollouts.apply(manifest)

    assert err.value.status == 422 and refused in str(err.value.body)


def test_a_delivery_in_flight_when_the_operator_dies_is_sent_again_with_its_checksum(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    deploy_first_version(rollouts, migration=False)
    receiver.answer("/audit", HANG)
    hooks = [{"name": "audit", "type": "event", "url": receiver.url("/audit"), "timeout": "60s"}]
    manifest = service_manifest(rollouts.ns, "2.0.0", migration=False, steps=[{"pause": {}}])
    rollouts.apply(with_webhooks(manifest, hooks))
    first = wait_for(
        lambda: receiver.received("/audit"), timeout=60, message="the first call, hanging"
    )[0]
    recorded = rollouts.status()["webhooks"]
    assert all(w["result"] == "Pending" and w["attempts"] == 0 for w in recorded)

    operator.kill()  # SIGKILL while the call waits for its answer
    receiver.answer("/audit", 200)
    operator.start()

    again = wait_for(
        lambda: [
            r
            for r in receiver.received("/audit")[1:]
            if r.json["checksum"] == first.json["checksum"]
        ],
        timeout=60,
        message="the same delivery sent again",
    )
    assert again[0].headers["x-rollwise-attempt"] == "1", "its answer was never recorded"
    assert again[0].body == first.body
    done = rollouts.wait_status(
        lambda s: all(w.get("result") == "Succeeded" for w in s.get("webhooks") or [{}]),
        timeout=60,
        message="every delivery Succeeded after the restart",
    )
    assert {w["id"] for w in recorded} <= {w["id"] for w in done["webhooks"]}, "the same deliveries"


def test_webhook_and_notification_headers_come_from_secrets_and_are_never_shown(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, receiver: Receiver
) -> None:
    """A token in a header, from a Secret in the service's namespace: it reaches the receiver
    and appears in neither status, Events nor the operator's log (the Secret's value is read
    when the call is sent; a failing call's error names the Secret, never the value)."""
    marker = "hdrMARKER" + secrets.token_hex(6)
    rollouts.core.create_namespaced_secret(
        rollouts.ns,
        {"metadata": {"name": "hook-auth"}, "stringData": {"token": f"Bearer {marker}"}},
    )
    deploy_first_version(rollouts, migration=False)
    receiver.answer("/refuses", 500)
    auth = {"name": "Authorization", "valueSecretRef": {"name": "hook-auth", "key": "token"}}
    hooks = [
        {
            "name": "confirm",
            "type": "confirmRollout",
            "url": receiver.url("/confirm"),
            "headers": [auth, {"name": "X-Team", "value": "payments"}],
        },
        # Fails every attempt: its error, Event and log lines must not quote the header either.
        {
            "name": "refuses",
            "type": "event",
            "url": receiver.url("/refuses"),
            "maxAttempts": 1,
            "headers": [auth],
        },
    ]
    manifest = service_manifest(rollouts.ns, "2.0.0", migration=False)
    manifest["spec"]["notifications"] = {
        "when": ["Promoted"],
        "receivers": [{"name": "ops", "webhook": {"url": receiver.url("/ops")}, "headers": [auth]}],
    }

    rollouts.apply(with_webhooks(manifest, hooks))
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    wait_for(lambda: receiver.received("/ops"), timeout=30, message="the Promoted notification")
    done = rollouts.wait_status(
        lambda s: all(w.get("result") != "Pending" for w in s.get("webhooks") or [{}]),
        timeout=60,
        message="every delivery settled",
    )
    wait_for(lambda: rollouts.events("WebhookFailed"), timeout=30, message="WebhookFailed")

    for path in ("/confirm", "/refuses", "/ops"):
        request = receiver.received(path)[0]
        assert request.headers["authorization"] == f"Bearer {marker}", path
    assert receiver.received("/confirm")[0].headers["x-team"] == "payments"
    assert {w["name"] for w in done["webhooks"] if w["result"] == "Failed"} >= {"refuses"}
    assert marker not in json.dumps(rollouts.status()), "the token is in the status"
    events = [f"{e.reason} {e.message}" for e in rollouts.events()]
    assert events and not [e for e in events if marker in e], "the token is in an Event"
    assert marker not in operator.log_path.read_text(), "the token is in the operator's log"
