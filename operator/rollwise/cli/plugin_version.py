"""`kubectl rollwise version`: the plugin's version, and the operator's when the cluster shows it.

The operator is found by the labels both the chart and the kustomize base put on its
Deployment (`app.kubernetes.io/part-of=rollwise`, `app.kubernetes.io/component=operator`);
its version is the `app.kubernetes.io/version` label, its image the first container's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

import urllib3.exceptions
from kubernetes.client import AppsV1Api
from kubernetes.client.exceptions import ApiException

from rollwise.cli.plugin_cluster import KubeSession
from rollwise.cli.version import installed_version

OPERATOR_SELECTOR = "app.kubernetes.io/part-of=rollwise,app.kubernetes.io/component=operator"
_TIMEOUT = (5.0, 10.0)


@dataclass(frozen=True)
class OperatorDeployment:
    """One operator Deployment as the cluster shows it."""

    namespace: str
    name: str
    version: str
    image: str
    ready: int
    replicas: int


def operator_from(deployment: Any) -> OperatorDeployment:
    """The facts `version` prints, from a V1Deployment."""
    labels = deployment.metadata.labels or {}
    containers = deployment.spec.template.spec.containers or []
    status = deployment.status
    return OperatorDeployment(
        namespace=deployment.metadata.namespace,
        name=deployment.metadata.name,
        version=labels.get("app.kubernetes.io/version", "unknown"),
        image=containers[0].image if containers else "unknown",
        ready=(status.ready_replicas or 0) if status else 0,
        replicas=deployment.spec.replicas or 0,
    )


def find_operators(session: KubeSession) -> tuple[list[OperatorDeployment], str | None]:
    """The operator Deployments visible to us, or why none could be read."""
    apps = AppsV1Api(session.api_client)
    try:
        found = apps.list_deployment_for_all_namespaces(
            label_selector=OPERATOR_SELECTOR, _request_timeout=_TIMEOUT
        )
    except ApiException as err:
        if err.status != 403:
            return [], f"HTTP {err.status} listing Deployments"
        # No cluster-wide read: look in the usual namespace and the current one.
        found_items = []
        for namespace in dict.fromkeys(("rollwise-system", session.namespace)):
            try:
                listed = apps.list_namespaced_deployment(
                    namespace, label_selector=OPERATOR_SELECTOR, _request_timeout=_TIMEOUT
                )
            except ApiException:
                continue
            found_items.extend(listed.items)
        return [operator_from(d) for d in found_items], None
    except urllib3.exceptions.HTTPError as err:
        return [], f"cannot reach the API server {session.server}: {err}"
    return [operator_from(d) for d in found.items], None


def render_version(operators: list[OperatorDeployment] | None, problem: str | None) -> str:
    """The text of `kubectl rollwise version`."""
    lines = [f"kubectl-rollwise: {installed_version()}"]
    if operators is None:
        return "\n".join(lines) + "\n"
    if problem:
        lines.append(f"operator: unknown ({problem})")
    elif not operators:
        lines.append("operator: not found (no Deployment labelled " + OPERATOR_SELECTOR + ")")
    for op in operators:
        lines.append(
            f"operator: {op.version} ({op.namespace}/{op.name}, image {op.image},"
            f" {op.ready}/{op.replicas} ready)"
        )
    return "\n".join(lines) + "\n"


def show_version(session: KubeSession | None, out: TextIO) -> int:
    """`version`: the plugin always; the operator when a cluster is configured and reachable."""
    if session is None:
        out.write(render_version(None, None))
        return 0
    operators, problem = find_operators(session)
    out.write(render_version(operators, problem))
    return 0
