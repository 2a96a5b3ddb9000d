"""The abort room: capacity back on stable, traffic drained as soon as stable can carry it,
the canary scaled down only after the drain was recorded and abortScaleDownDelaySeconds
passed; RolledBack holds until a person or a new revision moves it; a superseded canary is
drained the same way before starting over."""

from __future__ import annotations

from rollwise.api.service_status import AbortStatus, MigrationPhase, Phase
from rollwise.core.passes import ACTOR, WATCH_FALLBACK_S, Pass, seconds
from rollwise.core.reasons import Reason
from rollwise.core.revision import revision_of
from rollwise.core.steady import keep_steady
from rollwise.core.workloads import restore_stable, stable_covers, stable_size_for_next_canary


def begin_abort(p: Pass, reason: str, message: str, actor: str) -> None:
    """Capacity back on stable first, then traffic drained (under the replicas router only
    once stable's ready pods can carry it, see `stable_covers`); the canary is scaled down
    only after the drain was recorded and abortScaleDownDelaySeconds passed."""
    canary = p.status.canary
    stable = p.status.stable
    assert canary is not None and stable is not None
    p.set(
        phase=Phase.ROLLING_BACK,
        abort=AbortStatus(reason=reason, message=message, at=p.now, revision=canary.revision),
        paused_by_request=False,
        scale_down_at=None,
        message=f"rolling back {canary.version}: {message}",
    )
    p.event(
        reason,
        message,
        warning=True,
        actor=actor,
        revision=canary.revision,
        step=p.status.current_step_index,
        weight=p.status.canary_weight,
    )
    restore_stable(p, release_canary=False, stable_size=_superseded_stable(p))
    drain(p)


def _superseded_stable(p: Pass) -> int | None:
    """The size stable keeps while a newer revision supersedes the canary (None: an abort or
    a return to stable, where stable goes back to full size)."""
    abort, stable = p.status.abort, p.status.stable
    if abort is None or abort.reason != Reason.SUPERSEDED or stable is None:
        return None
    if p.spec.template is None or revision_of(p.spec) == stable.revision:
        return None
    return stable_size_for_next_canary(p)


def drain(p: Pass) -> bool:
    """Weight 0 at the router and in the Services, recorded with the time the canary may be
    scaled down; True once drained. Under the replicas router the canary keeps its place in
    the Service until stable covers (or progressDeadlineSeconds since the abort passed: then
    it drains anyway, as an abort promises)."""
    status = p.status
    canary, stable, abort = status.canary, status.stable, status.abort
    assert canary is not None and stable is not None and abort is not None
    # Copies of stable's requests stop at once, whatever the weight still has to wait for:
    # nothing is left pointing at an aborted canary (every router call below mirrors 0).
    p.set(mirror_percent=0)
    if status.scale_down_at is not None:
        p.services(stable.revision, canary.revision, include_canary=False)
        p.router(stable.revision, canary.revision, 0)
        return True
    covers, ready, needed = stable_covers(p)
    overdue = p.now >= abort.at + seconds(p.spec.progress_deadline_seconds)
    if not covers and not overdue:
        p.services(stable.revision, canary.revision, include_canary=status.canary_weight > 0)
        p.router(stable.revision, canary.revision, status.canary_weight)
        p.set(
            message=f"rolling back {canary.version}: {abort.message}; the canary keeps serving "
            f"until {needed} stable pods are ready ({ready} now)"
        )
        # Stable pods turning Ready wake this service.
        p.wake_in(WATCH_FALLBACK_S)
        return False
    p.set(
        canary_weight=0,
        scale_down_at=p.now + seconds(p.spec.abort_scale_down_delay_seconds),
        message=f"rolling back {canary.version}: {abort.message}",
    )
    p.services(stable.revision, canary.revision, include_canary=False)
    p.router(stable.revision, canary.revision, 0)
    p.event(
        Reason.TRAFFIC_DRAINED,
        f"canary {canary.revision} receives no traffic"
        + (f" (stable has {ready} of {needed} pods ready)" if not covers else "")
        + f"; it is scaled down in {p.spec.abort_scale_down_delay_seconds}s",
        warning=not covers,
        revision=canary.revision,
        weight=0,
    )
    p.wake_in(float(p.spec.abort_scale_down_delay_seconds))
    return True


