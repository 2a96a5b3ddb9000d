"""ReleaseTrain: a group of ProgressiveServices released as one version set, in order.

A train names its members, the version (and optionally image and env) each is to run, and their
order (`after`). The operator releases a member by writing that version into the train's own
status (`status.members[].release`); a member that declares `spec.releaseTrain: <train>` runs its
own spec with that release applied. Neither the train's spec nor any member's spec is ever
written by the operator, so what GitOps syncs is what the API server holds.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from rollwise.api.base import ApiModel, StatusModel
from rollwise.api.durations import Duration, parse_duration
from rollwise.api.service import MAX_NAME
from rollwise.api.service_status import Condition, RequestAck

KIND = "ReleaseTrain"
PLURAL = "releasetrains"
SHORT_NAMES = ["rtrain"]
HISTORY_LIMIT = 30
MAX_MEMBERS = 50
MAX_WINDOWS = 20
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class EnvVar(ApiModel):
    """An environment variable of the member's container, set (or replaced) by the release."""

    name: str = Field(min_length=1, max_length=256)
    value: str = Field(default="", max_length=4096)


class MemberSpec(ApiModel):
    """One ProgressiveService of the train and what the train releases to it."""

    service: str = Field(min_length=1, max_length=MAX_NAME, pattern=_NAME)
    version: str = Field(min_length=1, max_length=128)
    image: str | None = Field(default=None, min_length=1, max_length=512)
    container: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="The container image and env apply to (default: the first).",
    )
    env: list[EnvVar] | None = Field(default=None, max_length=32)
    after: list[str] = Field(
        default_factory=list,
        max_length=MAX_MEMBERS,
        description="Members that must be promoted before this one starts.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class FreezeWindow(ApiModel):
    """A time in which no member starts a new rollout: a cron schedule that opens it, with a
    duration and an explicit time zone, or a one-off start and end."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.schedule) && has(self.duration) && has(self.timeZone)"
                    " && !has(self.start) && !has(self.end))"
                    " || (has(self.start) && has(self.end) && !has(self.schedule)"
                    " && !has(self.duration))",
                    "message": "a freeze window is either schedule + duration + timeZone, "
                    "or start + end",
                }
            ]
        }
    )
    name: str | None = Field(default=None, max_length=63)
    schedule: str | None = Field(
        default=None,
        max_length=128,
        description="Five-field cron expression: when a window opens, in timeZone.",
    )
    duration: Duration | None = None
    time_zone: str | None = Field(
        default=None, max_length=64, description="IANA time zone, e.g. Europe/Berlin or UTC."
    )
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timeZone {value!r} is not an IANA time zone; write e.g. Europe/Berlin or UTC"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"schedule {value!r} is not a five-field cron expression "
                "(minute hour day-of-month month day-of-week), e.g. '0 18 * * 5'"
            )
        return value

    @model_validator(mode="after")
    def _one_form(self) -> FreezeWindow:
        cron = (self.schedule, self.duration, self.time_zone)
        fixed = (self.start, self.end)
        if all(v is not None for v in cron) and all(v is None for v in fixed):
            if parse_duration(self.duration or "0s") <= 0:
                raise ValueError("a freeze window's duration must be more than 0s")
            return self
        if (
            all(v is not None for v in fixed)
            and self.schedule is None
            and self.duration is None
            and self.start is not None
            and self.end is not None
        ):
            if self.end <= self.start:
                raise ValueError("a freeze window's end must be after its start")
            return self
        raise ValueError("a freeze window is either schedule + duration + timeZone, or start + end")

    def label(self) -> str:
        """How messages name the window."""
        if self.name:
            return self.name
        if self.schedule is not None:
            return f"'{self.schedule}' for {self.duration} ({self.time_zone})"
        return f"{self.start} to {self.end}"


class FailurePolicy(StrEnum):
    HALT = "Halt"  # members not yet started are held; promoted ones stay
    ROLLBACK_PROMOTED = "RollbackPromoted"  # and promoted ones go back, last promoted first


class OnFailure(ApiModel):
    policy: FailurePolicy = FailurePolicy.HALT


class TrainSpec(ApiModel):
    """The version set, its order, how many members roll at once, when nothing may start, and
    what a failure does to the rest."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.members.all(m, !has(m.after) || "
                    "m.after.all(a, self.members.exists(o, o.service == a)))",
                    "message": "every name in members[].after must be a member's service",
                },
                {
                    "rule": "self.members.all(m, !has(m.after) || !(m.service in m.after))",
                    "message": "a member cannot come after itself",
                },
            ]
        }
    )
    members: list[MemberSpec] = Field(
        min_length=1,
        max_length=MAX_MEMBERS,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["service"],
        },
    )
    max_concurrent: int = Field(default=1, ge=1, le=MAX_MEMBERS)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)
    on_failure: OnFailure = Field(default_factory=OnFailure)

    @model_validator(mode="after")
    def _a_dag(self) -> TrainSpec:
        names = [m.service for m in self.members]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"member {name!r} is listed twice")
            seen.add(name)
        for member in self.members:
            unknown = [a for a in member.after if a not in seen]
            if unknown:
                raise ValueError(
                    f"member {member.service!r}: after names {', '.join(unknown)}, "
                    "which is not a member of this train"
                )
        cycle = find_cycle({m.service: list(m.after) for m in self.members})
        if cycle:
            chain = " after ".join([*cycle, cycle[0]])
            raise ValueError(f"members[].after has a cycle: {chain}; remove one of these")
        return self

    def member(self, service: str) -> MemberSpec | None:
        return next((m for m in self.members if m.service == service), None)


