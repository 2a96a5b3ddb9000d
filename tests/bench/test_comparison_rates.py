"""The comparison gate's measured error rates: over 2,000 seeded A/A runs each, an equal
canary fails at most alpha + 1.5 points (three standard errors of a 2,000-run rate) of the
time; over 2,000 seeded A/B runs it catches a doubled error rate and a +10% p99 latency at least
80% of the time. tests/bench/comparison_rates.py writes the full table."""

from __future__ import annotations

import pytest

from tests.bench.comparison_rates import GATE, SCENARIOS, fail_rate

RUNS = 2000
MARGIN = 0.015


@pytest.mark.parametrize("scenario", ["aa_error_rate", "aa_error_rate_low", "aa_latency"])
def test_false_positive_rate_over_aa_runs_is_within_alpha(scenario: str) -> None:
    measured = fail_rate(SCENARIOS[scenario], RUNS)

    assert measured["inconclusive"] == 0
    assert measured["fail_rate"] <= GATE.alpha + MARGIN, measured


@pytest.mark.parametrize(
    ("scenario", "power"), [("ab_error_rate_x2", 0.90), ("ab_latency_+10%", 0.80)]
)
def test_detection_power_over_ab_runs_at_the_stated_effect(scenario: str, power: float) -> None:
    measured = fail_rate(SCENARIOS[scenario], RUNS)

    assert measured["fail_rate"] >= power, measured
