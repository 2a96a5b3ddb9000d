"""What the benchmark deploys: ProgressiveServices, the gate, error injection; written in bulk."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.harness.rollouts import ERROR_RATE_QUERY, GROUP, PLURAL, VERSION, gate_manifest

GATE = "error-rate"
THRESHOLD = 0.05


def names(n: int, prefix: str = "svc") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def gate(namespace: str, prometheus_url: str, *, interval: str, count: int) -> dict[str, Any]:
    """The one gate: the canary's 5xx share over 5 s (the harness' query), max 5%."""
    return gate_manifest(
        namespace,
        prometheus_url,
        name=GATE,
        interval=interval,
        count=count,
        max_value=THRESHOLD,
        failure_limit=0,
        inconclusive_limit=20,  # a fresh pod's first scrape can be missing: never a failure
        consecutive_error_limit=5,
        query=ERROR_RATE_QUERY,
    )


def scale_steps(name: str, pause: str) -> list[dict[str, Any]]:
    """3 weight steps, a short pause and one Prometheus gate."""
    return [
        {"setWeight": 25},
        {"pause": {"duration": pause}},
        {"setWeight": 50},
        {"analysis": {"gates": [{"name": GATE, "args": {"service": name}}]}},
        {"setWeight": 75},
    ]


def service(
    namespace: str,
    name: str,
    version: str,
    *,
    replicas: int,
    steps: list[dict[str, Any]],
    rps: int,
    background_gate: bool = False,
    progress_deadline: int = 3600,
) -> dict[str, Any]:
    """A ProgressiveService without migration. `rps` 0: its pods export no series at all (the
    stable revision, so that Prometheus and the simulator carry only canaries)."""
    env = [{"name": "SIM_ERROR_RATE", "value": "0"}, {"name": "SIM_RPS", "value": str(rps)}]
    canary: dict[str, Any] = {"steps": copy.deepcopy(steps)}
    if background_gate:
        canary["analysis"] = {
            "gates": [{"name": GATE, "args": {"service": name}}],
            "startingStep": 0,
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProgressiveService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "version": version,
            "template": {
                "metadata": {"labels": {}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": f"example.com/{name}:{version}", "env": env}
                    ]
                },
            },
            "service": {"port": 80, "targetPort": 8080},
            "strategy": {"canary": canary},
            "abortScaleDownDelaySeconds": 2,
            "progressDeadlineSeconds": progress_deadline,
        },
    }


def new_version_patch(manifest: dict[str, Any], version: str, rps: int) -> dict[str, Any]:
    """The merge patch that starts a rollout: new version and image, the canary's traffic."""
    spec = copy.deepcopy(manifest["spec"])
    container = spec["template"]["spec"]["containers"][0]
    name = manifest["metadata"]["name"]
    container["image"] = f"example.com/{name}:{version}"
    container["env"] = [
        {"name": "SIM_ERROR_RATE", "value": "0"},
        {"name": "SIM_RPS", "value": str(rps)},
    ]
    return {"spec": {"version": version, "template": spec["template"]}}


def error_pod(namespace: str, service_name: str, revision: str) -> dict[str, Any]:
    """A pod the simulator counts as the canary's (same service and revision labels) answering
    every request with 500: the error rate of the canary revision jumps at the moment it is
    Ready. Without `rollwise.dev/role=workload` no ReplicaSet or Service of rollwise selects it,
    and without the managed-by label the operator never hears of it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"errors-{service_name}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": service_name, "rollwise.dev/revision": revision},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "example.com/errors:1",
                    "env": [
                        {"name": "SIM_ERROR_RATE", "value": "1"},
                        {"name": "SIM_RPS", "value": "20"},
                    ],
                }
            ]
        },
    }


def in_parallel(
    items: Iterable[Any], work: Callable[[Any], None], threads: int = 16
) -> list[BaseException]:
    """Run `work` over `items` on a thread pool; the exceptions raised (not re-raised)."""
    errors: list[BaseException] = []

    def guarded(item: Any) -> None:
        try:
            work(item)
        except BaseException as exc:
            errors.append(exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(guarded, items))
    return errors


class Writer:
    """Bulk writes with the admin client (a connection pool per thread of the bulk pool)."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    def create_gate(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "metricgates", manifest
        )

    def create_services(self, manifests: list[dict[str, Any]], threads: int = 16) -> None:
        def create(manifest: dict[str, Any]) -> None:
            try:
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.ns, PLURAL, manifest
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise

        errors = in_parallel(manifests, create, threads)
        if errors:
            raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")

    def patch_services(self, patches: dict[str, dict[str, Any]], threads: int = 16) -> None:
        def patch(name: str) -> None:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.ns, PLURAL, name, patches[name]
            )

        errors = in_parallel(list(patches), patch, threads)
        if errors:
            raise RuntimeError(f"{len(errors)} patches failed, first: {errors[0]}")

    def create_pod(self, manifest: dict[str, Any]) -> None:
        self.core.create_namespaced_pod(self.ns, cast(Any, manifest))