def drain_and_scale_down(p: Pass) -> bool:
    """Keep traffic drained; scale the canary down once the delay has passed. True when done."""
    status = p.status
    keep = _superseded_stable(p)
    if status.scale_down_at is None:
        restore_stable(p, release_canary=False, stable_size=keep)
        drain(p)
        return False
    drain(p)
    at = status.scale_down_at
    # Never scale down what may still get traffic: weight 0 recorded, and the delay passed.
    release = status.canary_weight == 0 and p.now > at
    canary_left = restore_stable(p, release_canary=release, stable_size=keep)
    if status.canary_weight != 0:
        p.set(canary_weight=0)
        p.wake_in(0.5)
        return False
    if not release:
        p.wake_at(at)
        return False
    if canary_left > 0:
        # Stable replacements are not ready yet; their pods turning Ready wake this service.
        p.wake_in(WATCH_FALLBACK_S)
        return False
    # Asking for 0 is the last step: the pods terminate on their own; nothing later waits.
    return True


def roll_back(p: Pass) -> None:
    """RollingBack: keep drained, scale the canary down after the delay, then RolledBack."""
    if not drain_and_scale_down(p):
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
    hold_rolled_back(p)


def hold_rolled_back(p: Pass) -> None:
    """RolledBack: stay drained and scaled down until a new revision or `retry`."""
    abort = p.status.abort
    assert abort is not None
    stable = p.status.stable
    assert stable is not None
    drain_and_scale_down(p)
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


def supersede_canary(p: Pass, revision: str) -> bool:
    """A newer revision (or the stable one again) replaced the canary mid-rollout: drain and
    remove the old canary first. True once it is gone and the caller starts over with
    `revision`."""
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
        begin_abort(p, Reason.SUPERSEDED, why, actor=ACTOR)
        return False
    if settled or drain_and_scale_down(p):
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
            mirror_percent=0,
            scale_down_at=None,
        )
        return True
    return False


def return_to_stable(p: Pass) -> None:
    """The spec is the stable revision again while a canary is in flight (or rolled back): a
    fast rollback. Stable goes back to full size, the canary leaves the traffic as soon as
    stable can carry it (at once under a traffic router, whose stable is full all along), and
    from then on the phase is stable's own (Healthy once its pods are ready): the canary's pods
    are scaled down after abortScaleDownDelaySeconds without holding the phase."""
    canary, stable = p.status.canary, p.status.stable
    assert canary is not None and stable is not None
    settled = p.status.phase in (Phase.ROLLED_BACK, Phase.MIGRATION_FAILED)
    drained = settled or p.status.scale_down_at is not None
    if not drained:
        restore_stable(p, release_canary=False)
        covers, ready, needed = stable_covers(p)
        if not covers:
            weight = p.status.canary_weight
            p.services(stable.revision, canary.revision, include_canary=weight > 0)
            p.router(stable.revision, canary.revision, weight)
            p.set(
                phase=Phase.PROGRESSING,
                message=f"spec returned to the stable revision {stable.revision}: the canary "
                f"keeps serving until {needed} stable pods are ready ({ready} now)",
            )
            p.wake_in(WATCH_FALLBACK_S)
            return
    delay = p.spec.abort_scale_down_delay_seconds
    scale_down_at = p.status.scale_down_at or p.now + seconds(delay)
    if settled:
        told = (
            f"spec returned to the stable revision {stable.revision}; canary "
            f"{canary.revision} was rolled back already"
        )
    else:
        told = (
            f"spec returned to the stable revision {stable.revision}: canary "
            f"{canary.revision} receives no traffic and is scaled down in {delay}s"
        )
    p.event(Reason.RETURNED_TO_STABLE, told, revision=stable.revision, weight=0)
    p.set(canary=None, abort=None, canary_weight=0, mirror_percent=0, scale_down_at=scale_down_at)
    keep_steady(p, stable.revision)
