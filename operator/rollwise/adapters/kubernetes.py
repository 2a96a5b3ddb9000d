"""The Kubernetes adapter: reads one service's world into plain data (`Workloads`, gate specs)
and applies a Plan's actions, posts its Events and patches its status.

Every action is derived from what exists now and is safe to repeat: creates meet AlreadyExists
and adopt only what this ProgressiveService owns; scales and patches write only differences.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from pydantic import ValidationError

from rollwise.adapters.adoption import ObjectVanishedError, create_or_adopt
from rollwise.adapters.cache import ObjectCache, ServiceBodies
from rollwise.adapters.errors import AdapterError, NotOwnedError
from rollwise.adapters.events import EventRecorder
from rollwise.adapters.kubeapi import (
    CLUSTER_METRIC_GATES,
    JOBS,
    METRIC_GATES,
    PODS,
    PROGRESSIVE_SERVICES,
    REPLICA_SETS,
    SERVICES,
    KubeApi,
    Resource,
)
from rollwise.adapters.manifests.builders import (
    migration_job_manifest,
    replica_set_manifest,
    service_manifests,
    service_patch,
)
from rollwise.adapters.manifests.readers import (
    LOG_TAIL_BYTES,
    LOG_TAIL_LINES,
    failed_pod,
    is_gate_job,
    job_states,
    log_tail,
    observed_services,
    replica_set_states,
)
from rollwise.adapters.manifests.types import (
    Manifest,
    ObjectRef,
    ServiceRef,
    is_owned_by,
    owned_selector,
)
from rollwise.adapters.providers.job import gate_job_manifest, gate_job_states
from rollwise.adapters.routers.registry import RouterFactory
from rollwise.adapters.status_writer import StatusWriter
from rollwise.adapters.validation import validation_summary
from rollwise.adapters.workload import WorkloadHandover
from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import ServiceStatus
from rollwise.core import naming
from rollwise.core.model import (
    AdoptWorkload,
    CreateGateJob,
    CreateMigrationJob,
    DeleteJob,
    DeleteReplicaSet,
    EnsureServices,
    EventRecord,
    GateJobState,
    JobState,
    PlanAction,
    ReleaseWorkload,
    ReplicaSetState,
    ScaleReplicaSet,
    ScaleWorkload,
    SetRouterWeight,
)
from rollwise.core.promql import gate_template_problem
from rollwise.core.revision import revision_of

log = logging.getLogger("rollwise.adapters.kubernetes")


@dataclass(frozen=True)
class Workloads:
    """What exists of one service, summarised for `Observed`."""

    replica_sets: dict[str, ReplicaSetState] = field(default_factory=dict)
    jobs: dict[str, JobState] = field(default_factory=dict)
    gate_jobs: dict[str, GateJobState] = field(default_factory=dict)
    services: EnsureServices | None = None
    router_weight: int | None = None
    router_mirror: int | None = 0


class InvalidGateError(AdapterError):
    """A MetricGate exists but its spec does not validate (written under an older, looser
    CRD schema: the API server does not re-validate stored objects when the schema changes).
    `summary` says which fields are wrong."""

    def __init__(self, obj: str, summary: str) -> None:
        self.summary = summary
        super().__init__(
            obj,
            f"invalid spec: {summary}",
            fix="fix the gate; the rollout waits until it validates",
        )


class KubernetesAdapter:
    """Everything the controller asks of the cluster, for one ProgressiveService at a time."""

    def __init__(
        self,
        api: KubeApi,
        *,
        instance: str | None = None,
        cache: ObjectCache | None = None,
        bodies: ServiceBodies | None = None,
    ) -> None:
        self.api = api
        self.cache = cache
        self.bodies = bodies
        self.events = EventRecorder(api, instance or socket.gethostname())
        self.routers = RouterFactory(api)
        self.workloads = WorkloadHandover(api)
        # Log tails of failed measurement Jobs by pod uid: a finished pod's log never changes,
        # and each pass until the Job's TTL would otherwise read it again.
        self._log_tails: OrderedDict[str, str] = OrderedDict()
        self._log_lock = threading.Lock()

    def _owned(self, res: Resource, ref: ServiceRef, *, fresh: bool) -> list[Manifest]:
        """`ref`'s objects of one kind: from the watch cache, or listed from the API server
        (no cache, or `fresh`: the LIST's answer then also replaces what the cache holds)."""
        if self.cache is not None and not fresh:
            return self.cache.owned(res, ref.namespace, ref.name)
        items = self.api.list(res, ref.namespace, owned_selector(ref.name))
        if self.cache is not None:
            self.cache.replace_owned(res, ref.namespace, ref.name, items)
        return items

    def _current(self, res: Resource, namespace: str | None, name: str) -> Manifest | None:
        """One object as last seen: the cache when there is one, else a GET."""
        if self.cache is not None:
            return self.cache.get(res, namespace, name)
        return self.api.get(res, namespace, name)

    def _gone(self, res: Resource, namespace: str, name: str) -> None:
        """A write answered 404: whatever the cache remembers of the object is stale."""
        if self.cache is not None:
            self.cache.remove(res, namespace, name)

    # ---- reads

    def read_service(self, namespace: str, name: str) -> Manifest | None:
        """The ProgressiveService as last delivered by its watch, when that is not older than
        this operator's own last write to it; else as stored now (a GET; None when gone)."""
        if self.bodies is not None:
            body = self.bodies.get(namespace, name)
            if body is not None:
                return body
        return self.api.get(PROGRESSIVE_SERVICES, namespace, name)

    def observe(
        self,
        ref: ServiceRef,
        spec: ServiceSpec,
        migration_job: str | None = None,
        *,
        jobs_needed: bool = True,
        fresh: bool = False,
    ) -> Workloads:
        """The service's own ReplicaSets, migration Jobs, Services and router weight.

        From the watch cache when there is one; `fresh=True` lists them from the API server.
        `jobs_needed=False` (no migration to run or follow for this revision) skips the Jobs:
        nothing decides on them then."""
        replica_sets = self._owned(REPLICA_SETS, ref, fresh=fresh)
        jobs = self._owned(JOBS, ref, fresh=fresh) if jobs_needed else []
        services = self._owned(SERVICES, ref, fresh=fresh)
        rs_states = replica_set_states(replica_sets, [], ref.uid)
        job_list = job_states(jobs, [], ref.uid, prefer=migration_job)
        gate_jobs = gate_job_states(jobs, [], ref.uid)
        # Pods only explain what ReplicaSets and Jobs do not say: why pods are not ready and
        # why a Job failed. Skipping the list when neither applies saves a call per pass.
        if (
            any(s.ready_replicas < s.replicas for s in rs_states.values())
            or any(j.failed for j in job_list.values())
            or any(j.failed for j in gate_jobs.values())
        ):
            pods = self._owned(PODS, ref, fresh=fresh)
            rs_states = replica_set_states(replica_sets, pods, ref.uid)
            job_list = job_states(jobs, pods, ref.uid, prefer=migration_job)
            tails = {
                name: tail
                for name, state in gate_jobs.items()
                if state.failed and (tail := self._failed_job_log(ref, name, pods)) is not None
            }
            gate_jobs = gate_job_states(
                [j for j in jobs if is_gate_job(j)], pods, ref.uid, log_tails=tails
            )
        reading = self.routers.for_spec(spec).read(ref, spec)
        return Workloads(
            replica_sets=rs_states,
            jobs=job_list,
            gate_jobs=gate_jobs,
            services=observed_services(ref, spec, services),
            router_weight=reading.weight,
            router_mirror=reading.mirror,
        )

    def _failed_job_log(self, ref: ServiceRef, job_name: str, pods: list[Manifest]) -> str | None:
        """The log tail of a failed Job's newest failed pod (its first container); None when
        the kubelet serves no log (kwok's fake nodes, a pod already gone, no RBAC on pods/log):
        the Job's conditions and the pod's termination message still tell why."""
        pod = failed_pod(job_name, pods)
        if pod is None:
            return None
        metadata = pod.get("metadata") or {}
        uid, name = str(metadata.get("uid") or ""), str(metadata.get("name") or "")
        with self._log_lock:
            if uid in self._log_tails:
                return self._log_tails[uid] or None
        try:
            text = self.api.get_text(
                PODS,
                ref.namespace,
                name,
                "log",
                {"tailLines": str(LOG_TAIL_LINES), "limitBytes": str(4 * LOG_TAIL_BYTES)},
            )
        except AdapterError as err:
            log.info(
                "no log of pod %s of Job %s: %s",
                name,
                job_name,
                err,
                extra={"k8s_ref": {"namespace": ref.namespace, "name": ref.name}},
            )
            # Transient failures are asked again next pass; the kubelet's answer is kept.
            if err.transient:
                return None
            text = ""
        tail = log_tail(text)
        with self._log_lock:
            self._log_tails[uid] = tail
            while len(self._log_tails) > 1024:
                self._log_tails.popitem(last=False)
        return tail or None

    def read_gate(self, namespace: str, name: str, cluster: bool) -> MetricGateSpec | None:
        """A MetricGate (or ClusterMetricGate) spec; None when it does not exist."""
        res = CLUSTER_METRIC_GATES if cluster else METRIC_GATES
        obj = self._current(res, None if cluster else namespace, name)
        if obj is None:
            return None
        try:
            spec = MetricGateSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            raise InvalidGateError(res.describe(namespace, name), validation_summary(err)) from err
        problem = gate_template_problem(spec)
        if problem is not None:  # a placeholder where a value could change the query's shape
            raise InvalidGateError(res.describe(namespace, name), problem)
        return spec

    # ---- actions

    def apply(self, ref: ServiceRef, spec: ServiceSpec, action: PlanAction) -> None:
        """Apply one action of a Plan; idempotent, derived from what exists now."""
        match action:
            case ScaleReplicaSet():
                self._scale(ref, spec, action)
            case DeleteReplicaSet():
                self._delete_replica_set(ref, action)
            case EnsureServices():
                self._ensure_services(ref, spec, action)
            case SetRouterWeight():
                self.routers.for_spec(spec).set_weight(ref, spec, action)
            case CreateMigrationJob():
                self._create_migration_job(ref, spec, action)
            case CreateGateJob():
                self._create_gate_job(ref, spec, action)
            case DeleteJob():
                self._delete_job(ref, action)
            case AdoptWorkload():
                self.workloads.adopt(ref, action.name)
            case ScaleWorkload():
                self.workloads.scale(ref, action.name, action.replicas)
            case ReleaseWorkload():
                self.workloads.release(ref, action.name)
            case _:
                assert_never(action)

    def _scale(self, ref: ServiceRef, spec: ServiceSpec, action: ScaleReplicaSet) -> None:
        name = naming.replica_set_name(ref.name, action.revision)
        current = self._current(REPLICA_SETS, ref.namespace, name)
        if current is None:
            if action.replicas == 0:
                return
            current_revision = revision_of(spec)
            if action.revision != current_revision:
                raise AdapterError(
                    ref.child("ReplicaSet", name),
                    f"is gone and spec.template is now revision {current_revision}; the "
                    f"template of revision {action.revision} is no longer known",
                    fix="it cannot be recreated; apply that template again to bring it back",
                )
            manifest = replica_set_manifest(ref, spec, action.revision, action.replicas)
            current = create_or_adopt(self.api, REPLICA_SETS, ref, manifest)
            if current is None:
                return
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(ref.child("ReplicaSet", name))
        if (current.get("spec") or {}).get("replicas") != action.replicas:
            try:
                self.api.patch(
                    REPLICA_SETS, ref.namespace, name, {"spec": {"replicas": action.replicas}}
                )
            except AdapterError as err:
                if err.status == 404:
                    self._gone(REPLICA_SETS, ref.namespace, name)
                raise

    def _delete_replica_set(self, ref: ServiceRef, action: DeleteReplicaSet) -> None:
        name = naming.replica_set_name(ref.name, action.revision)
        current = self._current(REPLICA_SETS, ref.namespace, name)
        if current is None:
            return
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(ref.child("ReplicaSet", name))
        uid = (current.get("metadata") or {}).get("uid")
        self.api.delete(
            REPLICA_SETS,
            ref.namespace,
            name,
            {"propagationPolicy": "Background", "preconditions": {"uid": uid}},
        )
        self._gone(REPLICA_SETS, ref.namespace, name)

    def _ensure_services(self, ref: ServiceRef, spec: ServiceSpec, want: EnsureServices) -> None:
        for manifest in service_manifests(ref, spec, want):
            name = manifest["metadata"]["name"]
            current = self._current(SERVICES, ref.namespace, name)
            if current is None:
                current = create_or_adopt(self.api, SERVICES, ref, manifest)
                if current is None:
                    continue
            if not is_owned_by(current, ref.uid):
                raise NotOwnedError(ref.child("Service", name))
            patch = service_patch(current, manifest)
            if patch:
                try:
                    self.api.patch(SERVICES, ref.namespace, name, patch)
                except AdapterError as err:
                    if err.status == 404:
                        self._gone(SERVICES, ref.namespace, name)
                        raise

    def _create_migration_job(
        self, ref: ServiceRef, spec: ServiceSpec, action: CreateMigrationJob
    ) -> None:
        if spec.migration is None:
            raise AdapterError(
                ref.child("Job", action.job_name),
                "a migration Job was planned but spec.migration is not set",
                field="spec.migration",
                fix="declare spec.migration, or apply a new revision",
            )
        manifest = migration_job_manifest(ref, spec, action.revision, action.job_name)
        # The name is deterministic per (revision, attempt): AlreadyExists means an earlier pass
        # created it (adopt: nothing to do) or someone else did (never adopted).
        try:
            create_or_adopt(self.api, JOBS, ref, manifest)
        except ObjectVanishedError:
            # Unlike a ReplicaSet, a Job that existed may already have run the migration: it is
            # never created a second time here. The core reports a recorded Job that is gone.
            return

    def _create_gate_job(self, ref: ServiceRef, spec: ServiceSpec, action: CreateGateJob) -> None:
        manifest = gate_job_manifest(ref, spec.resolved_version(), action)
        # AlreadyExists: an earlier pass (before a crash or a status write) created it: adopted.
        try:
            create_or_adopt(self.api, JOBS, ref, manifest)
        except ObjectVanishedError:
            return  # its TTL removed it as the create was refused: the next pass decides

    def _delete_job(self, ref: ServiceRef, action: DeleteJob) -> None:
        current = self._current(JOBS, ref.namespace, action.job_name)
        if current is None:
            return
        if not is_owned_by(current, ref.uid):
            raise NotOwnedError(ref.child("Job", action.job_name))
        uid = (current.get("metadata") or {}).get("uid")
        # Background: the Job goes at once and its pods after it (they stop their work);
        # Foreground: the Job is seen until its pods are gone (a stopped migration).
        policy = "Foreground" if action.foreground else "Background"
        self.api.delete(
            JOBS,
            ref.namespace,
            action.job_name,
            {"propagationPolicy": policy, "preconditions": {"uid": uid}},
        )
        self._gone(JOBS, ref.namespace, action.job_name)

    # ---- events and status

    def post_event(self, ref: ObjectRef, record: EventRecord, now: datetime) -> None:
        self.events.post(ref, record, now)

    def patch_status(
        self,
        ref: ServiceRef,
        resource_version: str,
        old_status: Manifest,
        new_status: ServiceStatus,
        *,
        attempts: int = 3,
    ) -> bool:
        """Merge-patch the status subresource to `new_status` if it differs from what is stored
        (the one StatusWriter: conflicts re-read and retried). True when a patch was written."""
        return StatusWriter(
            self.api,
            PROGRESSIVE_SERVICES,
            written=self.bodies.written if self.bodies is not None else None,
        ).write(ref, resource_version, old_status, new_status, attempts=attempts)
