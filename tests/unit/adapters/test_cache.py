"""The watch cache: what it keeps of each kind, lookups by owner, and forgetting stale copies."""

from __future__ import annotations

import threading
from typing import Any

from rollwise.adapters.cache import ObjectCache, ServiceBodies, resource_for, strip
from rollwise.adapters.kubeapi import (
    CLUSTER_METRIC_GATES,
    JOBS,
    METRIC_GATES,
    PODS,
    REPLICA_SETS,
    SERVICES,
)
from rollwise.adapters.manifests.readers import job_states, observed_services, replica_set_states
from rollwise.core import naming


def owned(name: str, owner: str = "payment", namespace: str = "shop", **extra: Any) -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "labels": {naming.LABEL_OWNER: owner, naming.LABEL_REVISION: "r1"},
            "ownerReferences": [{"uid": "owner-uid", "controller": True}],
            "managedFields": [{"manager": "kube-controller-manager"}] * 20,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 5000},
        },
        **extra,
    }


def replica_set(name: str, replicas: int, ready: int, owner: str = "payment") -> Any:
    return owned(
        name,
        owner,
        spec={"replicas": replicas, "template": {"spec": {"containers": [{"image": "a"}] * 5}}},
        status={"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
    )


def test_strip_keeps_what_the_states_read_and_drops_the_bulk() -> None:
    rs = strip(REPLICA_SETS, replica_set("payment-r1", 3, 2))
    assert rs["spec"] == {"replicas": 3}
    assert rs["status"]["readyReplicas"] == 2
    assert "managedFields" not in rs["metadata"] and "annotations" not in rs["metadata"]
    assert rs["metadata"]["ownerReferences"] == [{"uid": "owner-uid", "controller": True}]
    full = replica_set_states([replica_set("payment-r1", 3, 2)], [], "owner-uid")
    assert replica_set_states([rs], [], "owner-uid") == full

    pod = owned(
        "p",
        spec={"containers": [{"name": "app"}]},
        status={
            "phase": "Failed",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "big",
                    "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ],
        },
    )
    pod["metadata"]["labels"][naming.LABEL_ROLE] = "workload"
    small = strip(PODS, pod)
    assert "spec" not in small
    assert small["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    assert small["status"]["containerStatuses"] == [
        {"name": "app", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    ]
    rs_body = replica_set("payment-r1", 3, 2)
    from_cache = replica_set_states([rs], [small], "owner-uid")
    assert from_cache == replica_set_states([rs_body], [pod], "owner-uid")
    assert from_cache["r1"].pods_failed == 1

    job = owned(
        "payment-migrate-r1-1",
        spec={"template": {}},
        status={"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]},
    )
    assert job_states([strip(JOBS, job)], [], "owner-uid") == job_states([job], [], "owner-uid")

    svc = owned("payment", spec={"selector": {"a": "b"}, "ports": [{"port": 80}], "clusterIP": "1"})
    assert strip(SERVICES, svc)["spec"] == {"selector": {"a": "b"}, "ports": [{"port": 80}]}
    gate = {"metadata": {"name": "g"}, "spec": {"query": "q", "max": 1}}
    assert strip(METRIC_GATES, gate)["spec"] == {"query": "q", "max": 1}


def test_stripped_copies_are_plain_and_independent_of_the_event_body() -> None:
    body = replica_set("payment-r1", 1, 1)
    cache = ObjectCache()
    cache.put(REPLICA_SETS, body)
    body["spec"]["replicas"] = 9
    body["metadata"]["labels"]["x"] = "y"
    got = cache.get(REPLICA_SETS, "shop", "payment-r1")
    assert got is not None
    assert got["spec"]["replicas"] == 1 and "x" not in got["metadata"]["labels"]


def test_lookups_by_owner_and_namespace() -> None:
    cache = ObjectCache()
    cache.put(REPLICA_SETS, replica_set("payment-r1", 1, 1))
    cache.put(REPLICA_SETS, replica_set("payment-r2", 1, 0))
    cache.put(REPLICA_SETS, replica_set("orders-r1", 1, 1, owner="orders"))
    cache.put(SERVICES, owned("payment"))
    other_ns = replica_set("payment-r1", 1, 1)
    other_ns["metadata"]["namespace"] = "other"
    cache.put(REPLICA_SETS, other_ns)
    names = [o["metadata"]["name"] for o in cache.owned(REPLICA_SETS, "shop", "payment")]
    assert names == ["payment-r1", "payment-r2"]
    assert [o["metadata"]["name"] for o in cache.owned(SERVICES, "shop", "payment")] == ["payment"]
    assert len(cache.owned(REPLICA_SETS, "other", "payment")) == 1
    assert cache.owned(JOBS, "shop", "payment") == []


def test_put_tells_whether_a_field_rollwise_reads_changed() -> None:
    cache = ObjectCache()
    body = replica_set("payment-r1", 2, 1)
    assert cache.put(REPLICA_SETS, body) is True
    body["metadata"]["resourceVersion"] = "8"
    body["status"]["observedGeneration"] = 3
    body["status"]["fullyLabeledReplicas"] = 2
    assert cache.put(REPLICA_SETS, body) is False
    body["status"]["readyReplicas"] = 2
    assert cache.put(REPLICA_SETS, body) is True
    cache.remove(REPLICA_SETS, "shop", "payment-r1")
    assert cache.put(REPLICA_SETS, body) is True


def test_an_update_replaces_and_a_relabel_moves_the_object() -> None:
    cache = ObjectCache()
    cache.put(REPLICA_SETS, replica_set("payment-r1", 1, 0))
    cache.put(REPLICA_SETS, replica_set("payment-r1", 2, 2))
    (rs,) = cache.owned(REPLICA_SETS, "shop", "payment")
    assert rs["spec"]["replicas"] == 2 and cache.size() == 1
    cache.put(REPLICA_SETS, replica_set("payment-r1", 2, 2, owner="orders"))
    assert cache.owned(REPLICA_SETS, "shop", "payment") == []
    assert len(cache.owned(REPLICA_SETS, "shop", "orders")) == 1


def test_remove_and_replace_owned_forget_stale_copies() -> None:
    cache = ObjectCache()
    for name in ("payment-r1", "payment-r2", "payment-r3"):
        cache.put(REPLICA_SETS, replica_set(name, 1, 1))
    cache.remove(REPLICA_SETS, "shop", "payment-r1")
    cache.remove(REPLICA_SETS, "shop", "never-there")
    assert cache.get(REPLICA_SETS, "shop", "payment-r1") is None
    # A LIST says only r3 (now with 2 replicas) and r4 exist: r2 was deleted while unwatched.
    cache.replace_owned(
        REPLICA_SETS,
        "shop",
        "payment",
        [replica_set("payment-r3", 2, 2), replica_set("payment-r4", 1, 0)],
    )
    got = {
        o["metadata"]["name"]: o["spec"]["replicas"]
        for o in cache.owned(REPLICA_SETS, "shop", "payment")
    }
    assert got == {"payment-r3": 2, "payment-r4": 1}
    assert cache.size() == 2


def test_cluster_scoped_gates_are_found_without_a_namespace() -> None:
    cache = ObjectCache()
    cache.put(CLUSTER_METRIC_GATES, {"metadata": {"name": "latency"}, "spec": {"query": "q"}})
    assert cache.get(CLUSTER_METRIC_GATES, None, "latency") is not None
    assert cache.get(METRIC_GATES, None, "latency") is None
    assert resource_for("clustermetricgates") is CLUSTER_METRIC_GATES
    assert resource_for("deployments") is None


def test_services_read_back_the_same_from_the_cache() -> None:
    from rollwise.adapters.manifests.builders import service_manifests
    from rollwise.adapters.manifests.types import ServiceRef
    from rollwise.core.model import EnsureServices
    from tests.unit.core.world import spec_from

    ref = ServiceRef(namespace="shop", name="payment", uid="owner-uid")
    spec = spec_from()
    want = EnsureServices(stable_revision="r1", canary_revision="r2", main_revisions=("r1",))
    manifests = service_manifests(ref, spec, want)
    for m in manifests:
        m["metadata"]["uid"] = "u"
        m["spec"]["clusterIP"] = "10.0.0.1"
    cache = ObjectCache()
    for m in manifests:
        cache.put(SERVICES, m)
    assert observed_services(ref, spec, cache.owned(SERVICES, "shop", "payment")) == want


def test_concurrent_writers_and_readers_keep_the_indexes_consistent() -> None:
    cache = ObjectCache()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(owner: str) -> None:
        i = 0
        while not stop.is_set():
            name = f"{owner}-{i % 7}"
            cache.put(REPLICA_SETS, replica_set(name, i % 3, 0, owner=owner))
            if i % 5 == 0:
                cache.remove(REPLICA_SETS, "shop", f"{owner}-{(i + 3) % 7}")
            i += 1

    def read() -> None:
        try:
            for _ in range(2000):
                for obj in cache.owned(REPLICA_SETS, "shop", "a"):
                    assert obj["metadata"]["labels"][naming.LABEL_OWNER] == "a"
        except BaseException as err:
            errors.append(err)

    writers = [threading.Thread(target=write, args=(o,)) for o in ("a", "b")]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in writers + readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in writers:
        t.join()
    assert errors == []
    assert {o["metadata"]["name"] for o in cache.owned(REPLICA_SETS, "shop", "a")} <= {
        f"a-{i}" for i in range(7)
    }


# ----------------------------------------------------------------------------- ServiceBodies


def service_body(version: str, phase: str = "Progressing", **metadata: Any) -> Any:
    return {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "ProgressiveService",
        "metadata": {
            "namespace": "shop",
            "name": "payment",
            "uid": "u1",
            "generation": 3,
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl"}] * 20,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "x" * 5000,
                naming.ANNOTATION_REQUEST: '{"action":"promote","id":"1"}',
            },
            **metadata,
        },
        "spec": {"version": "2.0.0", "replicas": 4},
        "status": {"phase": phase, "history": [{"event": "WeightSet"}] * 10},
    }


def test_a_service_body_is_kept_with_what_a_pass_reads_and_small() -> None:
    bodies = ServiceBodies()
    bodies.put(service_body("10"))

    body = bodies.get("shop", "payment")

    assert body is not None
    assert body["metadata"] == {
        "namespace": "shop",
        "name": "payment",
        "uid": "u1",
        "generation": 3,
        "resourceVersion": "10",
        "annotations": {naming.ANNOTATION_REQUEST: '{"action":"promote","id":"1"}'},
    }
    assert body["spec"] == {"version": "2.0.0", "replicas": 4}
    assert body["status"]["phase"] == "Progressing" and len(body["status"]["history"]) == 10
    assert bodies.nbytes() < 400, "compressed, without managedFields or kubectl's annotation"
    body["status"]["phase"] = "changed by the reader"
    assert bodies.get("shop", "payment")["status"]["phase"] == "Progressing"  # type: ignore[index]


def test_after_its_own_write_a_pass_never_reads_an_older_body() -> None:
    bodies = ServiceBodies()
    bodies.put(service_body("10"))

    bodies.written("shop", "payment", "12")
    assert bodies.get("shop", "payment") is None, "the body from before the write is stale"
    bodies.put(service_body("11", phase="an edit that came before our write"))
    assert bodies.get("shop", "payment") is None

    bodies.put(service_body("12", phase="Healthy"))
    assert bodies.get("shop", "payment")["status"]["phase"] == "Healthy"  # type: ignore[index]
    bodies.put(service_body("13", phase="Paused"))
    assert bodies.get("shop", "payment")["status"]["phase"] == "Paused"  # type: ignore[index]


def test_a_write_without_a_version_reads_by_get_from_then_on() -> None:
    bodies = ServiceBodies()
    bodies.put(service_body("10"))
    bodies.written("shop", "payment", "")
    bodies.put(service_body("11"))

    assert bodies.get("shop", "payment") is None


def test_a_deleted_service_is_forgotten_with_what_it_awaited() -> None:
    bodies = ServiceBodies()
    bodies.put(service_body("10"))
    bodies.written("shop", "payment", "12")

    bodies.remove("shop", "payment")
    bodies.put(service_body("20", uid="u2"))

    assert bodies.size() == 1
    assert bodies.get("shop", "payment")["metadata"]["uid"] == "u2"  # type: ignore[index]


def test_a_write_the_watch_delivered_before_the_writer_recorded_it_awaits_nothing() -> None:
    bodies = ServiceBodies()
    bodies.put(service_body("10"))
    bodies.put(service_body("12", phase="Healthy"))  # the watch was quicker than the writer

    bodies.written("shop", "payment", "12")

    assert bodies.get("shop", "payment")["status"]["phase"] == "Healthy"  # type: ignore[index]


def test_a_deleted_service_body_keeps_its_finalizers() -> None:
    # A pass tells a deletion held by rollwise's release finalizer from one that is not.
    raw = service_body("11")
    raw["metadata"] |= {
        "deletionTimestamp": "2026-12-03T10:00:00Z",
        "finalizers": [naming.FINALIZER_RELEASE],
    }
    bodies = ServiceBodies()
    bodies.put(raw)

    body = bodies.get("shop", "payment")

    assert body is not None
    assert body["metadata"]["finalizers"] == [naming.FINALIZER_RELEASE]
    assert body["metadata"]["deletionTimestamp"] == "2026-12-03T10:00:00Z"
