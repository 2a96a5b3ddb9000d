"""The one place where rollout decisions are made.

`decide(spec, status, observed, now)` is pure: it reads what the adapters observed and the status
the last pass wrote, and returns a Plan: the actions to converge the world, the next status, the
Events, and when to look again. Everything it needs to survive a crash lives in status (step
index, pause start, migration attempt, abort time) or can be observed (ReplicaSets and Jobs have
deterministic names), so a restarted operator continues exactly where the last status write was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollwise.api.durations import parse_duration
from rollwise.api.gates import MetricGateSpec
from rollwise.api.service import (
    HISTORY_LIMIT,
    AbortStatus,
    CanaryStep,
    GateRef,
    GateResult,
    HistoryEntry,
    MigrationPhase,
    MigrationStatus,
    Phase,
    RequestAck,
    RevisionStatus,
    ServiceSpec,
    ServiceStatus,
    Verdict,
)
from rollwise.core import gates as gatelib
from rollwise.core.conditions import with_condition
from rollwise.core.model import (
    Action,
    CreateMigrationJob,
    DeleteReplicaSet,
    EnsureServices,
    EventRecord,
    GateQuery,
    ManualRequest,
    MetricSample,
    Observed,
    Plan,
    PlanAction,
    ScaleReplicaSet,
    SetRouterWeight,
)
from rollwise.core.naming import gate_key, gate_spec_key, migration_job_name, template_revision
from rollwise.core.reasons import ConditionType, Reason

ACTOR = "rollwise"
# How long a recorded migration Job may be unseen before it counts as deleted by someone.
MIGRATION_JOB_GRACE = timedelta(seconds=30)
RESYNC_HEALTHY_S = 300.0
POLL_S = 5.0
# Waiting for pods or a Job ends with the watch event of their ReplicaSet or Job, which wakes the
# service at once; this timer is only the fallback should an event be missed. (A 5 s poll here
# was most of the passes of a rollout once the control plane was slow: 23 per rollout at N=1000.)
WATCH_FALLBACK_S = 30.0

_PROGRESSING_PHASES = {
    Phase.PENDING,
    Phase.MIGRATING,
    Phase.PROGRESSING,
    Phase.PAUSED,
    Phase.PROMOTING,
    Phase.ROLLING_BACK,
}
_DEGRADED_PHASES = {Phase.ROLLED_BACK, Phase.MIGRATION_FAILED, Phase.DEGRADED}


# ----------------------------------------------------------------------------- small helpers


def revision_of(spec: ServiceSpec) -> str:
    """The revision of the declared pod template and version: a new value means a new rollout."""
    return template_revision(
        {"template": spec.template.to_wire(), "version": spec.resolved_version()}
    )


def canary_replicas_for(weight: int, replicas: int) -> int:
    """Canary pods for a weight under the replicas router: ceil(weight% of replicas), at least one
    pod for any weight above 0. The real share is canary ready / all ready pods, so with 4 replicas
    a 10% step runs 1 canary pod (25%): the weight is approximated upwards, never to 0."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, max(1, math.ceil(weight * replicas / 100)))


def gate_refs(spec: ServiceSpec) -> list[tuple[str, bool]]:
    """Every MetricGate / ClusterMetricGate the spec refers to, as (name, cluster)."""
    canary = spec.strategy.canary
    refs: list[GateRef] = [g for s in canary.steps if s.analysis for g in s.analysis.gates]
    if canary.analysis:
        refs.extend(canary.analysis.gates)
    seen: dict[tuple[str, bool], None] = {}
    for ref in refs:
        seen[(ref.name, ref.cluster)] = None
    return list(seen)


