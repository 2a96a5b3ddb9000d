"""Mann-Whitney U, in pure Python: the statistic behind a canary-versus-stable comparison gate.

The test is one-sided: "is the canary worse than stable?", worse meaning its values are higher
(error rates, latencies) or lower (throughput, success rates). `canary` and `stable` are the
per-interval samples of one query, one per revision, over the same window.

p is exact (the permutation distribution of the rank sum, ties kept as midranks, so the test is
exact with ties too) for up to EXACT_LIMIT samples in all, and otherwise the normal
approximation with the tie correction of the variance and a continuity correction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import fmean, median

EXACT_LIMIT = 50  # n1 + n2 up to this: exact p (a few ms); above it the normal approximation


class Worse(StrEnum):
    """Which direction of the canary's values is a regression."""

    HIGHER = "higher"
    LOWER = "lower"


class Method(StrEnum):
    EXACT = "exact"
    NORMAL = "normal"


@dataclass(frozen=True)
class Summary:
    """One side's samples, as status shows them."""

    n: int
    median: float | None
    mean: float | None


@dataclass(frozen=True)
class MannWhitney:
    """U counts the (canary, stable) pairs where the canary is worse, a tie as one half;
    p is the one-sided probability of a U at least this large when both revisions are alike;
    effect is U / (n1 * n2): the probability that a canary interval is worse than a stable one
    (Vargha-Delaney A; 0.5 means no difference, 1.0 every canary interval worse)."""

    u: float
    p: float
    effect: float
    method: Method


def finite(values: Sequence[float]) -> list[float]:
    """The values that are data: NaN and +-Inf (an interval without traffic) dropped."""
    return [v for v in values if math.isfinite(v)]


def summarize(values: Sequence[float]) -> Summary:
    data = finite(values)
    if not data:
        return Summary(n=0, median=None, mean=None)
    return Summary(n=len(data), median=float(median(data)), mean=fmean(data))


def midranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def mann_whitney_u(
    canary: Sequence[float], stable: Sequence[float], worse: Worse = Worse.HIGHER
) -> MannWhitney:
    """The one-sided test that the canary's values are worse (in direction `worse`) than
    stable's. Both samples need at least one value."""
    xs, ys = finite(canary), finite(stable)
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs at least one value on each side")
    if worse is Worse.LOWER:  # worse = lower is worse = higher of the negated values
        xs, ys = [-x for x in xs], [-y for y in ys]
    ranks = midranks(xs + ys)
    rank_sum = sum(ranks[:n1])
    u = rank_sum - n1 * (n1 + 1) / 2
    if n1 + n2 <= EXACT_LIMIT:
        p, method = _exact_upper_tail(ranks, n1, rank_sum), Method.EXACT
    else:
        p, method = _normal_upper_tail(ranks, n1, n2, u), Method.NORMAL
    return MannWhitney(u=u, p=min(1.0, max(0.0, p)), effect=u / (n1 * n2), method=method)


def _exact_upper_tail(ranks: list[float], n1: int, rank_sum: float) -> float:
    """P(rank sum of n1 values drawn without replacement from `ranks` >= rank_sum).

    Counts the subsets of size n1 by their rank sum with a generating function packed into
    Python integers: row k holds, in fixed-width fields, the number of k-subsets per (doubled,
    so integral) rank sum. Each count is below 2**N, so fields of N+1 bits never overflow.
    """
    doubled = [round(2 * r) for r in ranks]
    n = len(doubled)
    field_bytes = n // 8 + 1
    width = 8 * field_bytes
    rows = [0] * (n1 + 1)
    rows[0] = 1
    for i, r in enumerate(doubled):
        shift = r * width
        for k in range(min(i + 1, n1), 0, -1):
            if rows[k - 1]:
                rows[k] += rows[k - 1] << shift
    tail = rows[n1] >> (round(2 * rank_sum) * width)
    raw = tail.to_bytes((tail.bit_length() + 7) // 8, "little")
    count = sum(
        int.from_bytes(raw[j : j + field_bytes], "little") for j in range(0, len(raw), field_bytes)
    )
    return count / math.comb(n, n1)


def _normal_upper_tail(ranks: list[float], n1: int, n2: int, u: float) -> float:
    """The normal approximation of P(U >= u), variance corrected for ties, with a continuity
    correction. All values tied: no evidence either way, p = 1."""
    n = n1 + n2
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    ties = sum(t**3 - t for t in counts.values())
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))
