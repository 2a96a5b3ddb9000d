"""Blue-green on the real control plane (kwok pods, the simulator's traffic in the real
Prometheus): the new revision at full size behind the preview Service, analysis on it, the
active Service's selector switched in one write, analysis after the switch with a switch back,
the old revision scaled down after the delay."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import Rollouts, gate_manifest, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

REVISION = "rollwise.dev/revision"


def blue_green(rollouts: Rollouts, **strategy: Any) -> dict[str, Any]:
    """`payment` with a blue-green strategy (its steps are filled in by the operator)."""
    manifest = service_manifest(rollouts.ns, "1.0.0", migration=False)
    manifest["spec"]["strategy"] = {
        "blueGreen": {
            "prePromotionAnalysis": {
                "gates": [{"name": "preview-errors", "args": {"service": "payment"}}]
            },
            "postPromotionAnalysis": {
                "gates": [{"name": "active-errors", "args": {"service": "payment"}}]
            },
            "autoPromotion": True,
            "scaleDownDelaySeconds": 4,
        }
        | strategy
    }
    return manifest


def version(manifest: dict[str, Any], v: str, error_rate: float) -> dict[str, Any]:
    new = json.loads(json.dumps(manifest))
    new["spec"]["version"] = v
    container = new["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"example.com/payment:{v}"
    container["env"] = [{"name": "SIM_ERROR_RATE", "value": str(error_rate)}]
    return new


def active_selector(rollouts: Rollouts) -> str | None:
    service = rollouts.core.read_namespaced_service("payment", rollouts.ns)
    return (service.spec.selector or {}).get(REVISION)


def gates(rollouts: Rollouts, prometheus: PrometheusServer, preview_max: float) -> None:
    # Before the switch a looser gate than after it: a canary at 30% errors passes the preview
    # and fails once it serves, which is how the switch back is shown.
    rollouts.create_gate(
        gate_manifest(rollouts.ns, prometheus.url, name="preview-errors", max_value=preview_max)
    )
    rollouts.create_gate(
        gate_manifest(rollouts.ns, prometheus.url, name="active-errors", max_value=0.05)
    )


def test_a_healthy_green_is_switched_to_in_one_write_and_blue_scaled_down_after_the_delay(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    gates(rollouts, prometheus, preview_max=0.05)
    manifest = blue_green(rollouts)
    rollouts.apply(manifest)
    blue = rollouts.wait_phase("Healthy", version="1.0.0")
    blue_revision = blue["stable"]["revision"]

    rollouts.apply(version(manifest, "2.0.0", 0.0))
    preview = rollouts.wait_status(
        lambda s: (s.get("canary") or {}).get("readyReplicas") == 4,
        timeout=90,
        message="green at full size",
    )
    green_revision = preview["canary"]["revision"]
    assert preview["canaryWeight"] == 0
    assert active_selector(rollouts) == blue_revision, "blue serves while green is previewed"
    preview_service = rollouts.core.read_namespaced_service("payment-canary", rollouts.ns)
    assert preview_service.spec.selector[REVISION] == green_revision

    wait_for(
        lambda: active_selector(rollouts) == green_revision,
        timeout=90,
        interval=0.1,
        message="the active Service switched to green",
    )
    switched_at = time.monotonic()
    assert rollouts.replica_sets()[blue_revision].spec.replicas == 4, "blue kept for the delay"

    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
    assert time.monotonic() - switched_at >= 4
    wait_for(
        lambda: not rollouts.pods(blue_revision),
        timeout=30,
        message="blue scaled down",
    )
    assert active_selector(rollouts) == green_revision
    (harness_run.log_dir / "blue-green-promoted.json").write_text(json.dumps(done, indent=2))


def test_a_green_failing_after_the_switch_is_switched_back_at_once(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    gates(rollouts, prometheus, preview_max=0.5)
    manifest = blue_green(rollouts)
    rollouts.apply(manifest)
    blue = rollouts.wait_phase("Healthy", version="1.0.0")
    blue_revision = blue["stable"]["revision"]

    rollouts.apply(version(manifest, "2.0.0", 0.3))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)
    (harness_run.log_dir / "blue-green-switched-back.json").write_text(json.dumps(rolled, indent=2))

    assert rolled["abort"]["reason"] == "GateFailed"
    assert "active-errors" in rolled["abort"]["message"]
    assert active_selector(rollouts) == blue_revision
    assert rollouts.replica_sets()[blue_revision].spec.replicas == 4
    switched = [
        h for h in rolled["history"] if h["event"] == "StepCompleted" and h.get("weight") == 100
    ]
    assert switched, "green served (the switch happened) before it was switched back"