def _step_kind(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return "setWeight"
    if step.pause is not None:
        return "pause"
    return "analysis"


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# ----------------------------------------------------------------------------- the pass builder


@dataclass
class _Pass:
    """One decision pass: accumulates actions, events, history and the earliest requeue."""

    spec: ServiceSpec
    observed: Observed
    now: datetime
    status: ServiceStatus
    actions: list[PlanAction] = field(default_factory=list)  # migration Jobs, in order
    events: list[EventRecord] = field(default_factory=list)
    requeue: float | None = None
    # Desired workload state, last word wins; turned into ordered actions by ordered_actions().
    replicas: dict[str, int] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    wanted_services: EnsureServices | None = None
    router_weight: SetRouterWeight | None = None

    def set(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def act(self, action: PlanAction) -> None:
        self.actions.append(action)

    def event(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        actor: str = ACTOR,
        step: int | None = None,
        weight: int | None = None,
        revision: str | None = None,
    ) -> None:
        """An Event and a history entry for one transition."""
        self.events.append(EventRecord(reason=reason, message=message, warning=warning))
        entry = HistoryEntry(
            at=self.now,
            event=reason,
            actor=actor,
            revision=revision,
            step=step,
            weight=weight,
            message=message,
        )
        history = [*self.status.history, entry][-HISTORY_LIMIT:]
        self.set(history=history)

    def wake_at(self, when: datetime) -> None:
        self.wake_in(max(0.0, (when - self.now).total_seconds()))

    def wake_in(self, seconds: float) -> None:
        seconds = max(0.5, seconds)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    # ---- convergence helpers: plan an action only where the world differs

    def scale(self, revision: str, replicas: int, *, current: bool) -> None:
        """Want a revision at this size; only the spec's own revision may be created (the
        template of any other revision is not known any more)."""
        if revision not in self.observed.replica_sets and not (current and replicas > 0):
            self.replicas.pop(revision, None)
            return
        self.replicas[revision] = replicas

    def hold(self, revision: str) -> None:
        """Forget any size wanted earlier in this pass for a revision."""
        self.replicas.pop(revision, None)

    def services(self, stable: str, canary: str | None, include_canary: bool) -> None:
        self.wanted_services = EnsureServices(
            stable_revision=stable,
            canary_revision=canary,
            main_revisions=() if include_canary and canary else (stable,),
        )

    def router(self, stable: str, canary: str | None, weight: int) -> None:
        if self.spec.strategy.canary.traffic_routing.kind == "replicas":
            return
        self.router_weight = SetRouterWeight(
            stable_revision=stable, canary_revision=canary, weight=weight
        )

    def ordered_actions(self) -> tuple[PlanAction, ...]:
        """Scale-ups, then traffic (Services, router), then scale-downs, then deletions: capacity
        is there before traffic moves to it, and traffic is gone before capacity goes."""
        ups: list[PlanAction] = []
        downs: list[PlanAction] = []
        for revision, want in sorted(self.replicas.items()):
            rs = self.observed.replica_sets.get(revision)
            have = rs.replicas if rs else 0
            if rs is not None and want == have:
                continue
            (ups if want > have or rs is None else downs).append(
                ScaleReplicaSet(revision=revision, replicas=want)
            )
        traffic: list[PlanAction] = []
        if self.wanted_services is not None and self.observed.services != self.wanted_services:
            traffic.append(self.wanted_services)
        if self.router_weight is not None and (
            self.observed.router_weight != self.router_weight.weight
        ):
            traffic.append(self.router_weight)
        deletes: list[PlanAction] = [
            DeleteReplicaSet(revision=r) for r in self.deletes if r in self.observed.replica_sets
        ]
        return (*self.actions, *ups, *traffic, *downs, *deletes)


# ----------------------------------------------------------------------------- entry points


def decide(spec: ServiceSpec, status: ServiceStatus, observed: Observed, now: datetime) -> Plan:
    """The next actions, status, Events and requeue delay for one ProgressiveService."""
    p = _Pass(spec=spec, observed=observed, now=now, status=status)
    revision = revision_of(spec)
    _handle_request_error(p)
    stable = status.stable
    if stable is None:
        _first_revision(p, revision)
    elif (
        status.canary is not None
        and status.canary.revision != revision
        and (status.phase not in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED))
    ):
        _supersede(p, revision)
    elif stable.revision == revision and status.canary is None:
        _steady(p, revision)
    elif stable.revision == revision:
        _supersede(p, revision)
    else:
        _rollout(p, revision)
    _ack_unhandled_request(p)
    _finish_status(p)
    return Plan(
        actions=p.ordered_actions(),
        status=p.status,
        events=tuple(p.events),
        requeue_after=p.requeue,
    )


def due_gates(
    spec: ServiceSpec, status: ServiceStatus, observed: Observed, now: datetime
) -> list[GateQuery]:
    """The gate measurements to take in this pass, queries resolved; the controller runs them
    and hands the samples to decide() in the same pass."""
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING):
        return []
    canary = status.canary
    if canary is None or status.stable is None or status.current_step_index is None:
        return []
    if canary.revision != revision_of(spec):
        return []
    queries: list[GateQuery] = []
    for ref, background, started in _active_gates(spec, status):
        gspec = observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if gspec is None:
            continue
        key = gate_key(ref.name, ref.cluster, background)
        result = _result(status, key)
        if gatelib.exhausted(result, gspec, not background):
            continue
        if gatelib.next_due(result, gspec, started) > now:
            continue
        try:
            query = gatelib.resolve_query(ref.name, gspec, ref, _query_context(observed, status))
        except gatelib.GateConfigError:
            continue  # decide() reports it
        queries.append(
            GateQuery(
                key=key,
                gate=ref.name,
                background=background,
                address=gspec.provider.prometheus.address,
                query=query,
                timeout_s=parse_duration(gspec.provider.prometheus.timeout),
            )
        )
    return queries


# ----------------------------------------------------------------------------- requests


def _handle_request_error(p: _Pass) -> None:
    """An unreadable request annotation is reported once (an Event and history), then kept in
    status until it is fixed; it never changes the rollout."""
    error = p.observed.request_error
    if error and p.status.invalid_request != error:
        p.event(Reason.REQUEST_INVALID, error, warning=True)
    p.set(invalid_request=error)


def _pending_request(p: _Pass) -> ManualRequest | None:
    """The annotation's request if it has not been acted on yet (one action per id)."""
    request = p.observed.request
    if request is None:
        return None
    if p.status.last_request is not None and p.status.last_request.id == request.id:
        return None
    return request


def _ack(p: _Pass, request: ManualRequest, result: str, accepted: bool = True) -> None:
    p.set(
        last_request=RequestAck(
            id=request.id, action=request.action.value, by=request.by, at=p.now, result=result
        )
    )
    reason = Reason.REQUEST_ACCEPTED if accepted else Reason.REQUEST_IGNORED
    p.event(
        reason,
        f"{request.action.value} by {request.by}: {result}",
        actor=request.by,
        warning=not accepted,
    )


def _ack_unhandled_request(p: _Pass) -> None:
    request = _pending_request(p)
    if request is not None:
        _ack(
            p,
            request,
            f"nothing to {request.action.value} in phase {p.status.phase}",
            accepted=False,
        )


# ----------------------------------------------------------------------------- first revision


def _first_revision(p: _Pass, revision: str) -> None:
    """Nothing to compare against: migrate, then go straight to full replicas."""
    spec = p.spec
    if spec.migration is not None and not _migration_done(p, revision):
        _migrate(p, revision)
        return
    version = spec.resolved_version()
    p.set(
        stable=RevisionStatus(revision=revision, version=version, replicas=spec.replicas),
        canary=None,
        canary_weight=0,
        current_step_index=None,
        abort=None,
    )
    p.event(
        Reason.INITIAL_DEPLOY,
        f"first revision {revision} (version {version}) deployed with {spec.replicas} replicas",
        revision=revision,
    )
    _steady(p, revision)


# ----------------------------------------------------------------------------- steady state


