"""`kubectl rollwise` against a real API server: the installed console script (and kubectl's
plugin discovery) run as subprocesses, the status written through the status subresource the
way the operator writes it. The operator itself is not needed here."""

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

from rollwise.api.service_status import (
    GateResult,
    HistoryEntry,
    Phase,
    RequestAck,
    RevisionStatus,
    ServiceStatus,
    Verdict,
)
from rollwise.core.model import Action
from rollwise.core.naming import ANNOTATION_REQUEST
from rollwise.core.requests import parse_request
from tests.harness.cluster import LocalCluster
from tests.harness.paths import REPO_ROOT
from tests.harness.wait import wait_for

PLUGIN = Path(sys.executable).with_name("kubectl-rollwise")
CRDS = REPO_ROOT / "crds"
SERVICE = "payment"
T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)
QUERY = (
    'sum(rate(http_requests_total{service="payment",revision="85c4d7f9a",code=~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{service="payment",revision="85c4d7f9a"}[1m]))'
)
MANIFEST = """
apiVersion: rollwise.dev/v1alpha1
kind: ProgressiveService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 10
  template: {{spec: {{containers: [{{name: app, image: "shop/payment:2.4.0"}}]}}}}
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {{duration: 2m}}
        - analysis: {{gates: [{{name: error-rate}}]}}
        - setWeight: 50
        - pause: {{}}
"""


def analysing() -> ServiceStatus:
    return ServiceStatus(
        observed_generation=1,
        phase=Phase.PROGRESSING,
        stable=RevisionStatus(revision="6d9f8c7b4", version="2.3.1", replicas=9, ready_replicas=9),
        canary=RevisionStatus(revision="85c4d7f9a", version="2.4.0", replicas=1, ready_replicas=1),
        canary_weight=10,
        current_step_index=2,
        analysis=[
            GateResult(
                gate="error-rate",
                step=2,
                query=QUERY,
                value=0.0042,
                verdict=Verdict.PASSED,
                measured_at=T0,
                measurements=4,
            )
        ],
        history=[HistoryEntry(at=T0, event="StepCompleted", step=1, weight=10)],
    )


# ------------------------------------------------------------------------------------ helpers


