"""What rollwise writes (ReplicaSets, Services, Jobs, Events) and how it reads the world back.

Pure functions over the JSON the API server speaks; the objects read back are shaped like real
API answers (fields the server adds, such as clusterIP and defaulted protocols, included).
Applying them to a real API server is tested in tests/integration.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from rollwise.adapters.manifests.builders import (
    event_manifest,
    merge_patch,
    migration_job_manifest,
    replica_set_manifest,
    rfc3339,
    service_manifests,
)
from rollwise.adapters.manifests.readers import (
    job_states,
    observed_services,
    pod_failed,
    pod_ready,
    replica_set_states,
)
from rollwise.adapters.manifests.types import ServiceRef, is_owned_by, owned_selector
from rollwise.api.service import ServiceSpec
from rollwise.core import naming
from rollwise.core.model import EnsureServices, EventRecord

REF = ServiceRef(namespace="shop", name="payment", uid="uid-1")
OWNER = {
    "apiVersion": "rollwise.dev/v1alpha1",
    "kind": "ProgressiveService",
    "name": "payment",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": True,
}


def spec(**overrides: Any) -> ServiceSpec:
    wire: dict[str, Any] = {
        "replicas": 4,
        "version": "2.4.0",
        "template": {
            "metadata": {"labels": {"team": "shop"}, "annotations": {"a": "b"}},
            "spec": {
                "containers": [{"name": "app", "image": "example/payment:2.4.0", "future": 1}],
                "futureSpecField": True,
            },
        },
        "service": {"port": 80, "targetPort": "http"},
        "migration": {
            "template": {"spec": {"containers": [{"name": "migrate", "image": "example/m:1"}]}},
            "backoffLimit": 2,
            "activeDeadlineSeconds": 300,
        },
        "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
    }
    wire.update(overrides)
    return ServiceSpec.model_validate(wire)


# ----------------------------------------------------------------------------- ReplicaSets


def test_replica_set_is_named_by_revision_and_owned_by_the_service() -> None:
    rs = replica_set_manifest(REF, spec(), "85c4d7f9a", 3)

    assert rs["metadata"]["name"] == "payment-85c4d7f9a"
    assert rs["metadata"]["namespace"] == "shop"
    assert rs["metadata"]["ownerReferences"] == [OWNER]
    assert rs["metadata"]["annotations"] == {"rollwise.dev/version": "2.4.0"}
    assert rs["spec"]["replicas"] == 3


def test_replica_set_labels_its_pods_for_services_watches_and_the_simulator() -> None:
    rs = replica_set_manifest(REF, spec(), "85c4d7f9a", 3)
    ours = {
        "app.kubernetes.io/name": "payment",
        "rollwise.dev/revision": "85c4d7f9a",
        "rollwise.dev/service": "payment",
        "app.kubernetes.io/managed-by": "rollwise",
        "rollwise.dev/role": "workload",
    }

    assert rs["metadata"]["labels"] == ours
    assert rs["spec"]["template"]["metadata"]["labels"] == {"team": "shop", **ours}
    assert rs["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "payment",
            "rollwise.dev/role": "workload",
            "rollwise.dev/revision": "85c4d7f9a",
        }
    }


def test_replica_set_passes_the_pod_spec_through_untouched() -> None:
    rs = replica_set_manifest(REF, spec(), "85c4d7f9a", 1)

    assert rs["spec"]["template"]["spec"] == {
        "containers": [{"name": "app", "image": "example/payment:2.4.0", "future": 1}],
        "futureSpecField": True,
    }
    assert rs["spec"]["template"]["metadata"]["annotations"] == {
        "a": "b",
        "rollwise.dev/version": "2.4.0",
    }


def test_the_same_inputs_build_the_same_manifest() -> None:
    assert replica_set_manifest(REF, spec(), "r1", 2) == replica_set_manifest(REF, spec(), "r1", 2)


# ----------------------------------------------------------------------------- Services


def test_services_select_serving_pods_by_revision() -> None:
    want = EnsureServices(stable_revision="s1", canary_revision="c1", main_revisions=())

    main, stable, canary = service_manifests(REF, spec(), want)

    base = {"app.kubernetes.io/name": "payment", "rollwise.dev/role": "workload"}
    assert [s["metadata"]["name"] for s in (main, stable, canary)] == [
        "payment",
        "payment-stable",
        "payment-canary",
    ]
    assert main["spec"]["selector"] == base
    assert stable["spec"]["selector"] == {**base, "rollwise.dev/revision": "s1"}
    assert canary["spec"]["selector"] == {**base, "rollwise.dev/revision": "c1"}
    assert main["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert all(s["metadata"]["ownerReferences"] == [OWNER] for s in (main, stable, canary))


def test_main_service_selects_one_revision_when_only_one_may_get_traffic() -> None:
    want = EnsureServices(stable_revision="s1", canary_revision="c1", main_revisions=("s1",))

    main, _, _ = service_manifests(REF, spec(), want)

    assert main["spec"]["selector"]["rollwise.dev/revision"] == "s1"


def test_canary_service_points_at_stable_while_there_is_no_canary() -> None:
    want = EnsureServices(stable_revision="s1", canary_revision=None, main_revisions=("s1",))

    _, _, canary = service_manifests(REF, spec(), want)

    assert canary["spec"]["selector"]["rollwise.dev/revision"] == "s1"


def as_stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Service as the API server returns it: defaults and server fields filled in."""
    stored = copy.deepcopy(manifest)
    stored["metadata"].update({"uid": "svc-uid", "resourceVersion": "42"})
    stored["spec"].update(
        {"clusterIP": "10.0.0.7", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}
    )
    return stored


