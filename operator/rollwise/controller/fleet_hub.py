"""`rollwise run --fleet-hub`: the FleetRollout controller of a hub cluster.

The same shape as the ProgressiveService operator: Kopf only watches FleetRollouts and enqueues
their keys; worker threads run observe -> decide_fleet -> apply. Members are not watched (the
hub holds no long-lived connection to them): a FleetRollout in flight is passed again every
`--fleet-poll-interval` seconds, and a settled one every `--fleet-resync-interval`, so that its
status keeps telling which version runs where.

Order of writes in a pass: the status first, then the member patches. A patch is only ever
decided by a pass that read a status already holding the member's previous spec, so a crash
anywhere loses nothing and repeats nothing (see core/fleet/__init__.py).

The pass runs on the shared loop of every kind (controller/loop.py): capped backoff, the
lenient status reader (one unreadable field never makes the hub forget which clusters it
patched), the one status writer (conflicts re-read and retried) and Event recorder. With
--leader-elect, only the leader passes and writes (controller/fencing.py), member patches
included. A status that would change only by the members' lastSeen is written at most once
per resync interval, not on every poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.fleet import FleetAdapter, FleetRef
from rollwise.adapters.kubeapi import USER_AGENT, KubeApi, connect
from rollwise.adapters.manifests.readers import parse_time
from rollwise.adapters.validation import validation_summary
from rollwise.api import GROUP, VERSION
from rollwise.api import fleet as fleet_api
from rollwise.api.fleet import (
    HISTORY_LIMIT,
    FleetMemberPhase,
    FleetRolloutSpec,
    FleetRolloutStatus,
)
from rollwise.controller import logs
from rollwise.controller.fencing import (
    Fence,
    FencedKubeApi,
    LeadershipMetrics,
    NotLeaderError,
    only_when_leading,
)
from rollwise.controller.handlers import connection_info
from rollwise.controller.leadership import ElectionConfig, LeaderElector
from rollwise.controller.loop import Backoff, KindLoop, RetryLater, checkpoint
from rollwise.controller.metrics import serve as serve_metrics
from rollwise.controller.queue import Key, WorkerPool, WorkQueue
from rollwise.controller.settings import OperatorSettings
from rollwise.core.fleet.decide import decide_fleet
from rollwise.core.fleet.model import FleetPlan, MemberObservation
from rollwise.core.fleet.status import invalid_fleet
from rollwise.core.model import EventRecord, ManualRequest
from rollwise.core.naming import ANNOTATION_REQUEST
from rollwise.core.requests import read_request

log = logging.getLogger("rollwise.controller.fleet")
EXIT_LOST_LEASE = 3
registry = kopf.OperatorRegistry()


class FleetReconciler(KindLoop):
    """One pass over one FleetRollout; never raises."""

    kind = "fleet"
    plural = fleet_api.PLURAL

    def __init__(
        self,
        adapter: FleetAdapter,
        *,
        poll_s: float = 5.0,
        resync_s: float = 30.0,
        backoff_max_s: float = 60.0,
        leads: Fence = lambda: True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(Backoff(poll_s, backoff_max_s), log, registry or CollectorRegistry())
        self.adapter = adapter
        self.poll_s = poll_s
        self.resync_s = resync_s
        self.leads = leads
        self._clock = clock
        self._observers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fleet-observe")

    def run_pass(self, key: Key) -> float | None:
        namespace, name = key
        obj = self.adapter.read_fleet(namespace, name)
        if obj is None:
            return None
        metadata = obj.get("metadata") or {}
        ref = FleetRef(namespace, name, str(metadata.get("uid", "")))
        generation = metadata.get("generation")
        raw_status = obj.get("status") or {}
        status = self.read_status(FleetRolloutStatus, raw_status, logs.ref(*key), HISTORY_LIMIT)
        now = self._clock()
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
                if member.phase is FleetMemberPhase.PATCHING:
                    # the previous spec is recorded, the patch not written yet
                    checkpoint(f"patching:{member.name}")
        clusters = {c.name: c for c in spec.clusters}
        for patch in plan.patches:
            if not self.leads():  # member clusters have no fence of their own
                raise NotLeaderError(f"ProgressiveService of cluster {patch.cluster}", "patch")
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
            checkpoint(f"patched:{patch.cluster}")  # patched, the next status not written
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
        plan: FleetPlan,
        now: datetime,
    ) -> None:
        """The status (unless only lastSeen moved, and recently), then the Events."""
        metadata = obj.get("metadata") or {}
        stored = obj.get("status") or {}
        context = logs.ref(ref.namespace, ref.name)
        if not only_heartbeats(stored, status, now, self.resync_s):
            try:
                self.adapter.patch_status(
                    ref, str(metadata.get("resourceVersion", "")), stored, status
                )
            except AdapterError as err:
                # No member is patched after a status that was not written (see the module
                # doc): the pass ends here and is retried.
                self.status_refused(self.adapter.events.post, ref, err, now, context)
                raise RetryLater from err
        records = [EventRecord(e.reason, e.message, e.warning) for e in plan.events]
        self.post_events(self.adapter.events.post, ref, records, now, context)


def _without_heartbeats(status: Mapping[str, Any]) -> Any:
    waves = [
        {
            **w,
            "clusters": [
                {k: v for k, v in m.items() if k != "lastSeen"} for m in w.get("clusters") or []
            ],
        }
        for w in status.get("waves") or []
    ]
    return {**status, "waves": waves}


def only_heartbeats(
    stored: Mapping[str, Any], new: FleetRolloutStatus, now: datetime, resync_s: float
) -> bool:
    """Whether `new` differs from the stored status only by the members' lastSeen, each of
    which was written less than `resync_s` ago: such a write is skipped (every poll would
    otherwise write the status of every fleet)."""
    if _without_heartbeats(stored) != _without_heartbeats(new.to_wire()):
        return False
    for wave in new.waves:
        for member in wave.clusters:
            if member.last_seen is None:
                continue
            seen = next(
                (
                    m.get("lastSeen")
                    for w in stored.get("waves") or []
                    for m in w.get("clusters") or []
                    if m.get("name") == member.name
                ),
                None,
            )
            written = parse_time(seen)
            if written is None or (now - written).total_seconds() >= resync_s:
                return False
    return True


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

    def queue_all(self) -> None:
        """Queue every FleetRollout known from the watch (a new leader's first passes)."""
        keys = list(self.fingerprints)
        for key in keys:
            self.queue.add(key)
        log.info("leading: %d FleetRollouts queued for a pass", len(keys))


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


# The operator's default Lease name; a hub in the same namespace must never share it.
OPERATOR_LEASE = "rollwise-leader"
HUB_LEASE = "rollwise-fleet-hub"


def hub_elector(settings: OperatorSettings, client: ApiClient) -> LeaderElector | None:
    """The hub's Lease elector (not started), or None without --leader-elect."""
    if not settings.leader_elect:
        return None
    name = HUB_LEASE if settings.lease_name == OPERATOR_LEASE else settings.lease_name
    config = ElectionConfig(
        namespace=settings.election_namespace,
        name=name,
        identity=settings.election_identity,
        lease_duration_s=settings.lease_duration_s,
        renew_deadline_s=settings.renew_deadline_s,
        retry_period_s=settings.retry_period_s,
    )
    timeout = min(settings.api_timeout_s, settings.renew_deadline_s / 2)
    return LeaderElector(KubeApi(client, timeout=timeout), config)


def run_fleet_hub(settings: OperatorSettings, poll_s: float, resync_s: float) -> int:
    """Run the hub until SIGTERM/SIGINT; the process exit code."""
    client = connect(settings.kubeconfig, pool_size=settings.workers + 1)
    elector = hub_elector(settings, client)
    if elector is not None:
        client.user_agent = f"{USER_AGENT}/{settings.election_identity}"
    leads: Fence = elector.is_leader if elector is not None else lambda: True
    # The hub's own /metrics (--metrics-port): leadership and refused status writes.
    metrics_registry = CollectorRegistry()
    hub = FencedKubeApi(
        client, leads, LeadershipMetrics(metrics_registry, leads), timeout=settings.api_timeout_s
    )
    reconciler = FleetReconciler(
        FleetAdapter(
            hub,
            member_timeout=min(5.0, settings.api_timeout_s),
            policy=settings.outbound_policy(),
        ),
        poll_s=poll_s,
        resync_s=resync_s,
        leads=leads,
        registry=metrics_registry,
    )
    serve_metrics(settings.metrics_port, metrics_registry)
    queue = WorkQueue()
    reconcile = (
        reconciler.reconcile if elector is None else only_when_leading(reconciler.reconcile, leads)
    )
    pool = WorkerPool(
        queue,
        reconcile,
        settings.workers,
        error_delay=reconciler.backoff,
        name="rollwise-fleet",
    )
    runtime = FleetRuntime(queue=queue, pool=pool, api_client=client)
    if elector is not None:
        elector.on_started_leading = runtime.queue_all
        elector.on_stopped_leading = lambda: _exit_soon(settings)
        elector.start()
    log.info(
        "rollwise fleet hub starting: %s, poll %.1fs%s",
        "all namespaces" if settings.clusterwide else ", ".join(settings.namespaces),
        poll_s,
        ", leader election" if elector is not None else "",
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
    if elector is not None:
        elector.stop()
        if hub.drain(timeout=5.0) and not elector.lost:
            elector.release()
        if elector.lost:
            log.info("rollwise fleet hub stopped: the leader lease was lost")
            return EXIT_LOST_LEASE
    log.info("rollwise fleet hub stopped")
    return 0


def _exit_soon(settings: OperatorSettings) -> None:
    """The lease is lost and the fence closed: stop as SIGTERM does, and if that hangs, exit
    (as the operator does: a clean restart as a standby)."""
    os.kill(os.getpid(), signal.SIGTERM)
    grace = settings.renew_deadline_s + 20.0
    timer = threading.Timer(grace, lambda: os._exit(EXIT_LOST_LEASE))
    timer.daemon = True
    timer.start()