def _steady(p: _Pass, revision: str) -> None:
    """Stable is the declared revision: keep it at full size and tidy old revisions away."""
    spec = p.spec
    p.scale(revision, spec.replicas, current=True)
    p.services(revision, None, include_canary=False)
    # A router left at 100% after a promotion would send the next rollout's first requests to
    # a not-yet-ready canary: in steady state every router is at 0.
    p.router(revision, None, 0)
    # Old revisions go at once: deleting a ReplicaSet deletes its pods (its template is not
    # needed any more: a rollback goes to a new revision, never back to an old ReplicaSet).
    p.deletes.extend(other for other in sorted(p.observed.replica_sets) if other != revision)
    rs = p.observed.replica_sets.get(revision)
    ready = rs.ready_replicas if rs else 0
    stable = p.status.stable
    assert stable is not None
    p.set(
        stable=stable.model_copy(update={"replicas": spec.replicas, "ready_replicas": ready}),
        canary=None,
        canary_weight=0,
        current_step_index=None,
        step_started_at=None,
        pause_started_at=None,
        paused_by_request=False,
        scale_down_at=None,
        analysis=[],
    )
    if ready >= spec.replicas and (rs is None or rs.replicas == spec.replicas):
        if p.status.phase is not Phase.HEALTHY:
            p.event(
                Reason.HEALTHY,
                f"{spec.replicas}/{spec.replicas} pods of {revision} ready",
                revision=revision,
            )
        p.set(phase=Phase.HEALTHY, message=f"version {stable.version} ({revision}) is serving")
        p.requeue = RESYNC_HEALTHY_S
    else:
        p.set(
            phase=Phase.PROGRESSING,
            message=f"waiting for pods of {revision}: {ready}/{spec.replicas} ready",
        )
        p.wake_in(WATCH_FALLBACK_S)


# ----------------------------------------------------------------------------- migration


def migration_pending(spec: ServiceSpec, status: ServiceStatus) -> bool:
    """The declared revision has a migration that has not succeeded yet (so its Job matters)."""
    m = status.migration
    done = m is not None and m.revision == revision_of(spec) and m.phase is MigrationPhase.SUCCEEDED
    return spec.migration is not None and not done


def _migration_done(p: _Pass, revision: str) -> bool:
    m = p.status.migration
    return m is not None and m.revision == revision and m.phase is MigrationPhase.SUCCEEDED


def _migrate(p: _Pass, revision: str) -> None:
    """Run the migration once for this revision; never re-run it automatically.

    The Job's name is deterministic per (revision, attempt): a crash between creating it and
    writing status finds it again (adopted if ours), and never creates a second one.
    """
    spec = p.spec
    version = spec.resolved_version()
    name = p.observed.name
    m = p.status.migration
    if m is None or m.revision != revision:
        m = None
    job = p.observed.jobs.get(revision)
    request = _pending_request(p)

    if m is None:
        p.set(phase=Phase.MIGRATING)
        job_name = migration_job_name(name, revision, 1)
        if job is not None and job.owned:
            job_name = job.name  # whichever attempt of this revision the cluster still holds
        if job is not None and job.name == job_name and not job.owned:
            p.set(
                phase=Phase.DEGRADED,
                message=f"Job {job_name} exists and is not owned by this "
                "ProgressiveService; rollwise will not adopt it: delete or rename it",
            )
            p.wake_in(POLL_S * 6)
            return
        if job is not None and job.name == job_name and job.owned:
            attempt = next(
                (n for n in range(1, 100) if migration_job_name(name, revision, n) == job_name), 1
            )
            m = MigrationStatus(
                revision=revision,
                version=version,
                job=job_name,
                phase=MigrationPhase.RUNNING,
                attempts=attempt,
                started_at=job.started_at or p.now,
            )
            p.set(migration=m)
            p.event(
                Reason.MIGRATION_ADOPTED,
                f"found migration Job {job_name} of version "
                f"{version}; adopted it instead of running the migration again",
                revision=revision,
            )
        else:
            p.act(CreateMigrationJob(revision=revision, job_name=job_name))
            p.set(
                message=f"migration Job {job_name} of version {version} is running",
                migration=MigrationStatus(
                    revision=revision,
                    version=version,
                    job=job_name,
                    phase=MigrationPhase.RUNNING,
                    attempts=1,
                    started_at=p.now,
                ),
            )
            p.event(
                Reason.MIGRATION_STARTED,
                f"migration Job {job_name} started for version {version}",
                revision=revision,
            )
            p.wake_in(WATCH_FALLBACK_S)
            return

    if m.phase is MigrationPhase.FAILED:
        if request is not None and request.action is Action.RETRY:
            attempt = m.attempts + 1
            job_name = migration_job_name(name, revision, attempt)
            p.act(CreateMigrationJob(revision=revision, job_name=job_name))
            p.set(
                phase=Phase.MIGRATING,
                migration=MigrationStatus(
                    revision=revision,
                    version=version,
                    job=job_name,
                    phase=MigrationPhase.RUNNING,
                    attempts=attempt,
                    started_at=p.now,
                ),
                abort=None,
                message=f"migration Job {job_name} of version {version} is running",
            )
            _ack(p, request, f"migration attempt {attempt} started as Job {job_name}")
            p.event(
                Reason.MIGRATION_RETRY,
                f"migration of version {version} retried as Job {job_name}",
                actor=request.by,
                revision=revision,
            )
            p.wake_in(WATCH_FALLBACK_S)
            return
        p.set(
            phase=Phase.MIGRATION_FAILED,
            message=f"migration Job {m.job} failed: {m.message}; stable is untouched and the "
            "new version gets no traffic; `kubectl rollwise retry` runs it again",
        )
        return

    # Running: follow the Job recorded in status (the attempt's Job, by name).
    if job is not None and job.name != m.job:
        job = None
    if job is None:
        started = m.started_at or p.now
        if p.now - started < MIGRATION_JOB_GRACE:
            p.set(phase=Phase.MIGRATING)
            p.wake_in(POLL_S)
            return
        _migration_failed(p, m, "the Job disappeared before it finished (deleted by someone?)")
        return
    if job.succeeded:
        done = m.model_copy(
            update={
                "phase": MigrationPhase.SUCCEEDED,
                "finished_at": job.finished_at or p.now,
                "message": None,
            }
        )
        p.set(migration=done)
        p.event(
            Reason.MIGRATION_SUCCEEDED,
            f"migration Job {m.job} succeeded for version {version}",
            revision=revision,
        )
        if p.status.stable is None:
            _first_revision(p, revision)
        else:
            _rollout(p, revision)
        return
    if job.failed:
        _migration_failed(p, m, job.failure_reason or "the Job failed")
        return
    p.set(phase=Phase.MIGRATING, message=f"migration Job {m.job} of version {version} is running")
    p.wake_in(WATCH_FALLBACK_S)


