"""FleetRollout: one version rolled, wave by wave, to the ProgressiveService of the same name in
many member clusters, from a hub cluster. Each member's own rollwise runs the canary and the
analysis; the hub only patches the version and watches the member's status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from rollwise.api.base import ApiModel, StatusModel
from rollwise.api.durations import Duration
from rollwise.api.service_status import Condition, RequestAck

KIND = "FleetRollout"
PLURAL = "fleetrollouts"
SHORT_NAMES = ["fleet"]
HISTORY_LIMIT = 30
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SecretKeyRef(ApiModel):
    """A key of a Secret in the FleetRollout's own namespace on the hub."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="kubeconfig", min_length=1)


class FleetCluster(ApiModel):
    """A member cluster: where its kubeconfig is, and labels waves select it by."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    region: str | None = Field(default=None, description="shorthand for the label `region`")
    labels: dict[str, str] = Field(default_factory=dict)
    kubeconfig_secret_ref: SecretKeyRef = Field(
        description="a kubeconfig whose identity may get and patch ProgressiveServices in the "
        "target namespace of the member, nothing more"
    )

    def all_labels(self) -> dict[str, str]:
        """Its labels, with `region` among them when given."""
        return {**self.labels, **({"region": self.region} if self.region else {})}


class Wave(ApiModel):
    """Clusters rolled together: by name, by label selector, or (neither) all not yet taken."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    clusters: list[str] = Field(default_factory=list)
    selector: dict[str, str] | None = Field(
        default=None, description="labels (and `region`) a cluster must all have"
    )
    max_parallel: int | None = Field(
        default=None, ge=1, description="clusters rolling at once in this wave; default all"
    )
    soak: Duration = Field(
        default="0s", description="how long every cluster of the wave stays Healthy before the next"
    )
    approval: bool = Field(
        default=False,
        description="the wave starts only after `kubectl rollwise fleet promote` (approval)",
    )

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> Wave:
        if self.clusters and self.selector is not None:
            raise ValueError(f"wave {self.name}: give clusters or selector, not both")
        return self


class EnvVar(ApiModel):
    name: str = Field(min_length=1)
    value: str = ""


class ContainerPatch(ApiModel):
    """What the fleet changes in one container of the member's pod template."""

    name: str = Field(min_length=1)
    image: str | None = None
    env: list[EnvVar] = Field(
        default_factory=list, description="set (by name) in the container's env; others kept"
    )


class TargetRef(ApiModel):
    namespace: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL)
    service: str = Field(min_length=1, max_length=40, description="a ProgressiveService")


class FailurePolicy(StrEnum):
    HALT = "Halt"
    ROLLBACK_PROMOTED = "RollbackPromoted"


class FleetRolloutSpec(ApiModel):
    target: TargetRef
    version: str = Field(min_length=1, max_length=128)
    containers: list[ContainerPatch] = Field(
        default_factory=list, description="optional image/env changes, merged by container name"
    )
    clusters: list[FleetCluster] = Field(min_length=1)
    waves: list[Wave] = Field(min_length=1)
    on_failure: FailurePolicy = FailurePolicy.HALT

    @model_validator(mode="after")
    def _references(self) -> FleetRolloutSpec:
        names = [c.name for c in self.clusters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"clusters: {', '.join(dupes)} listed more than once")
        waves = [w.name for w in self.waves]
        if len(set(waves)) != len(waves):
            raise ValueError("waves: every wave needs its own name")
        for wave in self.waves:
            unknown = [c for c in wave.clusters if c not in names]
            if unknown:
                raise ValueError(
                    f"wave {wave.name}: unknown cluster {', '.join(unknown)} (not in spec.clusters)"
                )
        return self


# ---------------------------------------------------------------- status


class FleetPhase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    SOAKING = "Soaking"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # halted: no later wave gets the version
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    INVALID = "Invalid"


class WavePhase(StrEnum):
    PENDING = "Pending"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    PROGRESSING = "Progressing"
    SOAKING = "Soaking"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    HALTED = "Halted"  # a later or parallel wave failed: not started, or left as it was
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"


class FleetMemberPhase(StrEnum):
    PENDING = "Pending"  # not patched yet
    PATCHING = "Patching"  # the previous spec is recorded; the patch is (being) written
    PROGRESSING = "Progressing"  # patched; the member's rollwise is rolling it out
    SUCCEEDED = "Succeeded"  # Healthy at the fleet's version
    FAILED = "Failed"  # the member rolled it back, or its migration failed
    SKIPPED = "Skipped"  # never patched: the fleet stopped first
    ROLLING_BACK = "RollingBack"  # patched back to the previous spec
    ROLLED_BACK = "RolledBack"  # Healthy at the previous version again


class PreviousSpec(StatusModel):
    """What the member's ProgressiveService said before the hub patched it, to restore it."""

    version: str | None = None
    containers: list[dict[str, Any]] = Field(default_factory=list)


class FleetMemberStatus(StatusModel):
    """One member cluster, as the hub last saw it: which version runs there, and why."""

    name: str
    region: str | None = None
    phase: FleetMemberPhase = FleetMemberPhase.PENDING
    version: str | None = Field(default=None, description="the member's stable (running) version")
    canary_version: str | None = None
    member_phase: str | None = Field(default=None, description="the ProgressiveService's phase")
    previous: PreviousSpec | None = None
    previous_version: str | None = None
    patched_generation: int | None = None
    patched_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
    reachable: bool | None = None
    last_seen: datetime | None = None
    unreachable_since: datetime | None = None


class WaveStatus(StatusModel):
    name: str
    phase: WavePhase = WavePhase.PENDING
    started_at: datetime | None = None
    soak_until: datetime | None = None
    completed_at: datetime | None = None
    approved_by: str | None = None
    clusters: list[FleetMemberStatus] = Field(default_factory=list)


class FleetHistoryEntry(StatusModel):
    at: datetime
    event: str
    actor: str = "rollwise"
    wave: str | None = None
    cluster: str | None = None
    message: str | None = None


class FleetRolloutStatus(StatusModel):
    """Which version runs in which cluster, and why."""

    observed_generation: int | None = None
    phase: FleetPhase = FleetPhase.PENDING
    version: str | None = Field(default=None, description="the version this status is about")
    current_wave: str | None = None
    message: str | None = None
    waves: list[WaveStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    history: list[FleetHistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    last_request: RequestAck | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class FleetRollout(ApiModel):
    model_config = ConfigDict(
        alias_generator=ApiModel.model_config["alias_generator"],
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )
    api_version: str = "rollwise.dev/v1alpha1"
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FleetRolloutSpec
    status: FleetRolloutStatus = Field(default_factory=FleetRolloutStatus)
