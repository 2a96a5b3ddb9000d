"""Two operator processes, one Lease: the leader SIGKILLed mid-canary and mid-migration.

The standby takes over and finishes the rollout; no step is done twice, exactly one migration
Job exists, and the API server's audit log (the cluster of this module logs every write with
its user agent) shows that the standby wrote nothing before it held the Lease, that a killed
leader's restart stands by without writing, that a frozen leader woken after losing the Lease
writes nothing and exits, and that Kopf wrote nothing at all. Failover
times are printed, not asserted: tests/bench/failover.py measures them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from rollwise.controller.runner import EXIT_LOST_LEASE
from tests.harness import paths
from tests.harness.cluster import LocalCluster
from tests.harness.fixtures import CRDS
from tests.harness.ha import (
    Write,
    audited_cluster,
    by,
    elected_operator,
    lease_holder,
    metric_value,
    wait_role,
    writes,
)
from tests.harness.operator_process import OperatorProcess
from tests.harness.rollouts import Rollouts, history_events, service_manifest
from tests.harness.run import HarnessRun
from tests.harness.wait import wait_for

# Shorter than the chart's 15/10/2 so the module runs in about two minutes; same rules.
LEASE_S, RENEW_S, RETRY_S = 6.0, 4.0, 1.0
CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "3s"}},
    {"setWeight": 50},
    {"pause": {"duration": "3s"}},
    {"setWeight": 75},
    {"pause": {"duration": "3s"}},
]


@pytest.fixture(scope="module")
def ha_cluster(harness_run: HarnessRun) -> Iterator[LocalCluster]:
    """A control plane of its own whose API server keeps an audit log of every write."""
    cluster = audited_cluster(harness_run, f"rwha-{os.getpid()}")
    try:
        cluster.start()
    except paths.MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        for component, path in cluster.component_logs().items():
            harness_run.register_log(f"ha-{component}", path)
        cluster.install_crds(CRDS)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def ha_api(ha_cluster: LocalCluster) -> Iterator[ApiClient]:
    api = ha_cluster.api_client()
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def ha_rollouts(request: pytest.FixtureRequest, ha_api: ApiClient) -> Iterator[Rollouts]:
    core = client.CoreV1Api(ha_api)
    name = f"ha-{request.node.name.split('_', 2)[-1][:30].replace('_', '-')}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        message=f"ServiceAccount default in {name}",
        ignore=(ApiException,),
    )
    try:
        yield Rollouts(ha_api, name)
    finally:
        core.delete_namespace(name, propagation_policy="Background")


Pair = tuple[OperatorProcess, OperatorProcess]


@pytest.fixture
def start_pair(
    harness_run: HarnessRun, ha_cluster: LocalCluster, ha_rollouts: Rollouts
) -> Iterator[Callable[..., Pair]]:
    """`start_pair(a_env)`: op-a started first and leading, then op-b a ready standby."""
    started: list[OperatorProcess] = []

    def start(a_env: dict[str, str] | None = None) -> Pair:
        a, b = (
            elected_operator(
                harness_run,
                ha_cluster,
                ha_rollouts.ns,
                identity,
                lease_duration=LEASE_S,
                renew_deadline=RENEW_S,
                retry_period=RETRY_S,
            )
            for identity in ("op-a", "op-b")
        )
        started.extend((a, b))
        a.start(env=a_env)
        wait_role(a, leader=True, timeout=30)
        b.start()
        wait_role(b, leader=False, timeout=30)
        return a, b

    try:
        yield start
    finally:
        for operator in started:
            operator.stop()


def first_lease_win(identity: str, found: list[Write]) -> Write:
    """The standby's acquiring write: its first successful Lease update."""
    return next(w for w in by(identity, found) if w.lease and w.code == 200)


def assert_wrote_only_while_leading(identity: str, found: list[Write]) -> None:
    """Before its first successful Lease update the process wrote nothing, not even a
    failed attempt at the Lease."""
    mine = by(identity, found)
    won = first_lease_win(identity, found)
    before = [w for w in mine if w.at < won.at and not w.lease]
    assert before == [], f"{identity} wrote before it held the Lease: {before}"
    assert [w for w in mine if w.lease and w.at < won.at] == [], "a standby only reads the Lease"


def assert_kopf_wrote_nothing(found: list[Write]) -> None:
    """Kopf's own client (`kopf/<version>`, aiohttp underneath) wrote nothing."""
    kopf = [w for w in found if "kopf" in w.user_agent.lower() or "aiohttp" in w.user_agent]
    agents = sorted({w.user_agent.split(" ")[0] for w in found})
    assert kopf == [], f"Kopf wrote: {kopf}"
    assert any(a.startswith("rollwise/") for a in agents), agents


def steps_completed(status: dict[str, Any]) -> list[int]:
    return [h["step"] for h in status.get("history") or [] if h["event"] == "StepCompleted"]


