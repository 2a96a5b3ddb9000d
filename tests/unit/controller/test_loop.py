"""The loop every kind runs on: capped backoff, the one status writer's conflict handling, and
what the fleet hub gained from it (lenient status, the fence, no status write per poll)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.fleet import FLEET_ROLLOUTS, FleetRef
from rollwise.adapters.manifests.types import TrainRef
from rollwise.adapters.status_writer import StatusWriter
from rollwise.api.fleet import FleetRolloutStatus
from rollwise.api.train import TrainPhase, TrainStatus
from rollwise.controller.fleet_hub import FleetReconciler, only_heartbeats
from rollwise.controller.loop import Backoff, KindLoop, RetryLater
from rollwise.controller.queue import Key
from rollwise.controller.trains import TrainReconciler
from rollwise.core.fleet.model import FleetMemberSpec, MemberObservation

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEY = ("shop", "payment")


class Failing(KindLoop):
    kind = "test"

    def __init__(self, error: Exception, backoff: Backoff) -> None:
        super().__init__(backoff, logging.getLogger("test"))
        self.error: Exception | None = error

    def run_pass(self, key: Key) -> float | None:
        if self.error is not None:
            raise self.error
        return 7.0


def test_failed_passes_back_off_doubling_up_to_the_cap_and_a_success_starts_over() -> None:
    loop = Failing(AdapterError("X shop/a", "timed out"), Backoff(1.0, 5.0))

    delays = [loop.reconcile(KEY) for _ in range(5)]
    loop.error = None
    after_success = loop.reconcile(KEY)
    loop.error = RetryLater()

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert after_success == 7.0
    assert loop.reconcile(KEY) == 1.0


def test_an_unexpected_error_is_logged_with_the_object_and_backed_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = Failing(KeyError("boom"), Backoff(2.0, 60.0))

    with caplog.at_level(logging.ERROR, logger="test"):
        delay = loop.reconcile(KEY)

    assert delay == 2.0
    assert "test pass failed unexpectedly" in caplog.text


class FakeKube:
    """The reads and writes a train pass makes, failing every read."""

    def __init__(self) -> None:
        self.api = self
        self.reads = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        raise AdapterError("ReleaseTrain shop/spring", "connection refused", transient=True)


def test_a_train_whose_reads_fail_backs_off_exponentially_not_every_five_seconds() -> None:
    kube = FakeKube()
    trains = TrainReconciler(kube, None, backoff_initial_s=1.0, backoff_max_s=8.0)  # type: ignore[arg-type]

    delays = [trains.reconcile(("shop", "spring")) for _ in range(5)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert kube.reads == 5


# ----------------------------------------------------------------------------- status writer


class FakeStatusApi:
    """A status subresource whose first `conflicts` patches are refused with 409."""

    def __init__(self, conflicts: int, status: int = 409) -> None:
        self.conflicts = conflicts
        self.refusal = status
        self.patches: list[dict[str, Any]] = []
        self.stored: dict[str, Any] = {
            **FleetRolloutStatus().to_wire(),
            "message": "someone else's",
        }

    def patch(self, res: Any, namespace: str, name: str, body: Any, *, sub: str = "") -> Any:
        self.patches.append(body)
        if self.conflicts:
            self.conflicts -= 1
            raise AdapterError(res.describe(namespace, name), "conflict", status=self.refusal)
        return {"metadata": {"resourceVersion": "9"}}

    def get(self, res: Any, namespace: str, name: str) -> Any:
        return {"metadata": {"uid": "u1", "resourceVersion": "8"}, "status": self.stored}


def test_a_conflicting_status_write_is_recomputed_against_the_stored_status_and_retried() -> None:
    api = FakeStatusApi(conflicts=1)
    writer = StatusWriter(api, FLEET_ROLLOUTS)  # type: ignore[arg-type]
    new = FleetRolloutStatus(message="mine")

    written = writer.write(FleetRef("shop", "payment", "u1"), "7", {}, new)

    assert written
    first, second = api.patches
    assert first["metadata"]["resourceVersion"] == "7"
    assert second["metadata"]["resourceVersion"] == "8"
    assert second["status"] == {"message": "mine"}  # phase Pending was stored already


def test_a_refused_status_write_is_raised_not_retried() -> None:
    api = FakeStatusApi(conflicts=1, status=403)
    writer = StatusWriter(api, FLEET_ROLLOUTS)  # type: ignore[arg-type]

    with pytest.raises(AdapterError, match="conflict"):
        writer.write(
            TrainRef("shop", "spring", "u1"), "7", {}, TrainStatus(phase=TrainPhase.FROZEN)
        )

    assert len(api.patches) == 1


def test_an_unchanged_status_is_not_written() -> None:
    api = FakeStatusApi(conflicts=0)
    writer = StatusWriter(api, FLEET_ROLLOUTS)  # type: ignore[arg-type]
    new = FleetRolloutStatus(message="same")

    assert not writer.write(FleetRef("shop", "payment", "u1"), "7", new.to_wire(), new)
    assert api.patches == []


# ----------------------------------------------------------------------------- fleet hub

FLEET_SPEC = {
    "target": {"namespace": "shop", "service": "payment"},
    "version": "2.0.0",
    "clusters": [{"name": "eu-1", "kubeconfigSecretRef": {"name": "eu-1"}}],
    "waves": [{"name": "all"}],
}


PATCHING = {
    "version": "2.0.0",
    "phase": "Progressing",
    "waves": [
        {
            "name": "all",
            "phase": "Progressing",
            "clusters": [{"name": "eu-1", "phase": "Patching", "previous": {"version": "1.0.0"}}],
        }
    ],
}


class FakeFleetAdapter:
    """A hub with one FleetRollout and one member cluster at 1.0.0."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.obj = {
            "metadata": {"uid": "u1", "generation": 1, "resourceVersion": "5"},
            "spec": FLEET_SPEC,
            "status": status,
        }
        self.statuses: list[FleetRolloutStatus] = []
        self.patched: list[str] = []
        self.events = self
        self.posted: list[str] = []

    def read_fleet(self, namespace: str, name: str) -> Any:
        return self.obj

    def observe_member(self, namespace: str, cluster: Any, target: Any) -> MemberObservation:
        return MemberObservation(
            cluster=cluster.name,
            reachable=True,
            found=True,
            spec=FleetMemberSpec("1.0.0", ({"name": "app", "image": "shop/payment:1.0.0"},)),
            resource_version="3",
            generation=1,
            observed_generation=1,
            phase="Healthy",
            stable_version="1.0.0",
        )

    def patch_status(self, ref: Any, rv: str, old: Any, new: FleetRolloutStatus) -> bool:
        self.statuses.append(new)
        return True

    def patch_member(self, namespace: str, cluster: Any, target: Any, patch: Any) -> int:
        self.patched.append(cluster.name)
        return 2

    def post(self, ref: Any, record: Any, now: Any) -> None:
        self.posted.append(record.reason)


