"""workloadRef on the real control plane: a Deployment applied with kubectl is adopted, rolled
out v1 -> v2 through a gate, shows no diff against its manifests afterwards, and is handed back
at full size when the ProgressiveService is deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness.cluster import KubectlError, LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import GROUP, VERSION, Rollouts
from tests.harness.wait import wait_for

REPLICAS = 3


def deployment_manifest(namespace: str, version: str) -> dict[str, Any]:
    """The user's Deployment as their repository holds it: no replicas (as with an HPA)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"example.com/web:{version}",
                            "env": [{"name": "SIM_ERROR_RATE", "value": "0"}],
                        }
                    ]
                },
            },
        },
    }


def service_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProgressiveService",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": REPLICAS,
            "workloadRef": {"name": "web"},
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 50},
                        {
                            "analysis": {
                                "gates": [{"name": "error-rate", "args": {"service": "web"}}]
                            }
                        },
                    ]
                }
            },
            "abortScaleDownDelaySeconds": 2,
        },
    }


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def ready_web_pods(api: client.ApiClient, namespace: str) -> int:
    """Ready pods the user's own Service (selector app=web) would send traffic to."""
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    return sum(
        1
        for pod in pods
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


# How the user's tool applies: client-side (kubectl apply, Argo CD's default; `kubectl diff`
# is then a server-side dry-run of that patch) or server-side apply (Flux). Each manifest is
# diffed the way it is applied: switching modes rewrites kubectl's own annotation, drift or not.
@pytest.mark.parametrize("mode", [[], ["--server-side"]], ids=["client-side", "server-side"])
def test_a_kubectl_applied_deployment_is_adopted_rolled_out_and_handed_back(
    mode: list[str],
    cluster: LocalCluster,
    api_client: client.ApiClient,
    rollouts: Rollouts,
    gate: dict[str, Any],
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    ns = rollouts.ns
    apps = client.AppsV1Api(api_client)
    v1 = write(tmp_path / "web-v1.yaml", deployment_manifest(ns, "1.0.0"))
    cluster.kubectl("apply", *mode, "-f", str(v1))
    cluster.kubectl("-n", ns, "scale", "deployment/web", f"--replicas={REPLICAS}")
    wait_for(lambda: ready_web_pods(api_client, ns) == REPLICAS, timeout=60, message="web serves")

    psvc = write(tmp_path / "psvc.yaml", service_manifest(ns))
    cluster.kubectl("apply", *mode, "-f", str(psvc))
    adopted = rollouts.wait_phase("Healthy", name="web", version="1.0.0", timeout=90)
    wait_for(
        lambda: apps.read_namespaced_deployment(name="web", namespace=ns).spec.replicas == 0,
        timeout=30,
        message="the Deployment scaled to 0 once rollwise's pods were ready",
    )
    stable = adopted["stable"]["revision"]
    assert len(rollouts.pods(stable, name="web")) == REPLICAS
    assert "WorkloadAdopted" in [h["event"] for h in rollouts.history("web")]

    v2 = write(tmp_path / "web-v2.yaml", deployment_manifest(ns, "2.0.0"))
    cluster.kubectl("apply", *mode, "-f", str(v2))
    promoted = rollouts.wait_phase("Healthy", name="web", version="2.0.0", timeout=120)

    assert promoted["stable"]["revision"] != stable
    history = [h["event"] for h in rollouts.history("web")]
    assert "RolloutStarted" in history and "Promoted" in history
    assert apps.read_namespaced_deployment(name="web", namespace=ns).spec.replicas == 0
    try:
        out = cluster.kubectl("diff", *mode, "-f", str(v2), "-f", str(psvc)).stdout
    except KubectlError as err:  # exit 1: a diff (or an error) was printed
        raise AssertionError(f"kubectl diff {mode} shows drift:\n{err}") from err
    assert out.strip() == "", out

    cluster.kubectl("-n", ns, "delete", "progressiveservice/web", "--wait=false")
    lowest = REPLICAS

    def released() -> bool:
        nonlocal lowest
        lowest = min(lowest, ready_web_pods(api_client, ns))
        try:
            rollouts.get("web")
        except client.ApiException as err:
            return err.status == 404
        return False

    wait_for(released, timeout=90, message="the ProgressiveService is gone")
    deployment = apps.read_namespaced_deployment(name="web", namespace=ns)
    assert deployment.spec.replicas == REPLICAS
    assert (deployment.status.ready_replicas or 0) == REPLICAS
    assert "rollwise.dev/adopted-by" not in (deployment.metadata.labels or {})
    assert deployment.spec.template.spec.containers[0].image == "example.com/web:2.0.0"
    assert lowest >= REPLICAS, f"only {lowest} ready pods at some point of the release"
    wait_for(
        lambda: ready_web_pods(api_client, ns) == REPLICAS,
        timeout=60,
        message="rollwise's pods gone, the Deployment's serve",
    )
