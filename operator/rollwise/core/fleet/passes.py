"""One FleetRollout pass: the status it builds (checked updates of the rollout, its waves and
its member clusters), the patches, Events and history, and the status a new version starts
from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from typing_extensions import Unpack

from rollwise.api.fleet import (
    FleetHistoryEntry,
    FleetMemberPhase,
    FleetMemberStatus,
    FleetPhase,
    FleetRolloutSpec,
    FleetRolloutStatus,
    PreviousSpec,
    Wave,
    WavePhase,
    WaveStatus,
)
from rollwise.api.service_status import Condition, RequestAck
from rollwise.core.checked import KindPass, checked_update
from rollwise.core.fleet.model import Container, FleetEvent, MemberObservation, PatchMember
from rollwise.core.fleet.waves import merged_containers
from rollwise.core.reasons import FleetReason

# ----------------------------------------------------------------------------- the pass


class FleetStatusChanges(TypedDict, total=False):
    """The fields of FleetRolloutStatus a pass may set (a unit test keeps this list equal to
    the model's)."""

    observed_generation: int | None
    phase: FleetPhase
    version: str | None
    current_wave: str | None
    message: str | None
    waves: list[WaveStatus]
    conditions: list[Condition]
    history: list[FleetHistoryEntry]
    last_request: RequestAck | None
    started_at: datetime | None
    finished_at: datetime | None


class FleetMemberChanges(TypedDict, total=False):
    """The fields of a FleetMemberStatus a pass may set (all but its identity)."""

    region: str | None
    phase: FleetMemberPhase
    version: str | None
    canary_version: str | None
    member_phase: str | None
    previous: PreviousSpec | None
    previous_version: str | None
    patched_generation: int | None
    patched_at: datetime | None
    reason: str | None
    message: str | None
    reachable: bool | None
    last_seen: datetime | None
    unreachable_since: datetime | None


class WaveChanges(TypedDict, total=False):
    """The fields of a WaveStatus a pass may set (all but its identity)."""

    phase: WavePhase
    started_at: datetime | None
    soak_until: datetime | None
    completed_at: datetime | None
    approved_by: str | None
    clusters: list[FleetMemberStatus]


@dataclass
class FleetPass(KindPass[FleetRolloutStatus]):
    """One FleetRollout pass: the status (changed by checked updates), the member patches to
    write, Events and history, and the earliest time to look again."""

    spec: FleetRolloutSpec
    members: Mapping[str, MemberObservation]
    generation: int | None
    poll_s: float
    waves: list[WaveStatus]
    patches: list[PatchMember] = field(default_factory=list)
    events: list[FleetEvent] = field(default_factory=list)
    history: list[FleetHistoryEntry] = field(default_factory=list)
    wake_time: datetime | None = None

    def set(self, **changes: Unpack[FleetStatusChanges]) -> None:
        """Change status fields; a mistyped name is a mypy error and a TypeError."""
        self.update(changes)

    def set_member(
        self, wave_i: int, member_i: int, **changes: Unpack[FleetMemberChanges]
    ) -> FleetMemberStatus:
        """Change one member cluster's entry (checked like `set`)."""
        member = checked_update(self.waves[wave_i].clusters[member_i], changes)
        self.waves[wave_i].clusters[member_i] = member
        return member

    def set_wave(self, wave_i: int, **changes: Unpack[WaveChanges]) -> WaveStatus:
        """Change one wave's entry (checked like `set`)."""
        wave = checked_update(self.waves[wave_i], changes)
        self.waves[wave_i] = wave
        return wave

    def tell(
        self,
        reason: str,
        message: str,
        *,
        wave: str | None = None,
        cluster: str | None = None,
        warning: bool = False,
        actor: str = "rollwise",
    ) -> None:
        self.events.append(FleetEvent(reason, message, warning=warning, actor=actor))
        self.history.append(
            FleetHistoryEntry(
                at=self.now, event=reason, actor=actor, wave=wave, cluster=cluster, message=message
            )
        )

    def wake(self, at: datetime) -> None:
        if self.wake_time is None or at < self.wake_time:
            self.wake_time = at

    def target_of(self, obs: MemberObservation) -> tuple[Container, ...]:
        assert obs.spec is not None
        if not self.spec.containers:
            return obs.spec.containers
        return merged_containers(obs.spec.containers, self.spec.containers)


def member_status(spec: FleetRolloutSpec, name: str) -> FleetMemberStatus:
    region = next((c.region for c in spec.clusters if c.name == name), None)
    return FleetMemberStatus(name=name, region=region)


def fresh_status(
    status: FleetRolloutStatus, spec: FleetRolloutSpec, layout: list[tuple[Wave, list[str]]]
) -> FleetRolloutStatus:
    """A new version (or the first pass): every wave Pending; history and requests kept."""
    waves = [
        WaveStatus(name=wave.name, clusters=[member_status(spec, n) for n in names])
        for wave, names in layout
    ]
    return FleetRolloutStatus(
        phase=FleetPhase.PENDING,
        version=spec.version,
        waves=waves,
        conditions=status.conditions,
        history=status.history,
        last_request=status.last_request,
    )


def aligned(
    status: FleetRolloutStatus, spec: FleetRolloutSpec, layout: list[tuple[Wave, list[str]]]
) -> FleetRolloutStatus:
    """The status with its waves in the spec's current layout; what is known of a cluster is
    kept by name (a spec edit that moves a cluster does not forget what was done to it)."""
    known = {m.name: m for w in status.waves for m in w.clusters}
    old = {w.name: w for w in status.waves}
    waves = []
    for wave, names in layout:
        previous = old.get(wave.name, WaveStatus(name=wave.name))
        members = [known.get(n, member_status(spec, n)) for n in names]
        waves.append(checked_update(previous, {"clusters": members}))
    return checked_update(status, {"waves": waves})


def member_failed(
    p: FleetPass,
    wave_i: int,
    member_i: int,
    reason: str,
    message: str | None,
    told: str | None = None,
) -> str:
    """The member Failed with `reason`; a Warning MemberFailed (`told`, else the message)
    in Events and history; returns the failure as the wave reports it."""
    name = p.waves[wave_i].clusters[member_i].name
    p.set_member(wave_i, member_i, phase=FleetMemberPhase.FAILED, reason=reason, message=message)
    p.tell(
        FleetReason.MEMBER_FAILED,
        f"cluster {name}: {told if told is not None else message}",
        wave=p.waves[wave_i].name,
        cluster=name,
        warning=True,
    )
    return f"cluster {name}: {message}"
