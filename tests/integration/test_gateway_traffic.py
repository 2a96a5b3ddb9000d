"""Real traffic through a real Gateway API data plane.

Traefik (the `traefik` fixture) routes real HTTP requests from a bounded load generator by the
HTTPRoute that rollwise's `gatewayAPI` router writes; pods answer from real HTTP servers on
their loopback IPs (tests/harness/pod_http.py), which count every request they answer. Shares
are counted from the answering pods' own response headers and cross-checked against the counts
at the pods; gates read Traefik's own request metrics as scraped by Prometheus.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import load
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import Rollouts, gate_manifest, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.simulator_process import SimulatorProcess
from tests.harness.traefik import (
    TraefikGateway,
    backend_service,
    get_ok,
    parent_ref,
    route_accepted,
)
from tests.harness.wait import hold_for, wait_for

pytestmark = pytest.mark.cluster

NAME = "payment"
PORT = 80
TARGET_PORT = 8080
REQUESTS_PER_WEIGHT = 1000
RATE = 200.0  # requests per second through the gateway
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")

# A gate on what the data plane measured: the 5xx share of the requests Traefik sent to the
# canary Service's backend (`<namespace>-<name>-canary-<port>`), from Traefik's own counters.
GATEWAY_ERROR_RATE_QUERY = (
    "(sum(rate(traefik_service_requests_total{"
    'service=~"(.+-svc-)?{{service.namespace}}-{{args.service}}-canary-.*",'
    'code=~"5.."}[5s])) or vector(0))'
    " / sum(rate(traefik_service_requests_total{"
    'service=~"(.+-svc-)?{{service.namespace}}-{{args.service}}-canary-.*"}[5s]))'
)


def tolerance(p: float, n: int) -> float:
    """Four binomial standard deviations of a share p over n requests: a correct split fails
    this by chance about once in 16,000 measurements (floor 0.01 for p near 0 or 1)."""
    return max(0.01, 4 * math.sqrt(p * (1 - p) / n))


def traffic_manifest(
    namespace: str,
    version: str,
    steps: list[dict[str, Any]],
    *,
    error_rate: float = 0.0,
    abort_delay: int = 2,
    replicas: int = 4,
) -> dict[str, Any]:
    """`payment` routed by the gatewayAPI router through HTTPRoute `payment`; its pods declare
    the HTTP port the pod servers listen on and export no simulated series (SIM_RPS=0)."""
    manifest = service_manifest(
        namespace,
        version,
        replicas=replicas,
        error_rate=error_rate,
        rps=0,
        migration=False,
        steps=steps,
        abort_delay=abort_delay,
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": TARGET_PORT}]
    container["env"].append({"name": "SIM_LATENCY_MS", "value": "2"})
    manifest["spec"]["service"] = {"port": PORT, "targetPort": TARGET_PORT}
    manifest["spec"]["strategy"]["canary"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": NAME}}
    return manifest


def host(namespace: str) -> str:
    """Each test's route has its own hostname: tests share the Gateway, and a route of a
    namespace still being deleted must not answer for the next test."""
    return f"{namespace}.gateway.test"


def http_route(namespace: str) -> dict[str, Any]:
    """The user's HTTPRoute: everything for the test's host to `payment-stable`; rollwise adds
    the canary."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "parentRefs": [parent_ref()],
            "hostnames": [host(namespace)],
            "rules": [{"backendRefs": [{"name": f"{NAME}-stable", "port": PORT}]}],
        },
    }


class Route:
    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.ns = namespace
        self.headers = {"Host": host(namespace)}  # what a client of this route sends

    def create(self) -> None:
        self.custom.create_namespaced_custom_object(
            *ROUTES[:2], self.ns, ROUTES[2], http_route(self.ns)
        )

    def get(self) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(*ROUTES[:2], self.ns, ROUTES[2], NAME)
        assert isinstance(obj, dict)
        return obj

    def weights(self) -> dict[str, int]:
        """backendRef name -> weight, as written in the HTTPRoute."""
        rules = self.get()["spec"]["rules"]
        return {ref["name"]: int(ref.get("weight", 1)) for ref in rules[0]["backendRefs"]}


