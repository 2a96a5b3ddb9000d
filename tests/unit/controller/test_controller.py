"""The controller's pure parts: settings and how they map onto Kopf, the enqueue-only handlers
(called with watch-event dicts and a real WorkQueue), status tolerance, conditions, logs.

The handlers are invoked directly rather than through a running Kopf, which needs a cluster;
that path is covered by running `rollwise run` against the proving ground.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from pydantic import ValidationError

from rollwise.adapters.validation import validation_summary
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import Condition, ServiceStatus
from rollwise.controller import handlers
from rollwise.controller.logs import JsonFormatter, ref
from rollwise.controller.queue import WorkerPool, WorkQueue
from rollwise.controller.reconcile import read_status, with_condition
from rollwise.controller.settings import (
    OWNED_SELECTOR,
    NoDiffBaseStorage,
    NoProgressStorage,
    OperatorSettings,
)
from rollwise.core import naming

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "namespaces": ["shop", "shop"],
        "all_namespaces": False,
        "workers": 4,
        "log_level": "INFO",
        "log_format": "json",
        "metrics_port": 8080,
        "health_port": 8081,
        "kubeconfig": None,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


# ----------------------------------------------------------------------------- settings


def test_settings_from_args_dedupe_namespaces_and_normalise() -> None:
    settings = OperatorSettings.from_args(run_args())

    assert settings.namespaces == ("shop",)
    assert not settings.clusterwide
    assert settings.log_level == "info"
    assert settings.liveness_endpoint == "http://0.0.0.0:8081/healthz"


def test_web_gate_allow_entries_are_repeatable_and_comma_separated() -> None:
    given = ["https://slo.example.com/api/, http://*.monitoring.svc:9090/", "https://x/"]

    settings = OperatorSettings.from_args(run_args(web_gate_allow=given))

    assert settings.web_gate_allow == (
        "https://slo.example.com/api/",
        "http://*.monitoring.svc:9090/",
        "https://x/",
    )
    assert OperatorSettings.from_args(run_args()).web_gate_allow == ()


def test_a_malformed_web_gate_allow_entry_stops_the_operator_at_start() -> None:
    with pytest.raises(ValueError, match=r"--outbound-allow 'slo\.example\.com'"):
        OperatorSettings.from_args(run_args(web_gate_allow=["slo.example.com"]))


def test_settings_need_namespaces_or_all_namespaces() -> None:
    with pytest.raises(ValueError, match="either namespaces or clusterwide"):
        OperatorSettings.from_args(run_args(namespaces=[]))


def test_all_namespaces_wins_over_environment_namespaces() -> None:
    settings = OperatorSettings.from_args(run_args(all_namespaces=True))

    assert settings.clusterwide and settings.namespaces == ()


def test_health_port_zero_disables_the_liveness_endpoint() -> None:
    assert OperatorSettings.from_args(run_args(health_port=0)).liveness_endpoint is None


def test_kopf_never_writes_on_its_own() -> None:
    kopf_settings = OperatorSettings(namespaces=("shop",)).kopf_settings()

    assert kopf_settings.posting.enabled is False
    assert kopf_settings.peering.standalone is True
    assert isinstance(kopf_settings.persistence.progress_storage, NoProgressStorage)
    assert isinstance(kopf_settings.persistence.diffbase_storage, NoDiffBaseStorage)


def test_namespaced_mode_disables_scanning_clusterwide_keeps_it() -> None:
    namespaced = OperatorSettings(namespaces=("shop",)).kopf_settings()
    clusterwide = OperatorSettings(clusterwide=True).kopf_settings()

    assert namespaced.scanning.disabled is True
    assert clusterwide.scanning.disabled is False


def test_owned_objects_are_filtered_server_side_and_timeouts_are_integers() -> None:
    kopf_settings = OperatorSettings(namespaces=("shop",)).kopf_settings()
    selectors = kopf_settings.watching.label_selectors

    assert len(selectors) == 7
    assert set(selectors.values()) == {
        OWNED_SELECTOR,
        naming.LABEL_ADOPTED_BY,
        naming.LABEL_ROUTE_OF,  # the users' HTTPRoutes and VirtualServices rollwise routes
    }
    # Sent verbatim as ?timeoutSeconds=; "300.0" is a 400 Bad Request.
    assert kopf_settings.watching.server_timeout == 300
    assert isinstance(kopf_settings.watching.server_timeout, int)


def test_the_no_op_storages_store_nothing() -> None:
    body = kopf.Body({"metadata": {"annotations": {}}})
    patch = kopf.Patch()

    NoProgressStorage().store(key="h", record={}, body=body, patch=patch)
    NoProgressStorage().touch(body=body, patch=patch, value="x")
    NoDiffBaseStorage().store(body=body, patch=patch, essence={"spec": {}})

    assert not patch


def test_no_essence_is_built_because_no_handler_compares_essences() -> None:
    """NoDiffBaseStorage.build skips Kopf's per-event deep copy; only handlers that react to
    changes (create/update/field, daemons, timers) would need it, and there are none."""
    body = kopf.Body({"metadata": {"name": "x"}, "spec": {"replicas": 2}})

    assert NoDiffBaseStorage().build(body=body, extra_fields=["status"]) is None
    assert handlers.registry._changing.get_all_handlers() == []
    assert handlers.registry._spawning.get_all_handlers() == []


# ----------------------------------------------------------------------------- handlers


@pytest.fixture
def runtime() -> handlers.Runtime:
    queue = WorkQueue()
    pool = WorkerPool(queue, lambda key: None, workers=1)
    return handlers.Runtime(queue=queue, pool=pool, api_client=None)  # type: ignore[arg-type]


def psvc_event(kind: str | None, generation: int = 1, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "namespace": "shop",
        "name": "payment",
        "uid": "u1",
        "generation": generation,
        "annotations": extra.pop("annotations", {}),
    }
    spec = {
        "strategy": {
            "canary": {
                "steps": [{"analysis": {"gates": [{"name": "error-rate"}]}}],
                "analysis": {"gates": [{"name": "latency", "cluster": True}]},
            }
        }
    }
    return {"type": kind, "object": {"metadata": metadata, "spec": spec, **extra}}


def drain(queue: WorkQueue) -> list[tuple[str, str]]:
    keys = []
    while (key := queue.get(0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


def call(handler: Any, event: dict[str, Any], runtime: handlers.Runtime) -> None:
    asyncio.run(handler(event=event, memo=runtime))


def test_a_listed_or_added_service_is_enqueued(runtime: handlers.Runtime) -> None:
    call(handlers.progressive_service_event, psvc_event(None), runtime)

    assert drain(runtime.queue) == [("shop", "payment")]


def test_every_service_event_keeps_its_body_for_the_passes(runtime: handlers.Runtime) -> None:
    call(handlers.progressive_service_event, psvc_event(None), runtime)
    listed = runtime.bodies.get("shop", "payment")
    call(
        handlers.progressive_service_event,
        psvc_event("MODIFIED", status={"phase": "Healthy"}),
        runtime,
    )
    status_only = runtime.bodies.get("shop", "payment")
    call(handlers.progressive_service_event, psvc_event("DELETED"), runtime)

    assert listed is not None and listed["metadata"]["uid"] == "u1"
    assert status_only is not None and status_only["status"] == {"phase": "Healthy"}
    assert runtime.bodies.get("shop", "payment") is None


def test_a_status_only_change_does_not_wake_the_service(runtime: handlers.Runtime) -> None:
    call(handlers.progressive_service_event, psvc_event(None), runtime)
    drain(runtime.queue)

    call(
        handlers.progressive_service_event,
        psvc_event("MODIFIED", status={"phase": "Healthy"}),
        runtime,
    )

    assert drain(runtime.queue) == []


def test_spec_and_request_changes_wake_the_service(runtime: handlers.Runtime) -> None:
    call(handlers.progressive_service_event, psvc_event(None), runtime)
    drain(runtime.queue)

    call(handlers.progressive_service_event, psvc_event("MODIFIED", generation=2), runtime)
    first = drain(runtime.queue)
    request = {"rollwise.dev/request": '{"action":"promote","id":"1"}'}
    call(
        handlers.progressive_service_event,
        psvc_event("MODIFIED", generation=2, annotations=request),
        runtime,
    )
    second = drain(runtime.queue)

    assert first == second == [("shop", "payment")]


def owned_event(kind: str | None, name: str, **extra: Any) -> dict[str, Any]:
    metadata = {"namespace": "shop", "name": name, "labels": {"rollwise.dev/service": "payment"}}
    return {"type": kind, "object": {"metadata": metadata, **extra}}


def deliver(plural: str, event: dict[str, Any], runtime: handlers.Runtime) -> None:
    call(_handler(f"owned-{plural}"), event, runtime)


def test_an_owned_object_wakes_its_service(runtime: handlers.Runtime) -> None:
    for plural in ("replicasets", "jobs", "services"):
        for kind in (None, "MODIFIED", "DELETED"):
            deliver(plural, owned_event(kind, f"payment-{kind}", spec={"replicas": 1}), runtime)
            assert drain(runtime.queue) == [("shop", "payment")], (plural, kind)


def test_an_adopted_deployment_wakes_the_service_named_in_its_label(
    runtime: handlers.Runtime,
) -> None:
    labels = {naming.LABEL_ADOPTED_BY: "payment"}
    event = {
        "type": "MODIFIED",
        "object": {"metadata": {"namespace": "shop", "name": "web", "labels": labels}},
    }

    call(_handler("adopted-deployments"), event, runtime)

    assert drain(runtime.queue) == [("shop", "payment")]


def test_only_what_a_pass_reads_wakes_the_service(runtime: handlers.Runtime) -> None:
    def rs(ready: int, version: str, observed: int) -> dict[str, Any]:
        event = owned_event(
            "MODIFIED",
            "payment-r1",
            spec={"replicas": 2},
            status={"readyReplicas": ready, "replicas": 2, "observedGeneration": observed},
        )
        event["object"]["metadata"]["resourceVersion"] = version
        return event

    deliver("replicasets", rs(1, "10", 1), runtime)
    first = drain(runtime.queue)
    deliver("replicasets", rs(1, "11", 2), runtime)  # observedGeneration only
    deliver("replicasets", rs(1, "12", 2), runtime)  # nothing but the resourceVersion
    quiet = drain(runtime.queue)
    deliver("replicasets", rs(2, "13", 2), runtime)  # a pod more is ready
    ready = drain(runtime.queue)

    assert first == ready == [("shop", "payment")]
    assert quiet == []


def test_a_pod_wakes_its_service_when_it_turns_ready_or_fails(runtime: handlers.Runtime) -> None:
    """Pods going away or unready are told by their ReplicaSet's status."""
    running = {"status": {"phase": "Running"}}
    crashing = {
        "status": {
            "phase": "Running",
            "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        }
    }
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    for kind in (None, "ADDED", "MODIFIED", "DELETED"):
        deliver("pods", owned_event(kind, "payment-r1-abcde", **running), runtime)
    deliver("pods", owned_event("DELETED", "payment-r1-abcde", **ready), runtime)
    deliver("pods", owned_event("DELETED", "payment-r1-abcde", status={"phase": "Failed"}), runtime)
    quiet = drain(runtime.queue)
    deliver("pods", owned_event("MODIFIED", "payment-r1-abcde", **crashing), runtime)
    crash = drain(runtime.queue)
    deliver(
        "pods", owned_event("MODIFIED", "payment-r1-fghij", status={"phase": "Failed"}), runtime
    )
    failed = drain(runtime.queue)
    deliver("pods", owned_event("MODIFIED", "payment-r1-klmno", **running), runtime)
    drain(runtime.queue)
    deliver("pods", owned_event("MODIFIED", "payment-r1-klmno", **ready), runtime)
    turned_ready = drain(runtime.queue)
    deliver("pods", owned_event("MODIFIED", "payment-r1-klmno", **ready), runtime)
    still_ready = drain(runtime.queue)

    assert quiet == [] == still_ready
    assert crash == failed == turned_ready == [("shop", "payment")]


def test_a_gate_wakes_only_the_services_that_use_it(runtime: handlers.Runtime) -> None:
    call(handlers.progressive_service_event, psvc_event(None), runtime)
    drain(runtime.queue)

    def gate(name: str, namespace: str | None) -> dict[str, Any]:
        return {"type": "MODIFIED", "object": {"metadata": {"name": name, "namespace": namespace}}}

    call(handlers.metric_gate_event, gate("error-rate", "shop"), runtime)
    used = drain(runtime.queue)
    call(handlers.metric_gate_event, gate("error-rate", "other"), runtime)
    call(handlers.metric_gate_event, gate("latency", "shop"), runtime)  # it is a cluster gate
    unused = drain(runtime.queue)
    call(handlers.cluster_metric_gate_event, gate("latency", None), runtime)
    cluster = drain(runtime.queue)

    assert (used, unused, cluster) == ([("shop", "payment")], [], [("shop", "payment")])


def test_gate_refs_of_a_malformed_spec_are_read_tolerantly() -> None:
    spec = {"strategy": {"canary": {"steps": [{"analysis": "nonsense"}, 3, {"analysis": {}}]}}}

    assert handlers.gate_refs_of(spec) == frozenset()


def test_only_event_and_activity_handlers_are_registered() -> None:
    registry = handlers.registry

    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()
    assert {h.id for h in registry._watching.get_all_handlers()} == {
        "progressiveservices",
        "owned-replicasets",
        "owned-jobs",
        "owned-pods",
        "owned-services",
        "metricgates",
        "clustermetricgates",
        "adopted-deployments",
        "routes-httproutes",
        "routes-virtualservices",
        "releasetrains",
    }


# ----------------------------------------------------------------------------- reconcile parts


def test_status_fields_that_no_longer_validate_are_dropped_not_fatal() -> None:
    raw = {"phase": "Healthy", "canaryWeight": "lots", "futureField": {"x": 1}}

    status = read_status(raw, ref("shop", "payment"))

    assert status.phase.value == "Healthy"
    assert status.canary_weight == 0


def test_a_condition_keeps_its_transition_time_while_its_value_holds() -> None:
    status = ServiceStatus(
        conditions=[Condition(type="Degraded", status="True", reason="X", last_transition_time=T0)]
    )
    later = T0 + timedelta(minutes=5)

    same = with_condition(status, "Degraded", True, "InvalidSpec", "m", 3, later)
    flipped = with_condition(status, "Degraded", False, "Healthy", "m", 3, later)
    added = with_condition(status, "Ready", False, "InvalidSpec", "m", 3, later)

    assert same.conditions[0].last_transition_time == T0
    assert same.conditions[0].reason == "InvalidSpec"
    assert flipped.conditions[0].last_transition_time == later
    assert [c.type for c in added.conditions] == ["Degraded", "Ready"]


def test_validation_errors_name_the_field_as_written_in_yaml() -> None:
    wire = {
        "template": {"spec": {"containers": [{"name": "a", "image": "i:1"}]}},
        "strategy": {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}},
        "progressDeadlineSeconds": 0,
    }
    with pytest.raises(ValidationError) as caught:
        ServiceSpec.model_validate(wire)

    summary = validation_summary(caught.value)

    assert "spec.strategy.canary.steps[0]: each step sets exactly one" in summary
    assert "spec.progressDeadlineSeconds: Input should be greater than or equal to 1" in summary