def _migration_failed(p: _Pass, m: MigrationStatus, why: str) -> None:
    failed = m.model_copy(
        update={"phase": MigrationPhase.FAILED, "finished_at": p.now, "message": why}
    )
    p.set(
        migration=failed,
        phase=Phase.MIGRATION_FAILED,
        abort=AbortStatus(
            reason=Reason.MIGRATION_FAILED,
            message=f"migration Job {m.job} failed: {why}",
            at=p.now,
            revision=m.revision,
        ),
        message=f"migration Job {m.job} failed: {why}; stable is untouched and the new "
        "version gets no traffic; `kubectl rollwise retry` runs it again",
    )
    p.event(
        Reason.MIGRATION_FAILED,
        f"migration Job {m.job} failed: {why}",
        warning=True,
        revision=m.revision,
    )


# ----------------------------------------------------------------------------- supersede


def _supersede(p: _Pass, revision: str) -> None:
    """A newer revision (or the stable one again) replaced the canary mid-rollout: drain and
    remove the old canary first, then start over with the declared revision."""
    canary = p.status.canary
    stable = p.status.stable
    assert canary is not None and stable is not None
    settled = p.status.phase in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED)
    draining = (
        p.status.phase is Phase.ROLLING_BACK
        and p.status.abort is not None
        and p.status.abort.revision == canary.revision
    )
    if not settled and not draining:
        why = (
            f"revision {revision} replaced canary {canary.revision} before it finished"
            if revision != stable.revision
            else f"spec returned to the stable revision {revision}"
        )
        _begin_abort(p, Reason.SUPERSEDED, why, actor=ACTOR)
        return
    if settled or _drain_and_scale_down(p):
        p.event(
            Reason.SUPERSEDED,
            f"canary {canary.revision} removed; starting over with {revision}",
            revision=revision,
        )
        p.set(
            canary=None,
            abort=None,
            current_step_index=None,
            analysis=[],
            phase=Phase.PENDING,
            canary_weight=0,
            scale_down_at=None,
        )
        if revision == stable.revision:
            _steady(p, revision)
        else:
            _rollout(p, revision)


# ----------------------------------------------------------------------------- the rollout


def _rollout(p: _Pass, revision: str) -> None:
    spec = p.spec
    stable = p.status.stable
    assert stable is not None
    request = _pending_request(p)
    version = spec.resolved_version()

    # Settled outcomes for this revision wait for a person (retry) or a new revision.
    if p.status.phase in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED) and (
        p.status.abort is not None and p.status.abort.revision == revision
    ):
        if p.status.phase is Phase.MIGRATION_FAILED:
            _migrate(p, revision)
            return
        if request is not None and request.action is Action.RETRY:
            _ack(p, request, f"rollout of {revision} started again from step 1")
            p.set(
                abort=None,
                current_step_index=None,
                analysis=[],
                phase=Phase.PROGRESSING,
                canary=RevisionStatus(revision=revision, version=version),
                scale_down_at=None,
                schema_ahead_of_app=False,
            )
            p.event(
                Reason.RETRY, f"retry of {revision} requested", actor=request.by, revision=revision
            )
        else:
            _hold_rolled_back(p)
            return
    if p.status.phase is Phase.ROLLING_BACK:
        _rolling_back(p)
        return

    canary = p.status.canary
    if canary is None or canary.revision != revision:
        p.set(
            canary=RevisionStatus(revision=revision, version=version),
            abort=None,
            current_step_index=None,
            step_started_at=None,
            pause_started_at=None,
            analysis=[],
            canary_weight=0,
            scale_down_at=None,
            schema_ahead_of_app=False,
            paused_by_request=False,
        )

    if spec.migration is not None and not _migration_done(p, revision):
        _migrate(p, revision)
        return

    if p.status.current_step_index is None:
        p.set(
            current_step_index=0,
            step_started_at=p.now,
            pause_started_at=None,
            analysis=[],
            canary_weight=0,
            phase=Phase.PROGRESSING,
        )
        starts = _start_step(p, revision, 0)
        p.event(
            Reason.ROLLOUT_STARTED,
            f"rolling out version {version} ({revision}) over "
            f"stable {stable.version} ({stable.revision}) in {len(_steps(p))} steps; {starts}",
            revision=revision,
            step=0,
            weight=p.status.canary_weight,
        )

    request = _pending_request(p)
    if request is not None and request.action is Action.ABORT:
        _ack(p, request, "rollout aborted")
        _begin_abort(p, Reason.ABORTED, f"aborted by {request.by}", actor=request.by)
        return
    if request is not None and request.action is Action.PAUSE:
        _ack(p, request, f"paused at step {(p.status.current_step_index or 0) + 1}")
        p.set(paused_by_request=True)
        p.event(
            Reason.PAUSED,
            f"paused by {request.by}",
            actor=request.by,
            step=p.status.current_step_index,
        )
    elif request is not None and request.action is Action.RESUME and p.status.paused_by_request:
        _ack(p, request, "resumed")
        p.set(paused_by_request=False)
        p.event(
            Reason.RESUMED,
            f"resumed by {request.by}",
            actor=request.by,
            step=p.status.current_step_index,
        )

    _keep_workloads(p, revision)
    if _run_background_gates(p):
        before = p.status.current_step_index
        _advance(p, revision)
        if not _aborting(p) and p.status.current_step_index != before:
            _run_background_gates(p)  # a gate whose startingStep was just reached starts now


