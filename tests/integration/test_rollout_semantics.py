"""Rollout rules users of Argo Rollouts and Flagger rely on, on the real control plane
(docs/rollout-semantics.md states each one).

- Replica split at the edges: 2 replicas at 51% and 1 replica at 25% keep a ready pod on each
  side (the 1-replica canary runs beside its stable on a surge pod).
- Inconclusive holds: a background gate whose query has no data holds the weight at its step,
  Paused with the reason, measurement after measurement; once the query has data the rollout
  goes on.
- `kubectl rollwise promote --full`: from an indefinite pause at step 2 of 6, one command
  promotes (the background gate that would fail is never measured again); from RolledBack only
  with --force. Status and history show the fast promotion and who asked.
- Supersede keeps stable at its size (3 of 4, followed through a ReplicaSet watch); the spec
  returned to the stable revision is Healthy before the old canary's pods go; a revision within
  rollbackWindow is promoted without steps.
- One migration at a time: 3.0.0 applied while 2.0.0's migration Job cannot finish waits for
  it (status and an Event name the Job), across an operator restart, and starts once that Job
  ends; with concurrencyPolicy Replace the old Job is stopped first. A Job watch counts the
  active migration Jobs at every change: never two.
- References at apply time: a missing MetricGate, or a deleted Ingress (nginx router), holds
  2.0.0 before any of its pods as InvalidSpec and Stalled; created, the rollout goes on.
- Per-service metrics on the operator's /metrics: the info series, the weight, gate verdicts
  and a rollback by namespace and name; all gone once the ProgressiveService is deleted.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.harness.cluster import LocalCluster
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.receiver import Receiver
from tests.harness.rollouts import (
    GROUP,
    PLURAL,
    VERSION,
    Rollouts,
    gate_manifest,
    service_manifest,
)
from tests.harness.wait import wait_for

pytestmark = pytest.mark.cluster


def ready_split(rollouts: Rollouts) -> tuple[int, int]:
    """(canary, stable) ready pods, read from the ReplicaSets the status names."""
    status = rollouts.status()
    ready = {
        revision: rs.status.ready_replicas or 0 for revision, rs in rollouts.replica_sets().items()
    }
    canary = (status.get("canary") or {}).get("revision")
    stable = (status.get("stable") or {}).get("revision")
    return ready.get(canary, 0), ready.get(stable, 0)


@pytest.mark.parametrize(("replicas", "weight"), [(2, 51), (1, 25)])
def test_a_canary_step_keeps_a_ready_pod_on_each_side(
    rollouts: Rollouts, operator: OperatorProcess, replicas: int, weight: int
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": weight}, {"pause": {}}]
    rollouts.apply(
        service_manifest(rollouts.ns, "1.0.0", replicas=replicas, steps=steps, migration=False)
    )
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)

    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", replicas=replicas, steps=steps, migration=False)
    )
    paused = rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("canaryWeight") == weight,
        timeout=90,
        message=f"paused at {weight}%",
    )
    wait_for(
        lambda: ready_split(rollouts) == (1, 1),
        timeout=60,
        message="one ready canary pod beside one ready stable pod",
    )

    assert paused["canary"]["replicas"] == 1 and paused["stable"]["replicas"] == 1
    # Kept there, not passed through: the split still holds a moment later.
    assert ready_split(rollouts) == (1, 1)


NO_DATA = 'sum(rate(rollwise_no_such_metric_total{service="{{args.service}}"}[5s]))'


def test_a_background_gate_without_data_holds_the_weight_until_it_has_data(
    rollouts: Rollouts, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    gate = gate_manifest(
        rollouts.ns,
        prometheus.url,
        name="latency",
        interval="1s",
        count=0,
        inconclusive_limit=1000,
        query=NO_DATA,
    )
    rollouts.create_gate(gate)
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"pause": {"duration": "1s"}},
        {"setWeight": 50},
    ]

    def manifest(version: str) -> dict[str, Any]:
        m = service_manifest(rollouts.ns, version, steps=steps, migration=False)
        m["spec"]["strategy"]["canary"]["analysis"] = {
            "gates": [{"name": "latency", "args": {"service": "payment"}}]
        }
        return m

    rollouts.apply(manifest("1.0.0"))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(manifest("2.0.0"))

    def held_for(measurements: int) -> Any:
        def check(s: dict[str, Any]) -> bool:
            results = [r for r in s.get("analysis") or [] if r.get("background")]
            return bool(
                s.get("phase") == "Paused"
                and results
                and results[0].get("inconclusive", 0) >= measurements
            )

        return check

    held = rollouts.wait_status(held_for(1), timeout=90, message="held by the gate")
    later = rollouts.wait_status(held_for(5), timeout=60, message="still held, 5 measurements on")

    for status in (held, later):
        assert status["canaryWeight"] == 25
        assert status["currentStepIndex"] == 1
        assert "latency (background) is Inconclusive" in status["message"]
        paused = next(c for c in status["conditions"] if c["type"] == "Paused")
        assert paused["status"] == "True" and paused["reason"] == "GateInconclusive"

    gate["spec"]["provider"]["prometheus"]["query"] = "vector(0.001)"
    rollouts.custom.patch_namespaced_custom_object(
        GROUP, VERSION, rollouts.ns, "metricgates", "latency", {"spec": gate["spec"]}
    )
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
    weights = [h.get("weight") for h in rollouts.history()]
    assert 50 in weights


PLUGIN = Path(sys.executable).with_name("kubectl-rollwise")


def plugin(cluster: LocalCluster, namespace: str, *args: str) -> str:
    result = subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_promote_full_skips_every_remaining_step_and_gate(
    cluster: LocalCluster,
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    operator: OperatorProcess,
) -> None:
    rollouts.create_gate(gate_manifest(rollouts.ns, prometheus.url, name="latency", count=0))
    steps: list[dict[str, Any]] = [
        {"setWeight": 20},
        {"pause": {}},
        {"setWeight": 40},
        {"pause": {"duration": "1h"}},
        {"setWeight": 60},
        {"pause": {}},
    ]

    def manifest(version: str, error_rate: float = 0.0) -> dict[str, Any]:
        m = service_manifest(
            rollouts.ns, version, steps=steps, migration=False, error_rate=error_rate
        )
        m["spec"]["strategy"]["canary"]["analysis"] = {
            "gates": [{"name": "latency", "args": {"service": "payment"}}],
            "startingStep": 2,
        }
        return m

    rollouts.apply(manifest("1.0.0"))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    # 2.0.0 answers 50% errors: its background gate would fail from step 3 on.
    rollouts.apply(manifest("2.0.0", error_rate=0.5))
    rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 1,
        timeout=90,
        message="paused at step 2",
    )

    said = plugin(cluster, rollouts.ns, "promote", "payment", "--full", "--wait")
    healthy = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)

    assert "acknowledged" in said and "full promotion" in said, said
    full = healthy["fullPromotion"]
    assert full["fromStep"] == 1 and full["fromPhase"] == "Paused"
    assert "kubectl rollwise promote" in full["by"]
    events = [h["event"] for h in healthy["history"]]
    assert "FullPromotion" in events and "Promoted" in events
    assert "GateFailed" not in events and "RolledBack" not in events
    view = plugin(cluster, rollouts.ns, "status", "payment")
    assert "Promotion:  fast (promote --full)" in view, view

    # 3.0.0 fails its gate and rolls back; promote --full refuses it, --force promotes it.
    rollouts.apply(manifest("3.0.0", error_rate=0.5))
    rollouts.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 1,
        timeout=90,
        message="3.0.0 paused at step 2",
    )
    plugin(cluster, rollouts.ns, "promote", "payment", "--wait")
    rollouts.wait_phase("RolledBack", timeout=120)
    refused = plugin(cluster, rollouts.ns, "promote", "payment", "--full", "--wait")
    assert "--force" in refused, refused
    assert rollouts.status()["phase"] == "RolledBack"
    plugin(cluster, rollouts.ns, "promote", "payment", "--full", "--force", "--wait")
    forced = rollouts.wait_phase("Healthy", version="3.0.0", timeout=120)
    assert forced["fullPromotion"]["fromPhase"] == "RolledBack"


class ReplicaSetSizes:
    """spec.replicas of one revision's ReplicaSet at every change, followed by a watch in a
    thread from the moment of entering until leaving."""

    def __init__(self, rollouts: Rollouts, revision: str) -> None:
        self._apps = rollouts.apps
        self._ns = rollouts.ns
        self._selector = f"rollwise.dev/revision={revision}"
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self.sizes: list[int] = []
        self.events = 0
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ReplicaSetSizes:
        listed = self._apps.list_namespaced_replica_set(self._ns, label_selector=self._selector)
        self.sizes = [rs.spec.replicas for rs in listed.items]
        self._thread = threading.Thread(
            target=self._run, args=(listed.metadata.resource_version,), daemon=True
        )
        self._thread.start()
        return self

    def _run(self, version: str) -> None:
        try:
            for event in self._watch.stream(
                self._apps.list_namespaced_replica_set,
                self._ns,
                label_selector=self._selector,
                resource_version=version,
                timeout_seconds=300,
            ):
                self.sizes.append(event["object"].spec.replicas)
                self.events += 1
                if self._stop.is_set():
                    return
        except Exception as exc:  # surfaced by the test: a broken watch proves nothing
            if not self._stop.is_set():
                self.error = exc

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


def test_supersede_keeps_stable_and_returning_to_it_is_healthy_at_once(
    rollouts: Rollouts, operator: OperatorProcess
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 25}, {"pause": {}}]

    def manifest(version: str) -> dict[str, Any]:
        m = service_manifest(rollouts.ns, version, steps=steps, migration=False, abort_delay=20)
        m["spec"]["rollbackWindow"] = {"revisions": 1}
        return m

    rollouts.apply(manifest("1.0.0"))
    v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)["stable"]["revision"]
    rollouts.apply(manifest("2.0.0"))
    rollouts.wait_status(lambda s: s.get("phase") == "Paused", timeout=90, message="2.0.0 paused")

    def v3_paused() -> bool:
        s = rollouts.status()
        return s.get("phase") == "Paused" and (s.get("canary") or {}).get("version") == "3.0.0"

    with ReplicaSetSizes(rollouts, v1) as stable:
        rollouts.apply(manifest("3.0.0"))
        wait_for(v3_paused, timeout=90, message="3.0.0 paused at 25%")
    assert stable.error is None, stable.error
    assert set(stable.sizes) == {3}, stable.sizes  # never 4: 3 -> 3

    # Back to 1.0.0, the stable revision: Healthy while 3.0.0's pods are still there.
    rollouts.apply(manifest("1.0.0"))
    healthy = rollouts.wait_phase("Healthy", version="1.0.0", timeout=60)
    assert "ReturnedToStable" in [h["event"] for h in healthy["history"]]
    canaries = [r for r in rollouts.replica_sets() if r != v1]
    assert canaries, "the old canary's ReplicaSet went before the delay"
    wait_for(
        lambda: set(rollouts.replica_sets()) == {v1},
        timeout=60,
        message="the old canary's ReplicaSet deleted after abortScaleDownDelaySeconds",
    )
    assert rollouts.status()["phase"] == "Healthy"

    # 2.0.0 promoted by the steps, then back to 1.0.0 within rollbackWindow 1: no steps.
    rollouts.apply(manifest("2.0.0"))
    rollouts.wait_status(lambda s: s.get("phase") == "Paused", timeout=90, message="paused")
    rollouts.request("payment", "promote", uuid.uuid4().hex, "tester")
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)
    rollouts.apply(manifest("1.0.0"))
    back = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    events = [h["event"] for h in back["history"]]
    assert "RollbackWindow" in events
    assert back["fullPromotion"]["by"] == "rollwise (rollbackWindow)"


class ActiveMigrations:
    """Follows the namespace's migration Jobs through a watch and keeps the most that were
    active at once (not Complete, not Failed; a Job being deleted still counts)."""

    def __init__(self, rollouts: Rollouts) -> None:
        self._batch = rollouts.batch
        self._ns = rollouts.ns
        self._jobs: dict[str, bool] = {}
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self.most = 0
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _active(job: Any) -> bool:
        ended = {c.type for c in (job.status.conditions or []) if c.status == "True"} & {
            "Complete",
            "Failed",
        }
        return not ended

    def _see(self, job: Any, deleted: bool) -> None:
        if "-migrate-" not in job.metadata.name:
            return
        if deleted:
            self._jobs.pop(job.metadata.name, None)
        else:
            self._jobs[job.metadata.name] = self._active(job)
        self.most = max(self.most, sum(self._jobs.values()))

    def __enter__(self) -> ActiveMigrations:
        listed = self._batch.list_namespaced_job(self._ns)
        for job in listed.items:
            self._see(job, deleted=False)
        self._thread = threading.Thread(
            target=self._run, args=(listed.metadata.resource_version,), daemon=True
        )
        self._thread.start()
        return self

    def _run(self, version: str) -> None:
        try:
            for event in self._watch.stream(
                self._batch.list_namespaced_job,
                self._ns,
                resource_version=version,
                timeout_seconds=600,
            ):
                self._see(event["object"], deleted=event["type"] == "DELETED")
                if self._stop.is_set():
                    return
        except Exception as exc:  # surfaced by the test
            if not self._stop.is_set():
                self.error = exc

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


def stuck_migration(manifest: dict[str, Any], deadline: int, policy: str) -> dict[str, Any]:
    """The migration's pod can never be scheduled: its Job stays active until its deadline."""
    migration = manifest["spec"]["migration"]
    migration["template"]["spec"]["nodeSelector"] = {"rollwise.dev/no-such-node": "true"}
    migration["activeDeadlineSeconds"] = deadline
    migration["concurrencyPolicy"] = policy
    return manifest


