"""The comparison gate's error rates, measured by simulation.

False-positive rate: A/A runs, the canary drawn from the same distribution as stable, and the
share of runs the gate fails. Detection power: A/B runs with a stated regression, and the share
of runs it fails. Each run is seeded, so the numbers are reproducible.

Noise is what per-interval samples of a real service look like: an interval's request count is
Poisson around rps * step, its errors Poisson around requests * rate with the rate itself
varying from interval to interval (log-normal, sigma 0.3: bursts), so error rates are discrete
and tie often (many intervals read 0 at low rates); the interval's p99 latency is log-normal
around its base (sigma 0.1) with an occasional slow interval (5%, x1.5).

Run: ``python -m tests.bench.comparison_rates [--runs 2000]``; writes
``tests/bench/results/<timestamp>-comparison.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollwise.api.gates import Comparison
from rollwise.api.service_status import Verdict
from rollwise.core.comparison import judge

RESULTS = Path(__file__).parent / "results"
RPS = 20.0
STEP_S = 15.0
SAMPLES = 20  # a 5m window at a 15s step
GATE = Comparison.model_validate({"window": "5m", "step": "15s"})  # alpha 0.05, effect 0.6


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, the normal approximation above."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def error_rates(rng: random.Random, rate: float, n: int) -> list[float]:
    out = []
    for _ in range(n):
        requests = max(1, poisson(rng, RPS * STEP_S))
        burst = rate * math.exp(rng.gauss(0, 0.3) - 0.045)
        out.append(poisson(rng, requests * burst) / requests)
    return out


def p99_latencies(rng: random.Random, base_ms: float, n: int) -> list[float]:
    out = []
    for _ in range(n):
        value = base_ms * math.exp(rng.gauss(0, 0.1))
        if rng.random() < 0.05:
            value *= 1.5
        out.append(value)
    return out


@dataclass(frozen=True)
class Scenario:
    name: str
    metric: str
    stable: float
    canary: float
    draw: Callable[[random.Random, float, int], list[float]]


SCENARIOS = {
    "aa_error_rate": Scenario("A/A error rate 1%", "error_rate", 0.01, 0.01, error_rates),
    "aa_error_rate_low": Scenario("A/A error rate 0.1%", "error_rate", 0.001, 0.001, error_rates),
    "aa_latency": Scenario("A/A p99 120ms", "latency", 120.0, 120.0, p99_latencies),
    "ab_error_rate_x1.5": Scenario("error rate 1% -> 1.5%", "error_rate", 0.01, 0.015, error_rates),
    "ab_error_rate_x2": Scenario("error rate 1% -> 2%", "error_rate", 0.01, 0.02, error_rates),
    "ab_error_rate_x3": Scenario("error rate 1% -> 3%", "error_rate", 0.01, 0.03, error_rates),
    "ab_latency_+5%": Scenario("p99 120ms -> 126ms", "latency", 120.0, 126.0, p99_latencies),
    "ab_latency_+10%": Scenario("p99 120ms -> 132ms", "latency", 120.0, 132.0, p99_latencies),
    "ab_latency_+20%": Scenario("p99 120ms -> 144ms", "latency", 120.0, 144.0, p99_latencies),
}


def fail_rate(
    scenario: Scenario, runs: int, seed: int = 0, gate: Comparison = GATE
) -> dict[str, Any]:
    """The share of `runs` seeded runs the gate failed (and was inconclusive)."""
    failed = inconclusive = 0
    for run in range(runs):
        rng = random.Random(f"{seed}:{scenario.name}:{run}")
        stable = scenario.draw(rng, scenario.stable, SAMPLES)
        canary = scenario.draw(rng, scenario.canary, SAMPLES)
        verdict = judge(canary, stable, gate).verdict
        failed += verdict is Verdict.FAILED
        inconclusive += verdict is Verdict.INCONCLUSIVE
    rate = failed / runs
    return {
        "scenario": scenario.name,
        "metric": scenario.metric,
        "stable": scenario.stable,
        "canary": scenario.canary,
        "runs": runs,
        "failed": failed,
        "inconclusive": inconclusive,
        "fail_rate": rate,
        # A 95% Wilson interval for the rate.
        "ci95": list(wilson(failed, runs)),
    }


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def measure(runs: int, seed: int = 0) -> dict[str, Any]:
    started = time.monotonic()
    results = {key: fail_rate(s, runs, seed) for key, s in SCENARIOS.items()}
    return {
        "machine": {"python": platform.python_version()},
        "gate": GATE.to_wire() | {"samples_per_side": SAMPLES},
        "noise": "error rate: Poisson(requests=20rps*15s) x Poisson(errors), rate log-normal "
        "sigma 0.3 per interval; p99 latency: log-normal sigma 0.1, 5% of intervals x1.5",
        "false_positive_rate": {k: v for k, v in results.items() if k.startswith("aa_")},
        "power": {k: v for k, v in results.items() if k.startswith("ab_")},
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = measure(args.runs, args.seed)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{stamp}-comparison.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for section in ("false_positive_rate", "power"):
        for row in result[section].values():
            print(f"{section:20} {row['scenario']:28} {row['fail_rate']:.4f}  ci95 {row['ci95']}")
    print(f"wrote {path} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
