"""A failed (or aborted) run: members in flight get their previous release back, and under
RollbackPromoted the promoted ones too, one at a time, the last promoted first.
"""

from __future__ import annotations

from rollwise.api.train import (
    FailurePolicy,
    MemberPhase,
    MemberStatus,
    TrainPhase,
)
from rollwise.core.reasons import Reason
from rollwise.core.train.passes import FALLBACK_S, TrainPass


def _roll_back(t: TrainPass, ms: MemberStatus, why: str) -> None:
    """Give a member its previous release back (its canary, if any, is superseded)."""
    t.put(
        ms.service,
        phase=MemberPhase.ROLLING_BACK,
        release=ms.previous,
        finished_at=None,
        message=why,
    )
    back_to = ms.previous_version or "its own spec"
    t.event(
        Reason.MEMBER_ROLLING_BACK,
        f"{ms.service}: back from {ms.version} to {back_to} ({why})",
        service=ms.service,
    )


def handle_failure(t: TrainPass) -> None:
    failure = t.status.failure
    assert failure is not None
    policy = t.spec.on_failure.policy
    halted_now = False
    for ms in list(t.status.members):
        if ms.phase is MemberPhase.WAITING:
            t.put(ms.service, phase=MemberPhase.HALTED, message=f"halted: {failure.message}")
            halted_now = True
        elif ms.phase is MemberPhase.PROGRESSING:
            _roll_back(t, ms, "the run halted while it was in flight")
        elif ms.phase is MemberPhase.FAILED and ms.release != ms.previous and ms.started_at:
            # Its ProgressiveService already went back to its stable; it declares that again.
            t.put(ms.service, release=ms.previous)
    if halted_now or t.status.phase not in (
        TrainPhase.HALTED,
        TrainPhase.ROLLING_BACK,
        TrainPhase.FAILED,
    ):
        halted = [m.service for m in t.status.members if m.phase is MemberPhase.HALTED]
        t.event(
            Reason.TRAIN_HALTED,
            f"{failure.message}; not started: {', '.join(halted) or 'none'}; policy {policy.value}",
            warning=True,
        )
    if any(m.phase is MemberPhase.ROLLING_BACK for m in t.status.members):
        t.wake_in(FALLBACK_S)
        return
    if policy is FailurePolicy.ROLLBACK_PROMOTED:
        promoted = [m for m in t.status.members if m.phase is MemberPhase.PROMOTED]
        if promoted:
            last = max(promoted, key=lambda m: m.promoted_index or 0)
            _roll_back(t, last, f"policy RollbackPromoted after: {failure.message}")
            t.wake_in(FALLBACK_S)
