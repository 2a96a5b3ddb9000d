"""Lifecycle webhooks and notifications in the pure core: what blocks, what never does, what is
sent for which transition, and that a delivery keeps one id from its first attempt to its last."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import DeliveryResult, ServiceStatus, WebhookStatus
from rollwise.core.model import Action, HookCall, ManualRequest, ScaleReplicaSet
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "10s"}},
    {"setWeight": 50},
]


def hook(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "url": f"http://127.0.0.1:9/{name}", **extra}


MIGRATION = {"template": {"spec": {"containers": [{"name": "migrate", "image": "example/m"}]}}}
ANALYSED: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"gates": [{"name": "error-rate"}]}},
]


def with_hooks(
    *hooks: dict[str, Any],
    notifications: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> ServiceSpec:
    canary: dict[str, Any] = {"steps": steps or STEPS, "webhooks": list(hooks)}
    wire: dict[str, Any] = {"strategy": {"canary": canary}, "migration": MIGRATION, **overrides}
    if notifications is not None:
        wire["notifications"] = notifications
    return spec_from(**wire)


def v2_world(spec: ServiceSpec, **rules: Any) -> World:
    """Healthy at 1.0.0 with every hook answering 200, then 2.0.0 applied."""
    world = healthy_world(spec)
    for name, value in rules.items():
        setattr(world, name, value)
    world.spec = released(spec, "2.0.0")
    return world


def entries(world: World, type_: str) -> list[WebhookStatus]:
    return [e for e in world.status.webhooks if e.type == type_]


def calls_of(world: World, name: str) -> list[HookCall]:
    return [c for c in world.calls if c.name == name]


def step_until_calls(world: World) -> list[HookCall]:
    """Passes until one plans calls (the migration runs first); that pass's calls."""
    world.until(lambda w: bool(w.passes and w.passes[-1].plan.calls), advance=1.0)
    return list(world.passes[-1].plan.calls)


def canary_scaled_up(world: World) -> bool:
    revision = revision_of(world.spec)
    return any(a.revision == revision and a.replicas > 0 for a in world.actions(ScaleReplicaSet))


# ---------------------------------------------------------------- blocking hooks


def test_a_failing_confirm_rollout_holds_the_rollout_before_anything_runs() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec, hook_answer=lambda call: 500)

    world.run(passes=40, advance=5.0)

    assert world.status.phase == "Pending"
    assert "waiting for confirmRollout webhook approve" in (world.status.message or "")
    assert not canary_scaled_up(world), "no canary pod before confirmation"
    assert not any(revision_of(world.spec) in job for job in world.job_creations), (
        "not even the migration runs before confirmation"
    )
    (entry,) = entries(world, "confirmRollout")
    assert entry.result is DeliveryResult.PENDING and entry.code == 500
    assert entry.attempts >= 10, "asked again and again"


def test_a_confirm_rollout_that_answers_2xx_later_lets_the_rollout_go_on() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec, hook_answer=lambda call: 503)
    world.run(passes=5, advance=5.0)
    assert world.status.phase == "Pending"

    world.hook_answer = lambda call: 200
    world.reach("Healthy")

    assert world.status.stable is not None and world.status.stable.version == "2.0.0"
    (entry,) = entries(world, "confirmRollout")
    assert entry.result is DeliveryResult.SUCCEEDED


