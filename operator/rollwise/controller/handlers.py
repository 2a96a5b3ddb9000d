"""Kopf wiring: watches whose handlers only enqueue keys, and the worker pool's lifecycle.

Only `@kopf.on.event` (plus startup, cleanup, login and probe activities) is used: no daemons or
timers (Kopf adds a finalizer for them, so deleting a resource would hang while the operator is
down), no create/update handlers (edge-triggered, progress in annotations, re-run after a
crash). The level-based pass in `reconcile.py` does all the work, in worker threads.

The event handlers also keep the watch cache (`adapters.cache`) that passes read instead of
listing. The startup activity fills it with paginated LISTs before Kopf starts any watch, so no
pass reads a partial cache. (Not Kopf's `on.index`: its readiness barrier is quadratic in the
number of objects, minutes at a full core for 9,000 of them.)

What the handlers remember of each ProgressiveService (its last fingerprint, the gates it uses)
lives with the rest of the operator's per-service memory in `service_memory`, forgotten in one
place when the service is deleted.

Handlers run on Kopf's event loop: they only touch in-memory structures and never block.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

import kopf
from kubernetes.client import ApiClient

from rollwise.adapters.cache import ObjectCache, ServiceBodies, resource_for
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.manifests.readers import pod_failed, pod_ready
from rollwise.api import GROUP, VERSION
from rollwise.api import gates as gate_api
from rollwise.api import service as service_api
from rollwise.api import train as train_api
from rollwise.controller.gate_events import warn_if_invalid_gate
from rollwise.controller.queue import Key, WorkerPool, WorkQueue
from rollwise.controller.service_memory import GateRefKey, ServiceMemories
from rollwise.controller.settings import OWNED_RESOURCES, ROUTE_RESOURCES
from rollwise.controller.trains import TrainRuntime, train_fingerprint
from rollwise.core import naming

registry = kopf.OperatorRegistry()
log = logging.getLogger("rollwise.controller")


def gate_refs_of(spec: Mapping[str, Any]) -> frozenset[GateRefKey]:
    """Gate references in a raw ProgressiveService spec; tolerant of anything malformed (an
    invalid spec is reported by the reconcile pass, not here)."""
    canary = ((spec.get("strategy") or {}).get("canary")) or {}
    refs: set[GateRefKey] = set()

    def collect(analysis: Any) -> None:
        if not isinstance(analysis, dict):
            return
        for gate in analysis.get("gates") or []:
            if isinstance(gate, dict) and isinstance(gate.get("name"), str):
                refs.add((gate["name"], bool(gate.get("cluster", False))))

    for step in canary.get("steps") or []:
        if isinstance(step, dict):
            collect(step.get("analysis"))
    collect(canary.get("analysis"))
    return frozenset(refs)


def _fingerprint(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What in a ProgressiveService event can need a pass: spec (generation), a request, a
    deletion. Status-only events, which are mostly our own writes, do not."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        annotations.get(naming.ANNOTATION_REQUEST),
        metadata.get("deletionTimestamp"),
    )


@dataclass
class Runtime:
    """What the handlers share with the workers; passed to Kopf as the operator's memo."""

    queue: WorkQueue
    pool: WorkerPool
    api_client: ApiClient
    cache: ObjectCache = field(default_factory=ObjectCache)
    # The latest body of each ProgressiveService, read by passes instead of a GET.
    bodies: ServiceBodies = field(default_factory=ServiceBodies)
    # Fills `cache` from the API server (adapters.cache.prime); None in tests that feed it.
    prime: Callable[[], int] | None = None
    stop_timeout_s: float = 10.0
    # ReleaseTrains: their own queue and worker (None in tests that run services only).
    trains: TrainRuntime | None = None
    # What is remembered of each ProgressiveService, shared with the Reconciler (runner.build).
    memory: ServiceMemories = field(init=False)
    shared_memory: InitVar[ServiceMemories | None] = None

    def __post_init__(self, shared_memory: ServiceMemories | None) -> None:
        # A Runtime built alone (a test) gets a memory of its own that forgets in its queue and
        # bodies.
        if shared_memory is None:
            shared_memory = ServiceMemories(queue=self.queue, bodies=self.bodies)
        self.memory = shared_memory


def _runtime(memo: Any) -> Runtime:
    if not isinstance(memo, Runtime):
        raise kopf.PermanentError("rollwise runtime missing: run through rollwise.controller")
    return memo