@pytest.mark.parametrize("policy", ["Wait", "Replace"])
def test_one_migration_at_a_time(
    rollouts: Rollouts, operator: OperatorProcess, policy: str
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 50}]
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", steps=steps))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)

    with ActiveMigrations(rollouts) as jobs:
        rollouts.apply(
            stuck_migration(service_manifest(rollouts.ns, "2.0.0", steps=steps), 25, policy)
        )
        running = rollouts.wait_status(
            lambda s: (
                (s.get("migration") or {}).get("version") == "2.0.0"
                and s.get("phase") == "Migrating"
            ),
            timeout=60,
            message="2.0.0 migrating",
        )
        old_job = running["migration"]["job"]
        rollouts.apply(
            stuck_migration(service_manifest(rollouts.ns, "3.0.0", steps=steps), 25, policy)
        )
        if policy == "Wait":
            waiting = rollouts.wait_status(
                lambda s: f"waiting for migration Job {old_job}" in (s.get("message") or ""),
                timeout=60,
                message="3.0.0 waiting for 2.0.0's migration Job",
            )
            assert waiting["phase"] == "Migrating"
            told = [e.message for e in rollouts.events("MigrationWaiting")]
            assert any(old_job in m for m in told), told
            operator.stop()
            operator.start()
            rollouts.wait_status(
                lambda s: (s.get("migration") or {}).get("version") == "3.0.0",
                timeout=90,
                message="3.0.0's migration started once 2.0.0's Job ended (its deadline)",
            )
            ended = rollouts.batch.read_namespaced_job(old_job, rollouts.ns)
            assert not ActiveMigrations._active(ended)
        else:
            rollouts.wait_status(
                lambda s: (s.get("migration") or {}).get("version") == "3.0.0",
                timeout=60,
                message="3.0.0's migration started after 2.0.0's Job was stopped",
            )
            told = [e.message for e in rollouts.events("MigrationWaiting")]
            assert any("stopping migration Job" in m for m in told), told
            wait_for(
                lambda: old_job not in {j.metadata.name for j in rollouts.jobs()},
                timeout=30,
                message="the stopped Job is gone",
            )

    assert jobs.error is None, jobs.error
    assert jobs.most == 1, f"{jobs.most} migration Jobs were active at once"


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def held_invalid(rollouts: Rollouts, v1: str, needle: str) -> dict[str, Any]:
    held = rollouts.wait_status(
        lambda s: needle in (s.get("message") or "") and s.get("phase") == "Pending",
        timeout=60,
        message=f"held: {needle}",
    )
    conditions = conditions_of(held)
    assert conditions["InvalidSpec"] == ("True", "InvalidSpec")
    assert conditions["Stalled"] == ("True", "InvalidSpec")
    assert conditions["Reconciling"][0] == "False"
    assert set(rollouts.replica_sets()) == {v1}, "a pod of the new revision was created"
    new = held["canary"]["revision"]
    assert not [j.metadata.name for j in rollouts.jobs() if new in j.metadata.name]
    assert rollouts.events("InvalidSpec")
    return held


