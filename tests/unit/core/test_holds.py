"""Inconclusive holds (docs/rollout-semantics.md, rule 2): no step completes, so no weight
rises and no promotion begins, while a gate's latest measurement is Inconclusive; and a
measurement still running when the steps end is awaited, then recorded Inconclusive and its
Job deleted."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rollwise.api.service_status import Phase, Verdict
from rollwise.core.analysis import inconclusive_gates
from rollwise.core.model import Action, DeleteJob, ManualRequest
from rollwise.core.revision import revision_of
from tests.unit.core.test_job_web_gates import job_gate
from tests.unit.core.test_properties import PROPERTY, Story, stories
from tests.unit.core.world import World, gate_from, healthy_world, released, spec_from


def background_spec(steps: list[dict[str, Any]]) -> Any:
    return spec_from(
        strategy={"canary": {"steps": steps, "analysis": {"gates": [{"name": "latency"}]}}}
    )


STEPS = [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"setWeight": 50}, {"pause": {}}]


def test_a_background_gate_without_data_holds_the_weight_and_pauses_with_the_reason() -> None:
    world = healthy_world(
        background_spec(STEPS),
        gates={"latency": gate_from(interval="10s", count=0, inconclusiveLimit=1000)},
    )
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None

    world.run(60, advance=5)  # five minutes of no data

    weights = {p.plan.status.canary_weight for p in world.passes[-60:]}
    assert weights == {25}
    assert world.status.phase is Phase.PAUSED
    assert world.status.message is not None
    assert "latency (background) is Inconclusive" in world.status.message
    paused = next(c for c in world.status.conditions if c.type == "Paused")
    assert paused.status == "True" and paused.reason == "GateInconclusive"


def test_a_later_passing_measurement_lifts_the_hold() -> None:
    world = healthy_world(
        background_spec(STEPS),
        gates={"latency": gate_from(interval="10s", count=0, inconclusiveLimit=1000)},
    )
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None
    world.run(20, advance=5)
    assert world.status.canary_weight == 25

    world.gate_value = 0.01
    world.until(lambda w: w.status.current_step_index == 3)

    assert world.status.canary_weight == 50
    assert world.status.phase is Phase.PAUSED  # the indefinite pause of step 4, not a hold
    assert "until `kubectl rollwise promote`" in (world.status.message or "")


def test_inconclusive_beyond_its_limit_aborts_without_the_weight_ever_rising() -> None:
    world = healthy_world(
        background_spec(STEPS),
        gates={"latency": gate_from(interval="10s", count=0, inconclusiveLimit=3)},
    )
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None

    world.reach("RollingBack", advance=5)

    assert max(p.plan.status.canary_weight for p in world.passes[-30:]) == 25
    assert world.status.abort is not None and world.status.abort.reason == "GateInconclusive"


def test_a_step_gate_without_data_pauses_its_step_with_the_reason() -> None:
    world = healthy_world(gates={"error-rate": gate_from(inconclusiveLimit=1000)})
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None

    world.run(40, advance=10)

    assert world.status.current_step_index == 2
    assert world.status.canary_weight == 25
    assert world.status.phase is Phase.PAUSED
    assert "error-rate is Inconclusive" in (world.status.message or "")


def test_a_promote_request_completes_the_held_step() -> None:
    world = healthy_world(
        background_spec(STEPS),
        gates={"latency": gate_from(interval="10s", count=0, inconclusiveLimit=1000)},
    )
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None
    world.until(lambda w: w.status.current_step_index == 1 and w.status.phase is Phase.PAUSED)
    world.run(5)
    assert world.status.current_step_index == 1

    world.request = ManualRequest(id="p1", action=Action.PROMOTE, by="alice")
    world.step(1)

    assert world.status.current_step_index == 2
    assert world.status.last_request is not None and world.status.last_request.id == "p1"


def _weight_rose_over_an_inconclusive_gate(story: Story) -> list[str]:
    """Passes where the weight rose, without a request, while a gate that was measuring before
    the pass ended it Inconclusive."""
    found: list[str] = []
    for world in story.play():
        last = world.passes[-1]
        before, after = last.before, last.plan.status
        if before.canary is None or after.canary is None:
            continue
        if before.canary.revision != after.canary.revision or last.observed.request is not None:
            continue
        if after.canary_weight <= before.canary_weight or after.phase is Phase.PROMOTING:
            continue
        held = [
            r.gate
            for r in after.analysis
            if r.verdict is Verdict.INCONCLUSIVE
            and r.started_at is not None
            and r.started_at < last.now  # began in an earlier pass
            and r.measured_at == last.now  # and was measured in this one
        ]
        if held and inconclusive_gates(world.spec, after):
            found.append(f"{before.canary_weight}->{after.canary_weight} over {held}")
    return found


@st.composite
def held_stories(draw: st.DrawFn) -> Story:
    """Rising weights and pauses under a background gate from step 1 whose data comes and
    goes (no data, NaN, a pass), with requests and releases now and then."""
    rising = sorted(draw(st.lists(st.integers(1, 99), min_size=1, max_size=4, unique=True)))
    steps: list[dict[str, Any]] = []
    for weight in rising:
        steps.append({"setWeight": weight})
        if draw(st.booleans()):
            steps.append({"pause": {"duration": draw(st.sampled_from(["0s", "10s", "45s"]))}})
    world = healthy_world(
        spec_from(
            replicas=draw(st.integers(1, 6)),
            strategy={"canary": {"steps": steps, "analysis": {"gates": [{"name": "latency"}]}}},
        ),
        gates={"latency": gate_from(interval="10s", count=0, inconclusiveLimit=6)},
    )
    world.spec = released(world.spec, "2.0.0")
    values = st.sampled_from([None, float("nan"), 0.01, 0.01])
    change = st.one_of(
        st.tuples(st.just("gate_value"), values),
        st.tuples(st.just("pods_ready"), st.booleans()),
        st.tuples(st.just("nothing"), st.none()),
    )
    story = draw(st.lists(st.tuples(change, st.sampled_from([1.0, 5.0, 10.0, 31.0])), max_size=40))
    return Story(world=world, changes=story)


@PROPERTY
@given(st.one_of(stories(), held_stories()))
def test_no_weight_rises_in_a_pass_that_measured_a_gate_inconclusive(story: Story) -> None:
    assert _weight_rose_over_an_inconclusive_gate(story) == []


def one_step_with_background_job() -> Any:
    steps = [{"setWeight": 50}, {"pause": {"duration": "20s"}}]
    return spec_from(
        strategy={"canary": {"steps": steps, "analysis": {"gates": [{"name": "smoke"}]}}}
    )


def running_at_the_end() -> World:
    """A background job gate that passed during the steps, whose next Job never finishes."""
    world = healthy_world(
        one_step_with_background_job(),
        gates={"smoke": job_gate(count=0, interval="5s", inconclusiveLimit=5)},
    )
    world.spec = released(world.spec, "2.0.0")
    world.until(
        lambda w: any(r.background and r.verdict is Verdict.PASSED for r in w.status.analysis),
        advance=2,
    )
    world.gate_job_outcome = "running"
    world.until(lambda w: "still running" in (w.status.message or ""), advance=2)
    return world


def test_a_measurement_running_when_the_steps_end_is_awaited_not_promoted_over() -> None:
    world = running_at_the_end()
    v2 = revision_of(world.spec)

    world.run(10, advance=5)  # 50 s, within progressDeadlineSeconds (120 s)

    assert world.status.stable is not None and world.status.stable.revision != v2
    assert world.status.phase is Phase.PROGRESSING
    assert "waiting for the measurement still running" in (world.status.message or "")
    assert world.actions(DeleteJob) == []


def test_past_the_deadline_it_is_recorded_inconclusive_and_its_job_deleted() -> None:
    world = running_at_the_end()
    job = next(r.job for r in world.status.analysis if r.background)
    v2 = revision_of(world.spec)

    world.until(lambda w: bool(w.actions(DeleteJob)), passes=60, advance=5)

    assert world.actions(DeleteJob) == [DeleteJob(job_name=job or "")]
    result = next(r for r in world.status.analysis if r.background)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "recorded Inconclusive, Job deleted" in (result.message or "")
    assert world.status.stable is not None and world.status.stable.revision != v2
    world.gate_job_outcome = "succeeded"
    world.reach("Healthy", passes=40, advance=5)
    assert world.status.stable is not None and world.status.stable.revision == v2
