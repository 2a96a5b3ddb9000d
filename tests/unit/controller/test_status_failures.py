"""A refused status write names its real cause, and is an Event, a metric and a log line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.manifests.types import ServiceRef
from rollwise.controller.fleet_hub import FleetReconciler
from rollwise.controller.status_failures import (
    ETCD_LIMIT_BYTES,
    StatusWriteFailure,
    classify,
    report,
    spec_size_warning,
)
from rollwise.controller.trains import TrainReconciler
from tests.unit.controller.test_loop import PATCHING, FakeFleetAdapter

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def refused(status: int, problem: str) -> AdapterError:
    return AdapterError("ProgressiveService shop/payment", problem, status=status)


@pytest.mark.parametrize(
    ("err", "reason", "says"),
    [
        (refused(413, "Request entity too large"), StatusWriteFailure.TOO_LARGE, "shrink the spec"),
        (refused(500, "etcdserver: request is too large"), StatusWriteFailure.TOO_LARGE, "etcd"),
        (
            refused(403, 'admission webhook "deny.example.com" denied the request: no'),
            StatusWriteFailure.ADMISSION,
            "deny.example.com refused the operator's status write",
        ),
        (refused(403, "forbidden: cannot patch"), StatusWriteFailure.FORBIDDEN, "RBAC"),
        (refused(409, "conflict"), StatusWriteFailure.CONFLICT, "changed under every write"),
        (refused(422, "invalid"), StatusWriteFailure.INVALID, "install the CRDs"),
        (refused(500, "boom"), StatusWriteFailure.OTHER, "HTTP 500"),
    ],
)
def test_each_refusal_names_its_real_cause(err: AdapterError, reason: str, says: str) -> None:
    refusal = classify(err)

    assert refusal.reason == reason and says in refusal.message
    assert "fix the field in the ProgressiveService" not in refusal.message


def test_an_admission_refusal_never_blames_the_spec() -> None:
    refusal = classify(refused(400, 'admission webhook "policy.kyverno.io" denied the request'))

    assert refusal.reason == StatusWriteFailure.ADMISSION
    assert "the spec is not at fault" in refusal.message


class Kube:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[Any] = []
        self.fail = fail

    def post_event(self, ref: Any, record: Any, now: datetime) -> None:
        if self.fail:
            raise refused(403, "events forbidden")
        self.events.append(record)


SERVICE = ServiceRef("shop", "payment", "u1")


def test_a_refused_write_is_an_event_and_a_metric_even_when_events_fail_too() -> None:
    registry, kube = CollectorRegistry(), Kube()

    report(kube.post_event, registry, SERVICE, refused(409, "conflict"), NOW, {})
    report(Kube(fail=True).post_event, registry, SERVICE, refused(409, "conflict"), NOW, {})

    assert [e.reason for e in kube.events] == ["StatusWriteConflict"]
    assert kube.events[0].warning
    value = registry.get_sample_value(
        "rollwise_status_write_failures_total",
        {"reason": "StatusWriteConflict", "kind": "ProgressiveService"},
    )
    assert value == 2


def test_a_refusal_names_the_status_resource_of_its_kind() -> None:
    forbidden = classify(refused(403, "forbidden"), plural="releasetrains")
    admission = classify(refused(400, 'admission webhook "a.b" denied it'), plural="fleetrollouts")

    assert "may not patch releasetrains/status" in forbidden.message
    assert "write fleetrollouts/status" in admission.message


# ------------------------------------------------------------------ trains and fleets


ADMISSION = 'admission webhook "freeze.example.com" denied the request: frozen'


def failures(registry: CollectorRegistry, kind: str) -> float:
    value = registry.get_sample_value(
        "rollwise_status_write_failures_total",
        {"reason": "StatusRefusedByAdmission", "kind": kind},
    )
    return value or 0.0


class RefusingFleet(FakeFleetAdapter):
    """The hub of test_loop, whose status subresource refuses every write."""

    def patch_status(self, ref: Any, rv: str, old: Any, new: Any) -> bool:
        raise AdapterError("FleetRollout shop/payment", ADMISSION, status=400)


def test_a_refused_fleet_status_write_is_an_event_and_a_metric_and_patches_no_member() -> None:
    registry, adapter = CollectorRegistry(), RefusingFleet(PATCHING)
    hub = FleetReconciler(adapter, clock=lambda: NOW, registry=registry)  # type: ignore[arg-type]

    delay = hub.reconcile(("shop", "payment"))

    assert delay is not None and delay > 0, "backed off"
    assert adapter.posted == ["StatusRefusedByAdmission"]
    assert adapter.patched == [], "no member is patched after a status that was not written"
    assert failures(registry, "FleetRollout") == 1


class RefusingTrains:
    """A ReleaseTrain with one member; its status subresource refuses every write."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.api = self

    def read_train(self, namespace: str, name: str) -> Any:
        return {
            "metadata": {"uid": "t1", "generation": 1, "resourceVersion": "4"},
            "spec": {"members": [{"service": "payment", "version": "2.0.0"}]},
        }

    def request_member(self, namespace: str, request: Any) -> None:
        return None

    def patch_status(self, *args: Any, **kwargs: Any) -> bool:
        raise AdapterError("ReleaseTrain shop/spring", "forbidden", status=403)

    def read_service(self, namespace: str, name: str) -> Any:
        return None

    def post_event(self, ref: Any, record: Any, now: Any) -> None:
        self.events.append((ref.kind, record.reason, record.message))


def test_a_refused_train_status_write_is_an_event_naming_rbac_and_a_metric() -> None:
    registry, fake = CollectorRegistry(), RefusingTrains()
    trains = TrainReconciler(fake, None, clock=lambda: NOW, registry=registry)  # type: ignore[arg-type]
    trains.trains = fake  # type: ignore[assignment]

    delay = trains.reconcile(("shop", "spring"))

    assert delay is not None and delay > 0, "backed off"
    [(kind, reason, message)] = fake.events
    assert (kind, reason) == ("ReleaseTrain", "StatusWriteForbidden")
    assert "may not patch releasetrains/status" in message
    value = registry.get_sample_value(
        "rollwise_status_write_failures_total",
        {"reason": "StatusWriteForbidden", "kind": "ReleaseTrain"},
    )
    assert value == 1


def test_a_spec_near_the_size_limit_is_told_what_to_shrink() -> None:
    small = {"spec": {"replicas": 1}}
    near = {"spec": {"env": "x" * (ETCD_LIMIT_BYTES - 100_000)}}

    assert spec_size_warning(small) is None
    warning = spec_size_warning(near)
    assert warning is not None and "shrink the pod template" in warning


@pytest.mark.parametrize(
    ("code", "message", "says"),
    [
        (
            400,
            'admission webhook "rs.policy.example" denied the request: replicas > 10',
            "admission webhook rs.policy.example refused rollwise's create",
        ),
        (422, "ValidatingAdmissionPolicy 'no-rs' with binding 'b' denied request", "no-rs"),
        (413, "Request entity too large", "too large for etcd"),
    ],
)
def test_an_admission_refusal_of_a_replicaset_write_names_the_admission_not_the_spec(
    code: int, message: str, says: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    from rollwise.adapters.errors import api_error

    err = ApiException(status=code, reason="refused")
    err.body = json.dumps({"kind": "Status", "message": message, "code": code})

    mapped = api_error(err, "ReplicaSet shop/payment-abc", "create")

    assert says in mapped.fix
    assert "fix the field named above in the ProgressiveService" not in str(mapped)