def find_cycle(after: dict[str, list[str]]) -> list[str]:
    """One cycle of the `after` graph, each name after the next, or [] when it is a DAG."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in after.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep) :]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in after:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


# ---------------------------------------------------------------- status


class TrainPhase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    FROZEN = "Frozen"
    HALTED = "Halted"
    ROLLING_BACK = "RollingBack"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class MemberPhase(StrEnum):
    WAITING = "Waiting"  # not started: its `after`, maxConcurrent or a freeze holds it
    PROGRESSING = "Progressing"  # released; its ProgressiveService rolls it out
    PROMOTED = "Promoted"  # stable and Healthy at the train's version
    UNCHANGED = "Unchanged"  # already ran the train's version: nothing to roll out
    FAILED = "Failed"  # its rollout of the train's version failed
    HALTED = "Halted"  # never started: the train halted
    ROLLING_BACK = "RollingBack"  # back to what it ran before the train started it
    ROLLED_BACK = "RolledBack"


class Release(StatusModel):
    """What a member runs while the train owns its version: applied to its own spec."""

    version: str
    image: str | None = None
    container: str | None = None
    env: list[EnvVar] | None = None


class MemberStatus(StatusModel):
    service: str
    phase: MemberPhase = MemberPhase.WAITING
    version: str = ""  # the train's version for it
    previous_version: str | None = None  # its stable version when the train started it
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Order of promotion within this run (1, 2, ...): a rollback goes in reverse of it.
    promoted_index: int | None = None
    # What the member runs now per the train (None: its own spec), and what a rollback restores.
    release: Release | None = None
    previous: Release | None = None
    message: str | None = None


class TrainFailure(StatusModel):
    service: str | None = None
    reason: str
    message: str
    at: datetime
    by: str = "rollwise"


class TrainHistoryEntry(StatusModel):
    at: datetime
    event: str
    actor: str = "rollwise"
    service: str | None = None
    message: str | None = None


class TrainStatus(StatusModel):
    observed_generation: int | None = None
    phase: TrainPhase = TrainPhase.PENDING
    message: str | None = None
    members: list[MemberStatus] = Field(default_factory=list)
    frozen_until: datetime | None = None
    failure: TrainFailure | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: list[TrainHistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    last_request: RequestAck | None = None
    invalid_request: str | None = None

    def member(self, service: str) -> MemberStatus | None:
        return next((m for m in self.members if m.service == service), None)
