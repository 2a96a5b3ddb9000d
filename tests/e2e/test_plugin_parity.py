"""`kubectl rollwise list|set image|undo|watch|completion` against a real API server: the
installed console scripts as subprocesses, status written through the status subresource as the
operator writes it, ReplicaSets and pods made by the real controller-manager (kwok runs them).
The operator itself is not needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import HistoryEntry, Phase, RevisionStatus, ServiceStatus
from rollwise.core.naming import ANNOTATION_REQUEST, LABEL_OWNER, LABEL_REVISION
from rollwise.core.revision import revision_of
from tests.harness.cluster import LocalCluster
from tests.harness.paths import REPO_ROOT
from tests.harness.wait import wait_for

BIN = Path(sys.executable).parent
PLUGIN = BIN / "kubectl-rollwise"
NAME = "pay"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STEPS = [{"setWeight": 10}, {"pause": {"duration": "2m"}}, {"setWeight": 50}]


def spec(version: str) -> dict[str, Any]:
    return {
        "replicas": 2,
        "version": version,
        "template": {
            "metadata": {"labels": {"app": NAME}},
            "spec": {"containers": [{"name": "app", "image": f"shop/pay:{version}"}]},
        },
        "strategy": {"canary": {"steps": STEPS}},
    }


def revision(version: str) -> str:
    return revision_of(ServiceSpec.model_validate(spec(version)))


def manifest(namespace: str, version: str, **metadata: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "ProgressiveService",
            "metadata": {"name": NAME, "namespace": namespace, **metadata},
            "spec": spec(version),
        }
    )


def run_plugin(
    cluster: LocalCluster, *args: str, home: Path, binary: Path = PLUGIN, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(HOME=str(home), KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def write_status(cluster: LocalCluster, namespace: str, status: ServiceStatus) -> None:
    cluster.kubectl(
        "patch",
        "progressiveservice",
        NAME,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status.to_wire()}),
    )


def read(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", "progressiveservice", NAME, "-n", namespace, "-o", "json").stdout
    )
    return found


def promoted_twice() -> ServiceStatus:
    r1, r2, r3 = revision("1.0.0"), revision("1.1.0"), revision("1.2.0")
    return ServiceStatus(
        observed_generation=1,
        phase=Phase.HEALTHY,
        stable=RevisionStatus(revision=r3, version="1.2.0", replicas=2, ready_replicas=2),
        history=[
            HistoryEntry(
                at=T0,
                event="InitialDeploy",
                message=f"first revision {r1} (version 1.0.0) deployed with 2 replicas",
            ),
            HistoryEntry(
                at=T0,
                event="Promoted",
                message=f"version 1.1.0 ({r2}) is stable and "
                f"Healthy, 2/2 pods ready; 1.0.0 ({r1}) scaled down",
            ),
            HistoryEntry(
                at=T0,
                event="Promoted",
                message=f"version 1.2.0 ({r3}) is stable and "
                f"Healthy, 2/2 pods ready; 1.1.0 ({r2}) scaled down",
            ),
        ],
    )


def canary_at_step_two() -> ServiceStatus:
    return ServiceStatus(
        observed_generation=1,
        phase=Phase.PAUSED,
        stable=RevisionStatus(
            revision=revision("1.0.0"), version="1.0.0", replicas=2, ready_replicas=2
        ),
        canary=RevisionStatus(
            revision=revision("1.1.0"), version="1.1.0", replicas=1, ready_replicas=1
        ),
        canary_weight=10,
        current_step_index=1,
        current_step="2/3",
    )


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> None:
    files = sorted((REPO_ROOT / "crds").glob("rollwise.dev_*.yaml"))
    args = [arg for path in files for arg in ("-f", str(path))]
    cluster.kubectl("apply", *args)
    cluster.wait_established(*args)


@pytest.fixture
def pay(cluster: LocalCluster, crds: None, namespace: str) -> Iterator[str]:
    """ProgressiveService `pay` at 1.2.0, Healthy after two promotions; yields its namespace."""
    cluster.kubectl("apply", "-f", "-", input=manifest(namespace, "1.2.0"))
    write_status(cluster, namespace, promoted_twice())
    yield namespace


@pytest.mark.cluster
def test_list_shows_the_service_and_with_all_namespaces_its_namespace(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    write_status(cluster, pay, canary_at_step_two())

    here = run_plugin(cluster, "list", "-n", pay, home=tmp_path)
    everywhere = run_plugin(cluster, "list", "-A", home=tmp_path)

    assert here.returncode == 0, here.stderr
    assert here.stdout.splitlines()[1].split()[:7] == [
        NAME,
        "Paused",
        "1.0.0",
        "1.1.0",
        "10",
        "2/3",
        "3/2",
    ]
    assert [pay, NAME, "Paused"] in [line.split()[:3] for line in everywhere.stdout.splitlines()]


@pytest.mark.cluster
def test_set_image_writes_the_spec_unless_a_gitops_tool_applies_it(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    done = run_plugin(cluster, "set", "image", NAME, "app=shop/pay:1.3.0", "-n", pay, home=tmp_path)

    assert done.returncode == 0, done.stderr
    written = read(cluster, pay)["spec"]
    assert written["template"]["spec"]["containers"][0]["image"] == "shop/pay:1.3.0"
    assert written["version"] == "1.3.0"

    cluster.kubectl(
        "annotate",
        "progressiveservice",
        NAME,
        "-n",
        pay,
        "argocd.argoproj.io/tracking-id=shop:rollwise.dev/ProgressiveService:x/pay",
    )
    printed = run_plugin(
        cluster, "set", "image", NAME, "app=shop/pay:1.4.0", "-n", pay, home=tmp_path
    )

    assert printed.returncode == 0, printed.stderr
    assert "applied by Argo CD" in printed.stdout and '"shop/pay:1.4.0"' in printed.stdout
    assert read(cluster, pay)["spec"]["version"] == "1.3.0"  # nothing written


@pytest.mark.cluster
def test_undo_declares_the_previous_stable_revision_again(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    done = run_plugin(cluster, "undo", NAME, "-n", pay, home=tmp_path)

    assert done.returncode == 0, done.stderr
    after = ServiceSpec.model_validate(read(cluster, pay)["spec"])
    assert revision_of(after) == revision("1.1.0")
    assert after.version == "1.1.0"


@pytest.mark.cluster
def test_undo_mid_rollout_asks_for_an_abort(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    write_status(cluster, pay, canary_at_step_two())

    done = run_plugin(cluster, "undo", NAME, "-n", pay, home=tmp_path)

    assert done.returncode == 0, done.stderr
    annotation = read(cluster, pay)["metadata"]["annotations"][ANNOTATION_REQUEST]
    assert '"abort"' in annotation or "abort" in annotation
    assert read(cluster, pay)["spec"]["version"] == "1.2.0"  # the spec is untouched


@pytest.mark.cluster
def test_watch_draws_the_tree_with_replica_sets_and_their_pods(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    canary = revision("1.1.0")
    write_status(cluster, pay, canary_at_step_two())
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{NAME}-{canary}",
            "namespace": pay,
            "labels": {LABEL_OWNER: NAME, LABEL_REVISION: canary},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {LABEL_REVISION: canary}},
            "template": {
                "metadata": {"labels": {LABEL_OWNER: NAME, LABEL_REVISION: canary}},
                "spec": {"containers": [{"name": "app", "image": "shop/pay:1.1.0"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(replica_set))
    wait_for(
        lambda: (
            "true"
            in cluster.kubectl(
                "get",
                "pods",
                "-n",
                pay,
                "-l",
                f"{LABEL_REVISION}={canary}",
                "-o",
                "jsonpath={.items[*].status.containerStatuses[*].ready}",
            ).stdout
        ),
        timeout=60,
        message="the canary pod ready",
    )

    watched = run_plugin(cluster, "watch", NAME, "-n", pay, "--timeout", "3", home=tmp_path)

    assert watched.returncode == 0, watched.stderr
    frame = watched.stdout
    assert "Steps:      2/3" in frame and "  ► 2. pause 2m" in frame
    assert "Router:     replicas (share of ready pods): 10% in status" in frame
    assert f"├── canary {canary}  version 1.1.0  weight 10%" in frame
    assert f"ReplicaSet {NAME}-{canary}  1/1 ready" in frame
    assert "Running  ready  restarts 0  shop/pay:1.1.0" in frame


@pytest.mark.cluster
def test_kubectl_completes_service_names_through_kubectl_complete_rollwise(
    cluster: LocalCluster, pay: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(HOME=str(tmp_path), PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))

    done = subprocess.run(
        [
            str(cluster.bins.kubectl),
            "__complete",
            "rollwise",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            pay,
            "promote",
            "",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert NAME in done.stdout.splitlines(), done.stdout


@pytest.mark.cluster
@pytest.mark.parametrize("source", ["routers.yaml", "workload-ref.yaml"])
def test_converted_argo_rollouts_are_accepted_by_the_api_server(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path, source: str
) -> None:
    converted = run_plugin(
        cluster,
        "convert",
        "-f",
        str(REPO_ROOT / "tests" / "unit" / "cli" / "argo" / source),
        home=tmp_path,
    )
    assert converted.returncode == 0, converted.stderr
    assert "not converted" in converted.stderr  # what was left behind is said, by path

    # Server-side: the CRDs' OpenAPI schemas and CEL rules judge every converted object.
    applied = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=converted.stdout
    )

    kinds = [line.split("/")[0] for line in applied.stdout.splitlines()]
    assert kinds and all(k.endswith("rollwise.dev") for k in kinds), applied.stdout


@pytest.mark.cluster
def test_watch_reads_the_weight_the_httproute_holds(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    gateway_crds = cluster.bins.gateway_crds
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(gateway_crds))
    cluster.wait_established("crd/httproutes.gateway.networking.k8s.io")
    body = yaml.safe_load(manifest(namespace, "1.1.0"))
    body["spec"]["strategy"]["canary"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": NAME}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    write_status(cluster, namespace, canary_at_step_two())
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"{NAME}-stable", "port": 80, "weight": 70},
                        {"name": f"{NAME}-canary", "port": 80, "weight": 30},
                    ]
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(route))

    watched = run_plugin(cluster, "watch", NAME, "-n", namespace, "--timeout", "2", home=tmp_path)

    assert watched.returncode == 0, watched.stderr
    # The route holds 30 while status asks for 10: the difference is there to see.
    assert (
        f"Router:     gatewayAPI HTTPRoute {NAME}: canary weight 30% on the router, 10% in status"
        in watched.stdout
    ), watched.stdout