def test_services_read_back_as_the_ensure_services_that_made_them() -> None:
    for want in (
        EnsureServices(stable_revision="s1", canary_revision="c1", main_revisions=()),
        EnsureServices(stable_revision="s1", canary_revision="c1", main_revisions=("s1",)),
        EnsureServices(stable_revision="s1", canary_revision=None, main_revisions=("s1",)),
    ):
        stored = [as_stored(m) for m in service_manifests(REF, spec(), want)]

        assert observed_services(REF, spec(), stored) == want


def test_services_read_back_as_none_when_one_is_missing_or_not_ours_or_stale() -> None:
    want = EnsureServices(stable_revision="s1", canary_revision="c1", main_revisions=())
    stored = [as_stored(m) for m in service_manifests(REF, spec(), want)]
    foreign = copy.deepcopy(stored)
    foreign[1]["metadata"]["ownerReferences"] = []
    other_port = copy.deepcopy(stored)
    other_port[2]["spec"]["ports"][0]["port"] = 8080

    assert observed_services(REF, spec(), stored[:2]) is None
    assert observed_services(REF, spec(), foreign) is None
    assert observed_services(REF, spec(), other_port) is None


# ----------------------------------------------------------------------------- Jobs


def test_migration_job_is_named_by_the_caller_and_labelled_as_migration() -> None:
    job = migration_job_manifest(REF, spec(), "85c4d7f9a", "payment-migrate-85c4d7f9a")

    assert job["metadata"]["name"] == "payment-migrate-85c4d7f9a"
    assert job["metadata"]["ownerReferences"] == [OWNER]
    assert job["metadata"]["labels"]["rollwise.dev/role"] == "migration"
    assert job["metadata"]["labels"]["rollwise.dev/revision"] == "85c4d7f9a"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["labels"]["rollwise.dev/role"] == "migration"


def test_migration_job_keeps_a_restart_policy_the_user_set() -> None:
    migration = {
        "template": {
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "m", "image": "example/m:1"}],
            }
        }
    }

    job = migration_job_manifest(REF, spec(migration=migration), "r1", "payment-migrate-r1")

    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def stored_job(
    name: str,
    revision: str,
    *,
    created: str = "2026-01-01T10:00:00Z",
    owner_uid: str = "uid-1",
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "creationTimestamp": created,
            "labels": {"rollwise.dev/revision": revision, "rollwise.dev/role": "migration"},
            "ownerReferences": [{**OWNER, "uid": owner_uid}],
        },
        "status": {"startTime": "2026-01-01T10:00:01Z", "conditions": conditions or [], **status},
    }


