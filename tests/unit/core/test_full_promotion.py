"""`kubectl rollwise promote --full` (docs/rollout-semantics.md, rule 3): the remaining steps,
pauses and analysis skipped in one request, recorded with its actor; accepted while paused or
progressing, and from RolledBack only when forced."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rollwise.api.service_status import Phase
from rollwise.cli.plugin import build_parser
from rollwise.cli.plugin_requests import request_annotation
from rollwise.core.analysis import due_gates
from rollwise.core.model import Action, ManualRequest
from rollwise.core.reasons import Reason
from rollwise.core.requests import parse_request
from rollwise.core.revision import revision_of
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from

LONG = [
    {"setWeight": 10},
    {"pause": {}},
    {"analysis": {"gates": [{"name": "error-rate"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "1h"}},
    {"setWeight": 80},
    {"pause": {}},
]


def full(request_id: str = "f1", by: str = "alice", force: bool = False) -> ManualRequest:
    return ManualRequest(id=request_id, action=Action.PROMOTE, by=by, full=True, force=force)


def long_rollout(**gates: Any) -> World:
    spec = spec_from(
        strategy={"canary": {"steps": LONG, "analysis": {"gates": [{"name": "latency"}]}}}
    )
    world = healthy_world(
        spec, gates={"error-rate": gate_from(), "latency": gate_from(count=0), **gates}
    )
    world.spec = released(world.spec, "2.0.0")
    return world


def test_one_request_from_a_pause_skips_every_remaining_step_and_gate() -> None:
    world = long_rollout()
    world.until(lambda w: w.status.phase is Phase.PAUSED and w.status.current_step_index == 1)
    v2 = revision_of(world.spec)
    world.gate_value = 0.9  # every gate would fail from now on: none is measured

    world.request = full()
    world.reach("Healthy", passes=20)

    assert world.status.stable is not None and world.status.stable.revision == v2
    assert world.status.full_promotion is not None
    assert world.status.full_promotion.by == "alice"
    assert world.status.full_promotion.from_step == 1
    assert world.status.full_promotion.from_phase == "Paused"
    promoted = [h for h in world.status.history if h.event == Reason.FULL_PROMOTION]
    assert len(promoted) == 1 and promoted[0].actor == "alice"
    assert "steps 2-7 with their pauses and analysis skipped" in (promoted[0].message or "")
    assert world.messages(Reason.PROMOTED)[-1].startswith("fast promotion: ")
    assert world.status.last_request is not None and world.status.last_request.id == "f1"
    assert Reason.GATE_FAILED not in world.events()
    since = next(i for i, p in enumerate(world.passes) if p.observed.request is not None)
    assert all(not p.observed.samples for p in world.passes[since + 1 :])


def test_accepted_while_progressing_towards_a_weight() -> None:
    world = long_rollout()
    world.pods_ready = False
    world.until(lambda w: w.status.current_step_index == 0, passes=5)
    world.step(1)
    assert world.status.phase is Phase.PROGRESSING

    world.request = full()
    world.step(1)
    assert world.status.phase is Phase.PROMOTING
    world.pods_ready = True
    world.reach("Healthy", passes=20)

    assert world.status.full_promotion is not None
    assert world.status.full_promotion.from_phase == "Progressing"


def test_promotion_still_waits_for_every_canary_pod() -> None:
    world = long_rollout()
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    world.ready_cap = 2  # 2 of 4 pods ready
    old = world.status.stable
    assert old is not None

    world.request = full()
    world.run(10)

    assert world.status.phase is Phase.PROMOTING
    assert world.status.stable is not None
    assert world.status.stable.revision == old.revision


def test_a_new_revision_forgets_the_full_promotion_of_the_last() -> None:
    world = long_rollout()
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    world.request = full()
    world.reach("Healthy", passes=20)

    world.spec = released(world.spec, "3.0.0")
    world.step(1)

    assert world.status.full_promotion is None
    assert world.status.phase is not Phase.PROMOTING


def rolled_back() -> World:
    world = long_rollout()
    world.until(lambda w: w.status.phase is Phase.PAUSED, passes=40)
    world.gate_value = 0.9
    world.request = ManualRequest(id="p0", action=Action.PROMOTE, by="alice")  # pause ends
    world.reach("RolledBack", passes=60)
    world.gate_value = 0.01
    return world


def test_from_rolled_back_only_when_forced() -> None:
    world = rolled_back()
    v2 = revision_of(world.spec)

    world.request = full("f1")
    world.run(3)
    assert world.status.phase is Phase.ROLLED_BACK
    assert world.status.last_request is not None
    assert "promote --full --force" in world.status.last_request.result

    world.request = full("f2", by="bob", force=True)
    world.reach("Healthy", passes=30)
    assert world.status.stable is not None and world.status.stable.revision == v2
    assert world.status.abort is None
    assert world.status.full_promotion is not None
    assert world.status.full_promotion.from_phase == "RolledBack"
    assert world.status.full_promotion.by == "bob"


def test_no_gate_is_due_once_a_full_promotion_began() -> None:
    world = long_rollout()
    world.until(lambda w: w.status.phase is Phase.PAUSED)
    world.request = full()
    world.ready_cap = 1
    world.step(100)

    assert world.status.phase is Phase.PROMOTING
    assert due_gates(world.spec, world.status, world.observed(), world.now + _hour()) == []


def _hour() -> timedelta:
    return timedelta(hours=1)


def test_the_request_annotation_round_trips_full_and_force() -> None:
    text = request_annotation(Action.PROMOTE, "id1", "alice", full=True, force=True)

    assert parse_request(text) == full("id1", force=True)
    assert parse_request(request_annotation(Action.PROMOTE, "id2", "a")).full is False


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "abort", "id": "x", "full": true}',
        '{"action": "promote", "id": "x", "force": true}',
        '{"action": "promote", "id": "x", "full": "yes"}',
    ],
)
def test_full_and_force_are_refused_where_they_mean_nothing(text: str) -> None:
    with pytest.raises(ValueError):
        parse_request(text)


def test_the_plugin_takes_full_and_force_on_promote_only() -> None:
    args = build_parser().parse_args(["promote", "payment", "--full", "--force"])
    assert args.full and args.force
    with pytest.raises(SystemExit):
        build_parser().parse_args(["abort", "payment", "--full"])
