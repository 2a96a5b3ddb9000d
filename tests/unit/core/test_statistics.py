"""Mann-Whitney U: the exact p against a brute-force permutation count, the normal
approximation against the exact p, and properties of the statistic (hypothesis)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollwise.core.statistics import (
    EXACT_LIMIT,
    Method,
    Worse,
    _normal_upper_tail,
    mann_whitney_u,
    midranks,
    summarize,
)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
# Few distinct values: many ties, the hard case for a rank test.
tied = st.integers(min_value=0, max_value=4).map(float)
samples = st.lists(values, min_size=1, max_size=30)
tied_samples = st.lists(tied, min_size=1, max_size=30)


def brute_force_p(canary: list[float], stable: list[float]) -> float:
    """P(rank sum >= observed) over every way of choosing which values are the canary's."""
    ranks = midranks(canary + stable)
    observed = sum(ranks[: len(canary)])
    n = len(ranks)
    hits = sum(
        1
        for chosen in itertools.combinations(range(n), len(canary))
        if sum(ranks[i] for i in chosen) >= observed - 1e-9
    )
    return hits / math.comb(n, len(canary))


def test_midranks_share_the_mean_rank_of_a_tie() -> None:
    assert midranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def test_three_canary_values_above_three_stable_values_give_p_one_in_twenty() -> None:
    test = mann_whitney_u([4, 5, 6], [1, 2, 3])

    assert (test.u, test.p, test.effect, test.method) == (9.0, 0.05, 1.0, Method.EXACT)


def test_all_values_tied_is_no_evidence_either_way() -> None:
    test = mann_whitney_u([0.0] * 20, [0.0] * 20)

    assert test.p == 1.0
    assert test.effect == 0.5


def test_worse_lower_tests_the_other_tail() -> None:
    higher = mann_whitney_u([1, 2, 3], [4, 5, 6], Worse.HIGHER)
    lower = mann_whitney_u([1, 2, 3], [4, 5, 6], Worse.LOWER)

    assert higher.p == 1.0
    assert lower.p == 0.05


def test_summary_drops_no_data_and_gives_median_and_mean() -> None:
    summary = summarize([1.0, math.nan, 2.0, 6.0, math.inf])

    assert (summary.n, summary.median, summary.mean) == (3, 2.0, 3.0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(tied, min_size=1, max_size=6),
    st.lists(tied, min_size=1, max_size=6),
)
def test_exact_p_is_the_permutation_probability_with_ties(
    canary: list[float], stable: list[float]
) -> None:
    assert mann_whitney_u(canary, stable).p == pytest.approx(brute_force_p(canary, stable))


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_p_is_a_probability_and_effect_a_proportion(
    canary: list[float], stable: list[float]
) -> None:
    test = mann_whitney_u(canary, stable)

    assert 0.0 <= test.p <= 1.0
    assert 0.0 <= test.effect <= 1.0
    assert test.u == pytest.approx(test.effect * len(canary) * len(stable))


@settings(max_examples=100, deadline=None)
@given(tied_samples, tied_samples)
def test_swapping_the_sides_mirrors_the_statistic(canary: list[float], stable: list[float]) -> None:
    """U(canary, stable) + U(stable, canary) = n1 * n2, and testing "canary worse when higher"
    with the sides swapped is testing "worse when lower" as given."""
    forward = mann_whitney_u(canary, stable)
    backward = mann_whitney_u(stable, canary)

    assert forward.u + backward.u == pytest.approx(len(canary) * len(stable))
    assert backward.p == pytest.approx(mann_whitney_u(canary, stable, Worse.LOWER).p)


@settings(max_examples=100, deadline=None)
@given(samples, samples, st.floats(min_value=-1e3, max_value=1e3))
def test_shifting_both_samples_by_the_same_amount_changes_nothing(
    canary: list[float], stable: list[float], shift: float
) -> None:
    # Integral-ish values so the shift cannot merge or split ties by rounding.
    canary = [round(v) for v in canary]
    stable = [round(v) for v in stable]
    shift = round(shift)
    moved = mann_whitney_u([v + shift for v in canary], [v + shift for v in stable])

    assert moved == mann_whitney_u(canary, stable)


@settings(max_examples=60, deadline=None)
@given(tied_samples, tied_samples, st.floats(min_value=0.5, max_value=100))
def test_a_worse_canary_never_lowers_the_evidence_against_it(
    canary: list[float], stable: list[float], worsen: float
) -> None:
    """Making every canary value worse can only raise U and lower p."""
    before = mann_whitney_u(canary, stable)
    after = mann_whitney_u([v + worsen for v in canary], stable)

    assert after.u >= before.u
    assert after.p <= before.p + 1e-12


def test_above_the_exact_limit_the_normal_approximation_is_used() -> None:
    rng = random.Random(7)
    canary = [rng.gauss(0, 1) for _ in range(40)]
    stable = [rng.gauss(0, 1) for _ in range(40)]

    assert len(canary) + len(stable) > EXACT_LIMIT
    assert mann_whitney_u(canary, stable).method is Method.NORMAL


@pytest.mark.parametrize("seed", range(10))
def test_normal_approximation_is_close_to_the_exact_p_at_the_limit(seed: int) -> None:
    """At n1 = n2 = 25 (the exact limit) with ties, the two agree to within 0.01."""
    rng = random.Random(seed)
    canary = [float(rng.randint(0, 6) + (seed % 3 == 0)) for _ in range(25)]
    stable = [float(rng.randint(0, 6)) for _ in range(25)]
    exact = mann_whitney_u(canary, stable)
    ranks = midranks(canary + stable)

    assert exact.method is Method.EXACT
    assert _normal_upper_tail(ranks, 25, 25, exact.u) == pytest.approx(exact.p, abs=0.01)
