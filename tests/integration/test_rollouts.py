"""The rollout engine end to end: the operator as a process, the real control plane (kwok pods),
real Prometheus scraping the pod-traffic simulator. Each test tells one story from DESIGN.md."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import LocalCluster
from tests.harness.fixtures import CRDS
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import PrometheusServer
from tests.harness.rollouts import (
    GROUP,
    VERSION,
    Rollouts,
    deploy_first_version,
    gate_manifest,
    history_events,
    service_manifest,
)
from tests.harness.wait import wait_for


def test_healthy_canary_with_migration_promotes_without_restarting_pods(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    v1 = deploy_first_version(rollouts)
    v1_revision = v1["stable"]["revision"]

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
    at_half = rollouts.wait_status(
        lambda s: s.get("canaryWeight") == 50 and (s.get("canary") or {}).get("version") == "2.0.0",
        timeout=90,
        message="canary at 50%",
    )
    v2_revision = at_half["canary"]["revision"]
    canary_pods_before = {p.metadata.uid for p in rollouts.pods(v2_revision)}

    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=90)

    assert done["stable"]["revision"] == v2_revision
    assert done.get("canary") is None
    jobs = [j.metadata.name for j in rollouts.jobs()]
    assert sorted(jobs) == sorted(
        [f"payment-migrate-{v1_revision}", f"payment-migrate-{v2_revision}"]
    )
    assert done["migration"]["phase"] == "Succeeded" and done["migration"]["attempts"] == 1
    wait_for(lambda: not rollouts.pods(v1_revision), timeout=30, message="no v1 pod left")
    after = {p.metadata.uid for p in rollouts.pods(v2_revision)}
    assert canary_pods_before <= after, "a canary pod was restarted at promotion"
    assert len(after) == 4
    history = history_events(done)
    assert history.count("Promoted") == 1
    # A step gate's pass is told by the StepCompleted Event of its analysis step.
    analysis_passed = [
        e
        for e in rollouts.events("StepCompleted")
        if "(analysis) completed: gate error-rate passed" in (e.message or "")
    ]
    assert analysis_passed, "the analysis step measured and passed the gate"
    ready = {c["type"]: c["status"] for c in done["conditions"]}
    assert ready["Ready"] == "True" and ready["MigrationComplete"] == "True"


def test_bad_version_rolls_back_with_the_measured_value(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    v1 = deploy_first_version(rollouts)

    rollouts.apply(service_manifest(rollouts.ns, "3.0.0", error_rate=0.5))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["stable"]["revision"] == v1["stable"]["revision"]
    assert rolled["stable"]["version"] == "1.0.0"
    assert rolled["canaryWeight"] == 0
    assert rolled["abort"]["reason"] == "GateFailed"
    assert "> max 0.05" in rolled["abort"]["message"]
    canary_revision = rolled["canary"]["revision"]
    assert rollouts.replica_sets()[canary_revision].spec.replicas == 0
    wait_for(lambda: not rollouts.pods(canary_revision), timeout=30, message="canary pods gone")
    failed = [r for r in rolled["analysis"] if r["verdict"] == "Failed"]
    assert failed and failed[0]["value"] > 0.05 and "revision=" in failed[0]["query"]
    assert canary_revision in failed[0]["query"], "the query as sent names the canary revision"
    events = rollouts.events("GateFailed")
    assert events and any("> max 0.05" in (e.message or "") for e in events)
    assert rolled["schemaAheadOfApp"] is True, "3.0.0 migrated before it was rolled back"
    assert conditions(rolled)["Degraded"] == ("True", "GateFailed")


def test_failing_migration_never_creates_a_canary_pod(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    v1 = deploy_first_version(rollouts)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration_fails=True))
    failed = rollouts.wait_phase("MigrationFailed", timeout=90)

    assert failed["stable"]["revision"] == v1["stable"]["revision"]
    assert failed["migration"]["phase"] == "Failed"
    assert set(rollouts.replica_sets()) == {v1["stable"]["revision"]}
    assert len(rollouts.pods(v1["stable"]["revision"])) == 4
    assert rollouts.events("MigrationFailed")
    job = failed["migration"]["job"]
    assert [j.metadata.name for j in rollouts.jobs()].count(job) == 1
    assert failed["canary"]["version"] == "2.0.0" and failed["canary"].get("replicas", 0) == 0


def test_gate_without_data_never_promotes_and_aborts_after_the_inconclusive_limit(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_first_version(rollouts)

    # SIM_RPS=0: the canary's pods serve no traffic, so the gate's query returns no data.
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", rps=0))
    rolled = rollouts.wait_phase("RolledBack", timeout=120)

    assert rolled["abort"]["reason"] == "GateInconclusive"
    assert rolled["stable"]["version"] == "1.0.0"
    result = next(r for r in rolled["analysis"] if r["gate"] == "error-rate")
    assert result["inconclusive"] == 2 and result.get("value") is None
    assert "Promoted" not in history_events(rolled)


def test_new_version_mid_canary_supersedes_it(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_first_version(rollouts, migration=False)
    steps = [{"setWeight": 25}, {"pause": {}}]
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=steps))
    paused = rollouts.wait_phase("Paused", timeout=60)
    v2_revision = paused["canary"]["revision"]

    rollouts.apply(
        service_manifest(
            rollouts.ns,
            "3.0.0",
            migration=False,
            steps=[{"setWeight": 25}, {"pause": {"duration": "1s"}}],
        )
    )
    done = rollouts.wait_phase("Healthy", version="3.0.0", timeout=90)

    assert "Superseded" in history_events(done)
    wait_for(lambda: not rollouts.pods(v2_revision), timeout=30, message="v2 pods gone")
    assert v2_revision not in rollouts.replica_sets() or (
        rollouts.replica_sets()[v2_revision].spec.replicas == 0
    )


def test_pause_promote_and_abort_requests_are_each_recorded_once_with_their_actor(
    rollouts: Rollouts, gate: dict[str, Any], operator: OperatorProcess
) -> None:
    deploy_first_version(rollouts, migration=False)
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    rollouts.apply(service_manifest(rollouts.ns, "2.0.0", migration=False, steps=steps))
    rollouts.wait_phase("Paused", timeout=60)

    promote_id = uuid.uuid4().hex
    rollouts.request("payment", "promote", promote_id, "alice@example.com")
    at_50 = rollouts.wait_status(lambda s: s.get("currentStepIndex") == 3, 60, "second pause")
    assert at_50["lastRequest"]["id"] == promote_id
    assert at_50["canaryWeight"] == 50

    abort_id = uuid.uuid4().hex
    rollouts.request("payment", "abort", abort_id, "bob@example.com")
    rolled = rollouts.wait_phase("RolledBack", timeout=60)

    actors = [(h["event"], h["actor"]) for h in rolled["history"]]
    assert actors.count(("RequestAccepted", "alice@example.com")) == 1
    assert actors.count(("RequestAccepted", "bob@example.com")) == 1
    assert (
        rolled["abort"]["reason"] == "Aborted" and "bob@example.com" in rolled["abort"]["message"]
    )
    assert rolled["lastRequest"]["id"] == abort_id
    spec = rollouts.get()["spec"]
    assert spec == service_manifest(rollouts.ns, "2.0.0", migration=False, steps=steps)["spec"], (
        "the operator never writes the spec"
    )


def test_a_gate_stored_under_a_looser_schema_is_reported_invalid_and_never_passes(
    rollouts: Rollouts,
    prometheus: PrometheusServer,
    cluster: LocalCluster,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    # The API server does not re-validate stored objects when a CRD's schema changes: a gate
    # written under an older, looser schema reaches the operator as it was written. Here the
    # MetricGate CRD is loosened for one create, then restored.
    broken = gate_manifest(rollouts.ns, prometheus.url)
    broken["spec"]["thresholdRange"] = {}
    loose = yaml.safe_load((CRDS / "rollwise.dev_metricgates.yaml").read_text())
    for version in loose["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    loose_file = tmp_path / "loose-metricgates.yaml"
    loose_file.write_text(yaml.safe_dump(loose))

    def create_broken() -> bool:
        rollouts.create_gate(broken)
        return True

    try:
        cluster.kubectl("apply", "-f", str(loose_file))
        # The API server takes the new schema a moment after the CRD update is stored.
        wait_for(
            create_broken,
            timeout=30,
            message="the gate created under the loose schema",
            ignore=(ApiException,),
        )
    finally:
        cluster.install_crds(CRDS)
    deploy_first_version(rollouts)

    rollouts.apply(service_manifest(rollouts.ns, "2.0.0"))
    waiting = rollouts.wait_status(
        lambda s: "is invalid" in (s.get("message") or ""), timeout=90, message="gate invalid"
    )

    # Caught when the spec is applied (docs/rollout-semantics.md, rule 6): held before any
    # canary pod, InvalidSpec and Stalled, until the gate is fixed.
    assert waiting["phase"] == "Pending"
    assert waiting["message"].startswith(
        f"invalid spec: MetricGate {rollouts.ns}/error-rate is invalid: spec.thresholdRange: "
        "thresholdRange needs min, max or both"
    ), waiting["message"]
    conditions = {c["type"]: c["status"] for c in waiting["conditions"]}
    assert conditions["InvalidSpec"] == "True" and conditions["Stalled"] == "True"
    assert "GateMissing" not in history_events(waiting)
    # One Event for the problem, however many passes looked at it.
    invalid = rollouts.events("InvalidSpec")
    assert len(invalid) == 1 and (invalid[0].count or 1) == 1, invalid
    assert "thresholdRange" in (invalid[0].message or "")
    assert not [r for r in waiting.get("analysis") or [] if r.get("verdict") == "Passed"]

    fixed: dict[str, Any] = rollouts.custom.get_namespaced_custom_object(
        GROUP, VERSION, rollouts.ns, "metricgates", "error-rate"
    )
    fixed["spec"]["thresholdRange"] = {"max": 0.05}
    rollouts.custom.replace_namespaced_custom_object(
        GROUP, VERSION, rollouts.ns, "metricgates", "error-rate", fixed
    )
    done = rollouts.wait_phase("Healthy", version="2.0.0", timeout=120)
    assert history_events(done).count("InvalidSpec") == 1


def test_a_foreign_object_in_the_way_is_reported_never_adopted_and_then_repaired(
    rollouts: Rollouts, operator: OperatorProcess
) -> None:
    foreign = {
        "metadata": {"name": "payment-canary", "labels": {"team": "someone-else"}},
        "spec": {"selector": {"app": "someone-else"}, "ports": [{"port": 80}]},
    }
    rollouts.core.create_namespaced_service(rollouts.ns, foreign)

    rollouts.apply(service_manifest(rollouts.ns, "1.0.0", migration=False))
    stuck = rollouts.wait_status(
        lambda s: conditions(s).get("Degraded") == ("True", "ApplyFailed"),
        timeout=60,
        message="Degraded: ApplyFailed",
    )

    assert conditions(stuck)["Ready"] == ("False", "ApplyFailed")
    assert f"Service {rollouts.ns}/payment-canary" in stuck["message"], stuck["message"]
    assert "not owned by this ProgressiveService" in stuck["message"]
    failed = rollouts.events("ApplyFailed")
    assert failed and failed[0].type == "Warning" and "payment-canary" in (failed[0].message or "")
    untouched = rollouts.core.read_namespaced_service("payment-canary", rollouts.ns)
    assert untouched.spec.selector == {"app": "someone-else"}
    assert not untouched.metadata.owner_references, "rollwise never adopts a foreign object"

    rollouts.core.delete_namespaced_service("payment-canary", rollouts.ns)
    done = rollouts.wait_phase("Healthy", version="1.0.0", timeout=120)

    assert conditions(done)["Degraded"][0] == "False"
    assert conditions(done)["Ready"][0] == "True"
    owned = rollouts.core.read_namespaced_service("payment-canary", rollouts.ns)
    assert owned.metadata.owner_references and owned.metadata.owner_references[0].kind == (
        "ProgressiveService"
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each condition's (status, reason), by type."""
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status.get("conditions") or []}
