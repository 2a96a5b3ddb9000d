"""Canary versus stable on the real control plane: the simulator serves both revisions' request
metrics to the real Prometheus; a comparison gate samples each revision over the same window
(range queries) and decides by Mann-Whitney U. A canary with a real error-rate regression is
rolled back with both sides' numbers in status; an equal canary is promoted."""

from __future__ import annotations

import json
from typing import Any

from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import GROUP, VERSION, Rollouts, deploy_first_version, service_manifest
from tests.harness.run import HarnessRun

# The error rate of the revision measured; `or vector(0)` reads a revision without 500s as 0.
QUERY = (
    '(sum(rate(http_requests_total{namespace="{{service.namespace}}",service="{{args.service}}",'
    'revision="{{revision}}",code=~"5.."}[3s])) or vector(0))'
    ' / sum(rate(http_requests_total{namespace="{{service.namespace}}",'
    'service="{{args.service}}",revision="{{revision}}"}[3s]))'
)
STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analysis": {"gates": [{"name": "canary-vs-stable", "args": {"service": "payment"}}]}},
]


def keep(run: HarnessRun, name: str, status: dict[str, Any]) -> None:
    """The status as the test saw it, in the run's logs (docs/analysis-advanced.md quotes it)."""
    (run.log_dir / f"{name}.json").write_text(json.dumps(status, indent=2))


def comparison_gate(rollouts: Rollouts, prometheus: PrometheusServer) -> None:
    rollouts.create_gate(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MetricGate",
            "metadata": {"name": "canary-vs-stable", "namespace": rollouts.ns},
            "spec": {
                "args": [{"name": "service"}],
                "interval": "20s",
                "count": 1,
                "inconclusiveLimit": 1,
                "provider": {
                    "prometheus": {"address": prometheus.url, "query": QUERY, "timeout": "5s"}
                },
                "comparison": {
                    "window": "1m",
                    "step": "2s",
                    "minSamples": 8,
                    "worse": "higher",
                    "alpha": 0.05,
                    "effectSize": 0.6,
                    # Scrape jitter must not fail an equal canary: a regression is at least
                    # one point of error rate.
                    "minDifference": 0.01,
                },
            },
        }
    )


def test_a_canary_worse_than_stable_is_rolled_back_with_both_sides_in_status(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    comparison_gate(rollouts, prometheus)
    v1 = deploy_first_version(rollouts, steps=STEPS, error_rate=0.02, migration=False)

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=STEPS, error_rate=0.2, migration=False)
    )
    rolled = rollouts.wait_phase("RolledBack", timeout=150)
    keep(harness_run, "comparison-rolled-back", rolled)

    assert rolled["stable"]["revision"] == v1["stable"]["revision"]
    assert rolled["abort"]["reason"] == "GateFailed"
    assert "canary higher than stable" in rolled["abort"]["message"]
    [result] = [r for r in rolled["analysis"] if r["gate"] == "canary-vs-stable"]
    compared = result["comparison"]
    assert compared["canary"]["n"] >= 8 and compared["stable"]["n"] >= 8
    assert abs(compared["canary"]["median"] - 0.2) < 0.02
    assert abs(compared["stable"]["median"] - 0.02) < 0.01
    assert compared["p"] < 0.05 and compared["effect"] >= 0.6
    assert result["value"] == compared["p"]
    assert rolled["canary"]["revision"] in result["query"]


def test_a_canary_equal_to_stable_is_promoted_with_the_test_told(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    comparison_gate(rollouts, prometheus)
    deploy_first_version(rollouts, steps=STEPS, error_rate=0.02, migration=False)

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=STEPS, error_rate=0.02, migration=False)
    )
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=150)
    keep(harness_run, "comparison-promoted", done)

    assert done.get("abort") is None
    told = [
        e.message or ""
        for e in rollouts.events("StepCompleted")
        if "gate canary-vs-stable passed" in (e.message or "")
    ]
    assert told and "canary not worse than stable" in told[0] and "U=" in told[0]
