"""Plain data that crosses the ReleaseTrain room's boundary: what was observed of a train and
its members, and the TrainPlan to apply (the adapters' side of the train room)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rollwise.api.service_status import Phase
from rollwise.api.train import MemberSpec, Release, TrainStatus
from rollwise.core.model import Action, EventRecord, ManualRequest


@dataclass(frozen=True)
class MemberObserved:
    """One member ProgressiveService as the train needs to know it."""

    exists: bool = True
    joined: bool = True  # its spec.releaseTrain names this train
    phase: Phase | None = None
    stable_revision: str | None = None
    stable_version: str | None = None
    # The revision its last rollback or failed migration was about.
    failed_revision: str | None = None
    message: str | None = None
    # Its own spec with the train's release for it / with the recorded previous release.
    target_revision: str | None = None
    restore_revision: str | None = None
    # Why the train's release cannot be applied to its spec (a container it does not have).
    problem: str | None = None

    @property
    def healthy(self) -> bool:
        return self.exists and self.phase is Phase.HEALTHY


@dataclass(frozen=True)
class TrainObserved:
    namespace: str
    name: str
    generation: int
    members: dict[str, MemberObserved] = field(default_factory=dict)
    request: ManualRequest | None = None
    request_error: str | None = None


@dataclass(frozen=True)
class MemberRequest:
    """A request to write on a member (the train's promote, forwarded)."""

    service: str
    action: Action
    id: str
    by: str


@dataclass(frozen=True)
class TrainPlan:
    status: TrainStatus
    events: tuple[EventRecord, ...] = ()
    member_requests: tuple[MemberRequest, ...] = ()
    requeue_after: float | None = None


def release_of(member: MemberSpec) -> Release:
    """What the spec asks this member to run."""
    return Release(
        version=member.version, image=member.image, container=member.container, env=member.env
    )
