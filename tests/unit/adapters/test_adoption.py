"""Create-or-adopt: which object found under a refused name is adopted, and the one error path
a real API server cannot produce on demand (AlreadyExists, then gone when read).

Creating, refusing and adopting real objects is tested against a real API server in
tests/integration/test_adoption.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from rollwise.adapters.adoption import ObjectVanishedError, adopted, create_or_adopt
from rollwise.adapters.errors import AdapterError, NotOwnedError
from rollwise.adapters.kubeapi import REPLICA_SETS, KubeApi, Resource
from rollwise.adapters.kubernetes import KubernetesAdapter
from rollwise.adapters.manifests.types import Manifest, ServiceRef, owner_reference
from rollwise.core.decide import revision_of
from rollwise.core.model import CreateMigrationJob, ScaleReplicaSet
from tests.unit.core.world import spec_from

REF = ServiceRef(namespace="shop", name="payment", uid="uid-1")
OBJ = "ReplicaSet shop/payment-abc"


def named(name: str, *owners: Manifest) -> Manifest:
    return {"metadata": {"name": name, "namespace": "shop", "ownerReferences": list(owners)}}


def test_an_existing_object_owned_by_the_service_is_adopted() -> None:
    existing = named("payment-abc", owner_reference(REF))

    assert adopted(REF, OBJ, existing) is existing


def test_an_existing_object_of_another_owner_is_never_adopted() -> None:
    other = owner_reference(ServiceRef(namespace="shop", name="payment", uid="uid-of-before"))

    with pytest.raises(NotOwnedError, match="ReplicaSet shop/payment-abc: exists and is not owned"):
        adopted(REF, OBJ, named("payment-abc", other))


def test_an_existing_object_without_owner_is_never_adopted() -> None:
    with pytest.raises(NotOwnedError):
        adopted(REF, OBJ, named("payment-abc"))


def test_an_object_gone_after_refusing_the_create_is_a_transient_error() -> None:
    with pytest.raises(ObjectVanishedError) as err:
        adopted(REF, OBJ, None)

    assert err.value.transient
    assert str(err.value) == "ReplicaSet shop/payment-abc: exists and vanished again"


class ExistsThenGone(KubeApi):
    """A fake API server that answers every create AlreadyExists and every read Not Found: the
    race of an object deleted between the two calls, which a real server cannot be made to
    produce on demand."""

    def __init__(self) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.created: list[str] = []

    def create(self, res: Resource, namespace: str | None, body: Manifest) -> Manifest:
        self.created.append(body["metadata"]["name"])
        raise AdapterError(res.describe(namespace, body["metadata"]["name"]), "exists", status=409)

    def get(self, res: Resource, namespace: str | None, name: str) -> Manifest | None:
        return None

    def request(self, *args: Any, **kwargs: Any) -> Manifest:
        raise AssertionError(f"unexpected request {args}")


def test_create_or_adopt_reports_an_object_that_vanished_after_refusing_the_create() -> None:
    api = ExistsThenGone()

    with pytest.raises(ObjectVanishedError, match="ReplicaSet shop/payment-abc"):
        create_or_adopt(api, REPLICA_SETS, REF, named("payment-abc"))
    assert api.created == ["payment-abc"]


def test_a_vanished_replica_set_fails_the_action_but_a_vanished_migration_job_does_not() -> None:
    """A Job that existed may have run the migration already: it is never created again in the
    same action, and the core reports a recorded Job that is gone."""
    spec = spec_from(
        migration={
            "template": {"spec": {"containers": [{"name": "m", "image": "example/migrate:1"}]}}
        }
    )
    revision = revision_of(spec)
    kube = KubernetesAdapter(ExistsThenGone(), instance="test")

    with pytest.raises(ObjectVanishedError):
        kube.apply(REF, spec, ScaleReplicaSet(revision=revision, replicas=1))
    kube.apply(REF, spec, CreateMigrationJob(revision=revision, job_name="payment-migrate-1"))
