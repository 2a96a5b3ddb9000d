"""Building ProgressiveServices and MetricGates for tests, and reading back what happened.

Everything here reads the real apiserver; nothing is inferred from the operator's memory.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.harness.wait import wait_for

GROUP, VERSION, PLURAL = "rollwise.dev", "v1alpha1", "progressiveservices"
SETTLED = {"Healthy", "RolledBack", "MigrationFailed", "Degraded"}

# (5xx rate or 0) / all requests, for this service's canary revision. `or vector(0)` makes a
# healthy canary with no 500 series read 0; no traffic at all still gives an empty result.
ERROR_RATE_QUERY = (
    '(sum(rate(http_requests_total{namespace="{{service.namespace}}",service="{{args.service}}",'
    'revision="{{canary.revision}}",code=~"5.."}[5s])) or vector(0))'
    ' / sum(rate(http_requests_total{namespace="{{service.namespace}}",'
    'service="{{args.service}}",revision="{{canary.revision}}"}[5s]))'
)


def gate_manifest(
    namespace: str,
    address: str,
    *,
    name: str = "error-rate",
    interval: str = "2s",
    count: int = 2,
    max_value: float = 0.05,
    failure_limit: int = 0,
    inconclusive_limit: int = 1,
    consecutive_error_limit: int = 2,
    query: str = ERROR_RATE_QUERY,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetricGate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "args": [{"name": "service"}],
            "interval": interval,
            "count": count,
            "failureLimit": failure_limit,
            "inconclusiveLimit": inconclusive_limit,
            "consecutiveErrorLimit": consecutive_error_limit,
            "provider": {"prometheus": {"address": address, "query": query, "timeout": "3s"}},
            "thresholdRange": {"max": max_value},
        },
    }


DEFAULT_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "2s"}},
    {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "payment"}}]}},
    {"setWeight": 50},
    {"pause": {"duration": "1s"}},
]


def service_manifest(
    namespace: str,
    version: str,
    *,
    name: str = "payment",
    replicas: int = 4,
    error_rate: float = 0.0,
    rps: int | None = None,
    migration: bool = True,
    migration_fails: bool = False,
    steps: list[dict[str, Any]] | None = None,
    abort_delay: int = 2,
    progress_deadline: int = 60,
    pod_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    env = [{"name": "SIM_ERROR_RATE", "value": str(error_rate)}]
    if rps is not None:
        env.append({"name": "SIM_RPS", "value": str(rps)})
    spec: dict[str, Any] = {
        "replicas": replicas,
        "version": version,
        "template": {
            "metadata": {"labels": dict(pod_labels or {})},
            "spec": {
                "containers": [
                    {"name": "app", "image": f"example.com/{name}:{version}", "env": env}
                ]
            },
        },
        "service": {"port": 80, "targetPort": 8080},
        "strategy": {"canary": {"steps": copy.deepcopy(steps or DEFAULT_STEPS)}},
        "abortScaleDownDelaySeconds": abort_delay,
        "progressDeadlineSeconds": progress_deadline,
    }
    if migration:
        labels = {"rollwise.dev/sim-fail": "true"} if migration_fails else {}
        spec["migration"] = {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "migrate",
                            "image": f"example.com/{name}:{version}",
                            "args": ["migrate", "--to", version],
                        }
                    ]
                },
            },
            "backoffLimit": 0,
            "activeDeadlineSeconds": 120,
        }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProgressiveService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class Rollouts:
    """Read and write ProgressiveServices and the objects rollwise owns, in one namespace."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)

    # ----------------------------------------------------------------- writing

    def create_gate(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "metricgates", manifest
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        """Create the ProgressiveService, or replace its spec (as `kubectl apply` would)."""
        name = manifest["metadata"]["name"]
        try:
            current = self.get(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, manifest)
            return
        for attempt in range(5):
            current["spec"] = manifest["spec"]
            try:
                self.custom.replace_namespaced_custom_object(
                    GROUP, VERSION, self.ns, PLURAL, name, current
                )
                return
            except ApiException as exc:
                # The operator changed metadata (a finalizer, a request annotation's ack) since
                # the read: read again and replace, as `kubectl apply` retries a conflict.
                if exc.status != 409 or attempt == 4:
                    raise
                current = self.get(name)

    def request(self, name: str, action: str, request_id: str, by: str) -> None:
        """What `kubectl rollwise <action>` writes: the request annotation, never the spec."""
        body = {
            "metadata": {
                "annotations": {
                    "rollwise.dev/request": json.dumps(
                        {"action": action, "id": request_id, "by": by}
                    )
                }
            }
        }
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, body)

    # ----------------------------------------------------------------- reading

    def get(self, name: str = "payment") -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
        assert isinstance(obj, dict)
        return obj

    def status(self, name: str = "payment") -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait_status(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        message: str,
        name: str = "payment",
    ) -> dict[str, Any]:
        """Wait until the status (of the current generation) satisfies ``predicate``."""

        def check() -> dict[str, Any] | None:
            obj = self.get(name)
            status = obj.get("status") or {}
            current = status.get("observedGeneration") == obj["metadata"]["generation"]
            return status if current and predicate(status) else None

        try:
            return wait_for(check, timeout=timeout, interval=0.3, message=message)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nlast status: {json.dumps(self.status(name))[:3000]}"
            ) from None

    def wait_phase(
        self, phase: str, timeout: float = 90, *, version: str | None = None, name: str = "payment"
    ) -> dict[str, Any]:
        def ok(status: dict[str, Any]) -> bool:
            if status.get("phase") != phase:
                return False
            return version is None or (status.get("stable") or {}).get("version") == version

        return self.wait_status(ok, timeout, f"phase {phase} (stable {version})", name)

    def replica_sets(self, name: str = "payment") -> dict[str, client.V1ReplicaSet]:
        items = self.apps.list_namespaced_replica_set(
            self.ns, label_selector=f"app.kubernetes.io/name={name}"
        ).items
        return {
            (rs.metadata.labels or {})["rollwise.dev/revision"]: rs for rs in items if rs.metadata
        }

    def pods(self, revision: str | None = None, name: str = "payment") -> list[client.V1Pod]:
        # Workload pods only: the migration Job's pods carry the same name and revision.
        selector = f"app.kubernetes.io/name={name},rollwise.dev/role=workload"
        if revision:
            selector += f",rollwise.dev/revision={revision}"
        pods = self.core.list_namespaced_pod(self.ns, label_selector=selector).items
        return [p for p in pods if p.metadata and p.metadata.deletion_timestamp is None]

    def jobs(self) -> list[client.V1Job]:
        return list(self.batch.list_namespaced_job(self.ns).items)

    def events(self, reason: str | None = None) -> list[client.CoreV1Event]:
        events = self.core.list_namespaced_event(self.ns).items
        return [e for e in events if reason is None or e.reason == reason]

    def history(self, name: str = "payment") -> list[dict[str, Any]]:
        return list(self.status(name).get("history") or [])


def history_events(status: dict[str, Any]) -> list[str]:
    """The `event` of every history entry, oldest first."""
    return [h["event"] for h in status.get("history") or []]


def deploy_first_version(rollouts: Rollouts, **kwargs: Any) -> dict[str, Any]:
    """Apply `payment` at 1.0.0 and wait until it is Healthy; its status."""
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", **kwargs))
    return rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
