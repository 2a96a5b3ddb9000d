"""`rollwise run --fleet-hub`: the FleetRollout controller of a hub cluster.

The same shape as the ProgressiveService operator: Kopf only watches FleetRollouts and enqueues
their keys; worker threads run observe -> decide_fleet -> apply. Members are not watched (the
hub holds no long-lived connection to them): a FleetRollout in flight is passed again every
`--fleet-poll-interval` seconds, and a settled one every `--fleet-resync-interval`, so that its
status keeps telling which version runs where.

Order of writes in a pass: the status first, then the member patches. A patch is only ever
decided by a pass that read a status already holding the member's previous spec, so a crash
anywhere loses nothing and repeats nothing (see core/fleet.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient
from pydantic import ValidationError

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.fleet import FleetAdapter, FleetRef
from rollwise.adapters.kubeapi import KubeApi, connect
from rollwise.adapters.kubernetes import validation_summary
from rollwise.api import GROUP, VERSION
from rollwise.api import fleet as fleet_api
from rollwise.api.fleet import FleetRolloutSpec, FleetRolloutStatus
from rollwise.controller import logs
from rollwise.controller.handlers import connection_info
from rollwise.controller.queue import Key, WorkerPool, WorkQueue
from rollwise.controller.settings import OperatorSettings
from rollwise.core.fleet import MemberObservation, decide_fleet, invalid_fleet
from rollwise.core.model import ManualRequest
from rollwise.core.naming import ANNOTATION_REQUEST
from rollwise.core.requests import read_request

log = logging.getLogger("rollwise.controller.fleet")
registry = kopf.OperatorRegistry()

# Fault injection for the reliability tests, unset in production: `patching:<cluster>` SIGKILLs
# the hub right after the status write that records the cluster's previous spec (before its
# patch); `patched:<cluster>` right after the cluster's patch (before the next status write).
# Those two moments cannot be timed from outside the process.
CRASH_AT = os.environ.get("ROLLWISE_FLEET_CRASH_AT", "")


def _crash_if(moment: str) -> None:
    if CRASH_AT and moment == CRASH_AT:
        log.critical("%s: SIGKILL (ROLLWISE_FLEET_CRASH_AT)", moment)
        os.kill(os.getpid(), signal.SIGKILL)


class FleetReconciler:
    """One pass over one FleetRollout; never raises."""

    def __init__(
        self,
        adapter: FleetAdapter,
        *,
        poll_s: float = 5.0,
        resync_s: float = 30.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self.adapter = adapter
        self.poll_s = poll_s
        self.resync_s = resync_s
        self.backoff_max_s = backoff_max_s
        self._failures: dict[Key, int] = {}
        self._observers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fleet-observe")

    def backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(self.backoff_max_s, self.poll_s * 2 ** (failures - 1)))

    def reconcile(self, key: Key) -> float | None:
        try:
            delay = self._reconcile(key)
        except AdapterError as err:
            log.warning("fleet pass failed: %s", err, extra=logs.ref(*key))
            return self.backoff(key)
        except Exception:
            log.exception("fleet pass failed unexpectedly", extra=logs.ref(*key))
            return self.backoff(key)
        self._failures.pop(key, None)
        return delay

    def _reconcile(self, key: Key) -> float | None:
        namespace, name = key
        obj = self.adapter.read_fleet(namespace, name)
        if obj is None:
            self._failures.pop(key, None)
            return None
        metadata = obj.get("metadata") or {}
        ref = FleetRef(namespace, name, str(metadata.get("uid", "")))
        generation = metadata.get("generation")
        raw_status = obj.get("status") or {}
        try:
            status = FleetRolloutStatus.model_validate(raw_status)
        except ValidationError:
            log.warning("unreadable fleet status; starting afresh", extra=logs.ref(*key))
            status = FleetRolloutStatus()
        now = datetime.now(UTC)
        try:
            spec = FleetRolloutSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            plan = invalid_fleet(
                status,
                f"FleetRollout {namespace}/{name}: {validation_summary(err)}",
                generation,
                now,
            )
            self._write(ref, obj, plan.status, plan, now)
            return None
        observations = self._observe(namespace, spec)
        plan = decide_fleet(
            spec,
            status,
            observations,
            now,
            generation=generation,
            request=_request(metadata, key),
            poll_s=self.poll_s,
        )
        self._write(ref, obj, plan.status, plan, now)
        for wave in plan.status.waves:
            for member in wave.clusters:
                if member.phase.value == "Patching":
                    _crash_if(f"patching:{member.name}")
        clusters = {c.name: c for c in spec.clusters}
        for patch in plan.patches:
            generation_after = self.adapter.patch_member(
                namespace, clusters[patch.cluster], spec.target, patch
            )
            log.info(
                "patched cluster %s: %s/%s version %s%s (generation %s)",
                patch.cluster,
                spec.target.namespace,
                spec.target.service,
                patch.version,
                " (rollback)" if patch.rollback else "",
                generation_after,
                extra=logs.ref(*key),
            )
            _crash_if(f"patched:{patch.cluster}")
        if plan.patches:
            return 0.2  # read the members again at once: what the patch did is observed
        return plan.requeue_after if plan.requeue_after is not None else self.resync_s

    def _observe(self, namespace: str, spec: FleetRolloutSpec) -> dict[str, MemberObservation]:
        futures = {
            c.name: self._observers.submit(self.adapter.observe_member, namespace, c, spec.target)
            for c in spec.clusters
        }
        return {name: future.result() for name, future in futures.items()}

    def _write(
        self,
        ref: FleetRef,
        obj: Mapping[str, Any],
        status: FleetRolloutStatus,
        plan: Any,
        now: datetime,
    ) -> None:
        metadata = obj.get("metadata") or {}
        self.adapter.patch_status(
            ref, str(metadata.get("resourceVersion", "")), obj.get("status") or {}, status
        )
        for event in plan.events:
            try:
                self.adapter.post_event(ref, event, now)
            except AdapterError as err:
                log.warning(
                    "cannot post Event %s: %s",
                    event.reason,
                    err,
                    extra=logs.ref(ref.namespace, ref.name),
                )


def _request(metadata: Mapping[str, Any], key: Key) -> ManualRequest | None:
    request, error = read_request(metadata.get("annotations"))
    if error is not None:
        log.warning("ignoring the request annotation: %s", error, extra=logs.ref(*key))
    return request


@dataclass
class FleetRuntime:
    """What the handlers share with the workers (Kopf's memo)."""

    queue: WorkQueue
    pool: WorkerPool
    api_client: ApiClient
    fingerprints: dict[Key, tuple[Any, ...]] = field(default_factory=dict)


def _runtime(memo: Any) -> FleetRuntime:
    if not isinstance(memo, FleetRuntime):
        raise kopf.PermanentError("fleet runtime missing: run through rollwise run --fleet-hub")
    return memo


@kopf.on.event(GROUP, VERSION, fleet_api.PLURAL, id="fleetrollouts", registry=registry)
async def fleet_event(event: Mapping[str, Any], memo: Any, **_: Any) -> None:
    """A FleetRollout changed in spec, request or existence (not only its status): its key."""
    runtime = _runtime(memo)
    body = event.get("object") or {}
    metadata = body.get("metadata") or {}
    if not metadata.get("namespace") or not metadata.get("name"):
        return
    key = (str(metadata["namespace"]), str(metadata["name"]))
    if event.get("type") == "DELETED":
        runtime.fingerprints.pop(key, None)
        runtime.queue.forget(key)
        return
    fingerprint = (
        metadata.get("uid"),
        metadata.get("generation"),
        (metadata.get("annotations") or {}).get(ANNOTATION_REQUEST),
    )
    if event.get("type") == "MODIFIED" and runtime.fingerprints.get(key) == fingerprint:
        return
    runtime.fingerprints[key] = fingerprint
    runtime.queue.add(key)


@kopf.on.startup(id="fleet-workers", registry=registry)
async def start_workers(memo: Any, **_: Any) -> None:
    _runtime(memo).pool.start()


@kopf.on.cleanup(id="fleet-workers", registry=registry)
async def stop_workers(memo: Any, **_: Any) -> None:
    await asyncio.to_thread(_runtime(memo).pool.stop, 10.0)


@kopf.on.login(id="rollwise-fleet", registry=registry)
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf watches with the hub client's own credentials."""
    return connection_info(_runtime(memo).api_client.configuration)


@kopf.on.probe(id="fleet-workers", registry=registry)
async def workers_alive(memo: Any, **_: Any) -> dict[str, int]:
    runtime = _runtime(memo)
    alive = runtime.pool.alive()
    if alive == 0:
        raise kopf.PermanentError("no fleet worker thread is alive")
    return {"alive": alive, "queued": len(runtime.queue)}


def run_fleet_hub(settings: OperatorSettings, poll_s: float, resync_s: float) -> int:
    """Run the hub until SIGTERM/SIGINT; the process exit code."""
    client = connect(settings.kubeconfig, pool_size=settings.workers + 1)
    hub = KubeApi(client, timeout=settings.api_timeout_s)
    reconciler = FleetReconciler(
        FleetAdapter(hub, member_timeout=min(5.0, settings.api_timeout_s)),
        poll_s=poll_s,
        resync_s=resync_s,
    )
    queue = WorkQueue()
    pool = WorkerPool(
        queue,
        reconciler.reconcile,
        settings.workers,
        error_delay=reconciler.backoff,
        name="rollwise-fleet",
    )
    runtime = FleetRuntime(queue=queue, pool=pool, api_client=client)
    log.info(
        "rollwise fleet hub starting: %s, poll %.1fs",
        "all namespaces" if settings.clusterwide else ", ".join(settings.namespaces),
        poll_s,
    )
    kopf.run(
        registry=registry,
        settings=settings.kopf_settings(),
        memo=runtime,
        identity=settings.kopf_identity,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint,
    )
    reconciler.adapter.members.close()
    log.info("rollwise fleet hub stopped")
    return 0
