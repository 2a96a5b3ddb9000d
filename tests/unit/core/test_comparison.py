"""Comparison gates: the canary's samples against stable's. Too little data is Inconclusive and
never a pass; a regression fails only when significant and large enough; status shows both
sides and the test's numbers; whole rollouts promote an equal canary and roll back a worse one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rollwise.api.gates import Comparison, MetricGateSpec
from rollwise.api.service import GateRef
from rollwise.api.service_status import Phase, Verdict
from rollwise.core import gates as gatelib
from rollwise.core.analysis import due_gates
from rollwise.core.comparison import judge
from rollwise.core.decide import decide
from rollwise.core.gates import GateConfigError
from rollwise.core.model import GateQuery, MetricSample, Plan
from rollwise.core.promql import gate_template_problem
from rollwise.core.reasons import Reason
from tests.unit.core.world import Pass, World, released, spec_from

QUERY = (
    'sum(rate(errors{revision="{{revision}}"}[15s]))'
    ' / sum(rate(requests{revision="{{revision}}"}[15s]))'
)
CONTEXT = {
    "canary.revision": "abc",
    "stable.revision": "def",
    "service.name": "payment",
    "service.namespace": "shop",
}


def comparison_gate(**comparison: Any) -> MetricGateSpec:
    return MetricGateSpec.model_validate(
        {
            "interval": "10s",
            "count": 1,
            "inconclusiveLimit": 1,
            "provider": {"prometheus": {"address": "http://prom:9090", "query": QUERY}},
            "comparison": {"window": "5m", "step": "15s", "minSamples": 10} | comparison,
        }
    )


def spec_of(**fields: Any) -> Comparison:
    return Comparison.model_validate({"window": "5m", "step": "15s"} | fields)


def noisy(center: float, n: int, seed: int, spread: float = 0.002) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, rng.gauss(center, spread)) for _ in range(n)]


# ----------------------------------------------------------------------------- the API


def test_a_comparison_gate_needs_no_threshold_and_refuses_one() -> None:
    comparison_gate()  # valid without thresholdRange
    with pytest.raises(ValidationError, match="no thresholdRange"):
        MetricGateSpec.model_validate(
            comparison_gate().to_wire() | {"thresholdRange": {"max": 0.1}}
        )


def test_a_comparison_gate_needs_the_prometheus_provider() -> None:
    with pytest.raises(ValidationError, match="prometheus provider"):
        MetricGateSpec.model_validate(
            {
                "provider": {"web": {"url": "http://x/y", "jsonPath": "$.v"}},
                "comparison": {"window": "5m", "step": "15s"},
            }
        )


def test_a_window_too_short_for_min_samples_is_refused() -> None:
    with pytest.raises(ValidationError, match="could never pass"):
        spec_of(window="1m", step="15s", minSamples=10)


# ----------------------------------------------------------------------------- judge


def test_fewer_than_min_samples_on_either_side_is_inconclusive() -> None:
    outcome = judge([0.5] * 9, [0.0] * 30, spec_of(minSamples=10))

    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert "too few samples" in outcome.message
    assert outcome.result.canary.n == 9
    assert outcome.result.p is None


def test_no_data_intervals_do_not_count_as_samples() -> None:
    outcome = judge([float("nan")] * 20 + [0.1] * 5, [0.0] * 20, spec_of(minSamples=10))

    assert outcome.verdict is Verdict.INCONCLUSIVE
    assert outcome.result.canary.n == 5


def test_a_clearly_worse_canary_fails_with_both_summaries_and_the_numbers() -> None:
    outcome = judge(noisy(0.05, 20, 1), noisy(0.01, 20, 2), spec_of())

    assert outcome.verdict is Verdict.FAILED
    result = outcome.result
    assert (result.canary.n, result.stable.n) == (20, 20)
    assert result.canary.median is not None and result.canary.median > 0.04
    assert result.u == 400.0 and result.effect == 1.0 and result.method == "exact"
    assert result.p is not None and result.p < 1e-9
    assert "canary higher than stable" in outcome.message


def test_an_equal_canary_passes() -> None:
    outcome = judge(noisy(0.01, 20, 3), noisy(0.01, 20, 4), spec_of())

    assert outcome.verdict is Verdict.PASSED
    assert "canary not worse than stable" in outcome.message


def test_a_better_canary_passes_a_one_sided_test() -> None:
    outcome = judge(noisy(0.001, 20, 5), noisy(0.05, 20, 6), spec_of())

    assert outcome.verdict is Verdict.PASSED
    assert outcome.result.p is not None and outcome.result.p > 0.99


def test_worse_lower_fails_a_canary_with_lower_values() -> None:
    outcome = judge(noisy(0.90, 20, 7), noisy(0.99, 20, 8), spec_of(worse="lower"))

    assert outcome.verdict is Verdict.FAILED
    assert "canary lower than stable" in outcome.message


def test_a_significant_but_immaterial_difference_passes_under_min_difference() -> None:
    canary, stable = [0.0101] * 20, [0.0100] * 20

    assert judge(canary, stable, spec_of()).verdict is Verdict.FAILED
    outcome = judge(canary, stable, spec_of(minDifference=0.005))
    assert outcome.verdict is Verdict.PASSED
    assert "median difference" in outcome.message


def test_a_small_effect_passes_under_a_larger_effect_size() -> None:
    canary, stable = noisy(0.0105, 25, 9), noisy(0.0100, 25, 10)
    small = judge(canary, stable, spec_of(effectSize=0.5))

    large = judge(canary, stable, spec_of(effectSize=0.95))

    assert large.verdict is Verdict.PASSED
    assert small.result.effect == large.result.effect < 0.95


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=30),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=30),
    st.integers(min_value=4, max_value=40),
)
def test_too_few_samples_are_never_passed(
    canary: list[float], stable: list[float], min_samples: int
) -> None:
    spec = spec_of(window="1h", step="15s", minSamples=min_samples)
    outcome = judge(canary, stable, spec)
    finite_n = min(
        sum(1 for v in canary if abs(v) != float("inf") and v == v),
        sum(1 for v in stable if abs(v) != float("inf") and v == v),
    )

    if finite_n < min_samples:
        assert outcome.verdict is Verdict.INCONCLUSIVE
    else:
        assert outcome.verdict in (Verdict.PASSED, Verdict.FAILED)


# ----------------------------------------------------------------------------- queries


def test_revision_placeholder_is_the_revision_measured() -> None:
    canary, stable = gatelib.resolve_comparison(
        "cmp", comparison_gate(), GateRef(name="cmp"), CONTEXT
    )

    assert 'revision="abc"' in canary and 'revision="def"' not in canary
    assert 'revision="def"' in stable and 'revision="abc"' not in stable


def test_a_comparison_query_without_the_revision_placeholder_is_refused() -> None:
    gate = MetricGateSpec.model_validate(
        comparison_gate().to_wire()
        | {"provider": {"prometheus": {"address": "http://p:9090", "query": "sum(up)"}}}
    )

    with pytest.raises(GateConfigError, match=r"\{\{revision\}\}"):
        gatelib.resolve_comparison("cmp", gate, GateRef(name="cmp"), CONTEXT)


# ----------------------------------------------------------------------------- rollouts


@dataclass
class Sides:
    """What every comparison measurement returns: one sample list per revision."""

    canary: list[float]
    stable: list[float]


@dataclass
class ComparingWorld(World):
    """The unit world, its gate measurements answered with both revisions' samples."""

    sides: Sides = field(default_factory=lambda: Sides([], []))
    queries: list[GateQuery] = field(default_factory=list)

    def step(self, advance: float = 0.0) -> Plan:
        self.now += timedelta(seconds=advance)
        self._settle()
        queries = due_gates(self.spec, self.status, self.observed(), self.now)
        self.queries.extend(queries)
        samples = tuple(
            MetricSample(
                key=q.key,
                query=q.query,
                measured_at=self.now,
                canary_values=tuple(self.sides.canary),
                stable_values=tuple(self.sides.stable),
            )
            for q in queries
        )
        observed = self.observed(samples)
        plan = decide(self.spec, self.status, observed, self.now)
        self.passes.append(Pass(before=self.status, observed=observed, now=self.now, plan=plan))
        self.apply(plan)
        return plan


