"""The story users run, on real pods: a first version whose migration Job (the app's own
`migrate` command, a real container) runs before it serves; a canary through the in-cluster
Traefik gateway, promoted on the in-cluster Prometheus' data about the gateway's requests; a bad
version rolled back with the value the gate measured.

The tests build on each other in file order (one service, one namespace): each costs a
real rollout, so they share it rather than repeat it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness import kind, load
from tests.harness.kind import KindCluster, Rollout
from tests.harness.wait import wait_for
from tests.kind.conftest import KindStage


@dataclass
class Shop:
    rollout: Rollout
    service: dict  # type: ignore[type-arg]
    host: dict[str, str]
    stage: KindStage

    @property
    def cluster(self) -> KindCluster:
        return self.stage.cluster

    def version(self, version: str, error_rate: str = "0") -> dict:  # type: ignore[type-arg]
        return kind.at_version(self.service, self.stage.app_image, version, error_rate=error_rate)

    def answered(self) -> bool:
        sent = load.send(self.cluster.gateway_url, requests=1, headers=self.host)
        return any(r.status == 200 and r.revision for r in sent.responses)


@pytest.fixture(scope="module")
def shop(kind_stage: KindStage) -> Iterator[Shop]:
    cluster = kind_stage.cluster
    namespace = f"shop-{kind_stage.run.run_id.rsplit('-', 1)[-1]}"
    cluster.kubectl("create", "namespace", namespace)
    route, service = kind.example_route_and_service(namespace)
    wait_for(
        lambda: (
            cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0
        ),
        timeout=30,
        message="the namespace's default ServiceAccount",
    )
    cluster.apply(kind.example_gate(namespace), route)
    yield Shop(
        Rollout(cluster, namespace), service, {"Host": route["spec"]["hostnames"][0]}, kind_stage
    )
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_first_version_runs_its_migration_job_then_serves(shop: Shop) -> None:
    shop.rollout.apply(shop.version("1.0.0"))

    status = shop.rollout.wait_settled("1.0.0", timeout=240)

    assert status["phase"] == "Healthy", status.get("message")
    (job,) = shop.rollout.jobs()
    assert job["status"].get("succeeded") == 1
    logs = shop.cluster.logs(f"job/{job['metadata']['name']}", shop.rollout.namespace)
    assert "migrated to 1.0.0" in logs
    wait_for(shop.answered, timeout=60, message="version 1.0.0 answering through the gateway")


def test_canary_through_the_gateway_promotes_on_in_cluster_prometheus(shop: Shop) -> None:
    with load.BackgroundLoad(
        shop.cluster.gateway_url, rate=10, seconds=110, headers=shop.host
    ) as traffic:
        shop.rollout.apply(shop.version("2.0.0"))
        status = shop.rollout.wait_settled("2.0.0", timeout=240)
        sent = traffic.stop()

    assert status["phase"] == "Healthy", status.get("message")
    assert status["stable"]["version"] == "2.0.0"
    passed = [h for h in status["history"] if h["event"] == "StepCompleted"]
    assert len(passed) == len(shop.service["spec"]["strategy"]["canary"]["steps"])
    # Both versions answered during the canary, and nothing failed.
    answered = Counter(r.revision for r in sent.responses if r.revision)  # pods' answers
    assert status["stable"]["revision"] in answered and len(answered) == 2, answered
    # Real pods come and go under real traffic: at most 2% not answered 200 (Traefik picks
    # up endpoint changes a moment late).
    codes = sent.by_status()
    assert codes[200] >= 0.98 * len(sent.responses), codes
    # The gate read Traefik's own counts of the canary's requests from Prometheus.
    series = shop.cluster.query(
        f'sum(traefik_service_requests_total{{service=~"(.*-)?{shop.rollout.namespace}-payment-canary-.*"}})'
    )
    assert series and float(series[0]["value"][1]) > 0


def test_bad_version_rolls_back_with_the_measured_value(shop: Shop) -> None:
    with load.BackgroundLoad(
        shop.cluster.gateway_url, rate=10, seconds=110, headers=shop.host
    ) as traffic:
        shop.rollout.apply(shop.version("3.0.0", error_rate="0.3"))
        status = shop.rollout.wait_settled("3.0.0", timeout=240)
        traffic.stop()

    assert status["phase"] == "RolledBack", status.get("message")
    assert status["stable"]["version"] == "2.0.0"
    abort = status["abort"]
    assert abort["reason"] == "GateFailed"
    # The measured error rate, e.g. "gateway-error-rate 0.3 > max 0.05".
    assert "gateway-error-rate 0." in abort["message"] and "> max 0.05" in abort["message"]
    wait_for(shop.answered, timeout=60, message="2.0.0 answering again")
