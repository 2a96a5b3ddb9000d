"""Comparison gates: the canary's samples against stable's, judged by a Mann-Whitney U test.

Too few samples on either side is Inconclusive (never a pass); the canary fails only when it is
worse with significance (p < alpha) and by at least the declared effect size (and difference of
medians, when declared); otherwise it passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rollwise.api.gates import Comparison
from rollwise.api.service_status import ComparisonResult, SampleSummary, Verdict
from rollwise.core.statistics import Summary, Worse, mann_whitney_u, summarize


@dataclass(frozen=True)
class ComparisonOutcome:
    """A verdict, the sentence that explains it, and the numbers for status."""

    verdict: Verdict
    message: str
    result: ComparisonResult

    @property
    def p(self) -> float | None:
        return self.result.p


def _shown(summary: Summary) -> SampleSummary:
    return SampleSummary(n=summary.n, median=summary.median, mean=summary.mean)


def _side(name: str, summary: Summary) -> str:
    if summary.median is None:
        return f"{name} n=0"
    return f"{name} median {summary.median:.6g} (n={summary.n})"


def judge(canary: Sequence[float], stable: Sequence[float], spec: Comparison) -> ComparisonOutcome:
    """The comparison's verdict on the two revisions' samples (NaN and +-Inf dropped)."""
    worse = Worse(spec.worse)
    ours, theirs = summarize(canary), summarize(stable)
    result = ComparisonResult(
        test=spec.test,
        canary=_shown(ours),
        stable=_shown(theirs),
        alpha=spec.alpha,
        worse=worse.value,
    )
    sides = f"{_side('canary', ours)} vs {_side('stable', theirs)}"
    if ours.n < spec.min_samples or theirs.n < spec.min_samples:
        return ComparisonOutcome(
            Verdict.INCONCLUSIVE,
            f"{sides}: too few samples (minSamples {spec.min_samples}); too little data never "
            "passes",
            result,
        )
    test = mann_whitney_u(canary, stable, worse)
    result = result.model_copy(
        update={"u": test.u, "p": test.p, "effect": test.effect, "method": test.method.value}
    )
    numbers = f"U={test.u:g}, p={test.p:.3g} ({test.method}), effect {test.effect:.3f}"
    assert ours.median is not None and theirs.median is not None
    difference = ours.median - theirs.median
    if worse is Worse.LOWER:
        difference = -difference
    significant = test.p < spec.alpha
    large = test.effect >= spec.effect_size
    material = spec.min_difference is None or difference >= spec.min_difference
    if significant and large and material:
        return ComparisonOutcome(
            Verdict.FAILED,
            f"canary {worse} than stable: {sides}; {numbers} "
            f"(p < alpha {spec.alpha:g}, effect >= {spec.effect_size:g}"
            + (f", difference >= {spec.min_difference:g}" if spec.min_difference else "")
            + ")",
            result,
        )
    why = []
    if not significant:
        why.append(f"p >= alpha {spec.alpha:g}")
    if not large:
        why.append(f"effect < {spec.effect_size:g}")
    if not material:
        why.append(f"median difference {difference:.6g} < {spec.min_difference:g}")
    return ComparisonOutcome(
        Verdict.PASSED,
        f"canary not worse than stable: {sides}; {numbers} ({', '.join(why)})",
        result,
    )