def comparing_world(sides: Sides, **comparison: Any) -> ComparingWorld:
    world = ComparingWorld(
        spec=spec_from(), gates={"error-rate": comparison_gate(**comparison)}, sides=sides
    )
    world.reach("Healthy")
    world.spec = released(world.spec, "2.0.0")
    return world


def test_an_equal_canary_is_promoted_with_the_test_in_its_history() -> None:
    world = comparing_world(Sides(noisy(0.01, 20, 11), noisy(0.01, 20, 12)))

    world.reach("Healthy")

    completed = world.messages(Reason.STEP_COMPLETED)
    assert any("canary not worse than stable" in m and "U=" in m for m in completed)


def test_a_worse_canary_is_rolled_back_with_both_sides_in_status() -> None:
    world = comparing_world(Sides(noisy(0.05, 20, 13), noisy(0.01, 20, 14)))

    world.reach("RollingBack")

    abort = world.status.abort
    assert abort is not None and abort.reason == Reason.GATE_FAILED
    assert "canary higher than stable" in abort.message
    [result] = [r for r in world.status.analysis if r.gate == "error-rate"]
    assert result.comparison is not None
    assert result.comparison.canary.n == 20 and result.comparison.stable.n == 20
    assert result.value == result.comparison.p


def test_too_little_data_never_promotes_and_aborts_after_the_inconclusive_limit() -> None:
    world = comparing_world(Sides([0.0] * 3, [0.0] * 20))

    world.reach("RollingBack")

    assert world.status.abort is not None
    assert world.status.abort.reason == Reason.GATE_INCONCLUSIVE
    assert "Promoted" not in world.events()