def test_confirm_retries_back_off_and_stay_within_the_cap() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec, hook_answer=lambda call: 500)

    world.run(passes=60, advance=0.5)

    attempts = [c for c in world.calls if c.name == "approve"]
    times = [p.now for p in world.passes if any(c.name == "approve" for c in p.plan.calls)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(gaps) <= 10.0
    assert [c.attempt for c in attempts] == list(range(1, len(attempts) + 1))
    assert not any(c.last_attempt for c in attempts), "a confirm hook never gives up"


def test_a_failing_pre_rollout_rolls_back_after_max_attempts_without_canary_traffic() -> None:
    spec = with_hooks(hook("warm-cache", "preRollout", maxAttempts=2))
    world = v2_world(spec, hook_answer=lambda call: 500)

    world.reach("RolledBack")

    assert world.status.abort is not None and world.status.abort.reason == "WebhookFailed"
    assert "warm-cache" in world.status.abort.message
    assert world.status.migration is not None and world.status.migration.phase == "Succeeded"
    assert world.status.migration.revision == revision_of(world.spec), "after the migration"
    assert not canary_scaled_up(world)
    assert len(calls_of(world, "warm-cache")) == 2
    assert "WebhookFailed" in world.events()


def test_confirm_promotion_holds_after_the_last_step() -> None:
    spec = with_hooks(hook("ship-it", "confirmPromotion"))
    world = v2_world(spec, hook_answer=lambda call: 500)

    world.run(passes=30, advance=5.0)

    assert world.status.phase == "Progressing"
    assert world.status.current_step_index == len(STEPS)
    assert "waiting for confirmPromotion webhook ship-it" in (world.status.message or "")
    assert world.status.stable is not None and world.status.stable.version == "1.0.0"
    world.hook_answer = lambda call: 204
    world.reach("Healthy")
    assert world.status.stable.version == "2.0.0"


def test_a_retry_asks_the_blocking_hooks_again_with_a_new_checksum() -> None:
    spec = with_hooks(hook("warm-cache", "preRollout", maxAttempts=1))
    world = v2_world(spec, hook_answer=lambda call: 500)
    world.reach("RolledBack")
    first = calls_of(world, "warm-cache")[0].id

    world.hook_answer = lambda call: 200
    world.request = ManualRequest(id="r1", action=Action.RETRY, by="alice")
    world.reach("Healthy")

    ids = {c.id for c in calls_of(world, "warm-cache")}
    assert first in ids and len(ids) == 2


# ---------------------------------------------------------------- non-blocking hooks


def test_a_failing_rollback_hook_never_blocks_the_rollback() -> None:
    spec = with_hooks(hook("page-oncall", "rollback"), steps=ANALYSED)
    world = v2_world(spec, hook_answer=lambda call: 500, gate_value=0.9)

    world.reach("RolledBack")
    world.run(passes=20, advance=5.0)

    (entry,) = entries(world, "rollback")
    assert entry.transition == "RollingBack"
    assert (entry.message or "").startswith("GateFailed: error-rate 0.9 > max 0.05")
    assert entry.result is DeliveryResult.FAILED and entry.attempts == 3
    assert world.status.phase == "RolledBack"
    assert world.messages("WebhookFailed") == [
        f"webhook page-oncall (RollingBack, {entry.revision}) not delivered after 3 attempts: "
        "HTTP 500"
    ]


def test_a_dead_post_rollout_receiver_does_not_delay_promotion() -> None:
    spec = with_hooks(hook("tell-ci", "postRollout"))
    slow = v2_world(spec, hook_answer=lambda call: None)
    fast = v2_world(with_hooks(), hook_answer=lambda call: 200)

    slow.reach("Healthy", advance=1.0)
    fast.reach("Healthy", advance=1.0)

    assert len(slow.passes) - len(healthy_world(spec).passes) == (
        len(fast.passes) - len(healthy_world(with_hooks()).passes)
    ), "the same number of passes to Healthy"
    (entry,) = entries(slow, "postRollout")
    assert entry.transition == "Promoted"


def test_event_hooks_are_sent_for_every_transition_and_retried_with_one_id() -> None:
    spec = with_hooks(hook("audit", "event", metadata={"team": "payments"}))
    world = v2_world(spec, hook_answer=lambda call: 500 if call.attempt == 1 else 200)

    world.reach("Healthy")
    world.run(passes=5)

    sent = entries(world, "event")
    assert [e.transition for e in sent] == [
        "Started",
        "StepStarted",
        "StepStarted",
        "Paused",
        "StepStarted",
        "Promoted",
    ]
    assert [e.step for e in sent if e.transition == "StepStarted"] == [0, 1, 2]
    assert all(e.result is DeliveryResult.SUCCEEDED and e.attempts == 2 for e in sent)
    by_id: dict[str, list[int]] = {}
    for call in calls_of(world, "audit"):
        by_id.setdefault(call.id, []).append(call.attempt)
        body = json.loads(call.body)
        assert body["checksum"] == call.id and body["metadata"] == {"team": "payments"}
    assert all(attempts == [1, 2] for attempts in by_id.values())


def test_the_payload_carries_the_rollout_state_and_a_checksum() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec)
    world.step()

    (call,) = world.passes[-1].plan.calls
    body = json.loads(call.body)
    assert body == {
        "service": "payment",
        "namespace": "shop",
        "revision": revision_of(world.spec),
        "version": "2.0.0",
        "phase": "Pending",
        "step": None,
        "weight": 0,
        "type": "confirmRollout",
        "name": "approve",
        "transition": None,
        "message": f"confirmRollout of {revision_of(world.spec)}",
        "metadata": {},
        "createdAt": world.now.isoformat(),
        "checksum": call.id,
    }
    assert len(call.id) == 64 and call.content_type == "application/json"
    assert call.timeout_s == 10.0


