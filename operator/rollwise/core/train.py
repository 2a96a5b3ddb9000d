"""The ReleaseTrain room: which members start, wait, halt or roll back. Pure.

`decide_train(spec, status, observed, now)` reads the train's spec, the status its last pass
wrote, what each member ProgressiveService reports, and the time, and returns a TrainPlan: the
next status (whose `members[].release` is what each member rolls out), Events, the requests to
forward to members (a train-level promote), and when to look again.

One run per generation of the spec: a new generation (a new version set) starts a new run.
Within a run a member starts once every member it comes `after` is promoted (or already ran its
version), at most `maxConcurrent` at a time, and never while a freeze window is open. A member
is released by setting its release; it is promoted once its ProgressiveService is Healthy with
the release's revision as stable, failed once that revision was rolled back. A failure (or an
abort) halts the run: waiting members are never started, members in flight get their previous
release back (their canary is superseded), and under `RollbackPromoted` the promoted members
get theirs back too, one at a time, the last promoted first. Rollbacks ignore freeze windows:
a freeze holds new versions, not the way back to a known one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rollwise.api.service import Phase, RequestAck
from rollwise.api.train import (
    HISTORY_LIMIT,
    FailurePolicy,
    MemberPhase,
    MemberStatus,
    TrainFailure,
    TrainHistoryEntry,
    TrainPhase,
    TrainSpec,
    TrainStatus,
)
from rollwise.core.conditions import set_condition
from rollwise.core.freeze import frozen_by, frozen_until
from rollwise.core.model import Action, EventRecord, ManualRequest
from rollwise.core.reasons import ConditionType, Reason
from rollwise.core.train_model import (
    MemberObserved,
    MemberRequest,
    TrainObserved,
    TrainPlan,
    release_of,
)

ACTOR = "rollwise"
# Members wake the train with every status write; this is only the fallback.
FALLBACK_S = 30.0
_DONE = {MemberPhase.PROMOTED, MemberPhase.UNCHANGED}
_FAILED_PHASES = {Phase.ROLLED_BACK, Phase.MIGRATION_FAILED}
_SETTLED_TRAIN = {TrainPhase.SUCCEEDED, TrainPhase.FAILED, TrainPhase.HALTED}


@dataclass
class TrainPass:
    spec: TrainSpec
    status: TrainStatus
    observed: TrainObserved
    now: datetime
    events: list[EventRecord] = field(default_factory=list)
    requests: list[MemberRequest] = field(default_factory=list)
    requeue: float | None = None

    def event(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        actor: str = ACTOR,
        service: str | None = None,
    ) -> None:
        self.events.append(EventRecord(reason=reason, message=message, warning=warning))
        entry = TrainHistoryEntry(
            at=self.now, event=reason, actor=actor, service=service, message=message
        )
        history = [*self.status.history, entry][-HISTORY_LIMIT:]
        self.status = self.status.model_copy(update={"history": history})

    def warn_once(self, reason: str, message: str, service: str | None = None) -> None:
        if message not in {h.message for h in self.status.history if h.event == reason}:
            self.event(reason, message, warning=True, service=service)

    def wake_in(self, seconds: float) -> None:
        seconds = max(0.5, seconds)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def member(self, service: str) -> MemberStatus:
        found = self.status.member(service)
        if found is None:  # pragma: no cover - every spec member has an entry after start_run
            raise KeyError(service)
        return found

    def put(self, service: str, **changes: object) -> MemberStatus:
        """Change one member's entry."""
        members = [
            m.model_copy(update=changes) if m.service == service else m for m in self.status.members
        ]
        self.status = self.status.model_copy(update={"members": members})
        return self.member(service)

    def set(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def seen(self, service: str) -> MemberObserved:
        return self.observed.members.get(service) or MemberObserved(exists=False)


def decide_train(
    spec: TrainSpec, status: TrainStatus, observed: TrainObserved, now: datetime
) -> TrainPlan:
    """The next status, Events, forwarded requests and requeue delay for one ReleaseTrain."""
    t = TrainPass(spec=spec, status=status, observed=observed, now=now)
    _report_invalid_request(t)
    if status.observed_generation != observed.generation:
        _start_run(t)
    _handle_request(t)
    _follow_members(t)
    if t.status.failure is not None:
        _handle_failure(t)
    else:
        _start_members(t)
    _finish(t)
    return TrainPlan(
        status=t.status,
        events=tuple(t.events),
        member_requests=tuple(t.requests),
        requeue_after=t.requeue,
    )


# ------------------------------------------------------------------ a run


def _start_run(t: TrainPass) -> None:
    """A new version set (or a retry): every member waits again and keeps what it runs, but a
    member in flight goes back to its previous release (its canary is superseded) and starts
    again in its turn."""
    members = []
    for m in t.spec.members:
        old = t.status.member(m.service)
        release = None
        if old is not None:
            release = old.previous if old.phase is MemberPhase.PROGRESSING else old.release
        members.append(MemberStatus(service=m.service, version=m.version, release=release))
    t.set(
        members=members,
        failure=None,
        frozen_until=None,
        phase=TrainPhase.PENDING,
        message=None,
        observed_generation=t.observed.generation,
    )
    listed = ", ".join(f"{m.service} {m.version}" for m in t.spec.members)
    t.event(Reason.RELEASE_STARTED, f"releasing {listed}")


def _report_invalid_request(t: TrainPass) -> None:
    error = t.observed.request_error
    if error and t.status.invalid_request != error:
        t.event(Reason.REQUEST_INVALID, error, warning=True)
    t.set(invalid_request=error)


def _ack(t: TrainPass, request: ManualRequest, result: str, accepted: bool) -> None:
    t.set(
        last_request=RequestAck(
            id=request.id, action=request.action.value, by=request.by, at=t.now, result=result
        )
    )
    t.event(
        Reason.REQUEST_ACCEPTED if accepted else Reason.REQUEST_IGNORED,
        f"{request.action.value} by {request.by}: {result}",
        actor=request.by,
        warning=not accepted,
    )


def _handle_request(t: TrainPass) -> None:
    """promote: forwarded to every member in flight; abort: the run fails as by a member;
    retry: a halted or failed run starts again. Each request id is acted on once."""
    request = t.observed.request
    if request is None or (t.status.last_request and t.status.last_request.id == request.id):
        return
    phase = t.status.phase
    if request.action is Action.ABORT:
        if t.status.failure is None and phase not in _SETTLED_TRAIN:
            message = f"aborted by {request.by}"
            t.set(failure=TrainFailure(reason=Reason.TRAIN_ABORTED, message=message, at=t.now))
            t.event(Reason.TRAIN_ABORTED, message, warning=True, actor=request.by)
            _ack(t, request, "the run is halted", True)
        else:
            _ack(t, request, f"nothing to abort in phase {phase}", False)
    elif request.action is Action.PROMOTE:
        in_flight = [m.service for m in t.status.members if m.phase is MemberPhase.PROGRESSING]
        if in_flight and t.status.failure is None:
            for i, service in enumerate(in_flight):
                t.requests.append(
                    MemberRequest(
                        service=service,
                        action=Action.PROMOTE,
                        id=f"{request.id[:56]}-{i}",
                        by=f"{request.by} (train {t.observed.name})",
                    )
                )
            _ack(t, request, f"promote sent to {', '.join(in_flight)}", True)
        else:
            _ack(t, request, f"no member in flight to promote in phase {phase}", False)
    elif request.action is Action.RETRY and phase in (TrainPhase.HALTED, TrainPhase.FAILED):
        _ack(t, request, "the run starts again", True)
        _start_run(t)
    else:
        _ack(t, request, f"a train cannot {request.action.value} in phase {phase}", False)


def _follow_members(t: TrainPass) -> None:
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
                seen.phase in _FAILED_PHASES and seen.failed_revision == seen.target_revision
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
            elif seen.phase in _FAILED_PHASES and seen.failed_revision == seen.restore_revision:
                why = f"rolling back to {back_to} failed: {seen.message or seen.phase}"
                t.put(ms.service, phase=MemberPhase.FAILED, finished_at=t.now, message=why)
                t.event(
                    Reason.MEMBER_FAILED, f"{ms.service}: {why}", warning=True, service=ms.service
                )


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


def _handle_failure(t: TrainPass) -> None:
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


def _start_members(t: TrainPass) -> None:
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
                t.put(ms.service, message=f"held by freeze window {names} until {_at(until)}")
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
    return all(t.member(a).phase in _DONE for a in member.after)


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
        pending = [a for a in member.after if t.member(a).phase not in _DONE]
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


def _at(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ phase, message, conditions


def _finish(t: TrainPass) -> None:
    members = t.status.members
    failure = t.status.failure
    before = t.status.phase
    done = sum(1 for m in members if m.phase in _DONE)
    if failure is not None:
        rolling = any(m.phase is MemberPhase.ROLLING_BACK for m in members)
        if t.spec.on_failure.policy is FailurePolicy.ROLLBACK_PROMOTED:
            phase = TrainPhase.ROLLING_BACK if rolling else TrainPhase.FAILED
        else:
            phase = TrainPhase.HALTED
        message = failure.message
        if rolling:
            back = [m.service for m in members if m.phase is MemberPhase.ROLLING_BACK]
            message += f"; rolling back {', '.join(back)}"
    elif done == len(members):
        phase, message = TrainPhase.SUCCEEDED, f"all {len(members)} members run their version"
    elif any(m.phase is MemberPhase.PROGRESSING for m in members):
        phase = TrainPhase.PROGRESSING
        flying = [f"{m.service} {m.version}" for m in members if m.phase is MemberPhase.PROGRESSING]
        message = f"{done}/{len(members)} done; rolling out {', '.join(flying)}"
    elif t.status.frozen_until is not None:
        phase = TrainPhase.FROZEN
        message = f"{done}/{len(members)} done; frozen until {_at(t.status.frozen_until)}"
    else:
        phase = TrainPhase.PROGRESSING if done else TrainPhase.PENDING
        waiting = next((m for m in members if m.phase is MemberPhase.WAITING and m.message), None)
        message = f"{done}/{len(members)} done" + (
            f"; {waiting.service} {waiting.message}" if waiting else ""
        )
    if phase is not before:
        if phase is TrainPhase.SUCCEEDED:
            t.event(Reason.TRAIN_SUCCEEDED, message)
        elif phase is TrainPhase.FAILED:
            t.event(Reason.TRAIN_FAILED, f"{message}; promoted members rolled back", warning=True)
        elif phase is TrainPhase.FROZEN:
            t.event(Reason.TRAIN_FROZEN, message)
    generation = t.observed.generation
    conditions = [c for c in t.status.conditions if c.type != ConditionType.INVALID]
    wanted = [
        (ConditionType.READY, phase is TrainPhase.SUCCEEDED),
        (
            ConditionType.PROGRESSING,
            phase
            in (
                TrainPhase.PENDING,
                TrainPhase.PROGRESSING,
                TrainPhase.FROZEN,
                TrainPhase.ROLLING_BACK,
            ),
        ),
        (ConditionType.DEGRADED, phase in (TrainPhase.HALTED, TrainPhase.FAILED)),
        (ConditionType.FROZEN, phase is TrainPhase.FROZEN),
        (ConditionType.INVALID, False),
    ]
    for ctype, value in wanted:
        reason = (
            failure.reason if failure is not None and ctype is ConditionType.DEGRADED else phase
        )
        conditions = set_condition(
            conditions, ctype, value, str(reason), message, generation, t.now
        )
    t.set(phase=phase, message=message, conditions=conditions, observed_generation=generation)


def invalid_status(
    status: TrainStatus, message: str, generation: int, now: datetime
) -> TrainStatus:
    """The stored status with Invalid=True naming what is wrong with the spec; nothing else
    changes (what runs keeps running, no member starts)."""
    conditions = set_condition(
        status.conditions,
        ConditionType.INVALID,
        True,
        Reason.TRAIN_INVALID,
        message,
        generation,
        now,
    )
    return status.model_copy(
        update={"conditions": conditions, "message": message, "observed_generation": generation}
    )
