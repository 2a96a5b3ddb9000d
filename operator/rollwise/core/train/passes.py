"""One ReleaseTrain pass: the status it builds (checked updates of the train and its members),
Events and history, the requests to forward to members, and the pacing constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from typing_extensions import Unpack

from rollwise.api.service_status import Condition, Phase, RequestAck
from rollwise.api.train import (
    HISTORY_LIMIT,
    MemberPhase,
    MemberStatus,
    Release,
    TrainFailure,
    TrainHistoryEntry,
    TrainPhase,
    TrainSpec,
    TrainStatus,
)
from rollwise.core.checked import KindPass, checked_update
from rollwise.core.model import EventRecord
from rollwise.core.train.model import (
    MemberObserved,
    MemberRequest,
    TrainObserved,
)

ACTOR = "rollwise"
# Members wake the train with every status write; this is only the fallback.
FALLBACK_S = 30.0
DONE = {MemberPhase.PROMOTED, MemberPhase.UNCHANGED}
FAILED_PHASES = {Phase.ROLLED_BACK, Phase.MIGRATION_FAILED}
SETTLED_TRAIN = {TrainPhase.SUCCEEDED, TrainPhase.FAILED, TrainPhase.HALTED}


class TrainStatusChanges(TypedDict, total=False):
    """The fields of TrainStatus a pass may set (a unit test keeps this list equal to the
    model's)."""

    observed_generation: int | None
    phase: TrainPhase
    message: str | None
    members: list[MemberStatus]
    frozen_until: datetime | None
    failure: TrainFailure | None
    conditions: list[Condition]
    history: list[TrainHistoryEntry]
    last_request: RequestAck | None
    invalid_request: str | None


class TrainMemberChanges(TypedDict, total=False):
    """The fields of a train member's MemberStatus a pass may set (all but its identity)."""

    phase: MemberPhase
    version: str
    previous_version: str | None
    started_at: datetime | None
    finished_at: datetime | None
    promoted_index: int | None
    release: Release | None
    previous: Release | None
    message: str | None


@dataclass
class TrainPass(KindPass[TrainStatus]):
    """One ReleaseTrain pass: the status (changed by checked updates), Events and history, the
    requests to forward to members, and the earliest requeue."""

    spec: TrainSpec
    observed: TrainObserved
    events: list[EventRecord] = field(default_factory=list)
    requests: list[MemberRequest] = field(default_factory=list)

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
        self.update({"history": history})

    def warn_once(self, reason: str, message: str, service: str | None = None) -> None:
        if message not in {h.message for h in self.status.history if h.event == reason}:
            self.event(reason, message, warning=True, service=service)

    def member(self, service: str) -> MemberStatus:
        found = self.status.member(service)
        if found is None:  # pragma: no cover - every spec member has an entry after start_run
            raise KeyError(service)
        return found

    def put(self, service: str, **changes: Unpack[TrainMemberChanges]) -> MemberStatus:
        """Change one member's entry (checked like `set`)."""
        members = [
            checked_update(m, changes) if m.service == service else m for m in self.status.members
        ]
        self.update({"members": members})
        return self.member(service)

    def set(self, **changes: Unpack[TrainStatusChanges]) -> None:
        """Change status fields; a mistyped name is a mypy error and a TypeError."""
        self.update(changes)

    def seen(self, service: str) -> MemberObserved:
        return self.observed.members.get(service) or MemberObserved(exists=False)


def at_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