# ---------------------------------------------------------------- idempotence, restarts


def test_decide_is_idempotent_on_its_own_output_with_deliveries_pending() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"), hook("audit", "event"))
    world = v2_world(spec, hook_answer=lambda call: 500)
    world.run(passes=3, advance=0.2)

    again = world.decide_again()

    assert again.status.webhooks == world.status.webhooks
    planned = {(c.id, c.attempt) for c in world.passes[-1].plan.calls}
    assert {(c.id, c.attempt) for c in again.calls} <= planned | {
        (e.id, e.attempts + 1) for e in world.status.webhooks
    }


def test_a_restart_resends_a_pending_delivery_with_the_same_id_and_attempt() -> None:
    spec = with_hooks(hook("audit", "event"))
    world = v2_world(spec)
    # RolloutStarted: deliveries recorded and planned
    planned = {(c.id, c.attempt) for c in step_until_calls(world)}
    assert planned

    world.outcomes = ()  # the operator died before any answer came back
    world.restart()
    after = world.decide_again()

    assert {(c.id, c.attempt) for c in after.calls} == planned


def test_a_stale_or_repeated_outcome_is_recorded_once() -> None:
    spec = with_hooks(hook("audit", "event"))
    world = v2_world(spec, hook_answer=lambda call: 500)
    step_until_calls(world)
    outcomes = world.outcomes
    world.step()  # folds attempt 1
    recorded = [e.attempts for e in world.status.webhooks]

    world.outcomes = outcomes  # the same answers again (a pass whose write was not seen)
    world.step(0.0)

    assert [e.attempts for e in world.status.webhooks] == recorded


# ---------------------------------------------------------------- notifications

NOTIFY_ALL = {
    "when": ["Started", "StepStarted", "Paused", "Promoted", "RolledBack", "MigrationFailed"],
    "receivers": [
        {"name": "ops", "webhook": {"url": "http://127.0.0.1:9/ops"}},
        {"name": "chat", "slack": {"url": "https://hooks.example/x", "channel": "#deploys"}},
    ],
}


def notified(world: World, receiver: str) -> list[tuple[str | None, int | None]]:
    return [
        (e.transition, e.step)
        for e in world.status.webhooks
        if e.type == "notification" and e.name == receiver
    ]


def test_notifications_follow_a_promoted_rollout_once_per_transition() -> None:
    world = v2_world(with_hooks(notifications=NOTIFY_ALL))

    world.reach("Healthy")
    world.run(passes=5)

    expected = [
        ("Started", 0),
        ("StepStarted", 0),
        ("StepStarted", 1),
        ("Paused", 1),
        ("StepStarted", 2),
        ("Promoted", None),
    ]
    assert notified(world, "ops") == expected
    assert notified(world, "chat") == expected


def test_notifications_tell_a_rollback_and_a_failed_migration() -> None:
    world = v2_world(with_hooks(notifications=NOTIFY_ALL, steps=ANALYSED), gate_value=0.9)
    world.reach("RolledBack")
    assert ("RolledBack", None) in notified(world, "ops")
    assert "RollingBack" not in {t for t, _ in notified(world, "ops")}, "not chosen"

    world.job_outcome = "failed"
    world.spec = released(world.spec, "3.0.0")
    world.reach("MigrationFailed")
    assert ("MigrationFailed", None) in notified(world, "ops")


def test_only_the_chosen_transitions_are_notified() -> None:
    only = {**NOTIFY_ALL, "when": ["Promoted"]}
    world = v2_world(with_hooks(notifications=only))
    world.reach("Healthy")
    assert notified(world, "ops") == [("Promoted", None)]


def test_a_dead_notification_receiver_fails_with_an_event_and_never_holds() -> None:
    world = v2_world(with_hooks(notifications=NOTIFY_ALL), hook_answer=lambda call: None)
    baseline = v2_world(with_hooks())

    world.reach("Healthy", advance=1.0)
    baseline.reach("Healthy", advance=1.0)
    assert len(world.passes) == len(baseline.passes), "Healthy after as many passes"
    world.run(passes=40, advance=2.0)

    failed = world.messages("NotificationFailed")
    assert len(failed) == 12, "6 transitions x 2 receivers, each once"
    assert all("after 3 attempts: no answer within 10s" in m for m in failed)
    assert all(
        e.result is DeliveryResult.FAILED for e in world.status.webhooks if e.type == "notification"
    )


