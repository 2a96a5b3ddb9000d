"""The watch cache's escape hatches, against the real API server.

Passes read owned objects from the watch cache (rollwise.adapters.cache); every rollout test in
this folder runs through it. What those tests cannot reach on demand is a stale copy: a watch
that had to list again does not report objects deleted meanwhile. Here a stale copy is planted
in the cache and the two ways out are exercised against real objects: a fresh observe (a LIST)
replaces what the cache holds, and a write answered 404 drops the copy.
"""

from __future__ import annotations

import pytest
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry

from rollwise.adapters.cache import ObjectCache, prime
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import (
    JOBS,
    METRIC_GATES,
    PROGRESSIVE_SERVICES,
    REPLICA_SETS,
    SERVICES,
    KubeApi,
)
from rollwise.adapters.kubernetes import KubernetesAdapter
from rollwise.adapters.manifests.builders import migration_job_manifest
from rollwise.adapters.manifests.types import ServiceRef, owned_selector
from rollwise.api import GROUP, VERSION
from rollwise.api.service import ServiceSpec
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.reconcile import Reconciler
from rollwise.core import naming
from rollwise.core.model import ScaleReplicaSet
from rollwise.core.revision import revision_of
from tests.harness.rollouts import service_manifest
from tests.unit.core.world import spec_from

pytestmark = pytest.mark.cluster

OWNER = "payment"


def labelled(name: str, namespace: str, **extra: object) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                naming.LABEL_OWNER: OWNER,
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
                naming.LABEL_REVISION: name.rsplit("-", 1)[-1],
            },
        },
        **extra,
    }


def replica_set(name: str, namespace: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return labelled(
        name,
        namespace,
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        },
    )


def test_a_fresh_observe_replaces_stale_copies(api_client: ApiClient, namespace: str) -> None:
    api = KubeApi(api_client)
    cache = ObjectCache()
    kube = KubernetesAdapter(api, cache=cache)
    ref = ServiceRef(namespace=namespace, name=OWNER, uid="not-a-real-uid")
    real = api.create(REPLICA_SETS, namespace, replica_set(f"{OWNER}-live", namespace, 0))
    cache.put(REPLICA_SETS, replica_set(f"{OWNER}-ghost", namespace, 1))  # deleted long ago
    cache.put(SERVICES, labelled(f"{OWNER}-canary", namespace, spec={"selector": {}}))

    kube.observe(ref, spec_from(), jobs_needed=False)  # from the cache: the ghost is still seen
    names = {o["metadata"]["name"] for o in cache.owned(REPLICA_SETS, namespace, OWNER)}
    assert names == {f"{OWNER}-ghost"}

    kube.observe(ref, spec_from(), jobs_needed=False, fresh=True)

    rs = cache.owned(REPLICA_SETS, namespace, OWNER)
    assert [o["metadata"]["name"] for o in rs] == [f"{OWNER}-live"]
    assert rs[0]["metadata"]["uid"] == real["metadata"]["uid"]
    assert cache.owned(SERVICES, namespace, OWNER) == []


def test_a_write_that_finds_the_object_gone_drops_the_copy(
    api_client: ApiClient, namespace: str
) -> None:
    api = KubeApi(api_client)
    cache = ObjectCache()
    kube = KubernetesAdapter(api, cache=cache)
    ref = ServiceRef(namespace=namespace, name=OWNER, uid="owner-uid")
    ghost = replica_set(f"{OWNER}-ghost", namespace, 1)
    ghost["metadata"]["ownerReferences"] = [  # type: ignore[index]
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ProgressiveService",
            "name": OWNER,
            "uid": "owner-uid",
            "controller": True,
        }
    ]
    cache.put(REPLICA_SETS, ghost)

    with pytest.raises(AdapterError) as err:
        kube.apply(ref, spec_from(), ScaleReplicaSet(revision="ghost", replicas=3))

    assert err.value.status == 404 and err.value.transient
    assert cache.get(REPLICA_SETS, namespace, f"{OWNER}-ghost") is None