def failed_pod(job: str, created: str, reason: str = "Error", code: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job}-{created[-3:-1]}",
            "creationTimestamp": created,
            "labels": {"batch.kubernetes.io/job-name": job, "job-name": job},
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "migrate",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": reason,
                            "message": "relation users already exists",
                        }
                    },
                }
            ],
        },
    }


def test_a_failed_job_explains_itself_with_its_condition_and_its_last_failed_pod() -> None:
    job = stored_job(
        "payment-migrate-r1",
        "r1",
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2026-01-01T10:01:00Z",
            }
        ],
        failed=2,
    )
    pods = [
        failed_pod("payment-migrate-r1", "2026-01-01T10:00:10Z", code=2),
        failed_pod("payment-migrate-r1", "2026-01-01T10:00:40Z", code=1),
    ]

    state = job_states([job], pods, "uid-1")["r1"]

    assert state.failed and not state.succeeded and state.owned
    assert state.failed_pods == 2
    assert state.finished_at == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    assert state.failure_reason == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit; "
        "pod payment-migrate-r1-40: container migrate terminated: Error (exit code 1): "
        "relation users already exists"
    )


def test_a_complete_job_is_succeeded_with_its_times() -> None:
    job = stored_job(
        "payment-migrate-r1",
        "r1",
        conditions=[{"type": "Complete", "status": "True"}],
        succeeded=1,
        completionTime="2026-01-01T10:00:30Z",
    )

    state = job_states([job], [], "uid-1")["r1"]

    assert state.succeeded and not state.failed
    assert state.started_at == datetime(2026, 1, 1, 10, 0, 1, tzinfo=UTC)
    assert state.finished_at == datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)


def test_a_job_owned_by_another_uid_is_reported_as_not_owned() -> None:
    job = stored_job("payment-migrate-r1", "r1", owner_uid="someone-else")

    assert job_states([job], [], "uid-1")["r1"].owned is False


def test_the_attempt_recorded_in_status_wins_else_the_newest() -> None:
    first = stored_job("payment-migrate-r1", "r1", created="2026-01-01T10:00:00Z")
    second = stored_job("payment-migrate-r1-2", "r1", created="2026-01-01T11:00:00Z")

    newest = job_states([first, second], [], "uid-1")["r1"].name
    recorded = job_states([second, first], [], "uid-1", prefer="payment-migrate-r1")["r1"].name

    assert (newest, recorded) == ("payment-migrate-r1-2", "payment-migrate-r1")


# ----------------------------------------------------------------------------- ReplicaSet states


def stored_rs(revision: str, replicas: int, ready: int, owner_uid: str = "uid-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"payment-{revision}",
            "labels": {"rollwise.dev/revision": revision},
            "ownerReferences": [{**OWNER, "uid": owner_uid}],
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
    }