def test_slack_and_template_bodies() -> None:
    templated = {
        "when": ["Started"],
        "receivers": [
            {
                "name": "ops",
                "webhook": {
                    "url": "http://127.0.0.1:9/ops",
                    "template": '{"summary": "{{service}} {{transition}}: {{ message }}"}',
                },
            },
            {"name": "chat", "slack": {"url": "https://hooks.example/x", "channel": "#d"}},
        ],
    }
    world = v2_world(with_hooks(notifications=templated), hook_answer=lambda call: 200)
    world.spec = released(world.spec, '2.0.0"x')

    by_name = {c.name: c for c in step_until_calls(world)}
    summary = json.loads(by_name["ops"].body)["summary"]
    assert summary.startswith('payment Started: rolling out version 2.0.0"x')
    assert by_name["ops"].content_type == "application/json"
    slack = json.loads(by_name["chat"].body)
    assert slack["channel"] == "#d" and slack["text"].startswith("*shop/payment* Started (step 1)")


def test_the_status_keeps_a_bounded_number_of_deliveries() -> None:
    world = v2_world(with_hooks(hook("audit", "event"), notifications=NOTIFY_ALL))
    for version in ("2.0.0", "3.0.0", "4.0.0", "5.0.0"):
        world.spec = released(world.spec, version)
        world.reach("Healthy")
    world.run(passes=3)
    assert 0 < len(world.status.webhooks) <= 32
    ServiceStatus.model_validate(world.status.to_wire())


# ---------------------------------------------------------------- API validation


def test_a_call_carries_its_headers_and_only_the_names_of_secret_ones() -> None:
    token = {"name": "Authorization", "valueSecretRef": {"name": "hooks", "key": "token"}}
    team = {"name": "X-Team", "value": "payments"}
    receivers = [{"name": "ops", "webhook": {"url": "http://127.0.0.1:9/ops"}, "headers": [token]}]
    world = v2_world(
        with_hooks(
            hook("gate", "confirmRollout", headers=[team, token]),
            notifications={"when": ["Started"], "receivers": receivers},
        )
    )

    calls = step_until_calls(world)

    (confirm,) = [c for c in calls if c.name == "gate"]
    assert confirm.headers == (("X-Team", "payments"),)
    assert confirm.secret_headers == (("Authorization", "hooks", "token"),)
    (note,) = wait_calls(world, "ops")
    assert (note.headers, note.secret_headers) == ((), (("Authorization", "hooks", "token"),))


def wait_calls(world: World, name: str) -> list[HookCall]:
    world.until(lambda w: bool(calls_of(w, name)), advance=1.0)
    return calls_of(world, name)


@pytest.mark.parametrize(
    ("hooks", "problem"),
    [
        ([hook("a", "event"), hook("a", "rollback")], "used twice"),
        ([{**hook("a", "event"), "url": "ftp://x/y"}], "String should match pattern"),
        ([{**hook("a", "event"), "timeout": "2m"}], "between 100ms and 60s"),
        ([{**hook("a", "event"), "timeout": "10ms"}], "between 100ms and 60s"),
        ([{**hook("a", "event"), "type": "rollout"}], "Input should be"),
        ([hook("a", "event", headers=[{"name": "Host", "value": "admin"}])], "set by the operator"),
        (
            [hook("a", "event", headers=[{"name": "idempotency-key", "value": "1"}])],
            "set by the operator",
        ),
        (
            [
                hook(
                    "a",
                    "event",
                    headers=[{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}],
                )
            ],
            "given twice",
        ),
        ([hook("a", "event", headers=[{"name": "X-A"}])], "exactly one of value, valueSecretRef"),
        ([hook("a", "event", headers=[{"name": "X-A", "value": "a\r\nHost: x"}])], "pattern"),
    ],
)
def test_invalid_webhooks_are_rejected(hooks: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        with_hooks(*hooks)


@pytest.mark.parametrize(
    ("notifications", "problem"),
    [
        ({**NOTIFY_ALL, "when": ["Started", "Started"]}, "twice"),
        ({**NOTIFY_ALL, "when": ["Deployed"]}, "Input should be"),
        (
            {
                "when": ["Started"],
                "receivers": [
                    {"name": "x", "webhook": {"url": "http://a/"}, "slack": {"url": "http://a/"}}
                ],
            },
            "exactly one of webhook, slack",
        ),
        (
            {
                "when": ["Started"],
                "receivers": [
                    {"name": "x", "webhook": {"url": "http://a/", "template": "{{secret}}"}}
                ],
            },
            "placeholder",
        ),
        ({**NOTIFY_ALL, "receivers": NOTIFY_ALL["receivers"] * 2}, "used twice"),
        (
            {
                "when": ["Started"],
                "receivers": [
                    {
                        "name": "x",
                        "slack": {"url": "http://a/"},
                        "headers": [{"name": "Content-Type", "value": "text/plain"}],
                    }
                ],
            },
            "set by the operator",
        ),
    ],
)
def test_invalid_notifications_are_rejected(notifications: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        with_hooks(notifications=notifications)


def test_kubectl_rollwise_status_shows_each_delivery() -> None:
    from rollwise.cli.plugin_render import render_status

    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec, hook_answer=lambda call: 500)
    world.run(passes=3, advance=2.0)
    obj = {
        "metadata": {"name": "payment", "namespace": "shop", "generation": 1},
        "spec": world.spec.to_wire(),
        "status": world.status.to_wire(),
    }

    text = render_status(obj, now=world.now)

    assert "Webhooks and notifications:" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("approve"))
    assert row.split()[:3] == ["approve", "confirmRollout", "-"]
    assert "Pending" in row and "HTTP 500" in row