def test_leader_killed_mid_canary_standby_finishes_it_repeating_no_step(
    harness_run: HarnessRun,
    ha_cluster: LocalCluster,
    ha_api: ApiClient,
    ha_rollouts: Rollouts,
    start_pair: Callable[..., Pair],
) -> None:
    a, b = start_pair()
    rollouts = ha_rollouts
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", migration=False, steps=CANARY_STEPS))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=CANARY_STEPS))
    rollouts.wait_status(lambda s: (s.get("currentStepIndex") or 0) >= 2, 60, "mid-canary")

    killed_at = datetime.now(UTC)
    killed = time.monotonic()
    a.kill()
    dead_at = datetime.now(UTC)  # writes in flight at the SIGKILL land before this
    wait_role(b, leader=True, timeout=LEASE_S * 3)
    took_over = time.monotonic() - killed
    assert lease_holder(ha_api, rollouts.ns) == "op-b"
    a.start()  # back as a standby: the Lease is op-b's now
    restarted_at = datetime.now(UTC)
    wait_role(a, leader=False, timeout=30)
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    assert steps_completed(done) == [0, 1, 2, 3, 4, 5], history_events(done)
    found = writes(ha_cluster, rollouts.ns)
    assert_wrote_only_while_leading("op-b", found)
    assert [w for w in by("op-a", found) if w.at >= restarted_at] == [], "a standby wrote"
    assert [w for w in by("op-a", found) if dead_at < w.at < restarted_at] == []
    assert_kopf_wrote_nothing(found)
    # The new leader's own count of what it sent agrees with the API server's record (its
    # last Events may still be on their way when Healthy is read).
    wait_for(
        lambda: (
            metric_value(b.metrics(), "rollwise_api_writes_total")
            == len([w for w in by("op-b", writes(ha_cluster, rollouts.ns)) if not w.lease])
        ),
        timeout=10,
        message="op-b's write counter to match the audit log",
    )
    assert metric_value(b.metrics(), "rollwise_leader") == 1.0
    assert metric_value(a.metrics(), "rollwise_leader") == 0.0
    assert metric_value(a.metrics(), "rollwise_api_writes_total") == 0.0
    won = first_lease_win("op-b", found)

    # A clean stop (a rolling update, a drain) hands the Lease over instead of letting it expire.
    stopped = time.monotonic()
    b.stop()
    wait_role(a, leader=True, timeout=LEASE_S * 3)
    assert "released lease" in b.log_path.read_text()
    harness_run.note(
        f"failover mid-canary: standby led {took_over:.1f}s after the SIGKILL "
        f"(Lease won {(won.at - killed_at).total_seconds():.1f}s after it; lease {LEASE_S:g}s); "
        f"after a clean stop the standby led {time.monotonic() - stopped:.1f}s later"
    )


def test_leader_killed_right_after_creating_the_migration_job_it_runs_once(
    harness_run: HarnessRun,
    ha_cluster: LocalCluster,
    ha_rollouts: Rollouts,
    start_pair: Callable[..., Pair],
) -> None:
    # The leader SIGKILLs itself right after the Job exists and before status says so.
    a, b = start_pair(a_env={"ROLLWISE_CRASH_AFTER": "CreateMigrationJob"})
    rollouts = ha_rollouts
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", migration=False, steps=CANARY_STEPS))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", steps=CANARY_STEPS))

    assert a.wait_exit(timeout=60) == -9
    wait_role(b, leader=True, timeout=LEASE_S * 3)
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    revision = done["stable"]["revision"]
    jobs = [j.metadata.name for j in rollouts.jobs() if j.metadata]
    assert jobs == [f"payment-migrate-{revision}"]
    assert done["migration"]["phase"] == "Succeeded" and done["migration"]["attempts"] == 1
    assert "MigrationAdopted" in history_events(done)
    assert steps_completed(done) == [0, 1, 2, 3, 4, 5]
    found = writes(ha_cluster, rollouts.ns)
    job_creates = [w for w in found if w.resource == "jobs" and w.verb == "create"]
    first = job_creates[0] if job_creates else None
    assert first is not None and (first.user_agent, first.code) == ("rollwise/op-a", 201)
    assert [w.code for w in job_creates if w.code == 201] == [201], job_creates
    crashed_at = first.at
    # A request op-a's lease thread had in flight when the SIGKILL came is received after the
    # Job's create and fails (500: its client died); only a write that went through counts.
    after = [w for w in by("op-a", found) if w.at > crashed_at and w.code < 500]
    assert after == [], "op-a wrote after dying"
    assert_wrote_only_while_leading("op-b", found)
    assert_kopf_wrote_nothing(found)
    won = first_lease_win("op-b", found)
    harness_run.note(
        f"failover mid-migration: Lease won {(won.at - crashed_at).total_seconds():.1f}s "
        f"after the crash (lease {LEASE_S:g}s)"
    )


def test_a_frozen_leader_that_wakes_after_losing_the_lease_writes_nothing_and_exits(
    harness_run: HarnessRun,
    ha_cluster: LocalCluster,
    ha_rollouts: Rollouts,
    start_pair: Callable[..., Pair],
) -> None:
    # SIGSTOP: a leader frozen mid-canary (a long GC pause, a stalled VM) while its Lease
    # runs out; its passes wake up in the middle of whatever they were doing.
    a, b = start_pair()
    rollouts = ha_rollouts
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", migration=False, steps=CANARY_STEPS))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=CANARY_STEPS))
    rollouts.wait_status(lambda s: (s.get("currentStepIndex") or 0) >= 1, 60, "mid-canary")
    assert a.pid is not None
    os.killpg(a.pid, signal.SIGSTOP)
    try:
        wait_role(b, leader=True, timeout=LEASE_S * 3)
    finally:
        woke_at = datetime.now(UTC)
        os.killpg(a.pid, signal.SIGCONT)

    assert a.wait_exit(timeout=60) == EXIT_LOST_LEASE
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    assert steps_completed(done) == [0, 1, 2, 3, 4, 5], history_events(done)
    found = writes(ha_cluster, rollouts.ns)
    assert [w for w in by("op-a", found) if w.at >= woke_at] == [], "the woken leader wrote"
    assert_kopf_wrote_nothing(found)
    assert "lost lease" in a.log_path.read_text()
