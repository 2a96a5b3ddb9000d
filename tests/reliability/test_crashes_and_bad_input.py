"""Reliability on the real control plane: the operator SIGKILLed at phase boundaries, Prometheus
down, bad input. Each asserts that nothing is lost or done twice, and that the user is told why."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import (
    Rollouts,
    deploy_first_version,
    gate_manifest,
    history_events,
    service_manifest,
)


def test_prometheus_down_gives_errors_and_aborts_after_the_error_limit(
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
    prometheus: PrometheusServer,
) -> None:
    deploy_first_version(rollouts)

    with prometheus.stopped():
        rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
        rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateError"
    assert "in a row" in rolled["abort"]["message"]
    result = next(r for r in rolled["analysis"] if r["gate"] == "error-rate")
    assert result["verdict"] == "Error" and result["consecutiveErrors"] == 3
    assert result.get("message"), "the error says why"


@pytest.mark.parametrize("crash_point", ["CreateMigrationJob"])
def test_operator_killed_after_creating_the_migration_job_runs_it_once(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess, crash_point: str
) -> None:
    v1 = deploy_first_version(rollouts)
    operator.stop()

    # The operator kills itself (SIGKILL) right after the Job exists, before status is written.
    operator.start(env={"ROLLWISE_CRASH_AFTER": crash_point})
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
    assert operator.wait_exit(timeout=60) == -9
    assert rollouts.status().get("migration", {}).get("version") != "2.0.0"
    operator.start()

    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    names = [j.metadata.name for j in rollouts.jobs()]
    assert len([n for n in names if n != f"payment-migrate-{v1['stable']['revision']}"]) == 1
    assert "MigrationAdopted" in history_events(done)


def test_operator_killed_mid_pause_keeps_the_deadline_and_repeats_no_step(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_first_version(rollouts, migration=False)
    steps = [{"setWeight": 25}, {"pause": {"duration": "12s"}}, {"setWeight": 50}]
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=steps))
    paused = rollouts.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s.get("pauseStartedAt"), 60, "the pause step"
    )
    started = paused["pauseStartedAt"]

    operator.kill()
    operator.start()
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)

    completed = [h for h in done["history"] if h["event"] == "StepCompleted"]
    assert [h["step"] for h in completed] == [0, 1, 2]
    pause_done = next(h for h in completed if h["step"] == 1)
    from datetime import datetime

    elapsed = datetime.fromisoformat(pause_done["at"]) - datetime.fromisoformat(started)
    assert 12 <= elapsed.total_seconds() < 25, "the pause kept its original start"


def test_operator_killed_mid_abort_finishes_the_rollback_once(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_first_version(rollouts, migration=False)
    rollouts.apply(
        service_manifest(rollouts.ns, "3.0.0", error_rate=0.5, migration=False, abort_delay=8)
    )
    rolling = rollouts.wait_status(lambda s: s.get("phase") == "RollingBack", 90, "rolling back")
    assert rolling["canaryWeight"] == 0

    operator.kill()
    operator.start()
    rolled = rollouts.wait_phase("RolledBack", timeout=60)

    events = history_events(rolled)
    assert events.count("GateFailed") == 1 and events.count("RolledBack") == 1
    assert rollouts.replica_sets()[rolled["canary"]["revision"]].spec.replicas == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s["strategy"]["canary"]["steps"].append({"setWeight": 150}), "setWeight"),
        (lambda s: s["strategy"]["canary"].update(steps=[]), "steps"),
        (
            lambda s: s["strategy"]["canary"]["steps"].append({"setWeight": 5, "pause": {}}),
            "exactly one of setWeight, pause, analysis",
        ),
        (
            lambda s: s["strategy"]["canary"]["steps"].append({"pause": {"duration": "soon"}}),
            "duration",
        ),
        (lambda s: s.update(replicas=-1), "replicas"),
        (
            lambda s: s["strategy"]["canary"].update(
                trafficRouting={"replicas": {}, "nginx": {"ingress": "x"}}
            ),
            "trafficRouting",
        ),
        (lambda s: s["template"]["spec"].update(containers=[]), "containers"),
        (
            lambda s: s["strategy"]["canary"]["steps"].append({"setMirror": 10}),
            "setMirror steps need trafficRouting.gatewayAPI",
        ),
        (lambda s: s["strategy"]["canary"]["steps"].append({"setMirror": 101}), "setMirror"),
        (
            lambda s: s["strategy"]["canary"].update(
                trafficRouting={"gatewayAPI": {"httpRoute": "x", "traefikNativeLB": True}}
            ),
            "traefikNativeLB applies to mirrorWith: TraefikService only",
        ),
    ],
)
def test_invalid_specs_are_rejected_by_the_apiserver_naming_the_field(
    rollouts: Rollouts, change: Any, field: str
) -> None:
    manifest = service_manifest(rollouts.ns, "1.0.0")
    change(manifest["spec"])

    with pytest.raises(ApiException) as raised:
        rollouts.apply(manifest)

    assert raised.value.status == 422
    assert field in str(raised.value.body)


def test_gate_arguments_cannot_break_out_of_the_label_matcher(
    rollouts: Rollouts, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    rollouts.create_gate(gate_manifest(rollouts.ns, prometheus.url))
    deploy_first_version(rollouts, migration=False)
    evil = [
        {"setWeight": 25},
        {
            "analysis": {
                "gates": [{"name": "error-rate", "args": {"service": 'payment"} or vector(0) #'}}]
            }
        },
    ]
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=evil))

    rolled = rollouts.wait_phase("RolledBack", timeout=90)

    # The value is escaped into the quoted matcher (core/promql): it stays one label value,
    # which no series has, so the gate never has data and never passes.
    assert rolled["abort"]["reason"] == "GateInconclusive"
    sent = [a["query"] for a in rolled["analysis"] if a["gate"] == "error-rate"]
    assert sent and all(r'service="payment\"} or vector(0) #"' in q for q in sent), sent


def test_a_name_too_long_for_derived_object_names_is_rejected(rollouts: Rollouts) -> None:
    manifest = service_manifest(rollouts.ns, "1.0.0", name="p" * 41)

    with pytest.raises(ApiException) as raised:
        rollouts.apply(manifest)

    assert raised.value.status == 422
    assert "metadata.name must be at most 40 characters" in str(raised.value.body)