def _aborting(p: _Pass) -> bool:
    return p.status.phase is Phase.ROLLING_BACK


def _steps(p: _Pass) -> list[CanaryStep]:
    return p.spec.strategy.canary.steps


def _weight_at(p: _Pass, index: int) -> int:
    """The weight in force at step `index`: that of the last setWeight step before it."""
    weight = 0
    for step in _steps(p)[: index + 1]:
        if step.set_weight is not None:
            weight = step.set_weight
    return weight


def _keep_workloads(p: _Pass, revision: str) -> None:
    """Scale canary and stable for the current weight and point the Services/router at them."""
    spec, status = p.spec, p.status
    stable = status.stable
    assert stable is not None and status.current_step_index is not None
    promoting = status.phase is Phase.PROMOTING
    weight = 100 if promoting else status.canary_weight
    replicas_router = spec.strategy.canary.traffic_routing.kind == "replicas"
    canary_n = spec.replicas if promoting else canary_replicas_for(weight, spec.replicas)
    p.scale(revision, canary_n, current=True)
    if not promoting:  # promotion only grows the canary; stable goes once it is fully ready
        stable_n = spec.replicas - canary_n if replicas_router else spec.replicas
        p.scale(stable.revision, stable_n, current=False)
    p.services(stable.revision, revision, include_canary=weight > 0)
    p.router(stable.revision, revision, weight)
    _refresh_replicas(p, revision)


def _refresh_replicas(p: _Pass, revision: str) -> None:
    status = p.status
    updates: dict[str, object] = {}
    for key, rs_status in (("stable", status.stable), ("canary", status.canary)):
        if rs_status is None:
            continue
        rs = p.observed.replica_sets.get(rs_status.revision)
        # Report the size asked for in this pass, so the next pass reports the same.
        replicas = p.replicas.get(rs_status.revision, rs.replicas if rs else 0)
        ready = min(rs.ready_replicas if rs else 0, replicas)
        updates[key] = rs_status.model_copy(update={"replicas": replicas, "ready_replicas": ready})
    p.set(**updates)


def _advance(p: _Pass, revision: str) -> None:
    """Complete as many steps as are complete now, then set up the current one."""
    steps = _steps(p)
    for _ in range(len(steps) + 1):
        index = p.status.current_step_index
        assert index is not None
        if index >= len(steps):
            _promote(p, revision)
            return
        state = _step_state(p, revision, index, steps[index])
        if state == "wait":
            return
        if state == "done":
            _complete_step(p, index, steps[index])


def _complete_step(p: _Pass, index: int, step: CanaryStep, by: str | None = None) -> None:
    """Complete a step and set the next one going (or promotion). One Event and one history
    entry tell both: what completed it (the gate results of an analysis step) and what started."""
    canary = p.status.canary
    assert canary is not None
    done = f"step {index + 1}/{len(_steps(p))} ({_step_kind(step)}) completed"
    if by is not None:
        done += f" by {by}"
    elif step.analysis is not None and (passed := _passed_gates(p, step.analysis.gates)):
        done += ": " + "; ".join(passed)
    p.set(
        current_step_index=index + 1,
        step_started_at=p.now,
        pause_started_at=None,
        phase=Phase.PROGRESSING,
        # Step gates of the finished step leave status; background gates stay.
        analysis=[r for r in p.status.analysis if r.background],
    )
    starts = _start_step(p, canary.revision, index + 1)
    p.event(
        Reason.STEP_COMPLETED,
        f"{done}; {starts}",
        actor=by or ACTOR,
        revision=canary.revision,
        step=index,
        weight=p.status.canary_weight,
    )


def _start_step(p: _Pass, revision: str, index: int) -> str:
    """Set step `index` going (its weight, its pause clock), or promotion after the last step;
    what started, for the Event of the transition that started it (it has no Event of its own)."""
    steps = _steps(p)
    if index >= len(steps):
        return _begin_promotion(p, revision)[1]
    step = steps[index]
    if step.set_weight is not None:
        p.set(canary_weight=step.set_weight)
        _keep_workloads(p, revision)
        return f"canary weight set to {step.set_weight}%"
    if step.pause is not None:
        p.set(pause_started_at=p.now)
        if step.pause.duration is None:
            return f"step {index + 1} pauses until `kubectl rollwise promote`"
        return f"step {index + 1} pauses for {step.pause.duration}"
    assert step.analysis is not None
    gates = ", ".join(ref.name for ref in step.analysis.gates)
    return f"step {index + 1} measures {gates}"


def _step_state(p: _Pass, revision: str, index: int, step: CanaryStep) -> str:
    """ "done" when the step's condition is met, "skipped" when a promote request completed it,
    "wait" otherwise."""
    request = _pending_request(p)
    status = p.status
    if step.set_weight is not None and status.canary_weight != step.set_weight:
        p.set(canary_weight=step.set_weight)
        _keep_workloads(p, revision)
        p.event(
            Reason.WEIGHT_SET,
            f"canary weight set to {step.set_weight}%",
            step=index,
            weight=step.set_weight,
        )
    if step.set_weight is not None and not status.paused_by_request:
        return "done" if _pods_ready(p, revision, index) else "wait"
    if request is not None and request.action is Action.PROMOTE:
        _ack(p, request, f"step {index + 1} ({_step_kind(step)}) completed by request")
        p.set(paused_by_request=False)
        _complete_step(p, index, step, by=request.by)
        return "skipped"
    if status.paused_by_request:
        p.set(
            phase=Phase.PAUSED,
            message=f"paused by request at step {index + 1}; "
            "`kubectl rollwise resume` or `promote` continues",
        )
        return "wait"
    if step.pause is not None:
        started = status.pause_started_at
        if started is None:
            started = p.now
            p.set(pause_started_at=started)
        if step.pause.duration is None:
            p.set(
                phase=Phase.PAUSED,
                message=f"step {index + 1}: paused until `kubectl rollwise promote`",
            )
            return "wait"
        deadline = started + _seconds(parse_duration(step.pause.duration))
        if p.now >= deadline:
            return "done"
        p.set(phase=Phase.PAUSED, message=f"step {index + 1}: pause until {deadline.isoformat()}")
        p.wake_at(deadline)
        return "wait"
    assert step.analysis is not None
    return "done" if _run_step_gates(p, index, step.analysis.gates) else "wait"


