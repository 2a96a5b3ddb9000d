"""The promotion room: after the last step the canary takes every replica, then becomes stable.
Only scaling: the canary's pods are never restarted."""

from __future__ import annotations

from rollwise.api.hooks import WebhookType
from rollwise.api.service_status import PREVIOUS_STABLES_LIMIT, FullPromotion, Phase
from rollwise.core.analysis import await_in_flight, background_passed, hold_for_inconclusive
from rollwise.core.hooks import hook_gate
from rollwise.core.model import ManualRequest
from rollwise.core.passes import WATCH_FALLBACK_S, Pass
from rollwise.core.reasons import Reason
from rollwise.core.requests import ack
from rollwise.core.steady import keep_steady
from rollwise.core.workloads import keep_workloads


def begin_promotion(p: Pass, revision: str) -> tuple[bool, str]:
    """After the last step: promote unless a pause request or a background gate without a
    passing measurement holds it back. Whether it began, and what happens now."""
    canary = p.status.canary
    assert canary is not None
    if p.status.paused_by_request:
        message = "all steps done; paused by request before promotion"
        p.set(phase=Phase.PAUSED, message=message)
        return False, message
    awaited = await_in_flight(p)
    if awaited:
        message = (
            f"all steps done; waiting for the measurement still running ({', '.join(awaited)}), "
            f"at most {p.spec.progress_deadline_seconds}s"
        )
        p.set(phase=Phase.PROGRESSING, message=message)
        return False, message
    if hold_for_inconclusive(p):
        return False, p.status.message or ""
    if not background_passed(p):
        message = "all steps done; waiting for a passing background measurement"
        p.set(phase=Phase.PROGRESSING, message=message)
        return False, message
    confirmed = hook_gate(p, WebhookType.CONFIRM_PROMOTION, revision, Phase.PROGRESSING)
    if not confirmed.passed:
        message = f"all steps done; {confirmed.message}"
        p.set(phase=Phase.PROGRESSING, message=message)
        return False, message
    message = f"promoting {canary.version}: scaling it to {p.spec.replicas} replicas"
    # Copies of stable's requests end: the canary takes all of them now.
    p.set(phase=Phase.PROMOTING, canary_weight=100, mirror_percent=0, message=message)
    keep_workloads(p, revision)
    return True, message


def promote(p: Pass, revision: str) -> None:
    """All steps done: the canary takes every replica, then becomes stable. Only scaling: the
    canary's pods are never restarted."""
    spec = p.spec
    stable, canary = p.status.stable, p.status.canary
    assert stable is not None and canary is not None
    if p.status.phase is not Phase.PROMOTING:
        began, _ = begin_promotion(p, revision)
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
    previous = [stable.revision, *(r for r in p.status.previous_stables if r != revision)]
    p.set(
        stable=canary.model_copy(),
        canary=None,
        phase=Phase.HEALTHY,
        previous_stables=[r for r in previous if r != revision][:PREVIOUS_STABLES_LIMIT],
    )
    full = p.status.full_promotion
    p.event(
        Reason.PROMOTED,
        ("fast promotion: " if full is not None else "")
        + f"version {canary.version} ({revision}) is stable and Healthy, "
        f"{spec.replicas}/{spec.replicas} pods ready; "
        f"{stable.version} ({stable.revision}) scaled down",
        revision=revision,
    )
    p.set(schema_ahead_of_app=False)
    keep_steady(p, revision)


def promote_fully(p: Pass, revision: str, request: ManualRequest) -> None:
    """`promote --full`: the remaining steps, their pauses and every gate (step and background)
    are skipped, and the canary is promoted now, as Argo Rollouts' `promote --full`. Recorded
    with its actor in history, an Event and `status.fullPromotion`. Promotion itself still
    waits for every canary pod to be ready before stable moves."""
    canary = p.status.canary
    assert canary is not None
    steps = len(p.spec.strategy.canary.steps)
    index = p.status.current_step_index
    start = steps if index is None else min(index, steps)
    from_phase = p.status.phase.value
    if from_phase == Phase.ROLLED_BACK.value:
        skipped = f"rolled-back {canary.version} promoted (forced)"
    elif start >= steps:
        skipped = "analysis skipped"
    else:
        skipped = f"steps {start + 1}-{steps} with their pauses and analysis skipped"
    ack(p, request, f"full promotion: {skipped}")
    _fast_track(p, revision, request.by, Reason.FULL_PROMOTION, start, from_phase, skipped)


ROLLBACK_WINDOW_ACTOR = "rollwise (rollbackWindow)"


def promote_within_rollback_window(p: Pass, revision: str) -> bool:
    """A revision that was stable within the last rollbackWindow.revisions promotions is
    promoted without steps or analysis (its migration, confirmRollout and preRollout already
    ran). True when it was."""
    window = p.spec.rollback_window
    canary = p.status.canary
    if window is None or canary is None:
        return False
    recent = p.status.previous_stables[: window.revisions]
    if revision not in recent:
        return False
    ago = recent.index(revision) + 1
    skipped = (
        f"{canary.version} ({revision}) was stable {ago} promotion{'s' if ago > 1 else ''} ago, "
        f"within rollbackWindow {window.revisions}: steps and analysis skipped"
    )
    _fast_track(p, revision, ROLLBACK_WINDOW_ACTOR, Reason.ROLLBACK_WINDOW, 0, "Pending", skipped)
    return True


def _fast_track(
    p: Pass, revision: str, by: str, reason: Reason, start: int, from_phase: str, skipped: str
) -> None:
    canary = p.status.canary
    assert canary is not None
    steps = len(p.spec.strategy.canary.steps)
    p.set(
        full_promotion=FullPromotion(by=by, at=p.now, from_step=start, from_phase=from_phase),
        current_step_index=steps,
        step_started_at=p.now,
        pause_started_at=None,
        paused_by_request=False,
        analysis=[],
        abort=None,
        scale_down_at=None,
        schema_ahead_of_app=False,
        phase=Phase.PROMOTING,
        canary_weight=100,
        mirror_percent=0,
        message=f"promoting {canary.version} fully (by {by}): "
        f"scaling it to {p.spec.replicas} replicas",
    )
    p.event(
        reason,
        f"full promotion of {canary.version} ({revision}) by {by}: {skipped}",
        actor=by,
        revision=revision,
        step=start,
        weight=100,
    )
    keep_workloads(p, revision)
    promote(p, revision)