def test_one_unreadable_status_field_does_not_make_the_hub_forget_the_rest() -> None:
    stored = {**PATCHING, "startedAt": "not a time"}
    adapter = FakeFleetAdapter(stored)
    hub = FleetReconciler(adapter, clock=lambda: T0)  # type: ignore[arg-type]

    hub.reconcile(("shop", "payment"))

    [written] = adapter.statuses
    member = written.waves[0].clusters[0]
    assert member.previous is not None and member.previous.version == "1.0.0"
    assert written.version == "2.0.0"


@pytest.mark.parametrize(("leads", "patched"), [(True, ["eu-1"]), (False, [])])
def test_only_a_leading_hub_patches_a_member(leads: bool, patched: list[str]) -> None:
    adapter = FakeFleetAdapter(PATCHING)
    hub = FleetReconciler(adapter, leads=lambda: leads, clock=lambda: T0)  # type: ignore[arg-type]

    hub.reconcile(("shop", "payment"))

    assert adapter.patched == patched


def test_a_status_that_changed_only_by_last_seen_is_written_once_per_resync() -> None:
    seen = T0 - timedelta(seconds=10)
    status = FleetRolloutStatus.model_validate(
        {"waves": [{"name": "all", "clusters": [{"name": "eu-1", "lastSeen": seen}]}]}
    )
    stored = status.to_wire()
    polled = FleetRolloutStatus.model_validate(
        {"waves": [{"name": "all", "clusters": [{"name": "eu-1", "lastSeen": T0}]}]}
    )
    changed = polled.model_copy(update={"message": "something happened"})

    assert only_heartbeats(stored, polled, T0, resync_s=30)
    assert not only_heartbeats(stored, polled, T0 + timedelta(seconds=25), resync_s=30)
    assert not only_heartbeats(stored, changed, T0, resync_s=30)