def _pods_ready(p: _Pass, revision: str, index: int) -> bool:
    """The canary's pods for this weight are ready; past progressDeadlineSeconds, abort."""
    spec, status = p.spec, p.status
    want = canary_replicas_for(status.canary_weight, spec.replicas)
    rs = p.observed.replica_sets.get(revision)
    ready = rs.ready_replicas if rs else 0
    # The size asked for in this pass counts: a scale-down completes as soon as it is asked,
    # with its remaining pods ready; a scale-up waits for the new pods.
    have = p.replicas.get(revision, rs.replicas if rs else 0)
    if have == want and ready >= want:
        return True
    started = status.step_started_at or p.now
    deadline = started + _seconds(spec.progress_deadline_seconds)
    if p.now >= deadline:
        _begin_abort(
            p,
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"canary {revision}: {ready}/{want} pods ready after "
            f"{spec.progress_deadline_seconds}s at step {index + 1}",
            actor=ACTOR,
        )
        return False
    p.set(
        phase=Phase.PROGRESSING,
        message=f"step {index + 1}: waiting for canary pods, {ready}/{want} ready",
    )
    p.wake_in(min(WATCH_FALLBACK_S, (deadline - p.now).total_seconds()))
    return False


# ----------------------------------------------------------------------------- gates


def _active_gates(spec: ServiceSpec, status: ServiceStatus) -> list[tuple[GateRef, bool, datetime]]:
    """(gate, background?, active since) for every gate that measures now."""
    index = status.current_step_index
    if index is None:
        return []
    steps = spec.strategy.canary.steps
    started = status.step_started_at
    out: list[tuple[GateRef, bool, datetime]] = []
    if index < len(steps) and steps[index].analysis is not None and started is not None:
        for ref in steps[index].analysis.gates:  # type: ignore[union-attr]
            out.append((ref, False, started))
    background = spec.strategy.canary.analysis
    if background is not None and index >= background.starting_step:
        for ref in background.gates:
            out.append((ref, True, started or datetime.min))
    return out


def _result(status: ServiceStatus, key: str) -> GateResult | None:
    for result in status.analysis:
        if _key_of(result) == key:
            return result
    return None


def _key_of(result: GateResult) -> str:
    return result.gate + ("@bg" if result.background else "")


def _query_context(observed: Observed, status: ServiceStatus) -> dict[str, str]:
    return {
        "canary.revision": status.canary.revision if status.canary else "",
        "stable.revision": status.stable.revision if status.stable else "",
        "service.name": observed.name,
        "service.namespace": observed.namespace,
    }


def _gate_spec(p: _Pass, ref: GateRef) -> MetricGateSpec | None:
    """The gate's spec; None, with the reason in status and one warning Event per distinct
    reason, when it does not exist or does not validate. The rollout then waits: a gate that
    cannot be measured never passes."""
    key = gate_spec_key(ref.name, ref.cluster)
    gspec = p.observed.gates.get(key)
    if gspec is None:
        kind = "ClusterMetricGate" if ref.cluster else "MetricGate"
        where = "" if ref.cluster else f"{p.observed.namespace}/"
        error = p.observed.gate_errors.get(key)
        if error is None:
            reason, problem, until = Reason.GATE_MISSING, "does not exist", "created"
        else:
            reason, problem, until = Reason.GATE_INVALID, f"is invalid: {error}", "fixed"
        message = (
            f"{kind} {where}{ref.name} {problem}; the rollout waits (it never passes a gate "
            f"it cannot measure) until it is {until}"
        )
        said = {h.message for h in p.status.history if h.event == reason}
        if message not in said:
            p.event(reason, message, warning=True)
        p.set(message=message)
        p.wake_in(POLL_S * 6)
    return gspec


def _fold_samples(
    p: _Pass, ref: GateRef, background: bool, gspec: MetricGateSpec, step: int | None
) -> GateResult:
    """This gate's tally with this pass's samples folded in; the query checked for errors."""
    key = gate_key(ref.name, ref.cluster, background)
    result = _result(p.status, key) or GateResult(
        gate=gate_key(ref.name, ref.cluster, False), step=step, background=background
    )
    try:
        query = gatelib.resolve_query(ref.name, gspec, ref, _query_context(p.observed, p.status))
    except gatelib.GateConfigError as err:
        sample = MetricSample(key=key, query="", measured_at=p.now, error=str(err))
        samples: tuple[MetricSample, ...] = (sample,) if _due(result, gspec, p) else ()
    else:
        # Only measurements newer than the tally: folding is safe to repeat within a pass.
        samples = tuple(
            s
            for s in p.observed.samples
            if s.key == key and (result.measured_at is None or s.measured_at > result.measured_at)
        )
        if not result.query:
            result = result.model_copy(update={"query": query})
    for sample in samples:
        previous = result.verdict
        result = gatelib.record(result, sample, gspec)
        verdict = result.verdict
        # A step gate's pass is told by the StepCompleted it leads to; a background gate that
        # keeps passing is told once, when its verdict turns to Passed. Every other verdict is a
        # problem and an Event each time.
        if verdict is Verdict.PASSED and (not background or previous is Verdict.PASSED):
            continue
        reason = {
            "Passed": Reason.GATE_PASSED,
            "Failed": Reason.GATE_FAILED,
            "Inconclusive": Reason.GATE_INCONCLUSIVE,
            "Error": Reason.GATE_ERROR,
        }[verdict.value if verdict else "Error"]
        shown = "no data" if result.value is None else f"{result.value:.6g}"
        p.events.append(
            EventRecord(
                reason=reason,
                message=f"gate {result.gate}{' (background)' if background else ''}: {verdict} "
                f"value={shown} query={sample.query}"
                + (f" ({result.message})" if result.message else ""),
                warning=verdict is not None and verdict.value != "Passed",
            )
        )
    # Replace in place: the list keeps its order from pass to pass.
    analysis = list(p.status.analysis)
    index = next((i for i, r in enumerate(analysis) if _key_of(r) == key), None)
    if index is None:
        analysis.append(result)
    else:
        analysis[index] = result
    p.set(analysis=analysis)
    if not gatelib.exhausted(result, gspec, not background):
        started = p.status.step_started_at or p.now
        p.wake_at(gatelib.next_due(result, gspec, started))
    return result


