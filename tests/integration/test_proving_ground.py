"""The proving ground itself, proven against the real components.

Every later integration, e2e and reliability test trusts these behaviours: pods and Jobs behave
as the kwok stages promise, Prometheus sees exactly the traffic a test asks for, RBAC is really
enforced, and the harness leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

from tests.harness import paths, processes
from tests.harness.cluster import LocalCluster
from tests.harness.kube import api_client_from_kubeconfig
from tests.harness.prometheus import PrometheusServer, http_ok
from tests.harness.run import HarnessRun
from tests.harness.simulator_process import SimulatorProcess
from tests.harness.wait import hold_for, wait_for

pytestmark = pytest.mark.cluster

SERVICE = "svc"


def container(env: dict[str, str] | None = None) -> client.V1Container:
    return client.V1Container(
        name="app",
        image="registry.example/app:1.0",
        env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
    )


def pod_template(labels: dict[str, str], env: dict[str, str] | None = None) -> Any:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[container(env)], restart_policy="Always"),
    )


def job(name: str, pod_labels: dict[str, str], backoff_limit: int) -> client.V1Job:
    template = pod_template(pod_labels)
    template.spec.restart_policy = "Never"
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(template=template, backoff_limit=backoff_limit),
    )


def job_status(batch: client.BatchV1Api, namespace: str, name: str) -> client.V1JobStatus:
    return batch.read_namespaced_job_status(name, namespace).status or client.V1JobStatus()


def job_condition(
    batch: client.BatchV1Api, namespace: str, name: str, kind: str
) -> client.V1JobCondition | None:
    for condition in job_status(batch, namespace, name).conditions or []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    return pod.status or client.V1PodStatus()


def is_ready(pod: client.V1Pod) -> bool:
    conditions = pod_status(pod).conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def terminated_state(pod: client.V1Pod) -> tuple[int, str | None] | None:
    statuses = pod_status(pod).container_statuses or []
    state = statuses[0].state if statuses else None
    if state is None or state.terminated is None:
        return None
    return state.terminated.exit_code, state.terminated.reason


# --------------------------------------------------------------------------- kwok stages


def test_deployment_of_three_replicas_becomes_fully_ready(
    api_client: ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app.kubernetes.io/name": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=pod_template(labels),
            ),
        ),
    )

    def ready_replicas() -> int:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return (status.ready_replicas if status else None) or 0

    wait_for(lambda: ready_replicas() == 3, timeout=60, message="deployment web 3/3 ready")


def test_job_completes(api_client: ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, job("ok", {"app.kubernetes.io/name": "ok"}, 1))

    complete = wait_for(
        lambda: job_condition(batch, namespace, "ok", "Complete"),
        timeout=60,
        message="job ok to complete",
    )

    assert complete.status == "True"
    assert job_status(batch, namespace, "ok").succeeded == 1


def test_job_with_sim_fail_pods_fails_once_backoff_limit_is_exceeded(
    api_client: ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(api_client)
    core = client.CoreV1Api(api_client)
    batch.create_namespaced_job(namespace, job("migrate", {"rollwise.dev/sim-fail": "true"}, 1))

    # The Job controller waits ~10s (its default back-off) before the second attempt.
    failed = wait_for(
        lambda: job_condition(batch, namespace, "migrate", "Failed"),
        timeout=90,
        message="job migrate to fail",
    )

    assert failed.reason == "BackoffLimitExceeded"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=migrate").items
    assert [pod_status(p).phase for p in pods] == ["Failed", "Failed"]
    assert {terminated_state(p) for p in pods} == {(1, "Error")}
    assert job_status(batch, namespace, "migrate").failed == 2


def test_never_ready_pod_runs_but_stays_unready(api_client: ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    labels = {"rollwise.dev/sim-never-ready": "true"}
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="stuck", labels=labels),
            spec=pod_template(labels).spec,
        ),
    )

    def running_unready() -> str | None:
        pod = core.read_namespaced_pod_status("stuck", namespace)
        phase = pod_status(pod).phase
        return (
            f"{phase}, ready={is_ready(pod)}" if phase == "Running" and not is_ready(pod) else None
        )

    wait_for(running_unready, timeout=60, message="pod stuck to be Running")
    observations = hold_for(running_unready, duration=3.0, interval=0.5, message="stuck unready")

    assert len(observations) >= 3


# --------------------------------------------------------------------------- Prometheus


def error_ratio(prom: PrometheusConnect, namespace: str, revision: str) -> float | None:
    selector = f'namespace="{namespace}",revision="{revision}"'
    result = prom.custom_query(
        f'sum(rate(http_requests_total{{{selector},code=~"5.."}}[10s]))'
        f" / sum(rate(http_requests_total{{{selector}}}[10s]))"
    )
    return float(result[0]["value"][1]) if result else None


def create_revision(
    apps: client.AppsV1Api, namespace: str, revision: str, error_rate: float
) -> None:
    labels = {"app.kubernetes.io/name": SERVICE, "rollwise.dev/revision": revision}
    apps.create_namespaced_replica_set(
        namespace,
        client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(name=f"{SERVICE}-{revision}", labels=labels),
            spec=client.V1ReplicaSetSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=pod_template(labels, {"SIM_ERROR_RATE": str(error_rate)}),
            ),
        ),
    )


def test_prometheus_reports_the_simulated_error_rate_of_each_revision(
    api_client: ApiClient, namespace: str, prometheus: PrometheusServer
) -> None:
    apps = client.AppsV1Api(api_client)
    prom = PrometheusConnect(url=prometheus.url, disable_ssl=True)

    def ratio_is(revision: str, expected: float) -> float | None:
        value = error_ratio(prom, namespace, revision)
        return value if value is not None and abs(value - expected) < 1e-3 else None

    create_revision(apps, namespace, "r1", 0.1)
    r1 = wait_for(lambda: ratio_is("r1", 0.1), timeout=60, message="r1 error ratio 0.1")

    create_revision(apps, namespace, "r2", 0.5)
    r2 = wait_for(lambda: ratio_is("r2", 0.5), timeout=60, message="r2 error ratio 0.5")

    assert r1 == pytest.approx(0.1, abs=1e-3)
    assert r2 == pytest.approx(0.5, abs=1e-3)
    assert error_ratio(prom, namespace, "r1") == pytest.approx(0.1, abs=1e-3)


def test_pod_with_zero_rps_exports_no_series(
    api_client: ApiClient, namespace: str, simulator: SimulatorProcess
) -> None:
    core = client.CoreV1Api(api_client)
    labels = {"app.kubernetes.io/name": SERVICE, "rollwise.dev/revision": "idle"}
    for name, rps in (("busy", "5"), ("idle", "0")):
        template = pod_template(labels, {"SIM_RPS": rps})
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, labels=labels), spec=template.spec
            ),
        )

    def busy_exported() -> str | None:
        text = simulator.metrics_text()
        return text if f'namespace="{namespace}",pod="busy"' in text else None

    text = wait_for(busy_exported, timeout=30, message="simulator to export pod busy")

    assert f'namespace="{namespace}",pod="idle"' not in text


# --------------------------------------------------------------------------- RBAC


def service_account_token(cluster: LocalCluster, api_client: ApiClient, namespace: str) -> str:
    client.CoreV1Api(api_client).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    return cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()


def test_service_account_without_rights_is_forbidden(
    cluster: LocalCluster, api_client: ApiClient, namespace: str
) -> None:
    token = service_account_token(cluster, api_client, namespace)
    as_nobody = client.CoreV1Api(cluster.token_api_client(token))

    with pytest.raises(ApiException) as denied:
        as_nobody.list_namespaced_pod(namespace)

    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)


def test_service_account_granted_a_role_is_allowed(
    cluster: LocalCluster, api_client: ApiClient, namespace: str, tmp_path: Path
) -> None:
    """The control for the 403 above: same kind of token, with a Role it may list pods."""
    token = service_account_token(cluster, api_client, namespace)
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="nobody-reads-pods"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
            ],
        ),
    )
    kubeconfig = cluster.token_kubeconfig(token, tmp_path / "nobody.kubeconfig")
    as_nobody = client.CoreV1Api(api_client_from_kubeconfig(kubeconfig))

    pods = wait_for(
        lambda: as_nobody.list_namespaced_pod(namespace),
        timeout=30,
        message="nobody to be allowed to list pods",
        ignore=(ApiException,),
    )

    assert pods.items == []


# --------------------------------------------------------------------------- teardown


@pytest.fixture
def side_run(harness_run: HarnessRun) -> Iterator[HarnessRun]:
    """A second harness run (own state and log folders) for processes a test starts itself."""
    run = harness_run.child(f"side-{os.urandom(2).hex()}")
    yield run
    run.remove_state()


def pids_of(leftovers: list[processes.Leftover]) -> set[int]:
    return {leftover.pid for leftover in leftovers}


def test_stopping_prometheus_and_simulator_leaves_no_process(
    cluster: LocalCluster, side_run: HarnessRun
) -> None:
    simulator = SimulatorProcess(
        cluster.kubeconfig, side_run.state_dir, side_run.log_dir, run_id=side_run.run_id
    )
    simulator.start()
    prometheus = PrometheusServer(
        side_run.state_dir / "prometheus",
        side_run.log_dir,
        [simulator.target],
        run_id=side_run.run_id,
    )
    prometheus.start()
    started = {simulator.process.pid, prometheus.process.pid}
    assert started <= pids_of(processes.leftover_processes())  # the check does see them

    prometheus.stop()
    simulator.stop()

    assert not started & pids_of(processes.leftover_processes())
    assert processes.leftover_processes([side_run.state_dir]) == []
    assert not list((side_run.state_dir / "pids").glob("*.json"))


def test_prometheus_restarts_on_the_same_url_with_its_data(
    simulator: SimulatorProcess, side_run: HarnessRun
) -> None:
    prometheus = PrometheusServer(
        side_run.state_dir / "prometheus",
        side_run.log_dir,
        [simulator.target],
        run_id=side_run.run_id,
    )
    prometheus.start()
    try:
        prom = PrometheusConnect(url=prometheus.url, disable_ssl=True)
        wait_for(lambda: prom.custom_query("rollwise_sim_synced"), timeout=30, message="a scrape")

        with prometheus.stopped():
            assert not http_ok(f"{prometheus.url}/-/ready")

        assert prom.custom_query("rollwise_sim_synced[5m]"), "data from before the restart"
    finally:
        prometheus.stop()


SIGTERM_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.harness.run import HarnessRun
    from tests.harness.simulator_process import SimulatorProcess
    from tests.harness.prometheus import PrometheusServer

    run = HarnessRun(run_id=sys.argv[2])
    sim = SimulatorProcess(Path(sys.argv[1]), run.state_dir, run.log_dir, run_id=run.run_id)
    sim.start()
    prom = PrometheusServer(
        run.state_dir / "prometheus", run.log_dir, [sim.target], run_id=run.run_id
    )
    prom.start()
    print("ready", sim.process.pid, prom.process.pid, flush=True)
    while True:
        time.sleep(1)  # a long test, interrupted by SIGTERM
    """
)


def test_sigterm_to_the_harness_process_stops_everything_it_started(
    cluster: LocalCluster, side_run: HarnessRun
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, str(cluster.kubeconfig), side_run.run_id],
        cwd=paths.REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()  # blocks until the child reports ready
        assert line[:1] == ["ready"], f"child did not start: {line}"
        started = {int(pid) for pid in line[1:]}
        assert started <= pids_of(processes.leftover_processes())

        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)

        assert not started & pids_of(processes.leftover_processes())
        assert [p for p in processes.leftover_processes() if p.run_id == side_run.run_id] == []
    finally:
        if child.poll() is None:
            processes.terminate_group(child.pid)
            child.wait()


def test_run_logs_are_kept_per_run(harness_run: HarnessRun, cluster: LocalCluster) -> None:
    names = set(harness_run.component_logs)

    assert {"kube-apiserver", "etcd", "kwok-controller", "kwokctl"} <= names
    assert harness_run.log_dir.parent == paths.logs_root()
    assert json.dumps(harness_run.timings)  # timings are recorded and serialisable
    assert Path(harness_run.log_dir / "timings.log").exists()
