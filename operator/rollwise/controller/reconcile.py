"""One reconcile pass for one ProgressiveService: observe -> measure -> decide -> apply, on the
shared loop of every kind (controller/loop.py: backoff, lenient status reader, status writer,
Events).

Runs in a worker thread (the clients are synchronous), never on Kopf's event loop. Every pass
starts from what is stored and what exists; what is remembered between passes (the backoff
counter, the Event series, ...) saves work only, and is kept and forgotten in
`controller.service_memory`. A pass that fails half-way is repaired by the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import RELEASE_TRAINS
from rollwise.adapters.kubernetes import InvalidGateError, KubernetesAdapter
from rollwise.adapters.manifests.types import ServiceRef
from rollwise.adapters.providers.provider import MetricProvider
from rollwise.adapters.references import missing_references
from rollwise.adapters.trains import release_for
from rollwise.adapters.validation import validation_summary
from rollwise.adapters.webhooks import HookSender
from rollwise.adapters.workload import read_workload
from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import HISTORY_LIMIT, ServiceStatus
from rollwise.controller import logs, status_failures
from rollwise.controller.loop import Backoff, KindLoop, RetryLater, checkpoint, read_lenient
from rollwise.controller.metrics import OperatorMetrics
from rollwise.controller.service_memory import ServiceMemories
from rollwise.core import naming
from rollwise.core.analysis import due_gates, gate_refs
from rollwise.core.conditions import stalled_on_invalid_spec, with_condition
from rollwise.core.decide import decide
from rollwise.core.gates import verdict_of
from rollwise.core.migration import migration_pending
from rollwise.core.model import (
    CreateMigrationJob,
    EventRecord,
    MetricSample,
    Observed,
    Plan,
    PlanAction,
    WorkloadState,
)
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.release import apply_release
from rollwise.core.requests import read_request
from rollwise.core.revision import revision_of

Key = tuple[str, str]

log = logging.getLogger("rollwise.reconcile")


class ReleaseNotApplicable(Exception):
    """A ReleaseTrain's release names something the member's spec does not have."""


def read_status(raw: Mapping[str, Any], context: Mapping[str, Any]) -> ServiceStatus:
    """The stored status, read leniently (`api.stored_status`); what could not be read is logged
    with the object and rewritten from observed state by this pass."""
    return read_lenient(ServiceStatus, raw, log, context, HISTORY_LIMIT)


def describe_action(action: PlanAction) -> str:
    name = type(action).__name__
    fields = ", ".join(f"{k}={v}" for k, v in vars(action).items())
    return f"{name}({fields})"


@dataclass(frozen=True)
class ServicePass:
    """What one pass knows of its ProgressiveService before it decides: enough to write a
    status that says why the pass could not do its work."""

    key: Key
    ref: ServiceRef
    resource_version: str
    raw_status: dict[str, Any]
    status: ServiceStatus
    generation: int
    now: datetime
    context: dict[str, Any]


class Reconciler(KindLoop):
    """`reconcile(key) -> requeue delay` for the worker pool."""

    kind = "reconcile"

    def __init__(
        self,
        kube: KubernetesAdapter,
        provider: MetricProvider,
        metrics: OperatorMetrics,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        fresh_observe_s: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        memory: ServiceMemories | None = None,
        hooks: HookSender | None = None,
    ) -> None:
        self.kube = kube
        self.hooks = hooks
        self.provider = provider
        self.metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._fresh_every = fresh_observe_s
        # The operator shares one memory with its watch handlers (runner.build); a Reconciler
        # built alone (a test may give it no adapter) gets one of its own.
        if memory is None:
            memory = ServiceMemories(
                events=kube.events if kube is not None else None, metrics=metrics
            )
        self.memory = memory
        registry = metrics.registry if metrics is not None else CollectorRegistry()
        super().__init__(Backoff(backoff_initial_s, backoff_max_s, failures=memory), log, registry)

    # ---- entry point

    def reconcile(self, key: Key) -> float | None:
        """One pass; the seconds until the next timed pass (None: wait for a watch event).

        Never raises: every failure is logged with the object's namespace/name, counted, and
        retried with exponential backoff.
        """
        started = time.perf_counter()
        try:
            return super().reconcile(key)
        finally:
            self.metrics.reconcile_duration.observe(time.perf_counter() - started)

    def backoff(self, key: Key) -> float:
        """Count a failed pass; the delay before the next one (doubling, capped)."""
        self.metrics.reconcile_errors.inc()
        return super().backoff(key)

    # ---- the pass

    def run_pass(self, key: Key) -> float | None:
        namespace, name = key
        context = logs.ref(namespace, name)
        try:
            obj = self.kube.read_service(namespace, name)
        except AdapterError as err:
            log.warning("cannot read the ProgressiveService: %s", err, extra=context)
            raise RetryLater from err
        metadata = (obj or {}).get("metadata") or {}
        finalizers: list[str] = list(metadata.get("finalizers") or [])
        deleting = bool(metadata.get("deletionTimestamp"))
        if obj is None or (deleting and naming.FINALIZER_RELEASE not in finalizers):
            # Deleted: the garbage collector removes what it owns; nothing for us to do. (Only
            # a workloadRef's finalizer keeps a deleted service here: its Deployment first.)
            self.memory.forget(key)
            return None
        ref = ServiceRef(namespace=namespace, name=name, uid=str(metadata["uid"]))
        self.memory.claim(key, ref.uid)
        generation = int(metadata.get("generation") or 0)
        resource_version = str(metadata["resourceVersion"])
        raw_status: dict[str, Any] = obj.get("status") or {}
        status = self.read_status(ServiceStatus, raw_status, context, HISTORY_LIMIT)
        p = ServicePass(
            key, ref, resource_version, raw_status, status, generation, self._clock(), context
        )
        now = p.now
        near_limit = status_failures.spec_size_warning(obj)
        if near_limit is not None:  # before status writes start failing: what to shrink
            record = EventRecord("SpecNearSizeLimit", near_limit, warning=True)
            self.post_events(self.kube.post_event, ref, [record], now, context)

        try:
            spec = ServiceSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            return self._invalid_spec(p, err)
        try:
            workload: WorkloadState | None = None
            if spec.workload_ref is not None:
                found = read_workload(
                    self.kube.api, namespace, spec.workload_ref.name, name, finalizers
                )
                if found is not None:
                    template, workload = found
                    spec = spec.with_template(template)
            if spec.release_train is not None and spec.template is not None:
                spec = self._with_train_release(spec, namespace, name)
            if spec.template is None or deleting:
                # Nothing to roll out (the Deployment is missing) or a handover back to it.
                observed = Observed(namespace=namespace, name=name, generation=generation)
            else:
                context = logs.ref(namespace, name, revision_of(spec))
                observed = self._observe(ref, spec, status, metadata, generation)
        except AdapterError as err:
            log.warning("observing failed: %s", err, extra=context)
            raise RetryLater from err
        except ReleaseNotApplicable as err:
            return self._invalid_spec(p, str(err))
        observed = replace(observed, workload=workload, deleting=deleting)

        queries = (
            [] if deleting or spec.template is None else due_gates(spec, status, observed, now)
        )
        samples = tuple(self.provider.measure(query, now) for query in queries)
        for sample in samples:
            if sample.error:
                log.info("gate %s: %s", sample.key, sample.error, extra=context)
        outcomes = self.hooks.outcomes(key) if self.hooks is not None else ()
        observed = replace(observed, samples=samples, hook_outcomes=outcomes)
        plan = decide(spec, status, observed, now)
        if self.kube.cache is not None and any(
            isinstance(a, CreateMigrationJob) for a in plan.actions
        ):
            # A migration Job cannot be taken back, and one runs at a time per service: that
            # is decided on the Jobs as stored now. The watch cache may not yet hold a Job
            # this operator created a moment ago (its watch event still on the way), and a
            # newer version's pass would then start a second migration beside it.
            try:
                listed = self._observe(ref, spec, status, metadata, generation, fresh=True)
            except AdapterError as err:
                log.warning("observing failed: %s", err, extra=context)
                raise RetryLater from err
            observed = replace(
                listed,
                workload=workload,
                deleting=deleting,
                samples=samples,
                hook_outcomes=outcomes,
            )
            plan = decide(spec, status, observed, now)

        for action in plan.actions:
            try:
                self.kube.apply(ref, spec, action)
            except AdapterError as err:
                self._apply_failed(p, action, err, context)
                raise RetryLater from err
            log.debug("applied %s", describe_action(action), extra=context)
            # After an action, before the status write: a crash here is repaired by the next
            # pass from what exists (tests/harness/crash_points.py kills the process here).
            checkpoint(f"applied:{type(action).__name__}")

        # Status first, then Events: a status patch that fails makes the next pass decide the
        # same transitions again, and its Events would otherwise be posted twice.
        try:
            self.kube.patch_status(ref, resource_version, raw_status, plan.status)
        except AdapterError as err:
            self.status_refused(self.kube.post_event, ref, err, now, context)
            raise RetryLater from err
        if self.hooks is not None:
            # Only now, with every call recorded in status: a crash before this line re-sends
            # (same checksum), it never loses a call.
            self.hooks.acknowledge(key, plan.status.webhooks)
            self.hooks.send(key, plan.calls)
        self.post_events(self.kube.post_event, ref, plan.events, now, context)
        self._record_metrics(key, ref.uid, plan, observed, samples)
        if plan.status.phase != status.phase:
            log.info(
                "phase %s -> %s: %s",
                status.phase.value,
                plan.status.phase.value,
                plan.status.message or "",
                extra=context,
            )
        return self._since(plan.requeue_after, now)

    def _since(self, delay: float | None, now: datetime) -> float | None:
        """`delay` counted from `now` (the clock reading decide() planned with), not from the end
        of the pass: a pause deadline or a gate's due time is met when it falls due, not one
        pass duration (observe, measure, apply, status, Events) later."""
        if delay is None:
            return None
        return max(0.0, delay - (self._clock() - now).total_seconds())

    def _observe(
        self,
        ref: ServiceRef,
        spec: ServiceSpec,
        status: ServiceStatus,
        metadata: Mapping[str, Any],
        generation: int,
        *,
        fresh: bool = False,
    ) -> Observed:
        """Everything decide() may know, read in this pass (`fresh`: the service's workloads
        listed from the API server, not the watch cache)."""
        migration_job = status.migration.job if status.migration else None
        revision = revision_of(spec)
        steady = (
            status.canary is None
            and status.stable is not None
            and status.stable.revision == revision
        )
        workloads = self.kube.observe(
            ref,
            spec,
            migration_job,
            # Job gates measure through Jobs while a canary runs; only steady state has none.
            jobs_needed=migration_pending(spec, status) or not steady,
            fresh=fresh or (steady and self._due_fresh((ref.namespace, ref.name))),
        )
        # Steady state (the declared revision is stable, no canary) never consults a gate:
        # reading them there would cost a lookup per gate on every resync of every Healthy
        # service.
        gates: dict[str, MetricGateSpec | None] = {}
        gate_errors: dict[str, str] = {}
        for gate_name, cluster in [] if steady else gate_refs(spec):
            key = naming.gate_spec_key(gate_name, cluster)
            try:
                gates[key] = self.kube.read_gate(ref.namespace, gate_name, cluster)
            except InvalidGateError as err:
                # The core reports it (status message, one Event) and waits: it never passes
                # a gate it cannot measure.
                gates[key] = None
                gate_errors[key] = err.summary
        request, request_error = read_request(metadata.get("annotations"))
        return Observed(
            namespace=ref.namespace,
            name=ref.name,
            generation=generation,
            replica_sets=workloads.replica_sets,
            jobs=workloads.jobs,
            gate_jobs=workloads.gate_jobs,
            gates=gates,
            gate_errors=gate_errors,
            request=request,
            request_error=request_error,
            services=workloads.services,
            router_weight=workloads.router_weight,
            router_mirror=workloads.router_mirror,
            missing_references=()
            if steady
            else missing_references(self.kube.api, ref.namespace, spec),
        )

    def _with_train_release(self, spec: ServiceSpec, namespace: str, name: str) -> ServiceSpec:
        """The spec with what its ReleaseTrain's status says it runs now (its own spec when the
        train has released nothing to it, does not list it, or does not exist). Read by GET:
        the train's last write must be seen, or a pass could roll a member back to the
        release before it."""
        train = self.kube.api.get(RELEASE_TRAINS, namespace, str(spec.release_train))
        try:
            return apply_release(spec, release_for(train, name))
        except ValueError as err:
            raise ReleaseNotApplicable(
                f"ReleaseTrain {namespace}/{spec.release_train}: its release for {name} "
                f"cannot be applied: {err}"
            ) from err

    def _due_fresh(self, key: Key) -> bool:
        """Whether this steady-state pass reads from the API server instead of the watch cache:
        once per `fresh_observe_s` per service (never in its first pass after a start, when
        the cache was just filled by a full listing). A re-listing watch does not report what
        was deleted while it was away; this bounds how long such a copy can linger."""
        return self.memory.fresh_read_due(key, self._monotonic(), self._fresh_every)

    # ---- failures that end a pass

    def _invalid_spec(self, p: ServicePass, err: ValidationError | str) -> float | None:
        """No actions on a spec that does not validate (or a train release that does not fit
        it): say where it is wrong and wait for the next edit (a watch event), keeping
        everything that runs as it is."""
        message = err if isinstance(err, str) else f"invalid spec: {validation_summary(err)}"
        context = logs.ref(p.ref.namespace, p.ref.name)
        log.warning("%s", message, extra=context)
        new = _failed(p.status, Reason.INVALID_SPEC, message, p.generation, p.now)
        try:
            self.kube.patch_status(p.ref, p.resource_version, p.raw_status, new)
        except AdapterError as patch_err:
            self.status_refused(self.kube.post_event, p.ref, patch_err, p.now, context)
            raise RetryLater from patch_err
        record = EventRecord(Reason.INVALID_SPEC, message, warning=True)
        self.post_events(self.kube.post_event, p.ref, [record], p.now, context)
        return None

    def _apply_failed(
        self, p: ServicePass, action: PlanAction, err: AdapterError, context: dict[str, Any]
    ) -> None:
        """Stop at the first failing action. The Plan's status is not written (it describes a
        world the remaining actions did not make): the phase stays where the rollout stands.
        The stored status gets Degraded=True and Ready=False naming the error (a Healthy
        service whose repairs fail is not Ready), and the next pass, after backoff, repairs
        from what exists and writes both conditions afresh. observedGeneration moves to this
        generation: the error is about it, and a reader waiting for the operator to observe
        it (a GitOps health check) must see the error, not wait forever."""
        log.warning("%s failed: %s", describe_action(action), err, extra=context)
        message = str(err)
        new = _failed(p.status, Reason.APPLY_FAILED, message, p.generation, p.now)
        try:
            self.kube.patch_status(p.ref, p.resource_version, p.raw_status, new)
        except AdapterError as patch_err:
            self.status_refused(self.kube.post_event, p.ref, patch_err, p.now, context)
        record = EventRecord(Reason.APPLY_FAILED, message, warning=True)
        self.post_events(self.kube.post_event, p.ref, [record], p.now, context)

    # ---- small parts

    def _record_metrics(
        self,
        key: Key,
        uid: str,
        plan: Plan,
        observed: Observed,
        samples: tuple[MetricSample, ...],
    ) -> None:
        self.memory.record_phase(key, uid, plan.status.phase.value)
        steps = sum(1 for e in plan.events if e.reason == Reason.STEP_COMPLETED)
        if steps:
            self.metrics.step_transitions.inc(steps)
        verdicts: list[tuple[str, str]] = []
        for sample in samples:
            # A step gate's result leaves status when its step completes in this very pass, so
            # the verdict is taken from the sample itself, as the core judges it.
            gate = sample.key.removesuffix("@bg")
            gspec = observed.gates.get(gate)
            if gspec is not None:
                verdict = verdict_of(sample, gspec)
                self.metrics.gate_verdicts.labels(gate=gate, verdict=verdict.value).inc()
                verdicts.append((gate, verdict.value))
        rolled_back = any(e.reason == Reason.ROLLED_BACK for e in plan.events)
        abort = plan.status.abort
        reason = (abort.reason if abort else Reason.ROLLED_BACK) if rolled_back else None
        self.metrics.services.record(key, plan.status, verdicts, reason)


def _failed(
    status: ServiceStatus, reason: str, message: str, generation: int, now: datetime
) -> ServiceStatus:
    """`status` saying a pass could not do its work: Ready=False and Degraded=True for
    `reason`, the message, and observedGeneration at the generation the failure is about."""
    new = with_condition(status, ConditionType.READY, False, reason, message, generation, now)
    new = with_condition(new, ConditionType.DEGRADED, True, reason, message, generation, now)
    if reason == Reason.INVALID_SPEC:  # kstatus: Failed at once, not InProgress until a timeout
        new = stalled_on_invalid_spec(new, message, generation, now)
    return new.model_copy(update={"message": message, "observed_generation": generation})
