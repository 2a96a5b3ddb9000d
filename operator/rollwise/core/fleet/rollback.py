"""Rolling back what the fleet patched, latest wave first, one member at a time; halting
members when the fleet stops.
"""

from __future__ import annotations

from rollwise.api.fleet import (
    FleetMemberPhase,
    FleetPhase,
    WavePhase,
)
from rollwise.core.fleet.model import MEMBER_FAILED_PHASES, PatchMember
from rollwise.core.fleet.passes import FleetPass
from rollwise.core.fleet.waves import at_target
from rollwise.core.reasons import FleetReason

_TOUCHED = (
    FleetMemberPhase.PATCHING,
    FleetMemberPhase.PROGRESSING,
    FleetMemberPhase.SUCCEEDED,
    FleetMemberPhase.FAILED,
    FleetMemberPhase.ROLLING_BACK,
)


def roll_back(p: FleetPass) -> FleetPhase:
    """Restore the previous spec of every member the fleet patched, one wave at a time, the
    latest first; a wave is rolled back when its members run their previous version again."""
    for wi in reversed(range(len(p.waves))):
        wave = p.waves[wi]
        todo = [
            mi
            for mi, m in enumerate(wave.clusters)
            if m.phase in _TOUCHED and m.previous is not None
        ]
        if not todo:
            if wave.phase is WavePhase.ROLLING_BACK:
                p.set_wave(wi, phase=WavePhase.ROLLED_BACK)
            continue
        if wave.phase is not WavePhase.ROLLING_BACK:
            p.set_wave(wi, phase=WavePhase.ROLLING_BACK)
        waiting = False
        for mi in todo:
            waiting |= not _roll_back_member(p, wi, mi)
        if waiting:
            return FleetPhase.ROLLING_BACK
        p.set_wave(wi, phase=WavePhase.ROLLED_BACK, completed_at=p.now)
    p.set(finished_at=p.now, current_wave=None)
    p.tell(
        FleetReason.ROLLED_BACK,
        "every cluster the fleet patched runs its previous version again",
        warning=True,
    )
    return FleetPhase.ROLLED_BACK


def _roll_back_member(p: FleetPass, wi: int, mi: int) -> bool:
    """True once the member runs its previous version again (Healthy, status current)."""
    member = p.waves[wi].clusters[mi]
    previous = member.previous
    assert previous is not None
    obs = p.members.get(member.name)
    if obs is None or not obs.reachable or obs.spec is None:
        return False
    containers = tuple(previous.containers)
    if member.phase is not FleetMemberPhase.ROLLING_BACK:
        member = p.set_member(wi, mi, phase=FleetMemberPhase.ROLLING_BACK, reason="RollingBack")
        p.tell(
            FleetReason.MEMBER_ROLLING_BACK,
            f"cluster {member.name}: back to {member.previous_version}",
            wave=p.waves[wi].name,
            cluster=member.name,
        )
    if not at_target(obs.spec, previous.version, containers):
        p.patches.append(
            PatchMember(
                member.name, previous.version, containers, obs.resource_version, rollback=True
            )
        )
        p.wake(p.now)
        return False
    if obs.current and obs.phase == "Healthy" and obs.stable_version == member.previous_version:
        p.set_member(wi, mi, phase=FleetMemberPhase.ROLLED_BACK, reason="RolledBack")
        p.tell(
            FleetReason.MEMBER_ROLLED_BACK,
            f"cluster {member.name}: {member.previous_version} is stable and Healthy again",
            wave=p.waves[wi].name,
            cluster=member.name,
        )
        return True
    return False


def halt_members(p: FleetPass) -> None:
    """Halted: members never patched are Skipped; those patched keep being watched (their own
    rollwise finishes or rolls back what it started), none is patched any more."""
    for wi, wave in enumerate(p.waves):
        for mi, member in enumerate(wave.clusters):
            obs = p.members.get(member.name)
            if member.phase is FleetMemberPhase.PENDING:
                p.set_member(wi, mi, phase=FleetMemberPhase.SKIPPED, reason="FleetStopped")
            elif member.phase is FleetMemberPhase.PATCHING:
                landed = (
                    obs is not None
                    and obs.spec is not None
                    and obs.reachable
                    and at_target(obs.spec, p.spec.version, p.target_of(obs))
                )
                if obs is not None and obs.reachable and not landed:
                    p.set_member(wi, mi, phase=FleetMemberPhase.SKIPPED, reason="FleetStopped")
                elif landed:
                    p.set_member(
                        wi,
                        mi,
                        phase=FleetMemberPhase.PROGRESSING,
                        patched_generation=obs.generation if obs else None,
                    )
            elif member.phase is FleetMemberPhase.PROGRESSING and obs is not None and obs.current:
                if obs.phase == "Healthy" and obs.stable_version == p.spec.version:
                    p.set_member(wi, mi, phase=FleetMemberPhase.SUCCEEDED, reason="Healthy")
                elif obs.phase in MEMBER_FAILED_PHASES:
                    p.set_member(wi, mi, phase=FleetMemberPhase.FAILED, reason=obs.phase)
