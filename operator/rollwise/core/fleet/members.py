"""One member cluster: what it runs now, starting it (the previous spec recorded before the
patch), and judging its outcome from a status about the patched generation.
"""

from __future__ import annotations

from rollwise.api.fleet import (
    FleetMemberPhase,
    PreviousSpec,
)
from rollwise.core.fleet.model import MEMBER_FAILED_PHASES, MemberObservation, PatchMember
from rollwise.core.fleet.passes import FleetPass, member_failed
from rollwise.core.fleet.waves import at_target
from rollwise.core.reasons import FleetReason


def observe_members(p: FleetPass) -> None:
    """What each member runs, from this pass's observations; reachability changes told."""
    for wi, wave in enumerate(p.waves):
        for mi, member in enumerate(wave.clusters):
            obs = p.members.get(member.name)
            if obs is None:
                continue
            if not obs.reachable:
                if member.reachable is not False:
                    p.tell(
                        FleetReason.MEMBER_UNREACHABLE,
                        f"cluster {member.name} is unreachable: {obs.error}; the fleet waits for "
                        "it",
                        wave=wave.name,
                        cluster=member.name,
                        warning=True,
                    )
                p.set_member(
                    wi,
                    mi,
                    reachable=False,
                    unreachable_since=member.unreachable_since or p.now,
                    message=f"unreachable: {obs.error}",
                )
                continue
            if member.reachable is False:
                p.tell(
                    FleetReason.MEMBER_REACHABLE,
                    f"cluster {member.name} is reachable again",
                    wave=wave.name,
                    cluster=member.name,
                )
            p.set_member(
                wi,
                mi,
                reachable=True,
                unreachable_since=None,
                last_seen=p.now,
                version=obs.stable_version,
                canary_version=obs.canary_version,
                member_phase=obs.phase,
                message=obs.message if obs.found else obs.error,
            )


def start_member(p: FleetPass, wi: int, mi: int) -> str | None:
    """Record the member's spec, then (this pass's status written first) patch it."""
    member = p.waves[wi].clusters[mi]
    wave = p.waves[wi].name
    obs = p.members.get(member.name)
    if obs is None or not obs.reachable:
        return None  # waits; the MemberUnreachable condition says so
    if not obs.found or obs.spec is None:
        return member_failed(p, wi, mi, "ServiceNotFound", obs.error)
    try:
        target = p.target_of(obs)
    except ValueError as err:
        message = f"{p.spec.target.namespace}/{p.spec.target.service}: {err}"
        return member_failed(p, wi, mi, "InvalidPatch", message)
    previous_version = obs.spec.effective_version
    if at_target(obs.spec, p.spec.version, target):
        # Nothing to patch and nothing to restore: the member already asks for this version.
        p.set_member(
            wi,
            mi,
            phase=FleetMemberPhase.PROGRESSING,
            previous=None,
            previous_version=previous_version,
            patched_generation=obs.generation,
            reason=FleetReason.MEMBER_ALREADY_AT_VERSION,
        )
        p.tell(
            FleetReason.MEMBER_ALREADY_AT_VERSION,
            f"cluster {member.name} already asks for {p.spec.version}",
            wave=wave,
            cluster=member.name,
        )
        return judge_member(p, wi, mi)
    p.set_member(
        wi,
        mi,
        phase=FleetMemberPhase.PATCHING,
        previous=PreviousSpec(
            version=obs.spec.version, containers=list(map(dict, obs.spec.containers))
        ),
        previous_version=previous_version,
        reason=FleetReason.MEMBER_PATCHING,
    )
    p.tell(
        FleetReason.MEMBER_PATCHING,
        f"cluster {member.name}: {previous_version} -> {p.spec.version}",
        wave=wave,
        cluster=member.name,
    )
    # No patch in this pass: the status with `previous` must be stored before the patch is.
    p.wake(p.now)
    return None


def judge_member(p: FleetPass, wi: int, mi: int) -> str | None:
    """A member in flight: patch it if its spec does not ask for the version yet; read its
    outcome once its rollwise has seen the patch. A failure's description, else None."""
    member = p.waves[wi].clusters[mi]
    wave = p.waves[wi].name
    obs = p.members.get(member.name)
    if member.phase not in (FleetMemberPhase.PATCHING, FleetMemberPhase.PROGRESSING):
        if member.phase is FleetMemberPhase.FAILED:
            return f"cluster {member.name}: {member.message or member.reason}"
        return None
    if obs is None or not obs.reachable or obs.spec is None:
        if obs is not None and obs.reachable and not obs.found:
            p.set_member(
                wi, mi, phase=FleetMemberPhase.FAILED, reason="ServiceNotFound", message=obs.error
            )
            return f"cluster {member.name}: {obs.error}"
        return None
    target = p.target_of(obs) if member.phase is FleetMemberPhase.PATCHING else None
    if member.phase is FleetMemberPhase.PATCHING:
        assert target is not None
        if not at_target(obs.spec, p.spec.version, target):
            p.patches.append(
                PatchMember(
                    member.name,
                    p.spec.version,
                    target if p.spec.containers else (),
                    obs.resource_version,
                )
            )
            p.wake(p.now)
            return None
        member = p.set_member(
            wi,
            mi,
            phase=FleetMemberPhase.PROGRESSING,
            patched_generation=obs.generation,
            patched_at=p.now,
            reason=FleetReason.MEMBER_PATCHED,
        )
        p.tell(
            FleetReason.MEMBER_PATCHED,
            f"cluster {member.name}: ProgressiveService {p.spec.target.namespace}/"
            f"{p.spec.target.service} asks for {p.spec.version} (generation "
            f"{obs.generation}); its rollwise rolls it out",
            wave=wave,
            cluster=member.name,
        )
    elif not _still_asks(p, obs):
        # Someone (a person, a GitOps sync) wrote the member's spec after the fleet did: the
        # fleet does not fight it, and says so instead of waiting forever.
        why = (
            f"its ProgressiveService no longer asks for {p.spec.version} (spec.version "
            f"{obs.spec.version}); changed outside the fleet"
        )
        return member_failed(p, wi, mi, "SpecChanged", why)
    if not obs.current or (member.patched_generation or 0) > (obs.observed_generation or 0):
        return None  # the member's status is still about the spec before the patch
    if obs.phase == "Healthy" and obs.stable_version == p.spec.version:
        p.set_member(wi, mi, phase=FleetMemberPhase.SUCCEEDED, reason="Healthy")
        p.tell(
            FleetReason.MEMBER_SUCCEEDED,
            f"cluster {member.name}: {p.spec.version} is stable and Healthy",
            wave=wave,
            cluster=member.name,
        )
        return None
    if obs.phase in MEMBER_FAILED_PHASES:
        why = f"{obs.phase}: {obs.message}" if obs.message else str(obs.phase)
        told = f"{p.spec.version} did not take: {why}; stable there is {obs.stable_version}"
        return member_failed(p, wi, mi, obs.phase, why, told)
    p.set_member(wi, mi, reason=obs.phase)
    return None


def _still_asks(p: FleetPass, obs: MemberObservation) -> bool:
    """The member's spec still asks for the fleet's version (and container changes)."""
    assert obs.spec is not None
    if obs.spec.version != p.spec.version:
        return False
    try:
        return at_target(obs.spec, p.spec.version, p.target_of(obs))
    except ValueError:
        return False