def workload_pod(revision: str, status: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "labels": {"rollwise.dev/revision": revision, "rollwise.dev/role": "workload"}
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T10:00:00Z"
    return {"metadata": metadata, "status": status}


CRASHLOOP = {
    "phase": "Running",
    "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
}


def test_replica_set_states_count_failed_and_crash_looping_pods_per_revision() -> None:
    pods = [
        workload_pod("c1", {"phase": "Failed"}),
        workload_pod("c1", CRASHLOOP),
        workload_pod("c1", {"phase": "Running"}),
        workload_pod("c1", {"phase": "Failed"}, deleting=True),
        workload_pod("s1", {"phase": "Running"}),
    ]

    states = replica_set_states([stored_rs("s1", 3, 3), stored_rs("c1", 2, 1)], pods, "uid-1")

    assert states["c1"].pods_failed == 2
    assert states["s1"].pods_failed == 0
    assert (states["c1"].replicas, states["c1"].ready_replicas) == (2, 1)


def test_replica_sets_not_owned_by_the_service_are_not_its_revisions() -> None:
    states = replica_set_states([stored_rs("x1", 1, 1, owner_uid="other")], [], "uid-1")

    assert states == {}


def test_a_pod_waiting_for_its_image_forever_counts_as_failed() -> None:
    status = {
        "phase": "Pending",
        "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
    }

    assert pod_failed({"status": status})
    assert not pod_failed({"status": {"phase": "Pending"}})


# ----------------------------------------------------------------------------- small parts


def test_ownership_is_by_uid() -> None:
    assert is_owned_by({"metadata": {"ownerReferences": [OWNER]}}, "uid-1")
    assert not is_owned_by({"metadata": {"ownerReferences": [OWNER]}}, "uid-2")
    assert not is_owned_by({"metadata": {}}, "uid-1")


def test_owned_selector_is_the_service_and_managed_by_labels() -> None:
    assert owned_selector("payment") == (
        "rollwise.dev/service=payment,app.kubernetes.io/managed-by=rollwise"
    )


def test_event_names_the_service_and_reports_as_rollwise() -> None:
    at = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    record = EventRecord(reason="GateFailed", message="x" * 2000, warning=True)

    event = event_manifest(REF, record, name="payment.abc", at=at, instance="pod-1")

    assert event["involvedObject"] == {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "ProgressiveService",
        "name": "payment",
        "namespace": "shop",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"], event["count"]) == ("Warning", "GateFailed", 1)
    assert event["reportingComponent"] == "rollwise"
    assert event["source"] == {"component": "rollwise"}
    assert len(event["message"]) == 1024
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-01T10:00:00Z"


def test_rfc3339_takes_naive_times_as_utc() -> None:
    assert rfc3339(datetime(2026, 1, 1, 10, 0, 0)) == "2026-01-01T10:00:00Z"


def test_merge_patch_nulls_removed_keys_and_recurses_into_objects() -> None:
    old = {"phase": "Progressing", "canary": {"revision": "c1", "replicas": 1}, "abort": {"x": 1}}
    new = {"phase": "Healthy", "canary": {"revision": "c1", "replicas": 2}, "history": [1]}

    assert merge_patch(old, new) == {
        "phase": "Healthy",
        "canary": {"replicas": 2},
        "abort": None,
        "history": [1],
    }


def test_merge_patch_of_equal_documents_is_empty() -> None:
    doc = {"a": {"b": [1, 2]}, "c": 0.5}

    assert merge_patch(doc, copy.deepcopy(doc)) == {}


def _workload_pod(revision: str, ready: bool, terminating: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": f"p-{revision}",
        "labels": {naming.LABEL_ROLE: "workload", naming.LABEL_REVISION: revision},
    }
    if terminating:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}
    return {"metadata": metadata, "status": status}


def test_ready_pods_count_before_their_replica_set_status_says_so() -> None:
    rs = {
        "metadata": {
            "name": "payment-r2",
            "labels": {naming.LABEL_REVISION: "r2"},
            "ownerReferences": [{"uid": "u", "controller": True}],
        },
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 1},
    }
    pods = [
        _workload_pod("r2", True),
        _workload_pod("r2", True),
        _workload_pod("r2", False),
        _workload_pod("r2", True, terminating=True),
        _workload_pod("r1", True),
    ]

    assert replica_set_states([rs], [], "u")["r2"].ready_replicas == 1
    assert replica_set_states([rs], pods, "u")["r2"].ready_replicas == 2
    # A pod gone unready is not counted down before the status is (the status is the floor).
    assert replica_set_states([rs], [_workload_pod("r2", False)], "u")["r2"].ready_replicas == 1
    assert pod_ready(pods[0]) and not pod_ready(pods[2])