def test_json_logs_carry_the_object() -> None:
    record = logging.LogRecord("rollwise.reconcile", logging.INFO, "f", 1, "phase %s", ("x",), None)
    record.k8s_ref = {"namespace": "shop", "name": "payment", "revision": "r1"}

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "phase x"
    assert (line["namespace"], line["name"], line["revision"]) == ("shop", "payment", "r1")
    assert line["level"] == "info"


def _handler(handler_id: str) -> Any:
    return next(h.fn for h in handlers.registry._watching.get_all_handlers() if h.id == handler_id)


def test_event_handlers_keep_the_cache_and_deletions_empty_it(
    runtime: handlers.Runtime,
) -> None:
    from rollwise.adapters.kubeapi import METRIC_GATES, REPLICA_SETS

    rs = owned_event("MODIFIED", "payment-r1", spec={"replicas": 2})
    gate = {
        "type": "ADDED",
        "object": {"metadata": {"namespace": "shop", "name": "error-rate"}, "spec": {"q": 1}},
    }
    deliver("replicasets", rs, runtime)
    call(handlers.metric_gate_event, gate, runtime)
    assert [o["spec"] for o in runtime.cache.owned(REPLICA_SETS, "shop", "payment")] == [
        {"replicas": 2}
    ]
    assert runtime.cache.get(METRIC_GATES, "shop", "error-rate") is not None

    deliver("replicasets", {**rs, "type": "DELETED"}, runtime)
    call(handlers.metric_gate_event, {**gate, "type": "DELETED"}, runtime)

    assert runtime.cache.get(REPLICA_SETS, "shop", "payment-r1") is None
    assert runtime.cache.get(METRIC_GATES, "shop", "error-rate") is None
    assert drain(runtime.queue) == [("shop", "payment")]


