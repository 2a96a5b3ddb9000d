"""Create-or-adopt against the real API server: a name already taken by an object this
ProgressiveService owns is adopted, one taken by anyone else is refused and left untouched.
The pure decision and the race a real server cannot produce on demand (AlreadyExists, then gone)
are in tests/unit/adapters/test_adoption.py.
"""

from __future__ import annotations

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from rollwise.adapters.adoption import create_or_adopt
from rollwise.adapters.errors import NotOwnedError
from rollwise.adapters.kubeapi import SERVICES, KubeApi
from rollwise.adapters.manifests.types import Manifest, ServiceRef, owner_reference
from rollwise.api import GROUP, VERSION
from rollwise.api.service import KIND, PLURAL

pytestmark = pytest.mark.cluster


@pytest.fixture
def owner(api_client: ApiClient, namespace: str, rollwise_crds: None) -> ServiceRef:
    """A ProgressiveService that exists (no operator runs here): the garbage collector deletes
    dependents whose owner's uid does not exist, which would race every assertion below."""
    created = CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": "payment"},
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                "strategy": {"canary": {"steps": [{"setWeight": 10}]}},
            },
        },
    )
    return ServiceRef(namespace=namespace, name="payment", uid=created["metadata"]["uid"])


def service(name: str, namespace: str, *owners: Manifest) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": list(owners)},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }


def test_a_name_free_of_objects_is_created(
    api_client: ApiClient, namespace: str, owner: ServiceRef
) -> None:
    api = KubeApi(api_client)
    ref = owner

    answer = create_or_adopt(
        api, SERVICES, ref, service("payment", namespace, owner_reference(ref))
    )

    assert answer is None
    assert api.get(SERVICES, namespace, "payment") is not None


def test_an_object_of_the_same_service_is_adopted(
    api_client: ApiClient, namespace: str, owner: ServiceRef
) -> None:
    api = KubeApi(api_client)
    ref = owner
    manifest = service("payment-canary", namespace, owner_reference(ref))
    first = api.create(SERVICES, namespace, manifest)

    answer = create_or_adopt(api, SERVICES, ref, manifest)

    assert answer is not None
    assert answer["metadata"]["uid"] == first["metadata"]["uid"]


def test_an_object_of_someone_else_is_refused_and_left_untouched(
    api_client: ApiClient, namespace: str, owner: ServiceRef
) -> None:
    api = KubeApi(api_client)
    ref = owner
    foreign = api.create(SERVICES, namespace, service("payment-stable", namespace))
    # (An object of an earlier service of the same name is not built here: the garbage
    # collector deletes it at once, as it should. tests/unit/adapters/test_adoption.py has it.)

    with pytest.raises(NotOwnedError, match=f"Service {namespace}/payment-stable"):
        create_or_adopt(api, SERVICES, ref, service("payment-stable", namespace))

    for kept in (foreign,):
        now = api.get(SERVICES, namespace, kept["metadata"]["name"])
        assert now is not None
        assert now["metadata"]["resourceVersion"] == kept["metadata"]["resourceVersion"]
