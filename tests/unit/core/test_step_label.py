"""Status says the step in progress as people count it, beside the index the core uses."""

from __future__ import annotations

from rollwise.api.service_status import Phase
from tests.unit.core.world import gate_from, healthy_world, released


def test_every_pass_writes_the_step_counted_from_one_of_all_steps() -> None:
    world = healthy_world(gates={"error-rate": gate_from(inconclusiveLimit=10_000)})
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None  # no data: Inconclusive holds the rollout at the analysis step
    total = len(world.spec.strategy.canary.steps)

    world.run(50, advance=10)

    assert world.status.phase is Phase.PAUSED  # rule 2 of docs/rollout-semantics.md
    assert world.status.current_step_index == 2
    assert world.status.current_step == f"3/{total}"


def test_a_settled_service_shows_no_step() -> None:
    world = healthy_world()

    assert world.status.current_step_index is None
    assert world.status.current_step is None