def test_the_startup_fills_the_cache_before_the_workers_start(
    runtime: handlers.Runtime,
) -> None:
    calls: list[str] = []

    def prime() -> int:
        calls.append(f"prime, workers alive: {runtime.pool.alive()}")
        return 0

    runtime.prime = prime
    asyncio.run(handlers.start_workers(memo=runtime))
    try:
        assert calls == ["prime, workers alive: 0"]
        assert runtime.pool.alive() == 1
    finally:
        runtime.pool.stop(5.0)


def test_a_failed_fill_is_retried_by_kopf(runtime: handlers.Runtime) -> None:
    from rollwise.adapters.errors import AdapterError

    def prime() -> int:
        raise AdapterError("ReplicaSets in all namespaces", "list: connection refused")

    runtime.prime = prime
    with pytest.raises(kopf.TemporaryError, match="cannot fill the watch cache"):
        asyncio.run(handlers.start_workers(memo=runtime))
    assert runtime.pool.alive() == 0


def test_a_steady_service_reads_fresh_once_per_period_never_at_start() -> None:
    from rollwise.controller.reconcile import Reconciler

    clock = [100.0]
    reconciler = Reconciler(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        fresh_observe_s=60.0,
        monotonic=lambda: clock[0],
    )
    key = ("shop", "payment")
    seen = []
    for at in (100.0, 159.0, 160.0, 161.0, 219.0, 220.0):
        clock[0] = at
        seen.append(reconciler._due_fresh(key))
    assert seen == [False, False, True, False, False, True]
    assert reconciler._due_fresh(("shop", "other")) is False