def test_a_missing_reference_holds_the_rollout_until_it_exists(
    rollouts: Rollouts, prometheus: PrometheusServer, operator: OperatorProcess
) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"analysis": {"gates": [{"name": "latency", "args": {"service": "payment"}}]}},
    ]
    user_ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "payment", "namespace": rollouts.ns},
        "spec": {"defaultBackend": {"service": {"name": "payment-stable", "port": {"number": 80}}}},
    }
    networking = client.NetworkingV1Api(rollouts.core.api_client)
    networking.create_namespaced_ingress(rollouts.ns, user_ingress)

    def manifest(version: str) -> dict[str, Any]:
        m = service_manifest(rollouts.ns, version, steps=steps)
        m["spec"]["strategy"]["canary"]["trafficRouting"] = {"nginx": {"ingress": "payment"}}
        return m

    rollouts.apply(manifest("1.0.0"))
    v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)["stable"]["revision"]

    # The MetricGate does not exist.
    rollouts.apply(manifest("2.0.0"))
    held_invalid(rollouts, v1, "MetricGate")
    rollouts.create_gate(
        gate_manifest(rollouts.ns, prometheus.url, name="latency", count=1, query="vector(0.001)")
    )
    rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    healed = conditions_of(rollouts.status())
    assert healed["InvalidSpec"][0] == "False" and healed["Stalled"][0] == "False"
    v2 = rollouts.status()["stable"]["revision"]

    # The Ingress is deleted.
    networking.delete_namespaced_ingress("payment", rollouts.ns)
    rollouts.apply(manifest("3.0.0"))
    held = held_invalid(rollouts, v2, "Ingress")
    assert "trafficRouting.nginx.ingress" in held["message"]
    networking.create_namespaced_ingress(rollouts.ns, user_ingress)
    rollouts.wait_phase("Healthy", version="3.0.0", timeout=120)


