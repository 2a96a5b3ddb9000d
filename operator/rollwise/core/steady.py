"""Steady state: the declared revision is stable; and the very first revision, which has
nothing to compare against and goes straight to full size."""

from __future__ import annotations

from rollwise.api.service_status import Phase, RevisionStatus
from rollwise.core.passes import RESYNC_HEALTHY_S, WATCH_FALLBACK_S, Pass
from rollwise.core.reasons import Reason


def deploy_first_revision(p: Pass, revision: str) -> None:
    """Stable becomes the first revision at full replicas (its migration, if any, is done)."""
    spec = p.spec
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
    keep_steady(p, revision)


def keep_steady(p: Pass, revision: str) -> None:
    """Stable is the declared revision: keep it at full size and tidy old revisions away."""
    spec = p.spec
    p.scale(revision, spec.replicas, current=True)
    p.services(revision, None, include_canary=False)
    # A router left at 100% after a promotion would send the next rollout's first requests to
    # a not-yet-ready canary: in steady state every router is at 0.
    p.router(revision, None, 0)
    # Old revisions go at once: deleting a ReplicaSet deletes its pods (its template is not
    # needed any more: a rollback goes to a new revision, never back to an old ReplicaSet).
    # A canary left by a return to stable is drained and keeps its pods until scaleDownAt.
    grace = p.status.scale_down_at
    if grace is not None and p.now >= grace:
        grace = None
    if grace is None:
        p.deletes.extend(other for other in sorted(p.observed.replica_sets) if other != revision)
    rs = p.observed.replica_sets.get(revision)
    ready = rs.ready_replicas if rs else 0
    stable = p.status.stable
    assert stable is not None
    p.set(
        stable=stable.model_copy(update={"replicas": spec.replicas, "ready_replicas": ready}),
        canary=None,
        canary_weight=0,
        mirror_percent=0,
        current_step_index=None,
        step_started_at=None,
        pause_started_at=None,
        paused_by_request=False,
        scale_down_at=grace,
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
        if grace is not None:
            p.wake_at(grace)
    else:
        p.set(
            phase=Phase.PROGRESSING,
            message=f"waiting for pods of {revision}: {ready}/{spec.replicas} ready",
        )
        p.wake_in(WATCH_FALLBACK_S)
