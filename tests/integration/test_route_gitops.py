"""Routes under GitOps, on the real control plane (docs/rollout-semantics.md rule 9,
docs/gitops.md): the user's HTTPRoute kept in Git in the form rollwise leaves it at rest, applied
with server-side apply by a "gitops" field manager as Flux and Argo CD (ServerSideApply=true) do.

- At rest (after the first deploy and after a promotion) `kubectl diff --server-side
  --force-conflicts` of that manifest (the dry run of a sync) shows nothing: no drift.
- Mid-canary a forced re-sync (what Flux does every interval) puts the weights back to 100/0;
  the operator's watch on the route wakes the service and the canary weight is back within
  seconds, with a RouteReasserted Event; status.routeWeight shows the route's weight.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import paths
from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster

ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
REASSERT_WITHIN_S = 10.0


@pytest.fixture
def gateway_crds(cluster: LocalCluster) -> Iterator[None]:
    """The Gateway API CRDs (the version the harness builds Traefik against), before the
    operator starts, so its route watch is served."""
    crds = paths.binaries().gateway_crds
    cluster.kubectl("apply", "--server-side", "-f", str(crds), timeout=120)
    cluster.wait_established("crd/httproutes.gateway.networking.k8s.io")
    yield


def route_in_git(namespace: str) -> dict[str, Any]:
    """The HTTPRoute as kept in Git: both backends, weights as rollwise leaves them at rest."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "payment", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "shared", "namespace": "gateway"}],
            "hostnames": [f"{namespace}.example"],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "payment-stable", "port": 80, "weight": 100},
                        {"name": "payment-canary", "port": 80, "weight": 0},
                    ]
                }
            ],
        },
    }


def sync(cluster: LocalCluster, namespace: str) -> None:
    """A GitOps sync: server-side apply of the Git manifest, taking over conflicting fields."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=gitops",
        "-f",
        "-",
        input=yaml.safe_dump(route_in_git(namespace)),
    )


def drift(cluster: LocalCluster, namespace: str) -> str:
    """`kubectl diff --server-side --force-conflicts` of the Git manifest (the dry run of the
    apply a sync does): empty when applying it would change nothing."""
    result = cluster._run_kubectl(
        ["diff", "--server-side", "--force-conflicts", "--field-manager=gitops", "-f", "-"],
        input=yaml.safe_dump(route_in_git(namespace)),
    )
    if result.returncode not in (0, 1):
        live = cluster.kubectl("get", "httproute", "payment", "-n", namespace, "-o", "yaml")
        raise AssertionError(f"{result.stderr}\nlive route:\n{live.stdout}")
    return result.stdout


def weights(api: client.ApiClient, namespace: str) -> dict[str, int]:
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        ROUTES[0], ROUTES[1], namespace, ROUTES[2], "payment"
    )
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: int(ref.get("weight", 1)) for ref in refs}


def test_the_route_kept_in_git_never_drifts_and_a_resync_mid_canary_is_set_back(
    cluster: LocalCluster,
    api_client: client.ApiClient,
    rollouts: Rollouts,
    gateway_crds: None,
    operator: OperatorProcess,
    harness_run: HarnessRun,
) -> None:
    ns = rollouts.ns
    sync(cluster, ns)
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]

    def manifest(version: str) -> dict[str, Any]:
        m = service_manifest(ns, version, steps=steps, migration=False)
        m["spec"]["strategy"]["canary"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": "payment"}}
        return m

    rollouts.apply(manifest("1.0.0"))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    assert drift(cluster, ns) == ""

    rollouts.apply(manifest("2.0.0"))
    rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("routeWeight") == 50,
        timeout=90,
        message="paused at 50%, the route at 50%",
    )
    assert weights(api_client, ns) == {"payment-stable": 50, "payment-canary": 50}

    sync(cluster, ns)
    reverted_at = time.monotonic()
    wait_for(
        lambda: weights(api_client, ns) == {"payment-stable": 50, "payment-canary": 50},
        timeout=REASSERT_WITHIN_S,
        interval=0.1,
        message=f"the canary weight set back within {REASSERT_WITHIN_S:g}s of the re-sync",
    )
    took = time.monotonic() - reverted_at
    # The pass patches the route first, then writes status, then posts its Events.
    told = wait_for(
        lambda: [e.message for e in rollouts.events("RouteReasserted")],
        timeout=10,
        message="a RouteReasserted Event",
    )
    assert "(0%); set back to 50%" in told[-1], told
    assert rollouts.status()["routeWeight"] == 50
    assert rollouts.status()["canaryWeight"] == 50
    harness_run.note(f"route re-asserted {took:.2f}s after a forced GitOps re-sync")

    rollouts.request("payment", "promote", "p1", "tester")
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
    wait_for(
        lambda: weights(api_client, ns) == {"payment-stable": 100, "payment-canary": 0},
        timeout=30,
        message="the route back at rest",
    )
    assert drift(cluster, ns) == ""