def _key(body: Mapping[str, Any]) -> Key | None:
    metadata = body.get("metadata") or {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if not namespace or not name:
        return None
    return (str(namespace), str(name))


# ----------------------------------------------------------------------------- watches


@kopf.on.event(GROUP, VERSION, service_api.PLURAL, id="progressiveservices", registry=registry)
async def progressive_service_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A ProgressiveService changed: its own key, unless only its status moved."""
    runtime = _runtime(memo)
    body = event.get("object") or {}
    key = _key(body)
    if key is None:
        return
    train = (body.get("spec") or {}).get("releaseTrain")
    if runtime.trains is not None and isinstance(train, str) and train:
        # A member's phase moved (or it joined or left): its train decides what comes next.
        runtime.trains.queue.add((key[0], train))
    if event.get("type") == "DELETED":
        runtime.memory.forget(key)
        # One more pass: one in flight may have written to the memory after it was forgotten;
        # the pass after it finds the service gone and forgets again.
        runtime.queue.add(key)
        return
    runtime.bodies.put(body)
    changed = runtime.memory.note_event(
        key, _fingerprint(body), gate_refs_of(body.get("spec") or {})
    )
    if event.get("type") == "MODIFIED" and not changed:
        return
    runtime.queue.add(key)


@kopf.on.event(GROUP, VERSION, train_api.PLURAL, id="releasetrains", registry=registry)
async def release_train_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A ReleaseTrain changed: its own key, unless only its status moved."""
    runtime = _runtime(memo)
    body = event.get("object") or {}
    key = _key(body)
    if key is None or runtime.trains is None:
        return
    deleted = event.get("type") == "DELETED"
    if runtime.trains.noted(key, None if deleted else train_fingerprint(body)) or deleted:
        runtime.trains.queue.add(key)
    if deleted:
        # Its members run their own specs again.
        for member in (body.get("status") or {}).get("members") or []:
            if isinstance(member, dict) and isinstance(member.get("service"), str):
                runtime.queue.add((key[0], member["service"]))


def _cache_event(memo: Any, plural: str, event: Mapping[str, Any]) -> bool:
    """Bring the cache up to the event; whether a field a pass reads changed (or it is gone)."""
    res = resource_for(plural)
    body = event.get("object") or {}
    metadata = body.get("metadata") or {}
    if res is None or not metadata.get("name"):
        return True
    cache = _runtime(memo).cache
    if event.get("type") == "DELETED":
        cache.remove(res, metadata.get("namespace"), str(metadata["name"]))
        return True
    return cache.put(res, body)


def _owned_handler(group: str, plural: str) -> None:
    @kopf.on.event(
        group,
        plural,
        id=f"owned-{plural}",
        labels={naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
        registry=registry,
    )
    async def owned_object_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
        """A ReplicaSet, Job or Service of a service changed in a way a pass reads, one of its
        Pods turned Ready or failed, or one of them was deleted: the owner's key."""
        # If nothing rollwise reads changed (a ReplicaSet's observedGeneration, a pod count),
        # a pass would decide what the last one did. That halves the passes of a rollout.
        changed = _cache_event(memo, plural, event)
        body = event.get("object") or {}
        if plural == "pods":
            # A pod that turned Ready or failed (a crash loop, an image that will not pull)
            # wakes the service at once: its ReplicaSet's status says so only later. A pod going
            # away or unready is told by that status.
            deleted = event.get("type") == "DELETED"
            changed = changed and not deleted and (pod_ready(body) or pod_failed(body))
        metadata = body.get("metadata") or {}
        owner = (metadata.get("labels") or {}).get(naming.LABEL_OWNER)
        namespace = metadata.get("namespace")
        if changed and owner and namespace:
            _runtime(memo).queue.add((str(namespace), str(owner)))


for _group, _plural in OWNED_RESOURCES:
    _owned_handler(_group, _plural)


def _route_handler(group: str, plural: str) -> None:
    @kopf.on.event(
        group,
        plural,
        id=f"routes-{plural}",
        labels={naming.LABEL_ROUTE_OF: kopf.PRESENT},
        registry=registry,
    )
    async def route_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
        """A route object whose weights rollwise sets changed (a GitOps re-sync put the user's
        version back, someone edited it): its service, which reads it and re-asserts."""
        metadata = (event.get("object") or {}).get("metadata") or {}
        service = (metadata.get("labels") or {}).get(naming.LABEL_ROUTE_OF)
        namespace = metadata.get("namespace")
        if service and namespace:
            _runtime(memo).queue.add((str(namespace), str(service)))


for _group, _plural in ROUTE_RESOURCES:
    _route_handler(_group, _plural)


@kopf.on.event(
    "apps",
    "deployments",
    id="adopted-deployments",
    labels={naming.LABEL_ADOPTED_BY: kopf.PRESENT},
    registry=registry,
)
async def adopted_deployment_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A Deployment a workloadRef adopted changed (its template, its pods' readiness during a
    release): the service that serves its pods. Only labelled Deployments are watched."""
    metadata = (event.get("object") or {}).get("metadata") or {}
    service = (metadata.get("labels") or {}).get(naming.LABEL_ADOPTED_BY)
    namespace = metadata.get("namespace")
    if service and namespace:
        _runtime(memo).queue.add((str(namespace), str(service)))


@kopf.on.event(GROUP, VERSION, gate_api.PLURAL, id="metricgates", registry=registry)
async def metric_gate_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A MetricGate changed: every service of its namespace that refers to it."""
    _cache_event(memo, gate_api.PLURAL, event)
    warn_if_invalid_gate(event)
    runtime = _runtime(memo)
    metadata = (event.get("object") or {}).get("metadata") or {}
    for key in runtime.memory.gate_users(
        str(metadata.get("name")), cluster=False, namespace=metadata.get("namespace")
    ):
        runtime.queue.add(key)


@kopf.on.event(GROUP, VERSION, gate_api.CLUSTER_PLURAL, id="clustermetricgates", registry=registry)
async def cluster_metric_gate_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A ClusterMetricGate changed: every service, in any namespace, that refers to it."""
    _cache_event(memo, gate_api.CLUSTER_PLURAL, event)
    warn_if_invalid_gate(event)
    runtime = _runtime(memo)
    metadata = (event.get("object") or {}).get("metadata") or {}
    for key in runtime.memory.gate_users(str(metadata.get("name")), cluster=True):
        runtime.queue.add(key)


# ----------------------------------------------------------------------------- activities


@kopf.on.startup(id="workers", registry=registry)
async def start_workers(memo: Any, **_: Any) -> None:
    """Fill the watch cache, then start the worker threads; both before any watch starts, so
    the first event that enqueues a service finds the cache complete."""
    runtime = _runtime(memo)
    if runtime.prime is not None:
        started = time.monotonic()
        try:
            count = await asyncio.to_thread(runtime.prime)
        except AdapterError as err:
            raise kopf.TemporaryError(f"cannot fill the watch cache: {err}", delay=5) from err
        log.info("watch cache filled: %d objects in %.1fs", count, time.monotonic() - started)
    runtime.pool.start()
    if runtime.trains is not None:
        runtime.trains.pool.start()


@kopf.on.cleanup(id="workers", registry=registry)
async def stop_workers(memo: Any, **_: Any) -> None:
    """Stop taking keys; passes in flight finish (off the event loop, which must keep going)."""
    runtime = _runtime(memo)
    if runtime.trains is not None:
        await asyncio.to_thread(runtime.trains.pool.stop, runtime.stop_timeout_s)
    await asyncio.to_thread(runtime.pool.stop, runtime.stop_timeout_s)


@kopf.on.login(id="rollwise", registry=registry)
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf's watches use the very credentials of rollwise's own client (--kubeconfig or the
    in-cluster ServiceAccount), read from its configuration."""
    return connection_info(_runtime(memo).api_client.configuration)


def connection_info(config: Any) -> kopf.ConnectionInfo:
    """A kubernetes client Configuration as Kopf's ConnectionInfo (also the fleet hub's)."""
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@kopf.on.probe(id="workers", registry=registry)
async def workers_alive(memo: Any, **_: Any) -> dict[str, int]:
    """/healthz fails when no worker thread is left: the pod is restarted."""
    runtime = _runtime(memo)
    alive = runtime.pool.alive()
    if alive == 0:
        raise kopf.PermanentError("no reconcile worker thread is alive")
    return {"alive": alive, "busy": runtime.pool.busy, "queued": len(runtime.queue)}