def _due(result: GateResult, gspec: MetricGateSpec, p: _Pass) -> bool:
    started = p.status.step_started_at or p.now
    return gatelib.next_due(result if result.measured_at else None, gspec, started) <= p.now


def _run_step_gates(p: _Pass, index: int, refs: list[GateRef]) -> bool:
    all_passed = True
    for ref in refs:
        gspec = _gate_spec(p, ref)
        if gspec is None:
            return False
        result = _fold_samples(p, ref, False, gspec, index)
        verdict = gatelib.outcome(result, gspec, step_gate=True)
        if verdict.breached:
            _begin_abort(p, verdict.reason, f"{verdict.message} at step {index + 1}", actor=ACTOR)
            return False
        all_passed = all_passed and verdict.passed
    if not all_passed:
        p.set(
            phase=Phase.PROGRESSING,
            message=f"step {index + 1}: analysis running ({', '.join(r.name for r in refs)})",
        )
    return all_passed


def _passed_gates(p: _Pass, refs: list[GateRef]) -> list[str]:
    """How each step gate passed (value against its threshold, the query as sent), for the
    StepCompleted Event: the results leave status when the step completes."""
    told: list[str] = []
    for ref in refs:
        result = _result(p.status, gate_key(ref.name, ref.cluster, False))
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if result is None or gspec is None:
            continue
        told.append(
            f"gate {result.gate} passed, {gatelib.describe_threshold(result.value, gspec)} "
            f"({result.measurements} measurement{'' if result.measurements == 1 else 's'}, "
            f"query {result.query})"
        )
    return told


def _run_background_gates(p: _Pass) -> bool:
    """Measure background gates; False when one of them aborted the rollout."""
    background = p.spec.strategy.canary.analysis
    index = p.status.current_step_index
    if background is None or index is None or index < background.starting_step:
        return True
    for ref in background.gates:
        gspec = _gate_spec(p, ref)
        if gspec is None:
            continue
        result = _fold_samples(p, ref, True, gspec, None)
        verdict = gatelib.outcome(result, gspec, step_gate=False)
        if verdict.breached:
            _begin_abort(
                p,
                verdict.reason,
                f"{verdict.message} (background analysis, step {index + 1})",
                actor=ACTOR,
            )
            return False
    return True


def _background_passed(p: _Pass) -> bool:
    """Promotion needs the latest measurement of every background gate to be a pass."""
    background = p.spec.strategy.canary.analysis
    if background is None:
        return True
    for ref in background.gates:
        result = _result(p.status, gate_key(ref.name, ref.cluster, True))
        gspec = p.observed.gates.get(gate_spec_key(ref.name, ref.cluster))
        if gspec is None or result is None:
            return False
        if not gatelib.outcome(result, gspec, step_gate=False).passed:
            return False
    return True


# ----------------------------------------------------------------------------- promotion


def _begin_promotion(p: _Pass, revision: str) -> tuple[bool, str]:
    """After the last step: promote unless a pause request or a background gate without a
    passing measurement holds it back. Whether it began, and what happens now."""
    canary = p.status.canary
    assert canary is not None
    if p.status.paused_by_request:
        message = "all steps done; paused by request before promotion"
        p.set(phase=Phase.PAUSED, message=message)
        return False, message
    if not _background_passed(p):
        message = "all steps done; waiting for a passing background measurement"
        p.set(phase=Phase.PROGRESSING, message=message)
        return False, message
    message = f"promoting {canary.version}: scaling it to {p.spec.replicas} replicas"
    p.set(phase=Phase.PROMOTING, canary_weight=100, message=message)
    _keep_workloads(p, revision)
    return True, message


def _promote(p: _Pass, revision: str) -> None:
    """All steps done: the canary takes every replica, then becomes stable. Only scaling: the
    canary's pods are never restarted."""
    spec = p.spec
    stable, canary = p.status.stable, p.status.canary
    assert stable is not None and canary is not None
    if p.status.phase is not Phase.PROMOTING:
        began, _ = _begin_promotion(p, revision)
        if not began:
            return
        # Begun in a later pass than the last step's StepCompleted (a background gate passed,
        # or a resume): no transition of this pass told it.
        p.event(
            Reason.PROMOTING,
            f"all steps passed; promoting {canary.version} ({revision})",
            revision=revision,
            weight=100,
        )
    rs = p.observed.replica_sets.get(revision)
    if rs is None or rs.replicas != spec.replicas or rs.ready_replicas < spec.replicas:
        ready = rs.ready_replicas if rs else 0
        p.set(message=f"promoting {canary.version}: {ready}/{spec.replicas} pods ready")
        p.wake_in(WATCH_FALLBACK_S)
        return
    # Promotion waited for exactly what Healthy means (every pod of the revision ready), so
    # Promoted tells Healthy too and _steady has no transition of its own to tell.
    p.set(stable=canary.model_copy(), canary=None, phase=Phase.HEALTHY)
    p.event(
        Reason.PROMOTED,
        f"version {canary.version} ({revision}) is stable and Healthy, "
        f"{spec.replicas}/{spec.replicas} pods ready; "
        f"{stable.version} ({stable.revision}) scaled down",
        revision=revision,
    )
    p.set(schema_ahead_of_app=False)
    _steady(p, revision)