# ----------------------------------------------------------------------------- release trains


def train_runtime() -> handlers.Runtime:
    from rollwise.controller.trains import TrainRuntime

    queue, train_queue = WorkQueue(), WorkQueue()
    pool = WorkerPool(queue, lambda key: None, workers=1)
    trains = TrainRuntime(queue=train_queue, pool=WorkerPool(train_queue, lambda k: None, 1))
    return handlers.Runtime(queue=queue, pool=pool, api_client=None, trains=trains)  # type: ignore[arg-type]


def train_event(kind: str | None, generation: int = 1, **status: Any) -> dict[str, Any]:
    metadata = {"namespace": "shop", "name": "release", "uid": "t1", "generation": generation}
    return {"type": kind, "object": {"metadata": metadata, "spec": {}, "status": status}}


def test_every_event_of_a_member_queues_its_train_status_only_too() -> None:
    runtime = train_runtime()
    assert runtime.trains is not None
    member = psvc_event("MODIFIED")
    member["object"]["spec"] = {"releaseTrain": "release"}

    call(handlers.progressive_service_event, member, runtime)
    assert drain(runtime.trains.queue) == [("shop", "release")]
    assert drain(runtime.queue) == [("shop", "payment")]
    member["object"]["status"] = {"phase": "Progressing"}  # only its status moved

    call(handlers.progressive_service_event, member, runtime)

    assert drain(runtime.trains.queue) == [("shop", "release")]
    assert drain(runtime.queue) == []


def test_a_train_is_queued_by_its_spec_not_by_its_own_status_writes() -> None:
    runtime = train_runtime()
    assert runtime.trains is not None

    call(_handler("releasetrains"), train_event(None), runtime)
    assert drain(runtime.trains.queue) == [("shop", "release")]
    call(_handler("releasetrains"), train_event("MODIFIED", phase="Progressing"), runtime)
    assert drain(runtime.trains.queue) == []
    call(_handler("releasetrains"), train_event("MODIFIED", generation=2), runtime)
    assert drain(runtime.trains.queue) == [("shop", "release")]
    assert runtime.trains.queue_all() == 1


def test_a_deleted_train_hands_its_members_back_to_their_own_specs() -> None:
    runtime = train_runtime()

    call(_handler("releasetrains"), train_event("DELETED", members=[{"service": "a"}]), runtime)

    assert drain(runtime.queue) == [("shop", "a")]
