"""Plain data that crosses the fleet room's boundary: what the hub saw of each member cluster's
ProgressiveService (MemberObservation), and the FleetPlan to apply (patches, Events, requeue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollwise.api.fleet import (
    FleetRolloutStatus,
)

Container = Mapping[str, Any]

# Member ProgressiveService phases that end a rollout without the new version.
MEMBER_FAILED_PHASES = frozenset({"RolledBack", "MigrationFailed"})
# A member phase that, once Healthy at the version, counts as having lost it during a soak.
MEMBER_UNHEALTHY_PHASES = frozenset({"RolledBack", "MigrationFailed", "Degraded"})


@dataclass(frozen=True)
class FleetMemberSpec:
    """The parts of a member's ProgressiveService spec the fleet reads and writes."""

    version: str | None  # spec.version as written (None: absent)
    containers: tuple[Container, ...]

    @property
    def effective_version(self) -> str:
        """What rollwise calls the version: spec.version, else the first image's tag."""
        if self.version:
            return self.version
        image = str(self.containers[0].get("image", "")) if self.containers else ""
        tail = image.rsplit("/", 1)[-1]
        return tail.split(":", 1)[1] if ":" in tail else "latest"


@dataclass(frozen=True)
class MemberObservation:
    """One member cluster's ProgressiveService as the hub just read it, or why it could not."""

    cluster: str
    reachable: bool
    error: str | None = None  # unreachable: why; reachable but absent: what is missing
    found: bool = False
    spec: FleetMemberSpec | None = None
    resource_version: str | None = None
    generation: int | None = None
    observed_generation: int | None = None
    phase: str | None = None
    stable_version: str | None = None
    canary_version: str | None = None
    message: str | None = None

    @property
    def current(self) -> bool:
        """The member's status is about its current spec (its rollwise has seen the patch)."""
        return (
            self.generation is not None
            and self.observed_generation is not None
            and self.observed_generation >= self.generation
        )


@dataclass(frozen=True)
class PatchMember:
    """Write `version` and `containers` into a member's ProgressiveService spec, on the
    condition that it is still at `resource_version` (else 409: re-observe, decide again)."""

    cluster: str
    version: str | None
    containers: tuple[Container, ...]
    resource_version: str | None
    rollback: bool = False

    def body(self) -> dict[str, Any]:
        """The JSON merge patch (a null version removes the field, as it was before)."""
        spec: dict[str, Any] = {"version": self.version}
        if self.containers:
            spec["template"] = {"spec": {"containers": [dict(c) for c in self.containers]}}
        patch: dict[str, Any] = {"spec": spec}
        if self.resource_version:
            patch["metadata"] = {"resourceVersion": self.resource_version}
        return patch


@dataclass(frozen=True)
class FleetEvent:
    reason: str
    message: str
    warning: bool = False
    actor: str = "rollwise"


@dataclass(frozen=True)
class FleetPlan:
    status: FleetRolloutStatus
    patches: tuple[PatchMember, ...] = ()
    events: tuple[FleetEvent, ...] = ()
    requeue_after: float | None = None
