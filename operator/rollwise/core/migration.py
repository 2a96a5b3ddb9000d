"""The migration room: one Job per (revision, attempt), run before the new code gets traffic,
never re-run automatically and never run down on rollback."""

from __future__ import annotations

from rollwise.api.service import ServiceSpec
from rollwise.api.service_status import (
    AbortStatus,
    MigrationPhase,
    MigrationStatus,
    Phase,
    ServiceStatus,
)
from rollwise.core.model import Action, CreateMigrationJob, DeleteJob, JobState
from rollwise.core.naming import migration_job_name
from rollwise.core.passes import MIGRATION_JOB_GRACE, POLL_S, WATCH_FALLBACK_S, Pass
from rollwise.core.reasons import Reason
from rollwise.core.requests import ack, pending_request
from rollwise.core.revision import revision_of


def migration_pending(spec: ServiceSpec, status: ServiceStatus) -> bool:
    """The declared revision has a migration that has not succeeded yet (so its Job matters)."""
    return spec.migration is not None and not migration_done(status, revision_of(spec))


def migration_done(status: ServiceStatus, revision: str) -> bool:
    """The migration of `revision` has succeeded (whether or not the spec declares one)."""
    m = status.migration
    return m is not None and m.revision == revision and m.phase is MigrationPhase.SUCCEEDED


def needs_migration(p: Pass, revision: str) -> bool:
    """The spec declares a migration and it has not succeeded for `revision` yet."""
    return p.spec.migration is not None and not migration_done(p.status, revision)


def migrate(p: Pass, revision: str) -> bool:
    """Run the migration once for this revision; never re-run it automatically. True when it
    succeeded in this pass and the caller goes on; False while it runs, failed or is blocked.

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
    request = pending_request(p)

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
            return False
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
        elif _waits_for_another(p, revision):
            return False
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
            return False

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
            ack(p, request, f"migration attempt {attempt} started as Job {job_name}")
            p.event(
                Reason.MIGRATION_RETRY,
                f"migration of version {version} retried as Job {job_name}",
                actor=request.by,
                revision=revision,
            )
            p.wake_in(WATCH_FALLBACK_S)
            return False
        p.set(
            phase=Phase.MIGRATION_FAILED,
            message=f"migration Job {m.job} failed: {m.message}; stable is untouched and the "
            "new version gets no traffic; `kubectl rollwise retry` runs it again",
        )
        return False

    # Running: follow the Job recorded in status (the attempt's Job, by name).
    if job is not None and job.name != m.job:
        job = None
    if job is None:
        started = m.started_at or p.now
        if p.now - started < MIGRATION_JOB_GRACE:
            p.set(phase=Phase.MIGRATING)
            p.wake_in(POLL_S)
            return False
        _fail(p, m, "the Job disappeared before it finished (deleted by someone?)")
        return False
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
        return True
    if job.failed:
        _fail(p, m, job.failure_reason or "the Job failed")
        return False
    p.set(phase=Phase.MIGRATING, message=f"migration Job {m.job} of version {version} is running")
    p.wake_in(WATCH_FALLBACK_S)
    return False


def _fail(p: Pass, m: MigrationStatus, why: str) -> None:
    """Phase MigrationFailed: stable untouched, no traffic to the new code, an Event with why."""
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


def running_migration(p: Pass, revision: str) -> JobState | None:
    """A migration Job of another revision of this service that has not ended: the Jobs on the
    cluster say so, not memory, so it holds across operator restarts."""
    for other, job in sorted(p.observed.jobs.items()):
        if other != revision and job.owned and not (job.succeeded or job.failed):
            return job
    return None


def _waits_for_another(p: Pass, revision: str) -> bool:
    """One migration at a time per service: a newer version's migration waits until an older
    version's Job still running ends (concurrencyPolicy Wait), or stops that Job first and
    waits until it is gone, pods included (Replace). Status and one Event name the Job."""
    job = running_migration(p, revision)
    if job is None:
        return False
    spec = p.spec.migration
    assert spec is not None
    version = p.spec.resolved_version()
    if spec.concurrency_policy == "Replace":
        p.act(DeleteJob(job_name=job.name, foreground=True))
        doing = f"stopping migration Job {job.name} (revision {job.revision}) first"
    else:
        doing = f"waiting for migration Job {job.name} (revision {job.revision}) to end"
    message = (
        f"migration of version {version} ({revision}) is not started yet: {doing}; "
        "one migration runs at a time"
    )
    p.set(phase=Phase.MIGRATING, message=message)
    told = {h.message for h in p.status.history if h.event == Reason.MIGRATION_WAITING}
    if message not in told:
        p.event(Reason.MIGRATION_WAITING, message, revision=revision)
    p.wake_in(WATCH_FALLBACK_S)
    return True