def applied(traefik: TraefikGateway, namespace: str, canary_weight: int) -> bool:
    """Traefik runs the split stable 100-w / canary w (its API, not the HTTPRoute)."""
    weights = traefik.applied_weights(f"{namespace}-{NAME}-")
    if weights is None:
        return canary_weight == 0  # one plain backend: all to stable
    # Backends are named <namespace>-<service>-<port>: match the whole prefix, since a test's
    # namespace name may itself contain "-canary-".
    canary_prefix = f"{namespace}-{NAME}-canary-"
    by_role = {
        ("canary" if backend_service(k).startswith(canary_prefix) else "stable"): v
        for k, v in weights.items()
    }
    return (
        by_role.get("canary", 0) == canary_weight and by_role.get("stable") == 100 - canary_weight
    )


def pod_counts(simulator: SimulatorProcess, namespace: str) -> dict[str, int]:
    """Requests answered at the pods of ``namespace``, by revision (the pods' own counters)."""
    totals: dict[str, int] = {}
    for family in text_string_to_metric_families(simulator.metrics_text()):
        if family.name != "rollwise_pod_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["namespace"] == namespace:
                revision = sample.labels["revision"]
                totals[revision] = totals.get(revision, 0) + int(sample.value)
    return totals


def paused_at(weight: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        return status.get("canaryWeight") == weight and status.get("phase") == "Paused"

    return check


def request_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def route(api_client: ApiClient, namespace: str, traefik: TraefikGateway) -> Route:
    made = Route(api_client, namespace)
    made.create()
    return made


def deploy_v1_behind_gateway(
    rollouts: Rollouts, route: Route, traefik: TraefikGateway, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    rollouts.apply(traffic_manifest(rollouts.ns, "1.0.0", steps))
    v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    wait_for(lambda: route_accepted(route.get()), timeout=30, message="HTTPRoute accepted")
    wait_for(
        lambda: get_ok(traefik.url, route.headers),
        timeout=30,
        message="gateway answers through the route",
    )
    return v1


def test_weights_split_real_requests_and_abort_drains_the_canary_before_scale_down(
    harness_run: HarnessRun,
    traefik: TraefikGateway,
    simulator: SimulatorProcess,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    steps: list[dict[str, Any]] = []
    for weight in (10, 50, 90):
        steps += [{"setWeight": weight}, {"pause": {}}]  # paused until `promote`
    v1 = deploy_v1_behind_gateway(rollouts, route, traefik, steps)
    stable = v1["stable"]["revision"]
    ns = rollouts.ns

    # Long enough that the canary pods are certainly still there while the drain is checked.
    rollouts.apply(traffic_manifest(ns, "2.0.0", steps, abort_delay=60))
    observed: dict[int, float] = {}
    canary = ""
    for weight in (10, 50, 90):
        status = rollouts.wait_status(
            paused_at(weight),
            timeout=90,
            message=f"canary paused at weight {weight}",
        )
        canary = status["canary"]["revision"]
        assert route.weights() == {f"{NAME}-stable": 100 - weight, f"{NAME}-canary": weight}
        wait_for(
            functools.partial(applied, traefik, ns, weight),
            timeout=30,
            message=f"Traefik runs the {weight}% split",
        )
        before = pod_counts(simulator, ns)
        result = load.send(
            traefik.url, requests=REQUESTS_PER_WEIGHT, rate=RATE, headers=route.headers
        )
        after = pod_counts(simulator, ns)

        assert result.by_status() == {200: REQUESTS_PER_WEIGHT}, result.by_status()
        share = result.share(canary)
        observed[weight] = share
        assert abs(share - weight / 100) <= tolerance(weight / 100, REQUESTS_PER_WEIGHT), (
            f"weight {weight}: canary answered {share:.3f} of {REQUESTS_PER_WEIGHT} requests"
        )
        counts = result.by_revision()
        assert after.get(canary, 0) - before.get(canary, 0) == counts[canary]
        assert after.get(stable, 0) - before.get(stable, 0) == counts[stable]
        if weight != 90:
            rollouts.request(NAME, "promote", request_id(), "test")
    harness_run.note(
        "gateway split (canary share of "
        f"{REQUESTS_PER_WEIGHT} requests): "
        + ", ".join(
            f"w={w}: {s:.3f} (±{tolerance(w / 100, REQUESTS_PER_WEIGHT):.3f})"
            for w, s in observed.items()
        )
    )

    aborted_at = time.monotonic()
    rollouts.request(NAME, "abort", request_id(), "test")
    wait_for(
        lambda: route.weights().get(f"{NAME}-canary") == 0,
        timeout=30,
        message="HTTPRoute canary weight 0",
    )
    route_drained = time.monotonic()
    wait_for(lambda: applied(traefik, ns, 0), timeout=30, message="Traefik runs canary weight 0")
    traefik_drained = time.monotonic()
    before = pod_counts(simulator, ns)
    result = load.send(traefik.url, requests=500, rate=RATE, headers=route.headers)
    after = pod_counts(simulator, ns)

    assert result.by_status() == {200: 500}, result.by_status()
    assert result.by_revision() == {stable: 500}
    assert after.get(canary, 0) == before.get(canary, 0), "a request reached a canary pod"
    canary_pods = rollouts.pods(canary)
    assert len(canary_pods) == 4 and all(
        (p.metadata and p.metadata.deletion_timestamp) is None for p in canary_pods
    ), "the drain must be proven while every canary pod is still there"
    harness_run.note(
        f"abort drain: HTTPRoute at 0 {route_drained - aborted_at:.2f}s after the abort request, "
        f"Traefik applied it {traefik_drained - route_drained:.2f}s later"
    )
    rolled = rollouts.wait_phase("RolledBack", timeout=120)
    assert rolled["canaryWeight"] == 0
    wait_for(lambda: not rollouts.pods(canary), timeout=60, message="canary pods scaled down")


def test_bad_canary_is_caught_by_a_gate_on_gateway_metrics_and_rolled_back(
    harness_run: HarnessRun,
    traefik: TraefikGateway,
    prometheus: PrometheusServer,
    simulator: SimulatorProcess,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    gate = gate_manifest(
        rollouts.ns,
        prometheus.url,
        name="gateway-error-rate",
        query=GATEWAY_ERROR_RATE_QUERY,
        interval="2s",
        count=3,
    )
    rollouts.create_gate(gate)
    steps: list[dict[str, Any]] = [
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": "gateway-error-rate", "args": {"service": NAME}}]}},
        {"pause": {}},
    ]
    v1 = deploy_v1_behind_gateway(rollouts, route, traefik, steps)
    stable = v1["stable"]["revision"]

    with load.BackgroundLoad(traefik.url, rate=100, seconds=100, headers=route.headers) as traffic:
        rollouts.apply(traffic_manifest(rollouts.ns, "3.0.0", steps, error_rate=0.5))
        rolled = rollouts.wait_phase("RolledBack", timeout=90)
        wait_for(
            lambda: applied(traefik, rollouts.ns, 0),
            timeout=30,
            message="Traefik runs canary weight 0",
        )
        drained = time.monotonic()
        result = traffic.stop()

    assert rolled["abort"]["reason"] == "GateFailed"
    failed = [r for r in rolled["analysis"] if r["verdict"] == "Failed"]
    assert failed and 0.3 <= failed[0]["value"] <= 0.7, failed
    assert "traefik_service_requests_total" in failed[0]["query"]
    canary = rolled["canary"]["revision"]
    errors = [r for r in result.responses if r.status == 500]
    assert errors and {r.revision for r in errors} == {canary}
    canary_count = pod_counts(simulator, rollouts.ns).get(canary, 0)
    after = load.send(traefik.url, requests=300, rate=RATE, headers=route.headers)
    assert after.by_status() == {200: 300} and after.by_revision() == {stable: 300}
    assert pod_counts(simulator, rollouts.ns).get(canary, 0) == canary_count
    last_canary = max(r.sent_at for r in result.responses if r.revision == canary)
    harness_run.note(
        f"gateway gate: value {failed[0]['value']:.3f}; first 500 at the gateway to Traefik at "
        f"weight 0: {drained - errors[0].sent_at:.1f}s (last request answered by the canary "
        f"{last_canary - errors[0].sent_at:.1f}s after the first 500)"
    )


def test_header_and_cookie_matches_reach_the_canary_until_the_abort_removes_them(
    traefik: TraefikGateway,
    simulator: SimulatorProcess,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"pause": {}}]
    matches = [
        {"headers": [{"name": "X-Canary", "value": "yes"}]},
        {"cookies": [{"name": "beta", "value": "1"}]},
    ]

    def manifest(version: str) -> dict[str, Any]:
        made = traffic_manifest(rollouts.ns, version, steps, abort_delay=60)
        made["spec"]["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]["canaryMatches"] = (
            matches
        )
        return made

    rollouts.apply(manifest("1.0.0"))
    v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    stable = v1["stable"]["revision"]
    wait_for(lambda: get_ok(traefik.url, route.headers), timeout=30, message="route is live")
    rollouts.apply(manifest("2.0.0"))
    canary = rollouts.wait_status(paused_at(10), timeout=90, message="paused at 10")["canary"][
        "revision"
    ]
    with_header = {**route.headers, "X-Canary": "yes"}

    def answered_by(headers: dict[str, str], cookies: dict[str, str] | None = None) -> str:
        result = load.send(traefik.url, requests=1, headers=headers, cookies=cookies)
        return result.responses[0].revision

    wait_for(lambda: answered_by(with_header) == canary, timeout=30, message="header rule live")

    by_header = load.send(traefik.url, requests=200, rate=RATE, headers=with_header)
    by_cookie = load.send(
        traefik.url, requests=200, rate=RATE, headers=route.headers, cookies={"a": "b", "beta": "1"}
    )
    other_cookie = load.send(
        traefik.url, requests=1000, rate=RATE, headers=route.headers, cookies={"beta": "10"}
    )

    assert by_header.by_revision() == {canary: 200}
    assert by_cookie.by_revision() == {canary: 200}
    assert abs(other_cookie.share(canary) - 0.1) <= tolerance(0.1, 1000), other_cookie.share(canary)

    rollouts.request(NAME, "abort", request_id(), "test")
    wait_for(
        lambda: (
            not any(
                r.get("name", "").startswith("rollwise-canary-")
                for r in route.get()["spec"]["rules"]
            )
        ),
        timeout=30,
        message="rollwise's canary match rules removed",
    )
    wait_for(lambda: applied(traefik, rollouts.ns, 0), timeout=30, message="Traefik at weight 0")
    wait_for(lambda: answered_by(with_header) == stable, timeout=30, message="header rule gone")
    before = pod_counts(simulator, rollouts.ns).get(canary, 0)
    drained = load.send(traefik.url, requests=200, rate=RATE, headers=with_header)

    assert drained.by_revision() == {stable: 200}
    assert pod_counts(simulator, rollouts.ns).get(canary, 0) == before
    assert rollouts.pods(canary), "proven while the canary pods still exist"


def test_operator_killed_right_after_a_weight_change_converges_on_that_weight(
    harness_run: HarnessRun,
    traefik: TraefikGateway,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
    v1 = deploy_v1_behind_gateway(rollouts, route, traefik, steps)
    stable = v1["stable"]["revision"]
    operator.stop()

    # The operator SIGKILLs itself right after patching the HTTPRoute, before writing status.
    operator.start(env={"ROLLWISE_CRASH_AFTER": "SetRouterWeight"})
    with load.BackgroundLoad(traefik.url, rate=50, seconds=100, headers=route.headers) as traffic:
        rollouts.apply(traffic_manifest(rollouts.ns, "2.0.0", steps))
        assert operator.wait_exit(timeout=60) == -9
        at_crash = route.weights()
        operator.start()
        status = rollouts.wait_status(paused_at(50), timeout=90, message="paused at 50")
        wait_for(
            functools.partial(applied, traefik, rollouts.ns, 50),
            timeout=30,
            message="Traefik runs the 50% split",
        )
        during = traffic.stop()

    canary = status["canary"]["revision"]
    assert at_crash == {f"{NAME}-stable": 50, f"{NAME}-canary": 50}, at_crash
    assert route.weights() == at_crash
    completed = [h["step"] for h in status["history"] if h["event"] == "StepCompleted"]
    assert completed.count(0) == 1, status["history"]
    failed = {k: v for k, v in during.by_status().items() if k != 200}
    harness_run.note(
        f"crash after SetRouterWeight: {len(during.responses)} requests during crash and "
        f"restart, non-200: {failed or 'none'}"
    )
    assert not failed, f"requests failed around the crash: {failed}"
    result = load.send(traefik.url, requests=REQUESTS_PER_WEIGHT, rate=RATE, headers=route.headers)
    assert abs(result.share(canary) - 0.5) <= tolerance(0.5, REQUESTS_PER_WEIGHT)
    assert set(result.by_revision()) == {stable, canary}


# ----------------------------------------------------------------------------- mirroring

TRAEFIK_SERVICES = ("traefik.io", "v1alpha1", "traefikservices")
MIRROR_REQUESTS = 1000


def mirror_manifest(
    namespace: str, version: str, steps: list[dict[str, Any]], mirror_with: str | None
) -> dict[str, Any]:
    made = traffic_manifest(namespace, version, steps, abort_delay=60)
    route = made["spec"]["strategy"]["canary"]["trafficRouting"]["gatewayAPI"]
    if mirror_with is not None:
        route["mirrorWith"] = mirror_with
    if mirror_with == "TraefikService":
        # This Traefik runs nativeLBByDefault (no EndpointSlice can hold a loopback pod IP),
        # which v3.6 does not apply to TraefikServices: without it, "no servers found".
        route["traefikNativeLB"] = True
    return made


def mirroring_at(percent: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        return paused_at(0)(status) and status.get("mirrorPercent") == percent

    return check


def traefik_mirror_backends(traefik: TraefikGateway, namespace: str) -> dict[str, dict[str, Any]]:
    """The kubernetesCRD provider's services in the route's weighted split, by name, as
    Traefik runs them (its API)."""
    weights = traefik.applied_weights(f"{namespace}-{NAME}-") or {}
    running = {str(s.get("name")): s for s in traefik.services()}
    return {n: running.get(n, {}) for n in weights if n.endswith("@kubernetescrd")}


def wide_columns(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """`kubectl get psvc payment -o wide`, column name -> value."""
    wide = cluster.kubectl("get", "psvc", NAME, "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = zip(starts, [*starts[1:], None], strict=True)
    return {n: row[a:b].strip() for n, (a, b) in zip(header.split(), bounds, strict=True)}


def traefik_requests(traefik: TraefikGateway, service: str) -> int:
    """Traefik's own count of the requests one of its services handled (all codes)."""
    total = 0
    for family in text_string_to_metric_families(traefik.metrics_text()):
        if family.name != "traefik_service_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("service") == service:
                total += int(sample.value)
    return total


def settled(read: Callable[[], int], timeout: float, message: str) -> int:
    """A counter once it has stopped moving (three equal readings 0.5 s apart): mirrored
    copies are sent after the client's response, so they arrive at the canary a little later."""
    readings: list[int] = []

    def still() -> int | None:
        readings.append(read())
        recent = readings[-3:]
        return recent[0] if len(recent) == 3 and len(set(recent)) == 1 else None

    return wait_for(still, timeout=timeout, interval=0.5, message=message)


def test_mirroring_copies_requests_to_the_canary_while_every_response_comes_from_stable(
    harness_run: HarnessRun,
    api_client: ApiClient,
    cluster: LocalCluster,
    traefik: TraefikGateway,
    simulator: SimulatorProcess,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    """mirrorWith: TraefikService. Traefik's Gateway API provider has no RequestMirror filter;
    its own TraefikService mirroring answers from the main service and discards the copies'
    responses."""
    ns = rollouts.ns
    steps: list[dict[str, Any]] = [{"setMirror": 50}, {"pause": {}}]
    custom = client.CustomObjectsApi(api_client)

    def mirrors_nothing() -> bool:
        kept = custom.get_namespaced_custom_object(
            *TRAEFIK_SERVICES[:2], ns, "traefikservices", "payment-mirror"
        )
        return "mirrors" not in kept["spec"]["mirroring"]

    rollouts.apply(mirror_manifest(ns, "1.0.0", steps, "TraefikService"))
    stable = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)["stable"]["revision"]
    wait_for(lambda: get_ok(traefik.url, route.headers), timeout=30, message="route is live")
    # From the first pass on, waiting long before a setMirror step needs it (Traefik must
    # have loaded it before a route may name it).
    wait_for(
        mirrors_nothing,
        timeout=30,
        message="TraefikService payment-mirror, mirroring nothing",
        ignore=(client.ApiException,),
    )

    with load.BackgroundLoad(traefik.url, rate=100, seconds=100, headers=route.headers) as onto:
        rollouts.apply(mirror_manifest(ns, "2.0.0", steps, "TraefikService"))
        status = rollouts.wait_status(mirroring_at(50), timeout=90, message="mirroring 50% at 0")
        wait_for(
            functools.partial(traefik_mirror_backends, traefik, ns),
            timeout=30,
            message="Traefik routes through the mirroring service",
        )
        into_mirror = onto.stop()
    assert into_mirror.by_status() == {200: len(into_mirror.responses)}, into_mirror.by_status()
    assert into_mirror.by_revision() == {stable: len(into_mirror.responses)}
    canary = status["canary"]["revision"]
    assert status["canary"]["readyReplicas"] == 2, "the canary is sized for 50% of the requests"
    columns = wide_columns(cluster, ns)
    assert (columns["WEIGHT"], columns["MIRROR"]) == ("0", "50"), columns
    mirror = custom.get_namespaced_custom_object(
        *TRAEFIK_SERVICES[:2], ns, "traefikservices", "payment-mirror"
    )
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "ProgressiveService"
    assert mirror["spec"]["mirroring"] == {
        "name": f"{NAME}-stable",
        "port": PORT,
        "nativeLB": True,
        "mirrors": [{"name": f"{NAME}-canary", "port": PORT, "nativeLB": True, "percent": 50}],
    }
    assert route.get()["spec"]["rules"][0]["backendRefs"][0] == {
        "group": "traefik.io",
        "kind": "TraefikService",
        "name": "payment-mirror",
        "weight": 100,
    }
    crd_service = f"{ns}-payment-mirror@kubernetescrd"

    def mirror_running() -> bool:
        running = traefik_mirror_backends(traefik, ns).get(crd_service) or {}
        mirrors = (running.get("mirroring") or {}).get("mirrors") or []
        return [m.get("percent") for m in mirrors] == [50]

    wait_for(mirror_running, timeout=30, message="Traefik runs the mirroring service")

    def canary_count() -> int:
        return pod_counts(simulator, ns).get(canary, 0)

    copies_service = f"{ns}-{NAME}-canary-{PORT}@kubernetescrd"
    main_service = f"{ns}-{NAME}-stable-{PORT}@kubernetescrd"
    traefik_before = traefik_requests(traefik, copies_service)
    main_before = traefik_requests(traefik, main_service)
    before = pod_counts(simulator, ns)
    result = load.send(traefik.url, requests=MIRROR_REQUESTS, rate=RATE, headers=route.headers)
    copies = settled(canary_count, timeout=30, message="copies at the canary") - before.get(
        canary, 0
    )
    after = pod_counts(simulator, ns)
    # A gate on Traefik's metrics sees the copies under the CRD provider's canary service,
    # and the answered requests under its stable one.
    assert traefik_requests(traefik, copies_service) - traefik_before == copies
    assert traefik_requests(traefik, main_service) - main_before == MIRROR_REQUESTS

    assert result.by_status() == {200: MIRROR_REQUESTS}, result.by_status()
    assert result.by_revision() == {stable: MIRROR_REQUESTS}, "a client got a canary response"
    assert after.get(stable, 0) - before.get(stable, 0) == MIRROR_REQUESTS
    share = copies / MIRROR_REQUESTS
    assert abs(share - 0.5) <= tolerance(0.5, MIRROR_REQUESTS), (
        f"canary pods received {copies} copies of {MIRROR_REQUESTS} requests"
    )

    # Requests keep flowing while the abort takes the TraefikService out of the route and its
    # mirror out of the TraefikService: none may fail on the way. (Deleting the TraefikService
    # failed 12 of 45 requests with 404 here: Traefik's CRD provider dropped it before its
    # Gateway provider had applied the route without it. So it stays, mirroring nothing.)
    with load.BackgroundLoad(traefik.url, rate=100, seconds=60, headers=route.headers) as during:
        aborted_at = time.monotonic()
        rollouts.request(NAME, "abort", request_id(), "test")
        wait_for(
            lambda: route.get()["spec"]["rules"][0]["backendRefs"][0]["name"] == f"{NAME}-stable",
            timeout=30,
            message="the stable Service back in the route",
        )
        route_back = time.monotonic()
        wait_for(
            lambda: not traefik_mirror_backends(traefik, ns) and applied(traefik, ns, 0),
            timeout=30,
            message="Traefik routes to stable without the mirroring service",
        )
        traefik_back = time.monotonic()
        wait_for(
            mirrors_nothing, timeout=30, message="TraefikService payment-mirror mirrors nothing"
        )
        around_abort = during.stop()
    assert around_abort.by_status() == {200: len(around_abort.responses)}, around_abort.by_status()
    assert around_abort.by_revision() == {stable: len(around_abort.responses)}

    assert rollouts.status()["mirrorPercent"] == 0
    quiet = canary_count()
    drained = load.send(traefik.url, requests=500, rate=RATE, headers=route.headers)
    hold_for(lambda: canary_count() == quiet, duration=2.0, message="no copy reaches the canary")

    assert drained.by_status() == {200: 500} and drained.by_revision() == {stable: 500}
    assert rollouts.pods(canary), "proven while the canary pods still exist"
    harness_run.note(
        f"mirror 50% (TraefikService): {MIRROR_REQUESTS} requests all answered by stable, "
        f"{copies} copies at the canary pods (share {share:.3f}, "
        f"±{tolerance(0.5, MIRROR_REQUESTS):.3f}); after abort: route back on stable "
        f"{route_back - aborted_at:.2f}s after the request, Traefik "
        f"{traefik_back - route_back:.2f}s later, the TraefikService without mirror; "
        f"{len(around_abort.responses)} requests during the abort and "
        f"{len(into_mirror.responses)} while mirroring began all 200 from stable; "
        "0 copies of 500 requests after the abort"
    )


def test_request_mirror_variant_is_accepted_by_the_gateway_api_crds_as_written(
    harness_run: HarnessRun,
    api_client: ApiClient,
    traefik: TraefikGateway,
    rollouts: Rollouts,
    route: Route,
    operator: OperatorProcess,
) -> None:
    """mirrorWith: RequestMirror (the default) is the standard HTTPRequestMirrorFilter: the
    real Gateway API v1.4.0 CRDs (OpenAPI and CEL, server-side) accept the rules rollwise
    writes. Traefik v3.6 does not implement the filter: its provider answers the rule's
    requests with 500 (so use mirrorWith: TraefikService there)."""
    ns = rollouts.ns
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"setMirror": 30}, {"pause": {}}]
    rollouts.apply(mirror_manifest(ns, "1.0.0", steps, None))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(mirror_manifest(ns, "2.0.0", steps, None))
    rollouts.wait_status(
        lambda s: paused_at(10)(s) and s.get("mirrorPercent") == 30,
        timeout=90,
        message="paused at weight 10, mirroring 30%",
    )

    rule = route.get()["spec"]["rules"][0]
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {
                    "group": "",
                    "kind": "Service",
                    "name": f"{NAME}-canary",
                    "port": PORT,
                },
                "percent": 30,
            },
        }
    ]
    assert route.weights() == {f"{NAME}-stable": 90, f"{NAME}-canary": 10}
    # The validation is real: the same filter with a share the CRD forbids is refused.
    bad = copy.deepcopy(route.get())
    bad["spec"]["rules"][0]["filters"][0]["requestMirror"]["fraction"] = {"numerator": 1}
    with pytest.raises(client.ApiException) as refused:
        client.CustomObjectsApi(api_client).replace_namespaced_custom_object(
            *ROUTES[:2], ns, ROUTES[2], NAME, bad, dry_run="All"
        )
    assert "Only one of percent or fraction" in str(refused.value.body)

    # Traefik applies the route a moment after the status says so; then every request fails.
    wait_for(
        lambda: load.send(traefik.url, requests=1, headers=route.headers).by_status() == {500: 1},
        timeout=30,
        message="Traefik runs the rule with the RequestMirror filter",
    )
    answered = load.send(traefik.url, requests=20, rate=RATE, headers=route.headers)
    harness_run.note(f"RequestMirror filter on Traefik v3.6.12: {dict(answered.by_status())}")
    assert answered.by_status() == {500: 20}, answered.by_status()

    rollouts.request(NAME, "abort", request_id(), "test")
    wait_for(
        lambda: "filters" not in route.get()["spec"]["rules"][0],
        timeout=30,
        message="the mirror filter removed by the abort",
    )
    assert route.weights() == {f"{NAME}-stable": 100, f"{NAME}-canary": 0}
