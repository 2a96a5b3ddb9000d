"""Blue-green through a real Gateway API data plane: real requests through Traefik while the
switch happens; the switch time is what the gateway's clients observe, from the `promote`
request to the last answer from blue and the first from green. Pods answer from real HTTP
servers on their loopback IPs (tests/harness/pod_http.py)."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from tests.harness import load
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts
from tests.harness.run import HarnessRun
from tests.harness.traefik import TraefikGateway, get_ok, route_accepted
from tests.harness.wait import hold_for, wait_for
from tests.integration.test_gateway_traffic import (
    NAME,
    Route,
    request_id,
    route,
    traffic_manifest,
)

pytestmark = pytest.mark.cluster
__all__ = ["route"]  # the fixture, used by name

RATE = 200.0


def blue_green_manifest(namespace: str, version: str) -> dict[str, Any]:
    manifest = traffic_manifest(namespace, version, [{"setWeight": 0}])
    manifest["spec"]["strategy"] = {
        "blueGreen": {
            "autoPromotion": False,
            "scaleDownDelaySeconds": 5,
            "trafficRouting": {"gatewayAPI": {"httpRoute": NAME}},
        }
    }
    return manifest


def runs_green(traefik: TraefikGateway, namespace: str) -> bool:
    """Traefik's weighted service for this route gives green (the canary Service) all the
    weight: its backends are named `...-svc-<namespace>-<name>-<stable|canary>-<n>@...`."""
    canary = f"-svc-{namespace}-{NAME}-canary-"
    for service in traefik.services():
        backends = (service.get("weighted") or {}).get("services") or []
        names = [str(b.get("name", "")) for b in backends]
        if not any(f"-svc-{namespace}-{NAME}-" in n for n in names):
            continue
        green = sum(int(b.get("weight", 1)) for b in backends if canary in str(b.get("name")))
        blue = sum(int(b.get("weight", 1)) for b in backends if canary not in str(b.get("name")))
        return green > 0 and blue == 0
    return False


def test_the_gateway_switches_from_blue_to_green_at_promote_without_a_failed_request(
    harness_run: HarnessRun,
    traefik: TraefikGateway,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    rollouts.apply(blue_green_manifest(rollouts.ns, "1.0.0"))
    blue = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)["stable"]["revision"]
    wait_for(lambda: route_accepted(route.get()), timeout=30, message="HTTPRoute accepted")
    wait_for(lambda: get_ok(traefik.url, route.headers), timeout=30, message="gateway answers")

    rollouts.apply(blue_green_manifest(rollouts.ns, "2.0.0"))
    waiting = rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and (s.get("canary") or {}).get("readyReplicas") == 4,
        timeout=90,
        message="green at full size, waiting for promote",
    )
    green = waiting["canary"]["revision"]

    with load.BackgroundLoad(traefik.url, rate=RATE, seconds=60, headers=route.headers) as sent:
        # Blue alone serves while green waits at full size (and the load warms up).
        hold_for(
            lambda: route.weights().get(f"{NAME}-canary", 0) == 0,
            duration=2,
            message="the route stays on blue before promote",
        )
        promoted_at = time.monotonic()
        rollouts.request(NAME, "promote", request_id(), "test")
        wait_for(
            lambda: route.weights().get(f"{NAME}-canary") == 100,
            timeout=30,
            interval=0.05,
            message="HTTPRoute at green",
        )
        route_switched = time.monotonic()
        wait_for(
            functools.partial(runs_green, traefik, rollouts.ns),
            timeout=30,
            interval=0.05,
            message="Traefik runs green",
        )
        traefik_switched = time.monotonic()
        hold_for(
            lambda: runs_green(traefik, rollouts.ns),
            duration=2,
            message="Traefik stays on green",
        )
        sent.stop()
    result = sent.result
    assert result is not None

    assert result.by_status() == {200: len(result.responses)}, result.by_status()
    before = [r for r in result.responses if r.sent_at < promoted_at]
    assert before and {r.revision for r in before} == {blue}
    first_green = min(r.sent_at for r in result.responses if r.revision == green)
    last_blue = max(r.sent_at for r in result.responses if r.revision == blue)
    after = [r for r in result.responses if r.sent_at > traefik_switched]
    assert after and {r.revision for r in after} == {green}, "blue answered after the switch"
    timings = {
        "route": route_switched - promoted_at,
        "traefik": traefik_switched - promoted_at,
        "first_green": first_green - promoted_at,
        "last_blue": last_blue - promoted_at,
    }
    told = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    harness_run.note(
        f"blue-green switch at the gateway after promote: {told}; "
        f"{len(result.responses)} requests, none failed"
    )
    (harness_run.log_dir / "blue-green-switch.txt").write_text(told + "\n")
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