# ---------------------------------------------------------------- properties

ANSWERS = st.lists(st.sampled_from([200, 204, 500, 503, None]), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=ANSWERS)
def test_non_blocking_answers_never_change_the_rollout(answers: list[int | None]) -> None:
    """Whatever postRollout, rollback, event hooks and receivers answer, the rollout takes the
    same passes to Healthy as with no hooks at all; every delivery's attempts count up by one
    under one id, and it stops at maxAttempts."""
    codes = iter(answers * 200)
    spec = with_hooks(
        hook("tell-ci", "postRollout"),
        hook("page", "rollback"),
        hook("audit", "event", maxAttempts=4),
        notifications=NOTIFY_ALL,
    )
    world = v2_world(spec, hook_answer=lambda call: next(codes))
    plain = v2_world(with_hooks())

    world.reach("Healthy", advance=1.0)
    plain.reach("Healthy", advance=1.0)
    world.run(passes=60, advance=2.0)

    assert [p.plan.status.phase for p in world.passes[-len(plain.passes) - 60 : -60]] == [
        p.plan.status.phase for p in plain.passes[-len(plain.passes) :]
    ]
    by_id: dict[str, list[int]] = {}
    for call in world.calls:
        by_id.setdefault(call.id, []).append(call.attempt)
    for entry in world.status.webhooks:
        attempts = by_id.get(entry.id, [])
        assert attempts == list(range(1, len(attempts) + 1))
        limit = 4 if entry.name == "audit" else 3
        assert len(attempts) <= limit
        assert entry.result is not DeliveryResult.PENDING, "all settled after 60 passes"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=ANSWERS)
def test_no_canary_pod_before_both_rollout_hooks_said_yes(answers: list[int | None]) -> None:
    codes = iter(answers * 200)
    spec = with_hooks(hook("approve", "confirmRollout"), hook("warm", "preRollout", maxAttempts=10))
    world = v2_world(spec, hook_answer=lambda call: next(codes))
    revision = revision_of(world.spec)

    for _ in range(40):
        world.step(1.0)
        yes = {
            e.type
            for e in world.status.webhooks
            if e.revision == revision and e.result is DeliveryResult.SUCCEEDED
        }
        if {"confirmRollout", "preRollout"} - yes:
            assert not canary_scaled_up(world)
            assert world.status.current_step_index is None


def test_an_abort_while_a_confirm_rollout_holds_rolls_back_before_anything_ran() -> None:
    spec = with_hooks(hook("approve", "confirmRollout"))
    world = v2_world(spec, hook_answer=lambda call: 500)
    world.run(passes=3, advance=5.0)
    assert world.status.phase == "Pending"

    world.request = ManualRequest(id="r1", action=Action.ABORT, by="alice")
    world.reach("RolledBack", passes=20)

    assert world.status.last_request is not None
    assert world.status.last_request.id == "r1"
    assert "aborted before it started" in world.status.last_request.result
    assert world.status.abort is not None and world.status.abort.reason == "Aborted"
    assert world.status.stable is not None and world.status.stable.version == "1.0.0"
    assert not canary_scaled_up(world), "no canary pod, ever"
    assert "RequestIgnored" not in world.events()