# ----------------------------------------------------------------------------- abort


def _begin_abort(p: _Pass, reason: str, message: str, actor: str) -> None:
    """Traffic goes back to stable first; the canary is scaled down only after the drain was
    recorded and abortScaleDownDelaySeconds passed."""
    canary = p.status.canary
    stable = p.status.stable
    assert canary is not None and stable is not None
    p.set(
        phase=Phase.ROLLING_BACK,
        abort=AbortStatus(reason=reason, message=message, at=p.now, revision=canary.revision),
        canary_weight=0,
        paused_by_request=False,
        scale_down_at=p.now + _seconds(p.spec.abort_scale_down_delay_seconds),
        message=f"rolling back {canary.version}: {message}",
    )
    p.event(
        reason,
        message,
        warning=True,
        actor=actor,
        revision=canary.revision,
        step=p.status.current_step_index,
        weight=0,
    )
    # Capacity back on stable, then drain: weight 0 at the router and in the Services. Any
    # canary growth planned earlier in this pass is dropped.
    p.hold(canary.revision)
    p.scale(stable.revision, p.spec.replicas, current=False)
    p.services(stable.revision, canary.revision, include_canary=False)
    p.router(stable.revision, canary.revision, 0)
    _refresh_replicas(p, canary.revision)
    p.event(
        Reason.TRAFFIC_DRAINED,
        f"canary {canary.revision} receives no traffic; it is "
        f"scaled down in {p.spec.abort_scale_down_delay_seconds}s",
        revision=canary.revision,
        weight=0,
    )
    p.wake_in(float(p.spec.abort_scale_down_delay_seconds))


def _drain_and_scale_down(p: _Pass) -> bool:
    """Keep traffic drained; scale the canary down once the delay has passed. True when done."""
    status = p.status
    canary, stable = status.canary, status.stable
    assert canary is not None and stable is not None
    p.scale(stable.revision, p.spec.replicas, current=False)
    p.services(stable.revision, canary.revision, include_canary=False)
    p.router(stable.revision, canary.revision, 0)
    _refresh_replicas(p, canary.revision)
    if status.canary_weight != 0:  # never scale down what may still get traffic
        p.set(canary_weight=0)
        p.wake_in(0.5)
        return False
    at = status.scale_down_at or p.now
    if p.now < at:
        p.wake_at(at)
        return False
    # Asking for 0 is the last step: the pods terminate on their own; nothing later waits.
    p.scale(canary.revision, 0, current=False)
    _refresh_replicas(p, canary.revision)
    return True


def _rolling_back(p: _Pass) -> None:
    if not _drain_and_scale_down(p):
        return
    abort = p.status.abort
    assert abort is not None
    migrated = p.status.migration is not None and (
        p.status.migration.revision == abort.revision
        and p.status.migration.phase is MigrationPhase.SUCCEEDED
    )
    p.set(phase=Phase.ROLLED_BACK, schema_ahead_of_app=migrated)
    p.event(
        Reason.ROLLED_BACK,
        f"rolled back to {p.status.stable.version if p.status.stable else ''}"
        f": {abort.message}"
        + (
            "; the database schema stays migrated for the rolled-back "
            "version (no down-migration is ever run)"
            if migrated
            else ""
        ),
        warning=True,
        revision=abort.revision,
    )
    _hold_rolled_back(p)


def _hold_rolled_back(p: _Pass) -> None:
    abort = p.status.abort
    assert abort is not None
    stable = p.status.stable
    assert stable is not None
    _drain_and_scale_down(p)
    schema = (
        " The database schema is ahead of the app: the migration of the rolled-back "
        "version stays applied."
        if p.status.schema_ahead_of_app
        else ""
    )
    p.set(
        phase=Phase.ROLLED_BACK,
        message=f"rolled back to {stable.version} ({stable.revision}): {abort.message}."
        f"{schema} Apply a new version or `kubectl rollwise retry`.",
    )


# ----------------------------------------------------------------------------- conditions


def _finish_status(p: _Pass) -> None:
    status = p.status
    phase = status.phase
    generation = p.observed.generation
    ready = phase is Phase.HEALTHY
    reason = status.abort.reason if status.abort and phase in _DEGRADED_PHASES else phase.value
    message = status.message or ""
    migration_ok = p.spec.migration is None or _migration_done(p, revision_of(p.spec))
    wanted = [
        (ConditionType.READY, ready, phase.value),
        (ConditionType.PROGRESSING, phase in _PROGRESSING_PHASES, phase.value),
        (ConditionType.DEGRADED, phase in _DEGRADED_PHASES, reason),
        (ConditionType.PAUSED, phase is Phase.PAUSED, phase.value),
        (
            ConditionType.MIGRATION_COMPLETE,
            migration_ok,
            Reason.NO_MIGRATION
            if p.spec.migration is None
            else (status.migration.phase.value if status.migration else "NotStarted"),
        ),
    ]
    # Always the same five, in the same order: any condition of an older operator is dropped.
    out = status.model_copy(
        update={"conditions": [c for c in status.conditions if c.type in {w[0] for w in wanted}]}
    )
    for ctype, value, why in wanted:
        out = with_condition(out, ctype, value, why, message, generation, p.now)
    conditions = sorted(out.conditions, key=lambda c: [w[0] for w in wanted].index(c.type))
    p.set(conditions=conditions, observed_generation=generation)


__all__ = [
    "canary_replicas_for",
    "decide",
    "due_gates",
    "gate_refs",
    "migration_pending",
    "revision_of",
]