def test_both_revisions_are_sampled_over_the_same_window_from_the_step_start() -> None:
    world = comparing_world(Sides(noisy(0.01, 20, 15), noisy(0.01, 20, 16)), window="5m")

    world.reach("Healthy")

    queries = world.queries
    assert queries and all(q.comparison is not None for q in queries)
    for query in queries:
        window = query.comparison
        assert window is not None
        assert window.end - window.start <= timedelta(minutes=5)
        assert 'revision="' in window.stable_query and window.stable_query != query.query
    first = queries[0].comparison
    assert first is not None
    started = next(
        p.before.step_started_at for p in world.passes if p.before.current_step_index == 2
    )
    assert started is not None and first.start >= started
    assert world.status.phase is Phase.HEALTHY


def test_kubectl_rollwise_status_shows_both_sides_and_the_test() -> None:
    from rollwise.cli.plugin_render import describe_comparison

    outcome = judge([0.2] * 10, [0.02] * 10, spec_of())

    line = describe_comparison(outcome.result)

    assert line.startswith("canary n=10 median 0.2 mean 0.2 | stable n=10 median 0.02")
    assert "MannWhitneyU (worse higher, alpha 0.05) U=100 p=5.41e-06 (exact) effect 1" in line


def test_a_comparison_gates_revision_placeholder_is_declared_and_typed_like_a_label_value() -> None:
    gate = comparison_gate()
    plain = MetricGateSpec.model_validate(
        gate.model_dump(by_alias=True, exclude_none=True)
        | {"comparison": None, "thresholdRange": {"max": 0.05}}
    )

    assert gate_template_problem(gate) is None
    assert "undeclared placeholders ['revision']" in (gate_template_problem(plain) or "")
    canary, stable = gatelib.resolve_comparison(
        "cmp", gate, GateRef(name="cmp"), CONTEXT | {"canary.revision": 'a"} or vector(1) #'}
    )
    assert 'revision="a\\"} or vector(1) #"' in canary and 'revision="def"' in stable


PROVIDERS: dict[str, dict[str, Any]] = {
    "prometheus": {"provider": {"prometheus": {"address": "http://prom:9090", "query": "up"}}},
    "comparison": {
        "provider": {"prometheus": {"address": "http://prom:9090", "query": QUERY}},
        "comparison": {"window": "5m", "step": "15s", "minSamples": 10},
        "thresholdRange": None,
    },
    "influxdb": {
        "provider": {
            "influxdb": {"address": "http://influx:8086", "database": "m", "query": "SELECT 1"}
        }
    },
    "graphite": {"provider": {"graphite": {"address": "http://graphite", "target": "a.b"}}},
    "web": {"provider": {"web": {"url": "http://slo.internal/v", "jsonPath": "$.v"}}},
}


@pytest.mark.parametrize("cluster", [False, True], ids=["MetricGate", "ClusterMetricGate"])
@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_every_measurement_names_whose_gate_it_is_for_the_outbound_policy(
    kind: str, cluster: bool
) -> None:
    """The outbound policy lets a ClusterMetricGate call any address and a namespaced one only
    the allow-list: every provider's query says which it is, and the service's namespace."""
    wire = {k: v for k, v in PROVIDERS[kind].items() if v is not None}
    gate = MetricGateSpec.model_validate(
        {"interval": "10s", "count": 1, "thresholdRange": {"max": 1}} | wire
        if "comparison" not in wire
        else {"interval": "10s", "count": 1} | wire
    )
    steps = [{"setWeight": 25}, {"analysis": {"gates": [{"name": "g", "cluster": cluster}]}}]
    spec = spec_from(strategy={"canary": {"steps": steps}})
    world = World(spec=spec, gates={("cluster:" if cluster else "") + "g": gate})
    world.reach("Healthy")
    world.spec = released(world.spec, "2.0.0")
    queries: list[GateQuery] = []
    for _ in range(20):  # the passes up to the analysis step's first measurement
        world.now += timedelta(seconds=5)
        queries = due_gates(world.spec, world.status, world.observed(), world.now)
        if queries:
            break
        world.step()

    assert [(q.gate, q.cluster, q.namespace) for q in queries] == [("g", cluster, "shop")]