def plugin_env(home: Path) -> dict[str, str]:
    """The caller's environment without its kubeconfig: every test names its own."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(home)
    return env


def run_plugin(
    kubeconfig: Path, *args: str, home: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is not installed; run `pip install -e .`", pytrace=False)
    return subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        env=plugin_env(home),
        timeout=timeout,
        check=False,
    )


def write_status(cluster: LocalCluster, namespace: str, status: dict[str, Any]) -> None:
    """Write status as the operator does: through the status subresource."""
    cluster.kubectl(
        "patch",
        "progressiveservice",
        SERVICE,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def read_service(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    result = cluster.kubectl("get", "progressiveservice", SERVICE, "-n", namespace, "-o", "json")
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def request_annotation(cluster: LocalCluster, namespace: str) -> str | None:
    annotations = read_service(cluster, namespace)["metadata"].get("annotations", {})
    value = annotations.get(ANNOTATION_REQUEST)
    return value if isinstance(value, str) else None


@pytest.fixture(scope="module")
def crds(cluster: LocalCluster) -> None:
    """The generated CRDs, applied and established."""
    files = sorted(CRDS.glob("rollwise.dev_*.yaml"))
    assert files, f"no generated CRDs in {CRDS}; run `rollwise crds`"
    file_args = [arg for path in files for arg in ("-f", str(path))]
    cluster.kubectl("apply", *file_args)
    cluster.wait_established(*file_args)


@pytest.fixture
def service(cluster: LocalCluster, crds: None, namespace: str) -> Iterator[str]:
    """A ProgressiveService mid-analysis in a fresh namespace; yields the namespace."""
    cluster.kubectl("apply", "-f", "-", input=MANIFEST.format(name=SERVICE, namespace=namespace))
    write_status(cluster, namespace, analysing().to_wire())
    yield namespace


# -------------------------------------------------------------------------------------- tests


@pytest.mark.cluster
def test_status_shows_the_gates_resolved_query_and_value(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    result = run_plugin(cluster.kubeconfig, "-n", service, "status", SERVICE, home=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"ProgressiveService {service}/{SERVICE}" in result.stdout
    assert f"    query: {QUERY}" in result.stdout
    assert "value 0.0042" in result.stdout
    assert "Step:       3/5 analysis error-rate" in result.stdout


@pytest.mark.cluster
def test_status_output_json_is_the_raw_status(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    result = run_plugin(
        cluster.kubeconfig, "status", SERVICE, "-n", service, "-o", "json", home=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == read_service(cluster, service)["status"]


@pytest.mark.cluster
def test_kubectl_finds_the_plugin_on_path(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    env = plugin_env(tmp_path)
    env["PATH"] = os.pathsep.join([str(PLUGIN.parent), env.get("PATH", "")])

    result = subprocess.run(
        [
            str(cluster.bins.kubectl),
            "rollwise",
            "history",
            SERVICE,
            "-n",
            service,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "StepCompleted" in result.stdout


@pytest.mark.cluster
def test_promote_writes_the_request_annotation_and_never_the_spec(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    admin = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    before = read_service(cluster, service)

    result = run_plugin(cluster.kubeconfig, "-n", service, "promote", SERVICE, home=tmp_path)

    assert result.returncode == 0, result.stderr
    after = read_service(cluster, service)
    text = after["metadata"]["annotations"][ANNOTATION_REQUEST]
    request = parse_request(text)  # exactly what the operator will read
    assert request.action is Action.PROMOTE
    assert len(request.id) == 32 and request.id in result.stdout
    assert admin.stdout.strip() in request.by
    assert request.by.endswith(" (kubectl rollwise promote)")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


@pytest.mark.cluster
def test_request_wait_returns_once_the_operator_acknowledges_the_id(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    waiting = subprocess.Popen(
        [
            str(PLUGIN),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            service,
            "pause",
            SERVICE,
            "--wait",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(tmp_path),
    )
    try:
        text = wait_for(
            lambda: request_annotation(cluster, service),
            timeout=30,
            message="the pause request annotation",
        )
        assert text is not None
        request = parse_request(text)
        acknowledged = analysing().model_copy(
            update={
                "phase": Phase.PAUSED,
                "last_request": RequestAck(
                    id=request.id,
                    action=request.action.value,
                    by=request.by,
                    at=T0,
                    result="paused at step 3",
                ),
            }
        )
        write_status(cluster, service, acknowledged.to_wire())

        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()

    assert waiting.returncode == 0, err
    assert f"acknowledged request {request.id}: paused at step 3" in out


@pytest.mark.cluster
def test_watch_until_exits_once_the_phase_is_reached(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    watching = subprocess.Popen(
        [
            str(PLUGIN),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            service,
            "watch",
            SERVICE,
            "--until",
            "Healthy,RolledBack",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(tmp_path),
    )
    try:
        assert watching.stdout is not None
        first_line = watching.stdout.readline()  # the first frame is drawn: the watch is open
        assert first_line.startswith("ProgressiveService"), first_line
        healthy = analysing().model_copy(
            update={"phase": Phase.HEALTHY, "canary": None, "canary_weight": 0}
        )
        write_status(cluster, service, healthy.to_wire())

        out, err = watching.communicate(timeout=60)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.communicate()

    assert watching.returncode == 0, err
    assert "Phase:      Healthy" in out


@pytest.mark.cluster
def test_status_of_a_missing_service_says_not_found(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    result = run_plugin(cluster.kubeconfig, "-n", namespace, "status", "nope", home=tmp_path)

    assert result.returncode == 1
    assert f"progressiveservice {namespace}/nope not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.cluster
def test_a_token_without_rights_gets_the_permission_message(
    cluster: LocalCluster, service: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", service)
    token = cluster.kubectl("create", "token", "nobody", "-n", service).stdout.strip()
    admin_config = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": admin_config["clusters"][0]["cluster"]}],
                "users": [{"name": "nobody", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "nobody",
                        "context": {"cluster": "local", "user": "nobody", "namespace": service},
                    }
                ],
                "current-context": "nobody",
            }
        )
    )

    status = run_plugin(kubeconfig, "status", SERVICE, home=tmp_path)
    promote = run_plugin(kubeconfig, "promote", SERVICE, home=tmp_path)

    assert status.returncode == 1
    assert f"no permission to get progressiveservices in {service}: " in status.stderr
    assert f"system:serviceaccount:{service}:nobody" in status.stderr
    assert promote.returncode == 1
    assert f"no permission to get progressiveservices in {service}" in promote.stderr
    assert request_annotation(cluster, service) is None


def test_without_a_kubeconfig_the_plugin_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PLUGIN), "status", SERVICE],
        capture_output=True,
        text=True,
        env=plugin_env(tmp_path),
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "no kubeconfig found" in result.stderr
    assert str(tmp_path / ".kube" / "config") in result.stderr
