"""Adaptive steps on the real control plane: the canary's weight rises by the real gate's
margin (Prometheus measuring the simulator's traffic), each decision in history and Events;
a canary past its threshold is rolled back without rising."""

from __future__ import annotations

import json
from typing import Any

from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, deploy_first_version, service_manifest
from tests.harness.run import HarnessRun


def keep(run: HarnessRun, name: str, status: dict[str, Any]) -> None:
    """The status as the test saw it, in the run's logs (docs/analysis-advanced.md quotes it)."""
    (run.log_dir / f"{name}.json").write_text(json.dumps(status, indent=2))


STEPS: list[dict[str, Any]] = [
    {
        "adaptive": {
            "minWeight": 25,
            "maxWeight": 75,
            "minStep": 25,
            "maxStep": 50,
            "interval": "4s",
            "maxHolds": 3,
            "gates": [{"name": "error-rate", "args": {"service": "payment"}}],
        }
    }
]


def test_a_healthy_canary_rises_by_its_margin_to_max_weight_and_is_promoted(
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    deploy_first_version(rollouts, steps=STEPS, migration=False)

    # error rate 0.01 against max 0.05: margin 0.8, so each pass rises by 25 + 0.8 * 25 = 45.
    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=STEPS, error_rate=0.01, migration=False)
    )
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=150)
    keep(harness_run, "adaptive-promoted", done)

    raised = [h for h in done["history"] if h["event"] == "AdaptiveWeightRaised"]
    # 69 if Prometheus' ratio lands a hair above 0.01.
    assert raised[0]["weight"] in (69, 70) and raised[-1]["weight"] == 75
    assert len(raised) == 2
    assert "margin 0.80: 25% -> " in raised[0]["message"]
    assert all("error-rate Passed margin" in h["message"] for h in raised)
    events = [e.message or "" for e in rollouts.events("AdaptiveWeightRaised")]
    assert len(events) == 2


def test_a_canary_past_its_threshold_is_rolled_back_at_its_first_weight(
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    v1 = deploy_first_version(rollouts, steps=STEPS, migration=False)

    rollouts.apply(
        service_manifest(rollouts.ns, "3.0.0", steps=STEPS, error_rate=0.5, migration=False)
    )
    rolled = rollouts.wait_phase("RolledBack", timeout=150)
    keep(harness_run, "adaptive-rolled-back", rolled)

    assert rolled["stable"]["revision"] == v1["stable"]["revision"]
    assert rolled["abort"]["reason"] == "GateFailed"
    assert not [h for h in rolled["history"] if h["event"] == "AdaptiveWeightRaised"]
