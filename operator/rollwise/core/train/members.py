"""The members of a run: following what each reports, and starting the next ones (after their
`after` members, at most maxConcurrent, never in a freeze window).
"""

from __future__ import annotations

from rollwise.api.train import (
    MemberPhase,
    MemberStatus,
    TrainFailure,
)
from rollwise.core.freeze import frozen_by, frozen_until
from rollwise.core.reasons import Reason
from rollwise.core.train.model import (
    MemberObserved,
    release_of,
)
from rollwise.core.train.passes import DONE, FAILED_PHASES, FALLBACK_S, TrainPass, at_text


def follow_members(t: TrainPass) -> None:
    """Members in flight (forward or back) from what their ProgressiveServices report."""
    for ms in list(t.status.members):
        seen = t.seen(ms.service)
        if ms.phase is MemberPhase.PROGRESSING:
            if seen.healthy and seen.target_revision == seen.stable_revision:
                index = 1 + max((m.promoted_index or 0) for m in t.status.members)
                t.put(
                    ms.service,
                    phase=MemberPhase.PROMOTED,
                    finished_at=t.now,
                    promoted_index=index,
                    message=None,
                )
                t.event(
                    Reason.MEMBER_PROMOTED,
                    f"{ms.service} is stable and Healthy at {ms.version}",
                    service=ms.service,
                )
            elif not seen.exists or (
                seen.phase in FAILED_PHASES and seen.failed_revision == seen.target_revision
            ):
                why = seen.message or "its rollout failed" if seen.exists else "it was deleted"
                message = f"{ms.service} {ms.version} failed: {why}"
                t.put(ms.service, phase=MemberPhase.FAILED, finished_at=t.now, message=why)
                t.event(Reason.MEMBER_FAILED, message, warning=True, service=ms.service)
                if t.status.failure is None:
                    t.set(
                        failure=TrainFailure(
                            service=ms.service,
                            reason=Reason.MEMBER_FAILED,
                            message=message,
                            at=t.now,
                        )
                    )
        elif ms.phase is MemberPhase.ROLLING_BACK:
            back_to = ms.previous_version or "its own spec"
            if not seen.exists or (seen.healthy and seen.restore_revision == seen.stable_revision):
                t.put(ms.service, phase=MemberPhase.ROLLED_BACK, finished_at=t.now, message=None)
                t.event(
                    Reason.MEMBER_ROLLED_BACK,
                    f"{ms.service} is back at {back_to}",
                    service=ms.service,
                )
            elif seen.phase in FAILED_PHASES and seen.failed_revision == seen.restore_revision:
                why = f"rolling back to {back_to} failed: {seen.message or seen.phase}"
                t.put(ms.service, phase=MemberPhase.FAILED, finished_at=t.now, message=why)
                t.event(
                    Reason.MEMBER_FAILED, f"{ms.service}: {why}", warning=True, service=ms.service
                )


def start_members(t: TrainPass) -> None:
    """Start what the order, maxConcurrent and the freeze windows allow."""
    while _mark_unchanged(t):
        pass
    ready = _startable(t)
    t.set(frozen_until=None)
    if ready:
        until = frozen_until(t.spec.freeze_windows, t.now)
        if until is not None:
            names = ", ".join(w.label() for w in frozen_by(t.spec.freeze_windows, t.now))
            for ms in ready:
                t.put(ms.service, message=f"held by freeze window {names} until {at_text(until)}")
            t.set(frozen_until=until)
            t.wake_in((until - t.now).total_seconds())
            return
    in_flight = sum(1 for m in t.status.members if m.phase is MemberPhase.PROGRESSING)
    room = t.spec.max_concurrent - in_flight
    for ms in ready:
        if room <= 0:
            t.put(ms.service, message=f"waiting: maxConcurrent {t.spec.max_concurrent} in flight")
            continue
        seen = t.seen(ms.service)
        member = t.spec.member(ms.service)
        assert member is not None
        previous_version = seen.stable_version
        t.put(
            ms.service,
            phase=MemberPhase.PROGRESSING,
            previous=ms.release,
            previous_version=previous_version,
            release=release_of(member),
            started_at=t.now,
            message=None,
        )
        t.event(
            Reason.MEMBER_STARTED,
            f"releasing {ms.version} to {ms.service} (stable {previous_version})",
            service=ms.service,
        )
        room -= 1
    if any(m.phase is MemberPhase.PROGRESSING for m in t.status.members):
        t.wake_in(FALLBACK_S)


def _after_done(t: TrainPass, ms: MemberStatus) -> bool:
    member = t.spec.member(ms.service)
    assert member is not None
    return all(t.member(a).phase in DONE for a in member.after)


def _mark_unchanged(t: TrainPass) -> bool:
    """Members whose turn it is and that already run the train's version; whether any."""
    changed = False
    for ms in t.status.members:
        if ms.phase is not MemberPhase.WAITING or not _after_done(t, ms):
            continue
        seen = t.seen(ms.service)
        if (
            seen.joined
            and seen.healthy
            and seen.problem is None
            and seen.target_revision is not None
            and seen.target_revision == seen.stable_revision
        ):
            member = t.spec.member(ms.service)
            assert member is not None
            t.put(
                ms.service,
                phase=MemberPhase.UNCHANGED,
                release=release_of(member),
                previous_version=seen.stable_version,
                message=None,
            )
            t.event(
                Reason.MEMBER_UNCHANGED,
                f"{ms.service} already runs {ms.version}",
                service=ms.service,
            )
            changed = True
    return changed


def _startable(t: TrainPass) -> list[MemberStatus]:
    """Waiting members whose turn it is and whose ProgressiveService can take a release now;
    the others are told why they wait."""
    ready = []
    for ms in t.status.members:
        if ms.phase is not MemberPhase.WAITING:
            continue
        member = t.spec.member(ms.service)
        assert member is not None
        pending = [a for a in member.after if t.member(a).phase not in DONE]
        if pending:
            t.put(ms.service, message=f"waiting for {', '.join(pending)}")
            continue
        seen = t.seen(ms.service)
        problem = _not_ready(t, ms.service, seen)
        if problem is not None:
            t.put(ms.service, message=problem)
            if not seen.exists or not seen.joined or seen.problem:
                t.warn_once(Reason.MEMBER_WAITING, problem, service=ms.service)
            t.wake_in(FALLBACK_S)
            continue
        ready.append(t.member(ms.service))
    return ready


def _not_ready(t: TrainPass, service: str, seen: MemberObserved) -> str | None:
    if not seen.exists:
        return f"waiting: ProgressiveService {t.observed.namespace}/{service} does not exist"
    if not seen.joined:
        return (
            f"waiting: ProgressiveService {service} does not declare "
            f"spec.releaseTrain: {t.observed.name}"
        )
    if seen.problem is not None:
        return f"waiting: {service}: {seen.problem}"
    if not seen.healthy or seen.stable_revision is None:
        return f"waiting for {service} to be Healthy (phase {seen.phase or 'unknown'})"
    return None