def test_a_missing_secret_of_a_webhook_or_notification_holds_the_rollout_until_it_exists(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    """The Secrets a spec takes webhook and notification URLs and headers from are references
    too: a missing one, or one without the key, is InvalidSpec and Stalled before any pod of
    the new revision runs; creating them lets the rollout go on by itself."""
    receiver = Receiver()
    try:
        rollouts.apply(service_manifest(rollouts.ns, "1.0.0"))
        v1 = rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)["stable"]["revision"]
        rollouts.core.create_namespaced_secret(
            rollouts.ns, {"metadata": {"name": "hook-auth"}, "stringData": {"other": "x"}}
        )
        manifest = service_manifest(rollouts.ns, "2.0.0")
        manifest["spec"]["strategy"]["canary"]["webhooks"] = [
            {
                "name": "audit",
                "type": "event",
                "url": receiver.url("/audit"),
                "headers": [
                    {
                        "name": "Authorization",
                        "valueSecretRef": {"name": "hook-auth", "key": "token"},
                    }
                ],
            }
        ]
        manifest["spec"]["notifications"] = {
            "when": ["Promoted"],
            "receivers": [
                {"name": "chat", "slack": {"urlSecretRef": {"name": "chat", "key": "url"}}}
            ],
        }

        rollouts.apply(manifest)

        held = held_invalid(rollouts, v1, "Secret")
        ns = rollouts.ns
        assert (
            f"Secret {ns}/hook-auth (spec.strategy.canary.webhooks[0].headers[0].valueSecretRef) "
            "has no key token" in held["message"]
        )
        assert (
            f"Secret {ns}/chat (spec.notifications.receivers[0].slack.urlSecretRef) does not exist"
            in held["message"]
        )
        assert receiver.received() == [], "nothing was called while the spec was invalid"
        rollouts.core.patch_namespaced_secret(
            "hook-auth", ns, {"stringData": {"token": "Bearer t0ken"}}
        )
        rollouts.core.create_namespaced_secret(
            ns, {"metadata": {"name": "chat"}, "stringData": {"url": receiver.url("/chat")}}
        )
        done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
        healed = conditions_of(done)
        assert healed["InvalidSpec"][0] == "False" and healed["Stalled"][0] == "False"
        wait_for(lambda: receiver.received("/chat"), timeout=30, message="the notification")
        audit = wait_for(lambda: receiver.received("/audit"), timeout=30, message="the event hook")
        assert audit[0].headers["authorization"] == "Bearer t0ken"
    finally:
        receiver.stop()