def test_prime_lists_what_rollwise_made_page_by_page(
    api_client: ApiClient, namespace: str, rollwise_crds: None
) -> None:
    """The start-up fill: only labelled objects, every page, gates included; a second
    namespace that is not watched stays out."""
    api = KubeApi(api_client)
    for i in range(5):
        api.create(REPLICA_SETS, namespace, replica_set(f"{OWNER}-r{i}", namespace, 0))
    stranger = replica_set("someone-else", namespace, 0)
    stranger["metadata"]["labels"] = {"app": "x"}  # type: ignore[index]
    api.create(REPLICA_SETS, namespace, stranger)
    api.create(
        METRIC_GATES,
        namespace,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MetricGate",
            "metadata": {"name": "error-rate", "namespace": namespace},
            "spec": {
                "provider": {"prometheus": {"address": "http://127.0.0.1:9", "query": "vector(0)"}},
                "thresholdRange": {"max": 1},
            },
        },
    )
    cache = ObjectCache()

    count = prime(cache, api, [namespace], page_size=2)

    names = sorted(o["metadata"]["name"] for o in cache.owned(REPLICA_SETS, namespace, OWNER))
    assert names == [f"{OWNER}-r{i}" for i in range(5)]
    assert cache.get(REPLICA_SETS, namespace, "someone-else") is None
    gate = cache.get(METRIC_GATES, namespace, "error-rate")
    assert gate is not None and gate["spec"]["provider"]["prometheus"]["query"] == "vector(0)"
    assert count >= 6


def test_a_migration_job_still_missing_from_the_cache_holds_a_newer_migration(
    api_client: ApiClient, namespace: str, rollwise_crds: None
) -> None:
    """Version 2.0.0's migration Job was created a moment ago and its watch event has not
    reached the cache yet (this cache is fed by no watch at all) when 3.0.0 is applied. A
    migration Job cannot be taken back: the pass that would create 3.0.0's lists the Jobs
    from the API server first, finds 2.0.0's still running and waits instead."""
    api = KubeApi(api_client)
    kube = KubernetesAdapter(api, cache=ObjectCache())
    manifest = service_manifest(namespace, "2.0.0", name=OWNER, steps=[{"setWeight": 50}])
    never_runs = {"rollwise.dev/no-such-node": "true"}  # the Job stays active
    manifest["spec"]["migration"]["template"]["spec"]["nodeSelector"] = never_runs
    created = api.create(PROGRESSIVE_SERVICES, namespace, manifest)
    ref = ServiceRef(namespace=namespace, name=OWNER, uid=created["metadata"]["uid"])
    v2 = ServiceSpec.model_validate(manifest["spec"])
    running = naming.migration_job_name(OWNER, revision_of(v2), 1)
    api.create(JOBS, namespace, migration_job_manifest(ref, v2, revision_of(v2), running))
    manifest["spec"]["version"] = "3.0.0"
    manifest["spec"]["migration"]["template"]["spec"]["containers"][0]["args"][-1] = "3.0.0"
    api.patch(PROGRESSIVE_SERVICES, namespace, OWNER, {"spec": manifest["spec"]})
    reconciler = Reconciler(
        kube,
        None,  # type: ignore[arg-type]  # no gate is due: nothing is measured
        OperatorMetrics(CollectorRegistry()),
    )

    reconciler.run_pass((namespace, OWNER))

    jobs = {j["metadata"]["name"] for j in api.list(JOBS, namespace, owned_selector(OWNER))}
    assert jobs == {running}, "a second migration Job was started beside the running one"
    status = (api.get(PROGRESSIVE_SERVICES, namespace, OWNER) or {})["status"]
    assert status["phase"] == "Migrating"
    assert f"waiting for migration Job {running}" in status["message"], status["message"]
