"""Job and web gates end to end: the operator as a process, the real control plane (kwok runs
the measurement Jobs' pods and fails them on the `rollwise.dev/sim-fail` label), and a real
HTTP server on 127.0.0.1 answering a web gate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes.client import ApiClient

from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.pod_logs import PodLogs, write_cri_log
from tests.harness.rollouts import (
    GROUP,
    VERSION,
    Rollouts,
    deploy_first_version,
    history_events,
    service_manifest,
)
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analysis": {"gates": [{"name": "smoke", "args": {"service": "payment"}}]}},
    {"setWeight": 50},
]


def job_gate(namespace: str, *, fails: bool) -> dict[str, Any]:
    labels = {"rollwise.dev/sim-fail": "true"} if fails else {}
    container = {
        "name": "smoke",
        "image": "example.com/smoke:1",
        "command": ["/bin/sh", "-c", 'curl -fsS "$TARGET/healthz"'],
        "env": [
            {"name": "TARGET", "value": "http://{{args.service}}-canary.{{service.namespace}}"}
        ],
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetricGate",
        "metadata": {"name": "smoke", "namespace": namespace},
        "spec": {
            "args": [{"name": "service"}],
            "interval": "1s",
            "count": 1,
            "failureLimit": 0,
            "provider": {
                "job": {
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container]},
                    },
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 60,
                    "ttlSecondsAfterFinished": 300,
                }
            },
        },
    }


def web_gate(namespace: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MetricGate",
        "metadata": {"name": "smoke", "namespace": namespace},
        "spec": {
            "args": [{"name": "service"}],
            "interval": "1s",
            "count": 2,
            "inconclusiveLimit": 1,
            "consecutiveErrorLimit": 1,
            "provider": {
                "web": {
                    "url": url + "/slo/{{args.service}}?revision={{canary.revision}}",
                    "jsonPath": "$.errorRate",
                    "timeout": "2s",
                }
            },
            "thresholdRange": {"max": 0.05},
            **extra,
        },
    }


class SloHandler(BaseHTTPRequestHandler):
    """Answers every GET with `{"errorRate": null}`: the SLO service has no data."""

    paths: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        SloHandler.paths.append(self.path)
        body = json.dumps({"errorRate": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def slo_server() -> Iterator[str]:
    SloHandler.paths = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SloHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def allowing_operator(
    harness_run: HarnessRun,
    cluster: LocalCluster,
    namespace: str,
    rollwise_crds: None,
    slo_server: str,
) -> Iterator[OperatorProcess]:
    """The operator with the test's SLO server on its outbound allow-list (only /slo/)."""
    process = OperatorProcess(
        harness_run,
        cluster.kubeconfig,
        [namespace],
        name=f"operator-{namespace}",
        outbound_allow=(slo_server + "/slo/",),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def gate_result(status: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in status.get("analysis") or [] if r["gate"] == "smoke")


@pytest.fixture
def smoke_logs(api_client: ApiClient, namespace: str, tmp_path: Any) -> Iterator[list[str]]:
    """kwok answers the log of every `smoke` container of the namespace with these lines."""
    lines = [f"checking /healthz, attempt {i}" for i in range(1, 31)]
    lines.append("FAIL: /healthz answered 503 after 3 tries")
    logs = PodLogs(api_client)
    name = f"smoke-{namespace}"[:63]
    logs.serve(name, namespace, ["smoke"], write_cri_log(tmp_path / "smoke.log", lines))
    try:
        yield lines
    finally:
        logs.remove(name)


def test_a_failing_job_gate_rolls_back_with_the_jobs_failure_in_status(
    rollouts: Rollouts, operator: OperatorProcess, smoke_logs: list[str]
) -> None:
    rollouts.create_gate(job_gate(rollouts.ns, fails=True))
    v1 = deploy_first_version(rollouts, migration=False, steps=STEPS)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=STEPS))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["stable"]["revision"] == v1["stable"]["revision"]
    assert rolled["abort"]["reason"] == "GateFailed"
    result = gate_result(rolled)
    job_name = result["job"]
    assert result["verdict"] == "Failed" and result["failures"] == 1
    assert job_name.startswith("payment-gate-") and job_name.endswith("-1")
    # kwok's sim-fail stage: the Job's condition and the pod's termination message.
    # The last 20 lines of the failed pod's log, as the kubelet (kwok) serves them.
    tail = " | ".join(smoke_logs[-20:])
    for text in (result["message"], rolled["abort"]["message"]):
        assert f"Job {job_name} failed: BackoffLimitExceeded" in text
        assert "failed by the rollwise.dev/sim-fail kwok stage" in text
        assert f"log tail: {tail}" in text
    assert smoke_logs[-21] not in result["message"]
    gate_jobs = [
        j for j in rollouts.jobs() if (j.metadata.labels or {}).get("rollwise.dev/role") == "gate"
    ]
    assert [j.metadata.name for j in gate_jobs] == [job_name], "one Job, never a second"
    job = gate_jobs[0]
    assert job.spec.ttl_seconds_after_finished == 300
    assert job.metadata.owner_references[0].kind == "ProgressiveService"
    env = job.spec.template.spec.containers[0].env
    assert env[0].value == f"http://payment-canary.{rollouts.ns}"
    failed = [e for e in rollouts.events("GateFailed") if job_name in (e.message or "")]
    assert failed and failed[0].type == "Warning"
    assert "Promoted" not in history_events(rolled)


