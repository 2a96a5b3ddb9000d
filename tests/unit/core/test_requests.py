"""Manual requests from the `rollwise.dev/request` annotation: each id acted on once, the actor
recorded, invalid annotations reported once and never acted on."""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.api.service_status import Phase
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import Reason
from rollwise.core.requests import parse_request
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, healthy_world, released, spec_from

ALICE = "alice@example.com (kubectl rollwise)"


def paused_spec() -> Any:
    steps = [{"setWeight": 25}, {"pause": {"duration": "1m"}}, {"setWeight": 50}]
    return spec_from(strategy={"canary": {"steps": steps}})


def mid_canary(spec: Any = None) -> World:
    world = healthy_world(spec or paused_spec())
    world.spec = released(world.spec, "2.0.0")
    world.reach("Paused")
    return world


def ask(world: World, action: Action, request_id: str = "r1", by: str = ALICE) -> None:
    world.request = ManualRequest(id=request_id, action=action, by=by)


def accepted(world: World, request_id: str) -> list[str]:
    return [
        e.message
        for p in world.passes
        for e in p.plan.events
        if e.reason == Reason.REQUEST_ACCEPTED and p.plan.status.last_request is not None
        if p.plan.status.last_request.id == request_id
    ]


def test_pause_request_holds_the_rollout_past_its_pause_duration() -> None:
    world = mid_canary()
    ask(world, Action.PAUSE)

    world.run(30)  # 150 s, well past the 1 m pause

    assert world.status.phase is Phase.PAUSED
    assert world.status.current_step_index == 1
    assert world.status.paused_by_request is True
    assert len(accepted(world, "r1")) == 1
    ack = world.status.last_request
    assert ack is not None
    assert (ack.id, ack.action, ack.by) == ("r1", "pause", ALICE)
    assert [h.actor for h in world.status.history if h.event == Reason.PAUSED][-1] == ALICE


def test_pause_acknowledgement_counts_steps_as_people_do() -> None:
    world = mid_canary()
    ask(world, Action.PAUSE)

    world.step(1)

    ack = world.status.last_request
    assert ack is not None and ack.result == "paused at step 2"


def test_resume_request_continues_a_paused_rollout() -> None:
    world = mid_canary()
    ask(world, Action.PAUSE)
    world.run(30)
    ask(world, Action.RESUME, "r2")

    world.reach("Healthy")

    assert len(accepted(world, "r2")) == 1
    assert [h.actor for h in world.status.history if h.event == Reason.RESUMED] == [ALICE]


def test_pause_request_at_a_set_weight_step_holds_the_rollout() -> None:
    world = healthy_world(spec_from(strategy={"canary": {"steps": [{"setWeight": 50}]}}))
    world.spec = released(world.spec, "2.0.0")
    world.pods_ready = False
    world.step(5)
    ask(world, Action.PAUSE)
    world.step(5)
    world.pods_ready = True

    world.run(10)

    assert world.status.phase is Phase.PAUSED
    assert world.status.current_step_index == 0


def test_promote_request_completes_the_current_step_once() -> None:
    world = mid_canary()
    ask(world, Action.PROMOTE)

    world.step(1)
    world.run(5)

    assert world.status.current_step_index is None or world.status.current_step_index >= 2
    completed = [h for h in world.status.history if h.event == Reason.STEP_COMPLETED]
    assert [h.step for h in completed if h.actor == ALICE] == [1]
    assert len(accepted(world, "r1")) == 1


def test_abort_request_rolls_back_naming_who_asked() -> None:
    world = mid_canary()
    v2 = revision_of(world.spec)
    ask(world, Action.ABORT)

    world.reach("RolledBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.ABORTED
    assert abort.message == f"aborted by {ALICE}"
    assert abort.revision == v2
    assert [h.actor for h in world.status.history if h.event == Reason.ABORTED] == [ALICE]
    assert len(accepted(world, "r1")) == 1


def test_retry_request_restarts_a_rolled_back_rollout_from_the_first_step() -> None:
    world = mid_canary()
    ask(world, Action.ABORT)
    world.reach("RolledBack")
    ask(world, Action.RETRY, "r2")

    world.step(5)

    assert world.status.phase is Phase.PROGRESSING
    assert world.status.current_step_index == 0
    assert world.status.abort is None
    assert world.status.canary_weight == 25
    assert [h.actor for h in world.status.history if h.event == Reason.RETRY] == [ALICE]
    world.reach("Healthy")
    assert len(accepted(world, "r2")) == 1


def test_a_request_id_already_acted_on_is_ignored() -> None:
    world = mid_canary()
    ask(world, Action.ABORT)
    world.reach("RolledBack")
    ask(world, Action.RETRY, "r2")
    world.reach("Healthy")
    world.spec = released(world.spec, "3.0.0")
    world.reach("Paused")

    ask(world, Action.RETRY, "r2")  # the same annotation, seen again
    world.run(30)

    assert world.status.phase is Phase.HEALTHY
    assert len(accepted(world, "r2")) == 1
    assert world.events().count(Reason.REQUEST_IGNORED) == 0


def test_a_request_with_nothing_to_do_is_acknowledged_as_ignored() -> None:
    world = healthy_world()
    ask(world, Action.PROMOTE, "r9")

    world.run(5)

    assert world.events().count(Reason.REQUEST_IGNORED) == 1
    ack = world.status.last_request
    assert ack is not None and ack.id == "r9"
    assert ack.result == "nothing to promote in phase Healthy"


def test_an_invalid_annotation_is_reported_once_and_changes_nothing() -> None:
    world = mid_canary()
    world.request_error = "annotation rollwise.dev/request is not JSON: Expecting value"

    world.run(30)

    assert world.status.invalid_request == world.request_error
    assert world.events().count(Reason.REQUEST_INVALID) == 1
    invalid = [h for h in world.status.history if h.event == Reason.REQUEST_INVALID]
    assert invalid and invalid[-1].message == world.request_error
    assert world.status.phase is Phase.HEALTHY

    world.request_error = None
    world.step(5)
    assert world.status.invalid_request is None


# ----------------------------------------------------------------------------- parse_request


def test_request_annotation_is_parsed() -> None:
    request = parse_request('{"action": "promote", "id": "abc", "by": "alice"}')

    assert request == ManualRequest(id="abc", action=Action.PROMOTE, by="alice")


def test_request_without_by_is_attributed_to_unknown() -> None:
    assert parse_request('{"action": "abort", "id": "x"}').by == "unknown"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("promote", "is not JSON"),
        ('["promote"]', "must be a JSON object"),
        ('{"action": "deploy", "id": "x"}', "action 'deploy' is not one of promote, abort"),
        ('{"action": "promote"}', "needs an id"),
        ('{"action": "promote", "id": ""}', "needs an id"),
        ('{"action": "promote", "id": "' + "x" * 65 + '"}', "needs an id"),
    ],
)
def test_bad_request_annotations_are_rejected_with_what_to_fix(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_request(text)