def service_series(
    operator: OperatorProcess, namespace: str
) -> list[tuple[str, dict[str, str], float]]:
    """(metric, labels, value) of every rollwise_service_* sample about `namespace`."""
    out = []
    for line in operator.metrics().splitlines():
        match = re.match(r"(rollwise_service_[a-z_]+)\{(.*)\} (\S+)$", line)
        if match is None or match.group(1).endswith("_created"):
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
        if labels.get("namespace") == namespace:
            out.append((match.group(1), labels, float(match.group(3))))
    return out


def test_per_service_metrics_follow_a_rollback_and_go_with_the_service(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    steps: list[dict[str, Any]] = [
        {"setWeight": 25},
        {"analysis": {"gates": [{"name": "error-rate", "args": {"service": "payment"}}]}},
    ]
    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", steps=steps, migration=False))
    rollouts.wait_phase("Healthy", version="1.0.0", timeout=90)
    rollouts.apply(
        service_manifest(rollouts.ns, "2.0.0", steps=steps, migration=False, error_rate=0.5)
    )
    rollouts.wait_phase("RolledBack", timeout=120)

    def value(metric: str, **labels: str) -> float | None:
        wanted = {"namespace": rollouts.ns, "name": "payment", **labels}
        series = service_series(operator, rollouts.ns)
        found = [v for m, lab, v in series if m == metric and lab == wanted]
        return found[0] if found else None

    wait_for(
        lambda: (
            value("rollwise_service_info", phase="RolledBack", stable="1.0.0", canary="2.0.0") == 1
        ),
        timeout=30,
        message="the info series says RolledBack",
    )
    assert value("rollwise_service_rollbacks_total", reason="GateFailed") == 1
    failed = value("rollwise_service_gate_verdicts_total", gate="error-rate", verdict="Failed")
    assert (failed or 0) >= 1
    assert value("rollwise_service_canary_weight") == 0
    infos = [s for s in service_series(operator, rollouts.ns) if s[0] == "rollwise_service_info"]
    assert len(infos) == 1, infos

    rollouts.custom.delete_namespaced_custom_object(GROUP, VERSION, rollouts.ns, PLURAL, "payment")
    wait_for(
        lambda: service_series(operator, rollouts.ns) == [],
        timeout=60,
        message="every series of the deleted service gone",
    )
