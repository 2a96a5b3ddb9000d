"""The rollout room: a new revision over a stable one, from its migration through every step
to promotion, with background gates measured alongside and manual requests acted on."""

from __future__ import annotations

from rollwise.api.hooks import WebhookType
from rollwise.api.service_status import Phase, RevisionStatus
from rollwise.core.abort import begin_abort, hold_rolled_back, roll_back
from rollwise.core.analysis import measure_background_gates
from rollwise.core.hooks import forget_blocking, hook_gate
from rollwise.core.migration import migrate, needs_migration
from rollwise.core.model import Action
from rollwise.core.passes import ACTOR, POLL_S, Pass
from rollwise.core.promotion import promote_fully, promote_within_rollback_window
from rollwise.core.reasons import Reason
from rollwise.core.references import describe_missing, missing_references
from rollwise.core.requests import ack, pending_request
from rollwise.core.steps import advance, start_step, steps_of
from rollwise.core.workloads import keep_workloads


def run_rollout(p: Pass, revision: str) -> None:
    """A new revision over a stable one: migration, then the steps with background gates, or
    the held outcome of an earlier attempt (RolledBack, MigrationFailed) until `retry`."""
    spec = p.spec
    stable = p.status.stable
    assert stable is not None
    request = pending_request(p)
    version = spec.resolved_version()

    # Settled outcomes for this revision wait for a person (retry) or a new revision.
    if p.status.phase in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED) and (
        p.status.abort is not None and p.status.abort.revision == revision
    ):
        if request is not None and request.action is Action.PROMOTE and request.full:
            if request.force and p.status.phase is Phase.ROLLED_BACK:
                promote_fully(p, revision, request)
                return
            ack(
                p,
                request,
                "not promoted: the revision was rolled back; `promote --full --force` promotes "
                "it anyway"
                if p.status.phase is Phase.ROLLED_BACK
                else "not promoted: its migration failed; `retry` runs it again",
                accepted=False,
            )
        if p.status.phase is Phase.MIGRATION_FAILED:
            migrate(p, revision)  # held: only a retry request starts a new attempt
            return
        request = pending_request(p)
        if request is not None and request.action is Action.RETRY:
            ack(p, request, f"rollout of {revision} started again from step 1")
            p.set(
                abort=None,
                current_step_index=None,
                analysis=[],
                phase=Phase.PROGRESSING,
                canary=RevisionStatus(revision=revision, version=version),
                scale_down_at=None,
                schema_ahead_of_app=False,
            )
            forget_blocking(p, revision)
            p.event(
                Reason.RETRY, f"retry of {revision} requested", actor=request.by, revision=revision
            )
        else:
            hold_rolled_back(p)
            return
    if p.status.phase is Phase.ROLLING_BACK:
        roll_back(p)
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
            mirror_percent=0,
            scale_down_at=None,
            schema_ahead_of_app=False,
            paused_by_request=False,
            full_promotion=None,
        )
        forget_blocking(p, revision)

    if p.status.current_step_index is None:
        missing = missing_references(p.spec, p.observed, gates=True)
        if missing:
            # Caught at apply time: no canary pod, no traffic, no migration until they exist.
            message = describe_missing(missing)
            p.set(phase=Phase.PENDING, message=message)
            p.warn_once(Reason.INVALID_SPEC, message)
            p.wake_in(POLL_S * 6)
            _abort_if_requested(p)
            return
        # Nothing of the new revision runs, not even its migration, before it is confirmed.
        confirmed = hook_gate(p, WebhookType.CONFIRM_ROLLOUT, revision, Phase.PENDING)
        if not confirmed.passed:
            p.set(phase=Phase.PENDING, message=f"{version}: {confirmed.message}")
            _abort_if_requested(p)
            return

    if needs_migration(p, revision) and not migrate(p, revision):
        return

    if p.status.current_step_index is None:
        ready = hook_gate(p, WebhookType.PRE_ROLLOUT, revision, Phase.PENDING)
        if ready.failed:
            begin_abort(p, Reason.WEBHOOK_FAILED, ready.message, actor=ACTOR)
            return
        if not ready.passed:
            p.set(phase=Phase.PENDING, message=f"{version}: {ready.message}")
            _abort_if_requested(p)
            return
        p.set(
            current_step_index=0,
            step_started_at=p.now,
            pause_started_at=None,
            analysis=[],
            canary_weight=0,
            mirror_percent=0,
            phase=Phase.PROGRESSING,
        )
        if promote_within_rollback_window(p, revision):
            return
        starts = start_step(p, revision, 0)
        p.event(
            Reason.ROLLOUT_STARTED,
            f"rolling out version {version} ({revision}) over "
            f"stable {stable.version} ({stable.revision}) in {len(steps_of(p))} steps; {starts}",
            revision=revision,
            step=0,
            weight=p.status.canary_weight,
        )

    request = pending_request(p)
    if request is not None and request.action is Action.ABORT:
        ack(p, request, "rollout aborted")
        begin_abort(p, Reason.ABORTED, f"aborted by {request.by}", actor=request.by)
        return
    if request is not None and request.action is Action.PAUSE:
        ack(p, request, f"paused at step {(p.status.current_step_index or 0) + 1}")
        p.set(paused_by_request=True)
        p.event(
            Reason.PAUSED,
            f"paused by {request.by}",
            actor=request.by,
            step=p.status.current_step_index,
        )
    elif request is not None and request.action is Action.RESUME and p.status.paused_by_request:
        ack(p, request, "resumed")
        p.set(paused_by_request=False)
        p.event(
            Reason.RESUMED,
            f"resumed by {request.by}",
            actor=request.by,
            step=p.status.current_step_index,
        )

    if request is not None and request.action is Action.PROMOTE and request.full:
        if p.status.phase is Phase.PROMOTING:
            ack(p, request, "already promoting", accepted=False)
        else:
            promote_fully(p, revision, request)
            return

    keep_workloads(p, revision)
    if p.status.full_promotion is None and _background_breached(p):
        return
    before = p.status.current_step_index
    advance(p, revision)
    moved = p.status.current_step_index != before
    if moved and not _aborting(p) and p.status.full_promotion is None:
        _background_breached(p)  # a gate whose startingStep was just reached starts now


def _aborting(p: Pass) -> bool:
    return p.status.phase is Phase.ROLLING_BACK


def _background_breached(p: Pass) -> bool:
    """Measure the background gates; abort and say so when one of them breached."""
    breach = measure_background_gates(p)
    if breach is None:
        return False
    begin_abort(p, breach.reason, breach.message, actor=ACTOR)
    return True


def _abort_if_requested(p: Pass) -> None:
    """An `abort` while a blocking hook (confirmRollout, preRollout) holds the rollout: roll
    back before anything of the new revision served (it has no canary pod yet)."""
    request = pending_request(p)
    if request is not None and request.action is Action.ABORT:
        ack(p, request, "rollout aborted before it started")
        begin_abort(p, Reason.ABORTED, f"aborted by {request.by}", actor=request.by)