def test_a_passing_job_gate_promotes_after_one_job(
    rollouts: Rollouts, operator: OperatorProcess
) -> None:
    rollouts.create_gate(job_gate(rollouts.ns, fails=False))
    deploy_first_version(rollouts, migration=False, steps=STEPS)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=STEPS))
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    passed = [
        e.message or ""
        for e in rollouts.events("StepCompleted")
        if "(analysis) completed: gate smoke passed, Job payment-gate-" in (e.message or "")
    ]
    assert passed, "the analysis step passed on its Job"
    gate_jobs = [
        j for j in rollouts.jobs() if (j.metadata.labels or {}).get("rollwise.dev/role") == "gate"
    ]
    assert len(gate_jobs) == 1 and (gate_jobs[0].status.succeeded or 0) == 1
    assert done["stable"]["version"] == "2.0.0"


def test_a_web_gate_without_a_value_is_inconclusive_and_never_passes(
    rollouts: Rollouts, slo_server: str, allowing_operator: OperatorProcess
) -> None:
    rollouts.create_gate(web_gate(rollouts.ns, slo_server))
    deploy_first_version(rollouts, migration=False, steps=STEPS)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=STEPS))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateInconclusive"
    result = gate_result(rolled)
    assert result["verdict"] == "Inconclusive" and result["inconclusive"] == 2
    assert result.get("value") is None
    assert "jsonPath $.errorRate matched a null that is not a number: no data" in result["message"]
    canary = rolled["canary"]["revision"]
    # Status shows the destination only: a URL's path and query can be a credential.
    assert result["query"] == f"GET {slo_server}/… jsonPath $.errorRate"
    assert f"/slo/payment?revision={canary}" in SloHandler.paths, "the real server was asked"
    assert len(rollouts.events("GateInconclusive")) >= 2
    assert not [
        e for e in rollouts.events("StepCompleted") if "(analysis) completed" in (e.message or "")
    ], "no data never passes the gate"


@pytest.fixture
def refusing_operator(
    harness_run: HarnessRun, cluster: LocalCluster, namespace: str, rollwise_crds: None
) -> Iterator[OperatorProcess]:
    """The operator with an empty outbound allow-list (loopback itself allowed)."""
    process = OperatorProcess(
        harness_run,
        cluster.kubeconfig,
        [namespace],
        name=f"operator-{namespace}",
        outbound_allow=(),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_a_namespaced_web_gate_outside_the_allow_list_is_an_error_and_never_sent(
    rollouts: Rollouts, slo_server: str, refusing_operator: OperatorProcess
) -> None:
    rollouts.create_gate(web_gate(rollouts.ns, slo_server))
    deploy_first_version(rollouts, migration=False, steps=STEPS)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=STEPS))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateError"
    refused = f"MetricGate {rollouts.ns}/smoke: URL {slo_server}/… refused"
    assert refused in rolled["abort"]["message"]
    assert "outbound.allow: none" in rolled["abort"]["message"]
    errors = wait_for(
        lambda: [e for e in rollouts.events("GateError") if refused in (e.message or "")],
        timeout=10,
        message="a GateError Event naming the refused URL",
    )
    assert errors[0].type == "Warning"
    assert SloHandler.paths == [], "a refused URL is never requested"
