"""Moving the waves forward: approval, starting members up to maxParallel, soak, and failing
a wave (halt, or roll back by policy).
"""

from __future__ import annotations

from datetime import timedelta

from rollwise.api.durations import parse_duration
from rollwise.api.fleet import (
    FailurePolicy,
    FleetMemberPhase,
    FleetPhase,
    Wave,
    WavePhase,
)
from rollwise.core.fleet.members import judge_member, start_member
from rollwise.core.fleet.model import MEMBER_UNHEALTHY_PHASES
from rollwise.core.fleet.passes import FleetPass
from rollwise.core.reasons import FleetReason


def fail(p: FleetPass, wave_i: int | None, why: str, actor: str = "rollwise") -> FleetPhase:
    """Stop every later wave; by policy, start rolling back what the fleet patched."""
    name = p.waves[wave_i].name if wave_i is not None else None
    if wave_i is not None:
        p.set_wave(wave_i, phase=WavePhase.FAILED, completed_at=p.now)
        p.tell(FleetReason.WAVE_FAILED, f"wave {name} failed: {why}", wave=name, warning=True)
    for wi, wave in enumerate(p.waves):
        if wave.phase in (WavePhase.PENDING, WavePhase.WAITING_FOR_APPROVAL):
            p.set_wave(wi, phase=WavePhase.HALTED)
        elif wave.phase in (WavePhase.PROGRESSING, WavePhase.SOAKING):
            p.set_wave(wi, phase=WavePhase.FAILED if wave_i is None else WavePhase.HALTED)
    stopped = [w.name for w in p.waves if w.phase is WavePhase.HALTED]
    later = f"; waves {', '.join(stopped)} will not get {p.spec.version}" if stopped else ""
    if p.spec.on_failure is FailurePolicy.ROLLBACK_PROMOTED:
        p.tell(
            FleetReason.ROLLING_BACK,
            f"{why}{later}; rolling back every cluster the fleet patched, latest wave first",
            warning=True,
            actor=actor,
        )
        p.set(message=why)
        return FleetPhase.ROLLING_BACK
    p.tell(FleetReason.HALTED, f"{why}{later} (onFailure Halt)", warning=True, actor=actor)
    p.set(message=why, finished_at=p.now)
    return FleetPhase.FAILED


def advance(p: FleetPass) -> FleetPhase:
    """Move the first unfinished wave (and, when it finishes, the next) forward."""
    for wi in range(len(p.waves)):
        wave = p.waves[wi]
        if wave.phase is WavePhase.SUCCEEDED:
            continue
        spec = p.spec.waves[wi]
        p.set(current_wave=wave.name)
        if wave.phase in (WavePhase.PENDING, WavePhase.WAITING_FOR_APPROVAL):
            if spec.approval and wave.approved_by is None:
                if wave.phase is WavePhase.PENDING:
                    p.set_wave(wi, phase=WavePhase.WAITING_FOR_APPROVAL)
                    p.tell(
                        FleetReason.APPROVAL_NEEDED,
                        f"wave {wave.name} waits for approval: kubectl rollwise fleet promote",
                        wave=wave.name,
                    )
                return FleetPhase.WAITING_FOR_APPROVAL
            p.set_wave(wi, phase=WavePhase.PROGRESSING, started_at=p.now)
            p.tell(
                FleetReason.WAVE_STARTED,
                f"wave {wave.name} started: {', '.join(m.name for m in wave.clusters)}"
                + (f", {spec.max_parallel} at a time" if spec.max_parallel else ""),
                wave=wave.name,
            )
        if p.waves[wi].phase is WavePhase.PROGRESSING:
            outcome = _progress_wave(p, wi, spec)
            if outcome is not None:
                return outcome
            if p.waves[wi].phase is WavePhase.PROGRESSING:
                return FleetPhase.PROGRESSING
        if p.waves[wi].phase is WavePhase.SOAKING:
            outcome = _soak(p, wi)
            if outcome is not None:
                return outcome
            if p.waves[wi].phase is WavePhase.SOAKING:
                return FleetPhase.SOAKING
    p.set(finished_at=p.now, current_wave=None)
    p.tell(
        FleetReason.SUCCEEDED,
        f"{p.spec.version} runs in every cluster ("
        + ", ".join(m.name for w in p.waves for m in w.clusters)
        + ")",
    )
    return FleetPhase.SUCCEEDED


def _progress_wave(p: FleetPass, wi: int, spec: Wave) -> FleetPhase | None:
    """Start members up to maxParallel, judge those in flight; a failure fails the fleet."""
    wave = p.waves[wi]
    for mi in range(len(wave.clusters)):
        failure = judge_member(p, wi, mi)
        if failure is not None:
            return fail(p, wi, failure)
    limit = spec.max_parallel or len(wave.clusters)
    for mi in range(len(p.waves[wi].clusters)):
        in_flight = sum(
            m.phase in (FleetMemberPhase.PATCHING, FleetMemberPhase.PROGRESSING)
            for m in p.waves[wi].clusters
        )
        if in_flight >= limit:
            break
        if p.waves[wi].clusters[mi].phase is FleetMemberPhase.PENDING:
            failure = start_member(p, wi, mi)
            if failure is not None:
                return fail(p, wi, failure)
    members = p.waves[wi].clusters
    if all(m.phase is FleetMemberPhase.SUCCEEDED for m in members):
        soak_s = parse_duration(spec.soak)
        until = p.now + timedelta(seconds=soak_s)
        p.set_wave(wi, phase=WavePhase.SOAKING, soak_until=until)
        if soak_s > 0:
            p.tell(
                FleetReason.SOAKING,
                f"wave {wave.name}: {p.spec.version} Healthy in every cluster; soaking for "
                f"{spec.soak}",
                wave=wave.name,
            )
    return None


def _soak(p: FleetPass, wi: int) -> FleetPhase | None:
    wave = p.waves[wi]
    for mi, member in enumerate(wave.clusters):
        obs = p.members.get(member.name)
        if obs is None or not obs.reachable:
            continue
        if obs.current and (
            obs.phase in MEMBER_UNHEALTHY_PHASES or obs.stable_version != p.spec.version
        ):
            why = f"cluster {member.name} left Healthy {p.spec.version} during the soak: " + (
                f"{obs.phase}: {obs.message}" if obs.message else str(obs.phase)
            )
            p.set_member(wi, mi, phase=FleetMemberPhase.FAILED, reason=obs.phase, message=why)
            return fail(p, wi, why)
    assert wave.soak_until is not None
    if p.now < wave.soak_until:
        p.wake(wave.soak_until)
        return None
    if any(not m.reachable for m in wave.clusters):
        return None  # the soak ends only with every member seen Healthy at its end
    p.set_wave(wi, phase=WavePhase.SUCCEEDED, completed_at=p.now)
    p.tell(
        FleetReason.WAVE_SUCCEEDED,
        f"wave {wave.name}: {p.spec.version} Healthy in {', '.join(m.name for m in wave.clusters)}",
        wave=wave.name,
    )
    return None
