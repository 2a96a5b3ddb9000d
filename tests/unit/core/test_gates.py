"""Gates: queries resolved without injection, one verdict per measurement, limits as
tolerances, missing gates, gate arguments and background analysis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rollwise.api.service import GateRef
from rollwise.api.service_status import GateResult, Phase, Verdict
from rollwise.core import gates as gatelib
from rollwise.core.analysis import due_gates
from rollwise.core.gates import GateConfigError, resolve_query
from rollwise.core.model import MetricSample
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from tests.unit.core.world import T0, World, gate_from, healthy_world, released, spec_from

CONTEXT = {
    "canary.revision": "abc",
    "stable.revision": "def",
    "service.name": "payment",
    "service.namespace": "shop",
}


def gate_with(query: str, args: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
    return gate_from(
        args=args or [],
        provider={"prometheus": {"address": "http://prom:9090", "query": query}},
        **extra,
    )


def sample(value: float | None = None, error: str | None = None) -> MetricSample:
    return MetricSample(key="g", query="q", measured_at=T0, value=value, error=error)


# ----------------------------------------------------------------------------- resolve_query


def test_query_placeholders_are_substituted() -> None:
    gate = gate_with(
        'x{svc="{{args.service}}",rev="{{ canary.revision }}",'
        'stable="{{stable.revision}}",ns="{{service.namespace}}",n="{{service.name}}"}',
        args=[{"name": "service"}],
    )

    query = resolve_query("g", gate, GateRef(name="g", args={"service": "pay"}), CONTEXT)

    assert query == 'x{svc="pay",rev="abc",stable="def",ns="shop",n="payment"}'


def test_arg_default_is_used_when_the_reference_gives_no_value() -> None:
    gate = gate_with('x{svc="{{args.service}}"}', args=[{"name": "service", "default": "all"}])

    assert resolve_query("g", gate, GateRef(name="g"), CONTEXT) == 'x{svc="all"}'


def test_backslashes_in_arg_values_are_escaped_for_promql() -> None:
    gate = gate_with('x{path="{{args.path}}"}', args=[{"name": "path"}])

    query = resolve_query("g", gate, GateRef(name="g", args={"path": "C:\\tmp\\"}), CONTEXT)

    assert query == 'x{path="C:\\\\tmp\\\\"}'


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ('pay"} or vector(1) or x{a="', 'pay\\"} or vector(1) or x{a=\\"'),
        ("pay'`}{", "pay'`}{"),
        ("pay\nsum(up)", "pay\\u000asum(up)"),
        ("pay\x00", "pay\\u0000"),
    ],
)
def test_arg_values_that_could_break_out_of_a_label_matcher_stay_inside_its_string(
    value: str, rendered: str
) -> None:
    gate = gate_with('x{svc="{{args.service}}"}', args=[{"name": "service"}])

    query = resolve_query("g", gate, GateRef(name="g", args={"service": value}), CONTEXT)

    assert query == f'x{{svc="{rendered}"}}'


def test_overlong_arg_value_is_rejected_naming_it() -> None:
    gate = gate_with('x{svc="{{args.service}}"}', args=[{"name": "service"}])

    with pytest.raises(GateConfigError, match=r"args\.service"):
        resolve_query("g", gate, GateRef(name="g", args={"service": "x" * 254}), CONTEXT)


def test_arg_not_declared_by_the_gate_is_rejected_naming_it() -> None:
    gate = gate_with('x{svc="{{args.service}}"}', args=[{"name": "service"}])
    ref = GateRef(name="g", args={"service": "pay", "extra": "1"})

    with pytest.raises(GateConfigError, match=r"\['extra'\] are not declared"):
        resolve_query("g", gate, ref, CONTEXT)


def test_declared_arg_without_value_or_default_is_rejected_naming_it() -> None:
    gate = gate_with('x{svc="{{args.service}}"}', args=[{"name": "service"}])

    with pytest.raises(GateConfigError, match="arg 'service' has no value"):
        resolve_query("g", gate, GateRef(name="g"), CONTEXT)


def test_unknown_placeholder_is_rejected() -> None:
    gate = gate_with('x{svc="{{args.nope}}"}')

    with pytest.raises(GateConfigError, match=r"unknown placeholder \{\{args.nope\}\}"):
        resolve_query("g", gate, GateRef(name="g"), CONTEXT)


# ----------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (0.0, Verdict.PASSED),
        (0.05, Verdict.PASSED),
        (0.0500001, Verdict.FAILED),
        (-1.0, Verdict.FAILED),
        (None, Verdict.INCONCLUSIVE),
        (float("nan"), Verdict.INCONCLUSIVE),
        (float("inf"), Verdict.INCONCLUSIVE),
        (float("-inf"), Verdict.INCONCLUSIVE),
    ],
)
def test_verdict_of_one_measurement(value: float | None, verdict: Verdict) -> None:
    gate = gate_from(thresholdRange={"min": 0, "max": 0.05})

    assert gatelib.verdict_of(sample(value), gate) is verdict


def test_an_error_is_an_error_verdict_whatever_the_value() -> None:
    assert gatelib.verdict_of(sample(0.01, error="timeout"), gate_from()) is Verdict.ERROR


def test_recording_no_data_keeps_no_value_and_says_why() -> None:
    result = gatelib.record(GateResult(gate="g"), sample(float("nan")), gate_from())

    assert result.value is None
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.inconclusive == 1
    assert result.message is not None and "no data" in result.message


def test_a_successful_measurement_resets_the_error_streak() -> None:
    gate = gate_from()
    result = GateResult(gate="g")
    for s in (sample(error="x"), sample(error="x"), sample(0.01), sample(error="y")):
        result = gatelib.record(result, s, gate)

    assert (result.errors, result.consecutive_errors, result.measurements) == (3, 1, 4)


def test_failures_within_the_failure_limit_are_tolerated() -> None:
    gate = gate_from(failureLimit=1, count=3)
    result = GateResult(gate="g")
    for s in (sample(0.5), sample(0.01), sample(0.01)):
        result = gatelib.record(result, s, gate)

    outcome = gatelib.outcome(result, gate, step_gate=True)

    assert outcome.passed and not outcome.breached


def test_step_gate_passes_only_after_count_measurements() -> None:
    gate = gate_from(count=3)
    result = gatelib.record(GateResult(gate="g"), sample(0.01), gate)

    assert not gatelib.outcome(result, gate, step_gate=True).passed
    for _ in range(2):
        result = gatelib.record(result, sample(0.01), gate)
    assert gatelib.outcome(result, gate, step_gate=True).passed


def test_next_measurement_is_one_interval_after_the_last_or_after_activation() -> None:
    gate = gate_from(interval="30s")
    measured = GateResult(gate="g", measured_at=T0 + timedelta(minutes=1))

    assert gatelib.next_due(None, gate, T0) == T0 + timedelta(seconds=30)
    assert gatelib.next_due(measured, gate, T0) == T0 + timedelta(seconds=90)


# ----------------------------------------------------------------------------- in a rollout


def at_analysis_step(world: World) -> None:
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: w.status.current_step_index == 2)


def test_metric_gate_deleted_mid_rollout_waits_with_a_message_and_never_passes() -> None:
    world = healthy_world()
    at_analysis_step(world)
    world.gates = {}

    world.run(100, advance=30)

    assert world.status.current_step_index == 2
    assert world.status.phase is Phase.PROGRESSING
    assert world.status.message is not None
    assert "MetricGate shop/error-rate does not exist" in world.status.message
    assert world.events().count(Reason.GATE_MISSING) == 1
    assert not any("gate error-rate passed" in m for m in world.messages(Reason.STEP_COMPLETED))

    world.gates = {"error-rate": gate_from()}
    world.reach("Healthy")


def test_missing_cluster_metric_gate_is_named_as_such() -> None:
    steps = [{"setWeight": 25}, {"analysis": {"gates": [{"name": "slo", "cluster": True}]}}]
    world = healthy_world(spec_from(strategy={"canary": {"steps": steps}}), gates={})
    world.spec = released(world.spec, "2.0.0")

    world.run(10)

    assert world.status.message is not None
    assert world.status.message.startswith("invalid spec: ClusterMetricGate slo does not exist")
    world.gates = {"cluster:slo": gate_from()}
    world.reach("Healthy")


def test_metric_gate_made_invalid_mid_rollout_waits_named_as_invalid_with_one_event() -> None:
    world = healthy_world()
    at_analysis_step(world)
    world.gates = {"error-rate": None}
    world.gate_errors = {"error-rate": "thresholdRange: needs min, max or both"}

    world.run(100, advance=30)

    assert world.status.current_step_index == 2
    assert world.status.phase is Phase.PROGRESSING
    assert world.status.message == (
        "MetricGate shop/error-rate is invalid: thresholdRange: needs min, max or both; the "
        "rollout waits (it never passes a gate it cannot measure) until it is fixed"
    )
    assert world.events().count(Reason.GATE_INVALID) == 1
    assert world.events().count(Reason.GATE_MISSING) == 0

    # A different problem is a new Event; a fixed gate lets the rollout go on.
    world.gate_errors = {"error-rate": "interval: '0' is not a duration"}
    world.run(5, advance=30)
    assert world.events().count(Reason.GATE_INVALID) == 2
    world.gate_errors = {}
    world.gates = {"error-rate": gate_from()}
    world.reach("Healthy")


def args_spec(args: dict[str, str]) -> Any:
    steps = [
        {"setWeight": 25},
        {"pause": {"duration": "30s"}},
        {"analysis": {"gates": [{"name": "error-rate", "args": args}]}},
    ]
    return spec_from(strategy={"canary": {"steps": steps}})


def args_gate() -> Any:
    return gate_with('sum(errors{service="{{args.service}}"})', args=[{"name": "service"}])


def test_gate_args_reach_the_query_that_is_measured() -> None:
    world = healthy_world(args_spec({"service": "pay\\ment"}), gates={"error-rate": args_gate()})
    at_analysis_step(world)

    world.reach("Healthy")

    measured = {s.query for p in world.passes for s in p.observed.samples}
    assert measured == {'sum(errors{service="pay\\\\ment"})'}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ({"service": "x" * 254}, "over 253 characters"),
        ({}, "has no value"),
        ({"service": "x", "region": "eu"}, "not declared"),
    ],
)
def test_bad_gate_args_are_never_measured_and_abort_the_rollout(
    args: dict[str, str], complaint: str
) -> None:
    world = healthy_world(args_spec(args), gates={"error-rate": args_gate()})
    at_analysis_step(world)

    world.reach("RollingBack")

    measured = [
        q
        for p in world.passes
        for q in due_gates(world.spec, p.before, p.observed, p.now)
        if q.gate == "error-rate"
    ]
    assert measured == []
    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.GATE_ERROR
    assert complaint in abort.message


# ----------------------------------------------------------------------------- background


def background_spec(starting_step: int = 1, **extra: Any) -> Any:
    steps = [{"setWeight": 25}, {"pause": {"duration": "1m"}}, {"setWeight": 50}]
    analysis = {"gates": [{"name": "latency"}], "startingStep": starting_step}
    return spec_from(strategy={"canary": {"steps": steps, "analysis": analysis, **extra}})


def one_step_with_background_latency() -> Any:
    """setWeight 50 as the only step, with a background `latency` gate from the start."""
    steps = [{"setWeight": 50}]
    return spec_from(
        strategy={"canary": {"steps": steps, "analysis": {"gates": [{"name": "latency"}]}}}
    )


def test_background_gate_measures_only_from_its_starting_step() -> None:
    world = healthy_world(background_spec(1), gates={"latency": gate_from(interval="10s")})
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy")

    measured_at_steps = {
        p.before.current_step_index
        for p in world.passes
        if any(s.key == "latency@bg" for s in p.observed.samples)
    }
    assert measured_at_steps
    assert min(i for i in measured_at_steps if i is not None) >= 1
    assert 0 not in measured_at_steps


def test_background_gate_breach_aborts_whatever_the_step() -> None:
    world = healthy_world(background_spec(1), gates={"latency": gate_from(interval="10s")})
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = 0.9

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None
    assert abort.reason == Reason.GATE_FAILED
    assert "(background analysis, step 2)" in abort.message
    assert "latency 0.9 > max 0.05" in abort.message


def test_promotion_waits_for_a_passing_background_measurement() -> None:
    spec = one_step_with_background_latency()
    world = healthy_world(spec, gates={"latency": gate_from(interval="2m", count=0)})
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.run(10)  # 50 s: every step done, no background measurement yet

    assert world.status.phase is Phase.PROGRESSING
    assert world.status.message == "all steps done; waiting for a passing background measurement"
    assert world.status.stable is not None and world.status.stable.revision != v2
    world.gate_value = None
    world.run(16)  # the first measurement, at 2 min, has no data: held, and says so
    assert world.status.phase is Phase.PAUSED
    assert "latency (background) is Inconclusive" in (world.status.message or "")
    world.gate_value = 0.01
    world.reach("Healthy", passes=30)
    assert world.status.stable is not None and world.status.stable.revision == v2


def test_background_gate_with_a_count_never_leaves_the_rollout_waiting_forever() -> None:
    spec = one_step_with_background_latency()
    world = healthy_world(spec, gates={"latency": gate_from(interval="1m", count=1)})
    world.spec = released(world.spec, "2.0.0")
    world.gate_value = None  # the one measurement the gate takes has no data

    world.run(16)
    world.gate_value = 0.01
    world.run(120)  # ten more minutes

    assert world.status.phase in (Phase.HEALTHY, Phase.ROLLING_BACK, Phase.ROLLED_BACK), (
        world.status.message
    )


def test_a_background_gate_posts_a_pass_only_when_its_verdict_turns_to_passed() -> None:
    gate = gate_from(interval="10s", count=0, failureLimit=1)
    world = healthy_world(background_spec(1), gates={"latency": gate})
    world.spec = released(world.spec, "2.0.0")
    world.until(lambda w: (w.status.current_step_index or 0) >= 1)

    world.step(10)
    world.step(10)
    world.gate_value = 0.5
    world.step(10)
    world.gate_value = 0.01
    world.reach("Healthy")

    measured = [s for p in world.passes for s in p.observed.samples if s.key == "latency@bg"]
    assert len(measured) > 4
    assert world.events().count(Reason.GATE_FAILED) == 1
    assert world.events().count(Reason.GATE_PASSED) == 2  # the first verdict, then the recovery


def test_promotion_begun_by_a_later_background_pass_is_an_event_of_its_own() -> None:
    spec = one_step_with_background_latency()
    world = healthy_world(spec, gates={"latency": gate_from(interval="2m", count=0)})
    world.spec = released(world.spec, "2.0.0")

    world.reach("Healthy", passes=40)

    assert world.messages(Reason.STEP_COMPLETED) == [
        "step 1/1 (setWeight) completed; all steps done; waiting for a passing background "
        "measurement"
    ]
    assert world.events()[-2:] == [Reason.PROMOTING, Reason.PROMOTED]


def test_background_gates_missing_report_once_each_and_block_promotion() -> None:
    spec = spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 50}],
                "analysis": {"gates": [{"name": "latency"}, {"name": "saturation"}]},
            }
        }
    )
    world = healthy_world(spec, gates={"latency": gate_from(), "saturation": gate_from()})
    world.spec = released(world.spec, "2.0.0")
    world.step(1)  # the rollout began with both gates there; then both were deleted
    world.gates = {}

    world.run(20)

    assert world.status.phase is Phase.PROGRESSING
    assert world.events().count(Reason.GATE_MISSING) == 2
    assert world.status.stable is not None
    assert world.status.stable.revision != revision_of(world.spec)


def test_canary_keeps_its_last_step_weight_while_promotion_waits_for_background() -> None:
    spec = spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 10}],
                "analysis": {"gates": [{"name": "latency"}]},
                "trafficRouting": {"gatewayAPI": {"httpRoute": "payment"}},
            }
        }
    )
    world = healthy_world(spec, gates={"latency": gate_from(interval="2m", count=0)})
    world.spec = released(world.spec, "2.0.0")
    v2 = revision_of(world.spec)

    world.run(10)  # every step done, the background gate not measured yet

    assert world.status.message == "all steps done; waiting for a passing background measurement"
    assert world.status.canary_weight == 10
    assert world.router_weight == 10
    assert world.replica_sets[v2].replicas == 1
