"""A ProgressiveService's status: phase, revisions, migration, gate results, conditions,
history, requests and webhook deliveries.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from rollwise.api.base import StatusModel

HISTORY_LIMIT = 20
PREVIOUS_STABLES_LIMIT = 10  # status.previousStables, and so spec.rollbackWindow.revisions
WEBHOOKS_LIMIT = 32  # webhook calls and notifications kept in status


class Phase(StrEnum):
    PENDING = "Pending"
    MIGRATING = "Migrating"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    HEALTHY = "Healthy"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    MIGRATION_FAILED = "MigrationFailed"
    DEGRADED = "Degraded"


class Verdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class MigrationPhase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class RevisionStatus(StatusModel):
    revision: str
    version: str = ""
    replicas: int = 0
    ready_replicas: int = 0


class MigrationStatus(StatusModel):
    revision: str
    version: str = ""
    job: str
    phase: MigrationPhase
    attempts: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str | None = None


class SampleSummary(StatusModel):
    """One revision's samples in a comparison: how many, their median and mean."""

    n: int = 0
    median: float | None = None
    mean: float | None = None


class ComparisonResult(StatusModel):
    """A comparison gate's latest test: both sides' summaries and the test's numbers."""

    test: str = "MannWhitneyU"
    canary: SampleSummary = Field(default_factory=SampleSummary)
    stable: SampleSummary = Field(default_factory=SampleSummary)
    u: float | None = None
    p: float | None = None
    effect: float | None = None  # P(a canary sample is worse than a stable one)
    method: str | None = None  # exact or normal
    alpha: float | None = None
    worse: str | None = None  # higher or lower


class GateResult(StatusModel):
    """The latest measurement of one gate, with the query exactly as it was sent."""

    gate: str
    step: int | None = None
    background: bool = False
    query: str = ""
    value: float | None = None
    verdict: Verdict | None = None
    measured_at: datetime | None = None
    measurements: int = 0
    failures: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    message: str | None = None
    # When this tally began: with the measurement index it names a job gate's next Job.
    started_at: datetime | None = None
    job: str | None = None  # a job gate's latest measurement Job
    comparison: ComparisonResult | None = None  # a comparison gate's test, value is its p


class AbortStatus(StatusModel):
    reason: str
    message: str
    at: datetime
    revision: str | None = None


class Condition(StatusModel):
    type: str
    status: str
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: datetime | None = None


class HistoryEntry(StatusModel):
    at: datetime
    event: str
    actor: str = "rollwise"
    revision: str | None = None
    step: int | None = None
    weight: int | None = None
    message: str | None = None


class RequestAck(StatusModel):
    """The last manual request acted on; its id is never acted on twice."""

    id: str
    action: str
    by: str
    at: datetime
    result: str


class FullPromotion(StatusModel):
    """`kubectl rollwise promote --full`: who skipped the remaining steps, pauses and analysis,
    when, and from which step (0-based; the step count when promoted from RolledBack)."""

    by: str
    at: datetime
    from_step: int
    from_phase: str


class DeliveryResult(StrEnum):
    PENDING = "Pending"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class WebhookStatus(StatusModel):
    """One webhook call or notification: what it tells, and how its delivery went. `id` is the
    payload's checksum: the same for every attempt, so a receiver can de-duplicate."""

    id: str
    name: str
    type: str  # a WebhookType, or "notification"
    transition: str | None = None
    revision: str
    version: str = ""
    phase: str = ""
    step: int | None = None
    weight: int = 0
    message: str | None = None
    created_at: datetime
    attempts: int = 0
    result: DeliveryResult = DeliveryResult.PENDING
    code: int | None = None  # the last HTTP status received
    error: str | None = None  # the last failure, for humans
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None


class AdaptiveStatus(StatusModel):
    """Where an adaptive step stands: its decisions so far and the last one's numbers."""

    step: int
    decisions: int = 0
    holds: int = 0
    last_decision: str | None = None  # raise, hold, complete
    last_margin: float | None = None
    last_decision_at: datetime | None = None


class ServiceStatus(StatusModel):
    """The answer to "which version is really running, and why"."""

    observed_generation: int | None = None
    phase: Phase = Phase.PENDING
    # The scale subresource's view: pods asked for (stable + canary) and the pods it selects.
    replicas: int = 0
    selector: str | None = None
    message: str | None = None
    stable: RevisionStatus | None = None
    canary: RevisionStatus | None = None
    canary_weight: int = Field(default=0, ge=0, le=100)
    # The share of stable's requests copied to the canary (setMirror); 0 when not mirroring.
    mirror_percent: int = Field(default=0, ge=0, le=100)
    current_step_index: int | None = None
    current_step: str | None = None
    step_started_at: datetime | None = None
    pause_started_at: datetime | None = None
    paused_by_request: bool = False
    migration: MigrationStatus | None = None
    schema_ahead_of_app: bool = False
    analysis: list[GateResult] = Field(default_factory=list)
    abort: AbortStatus | None = None
    scale_down_at: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    last_request: RequestAck | None = None
    invalid_request: str | None = None
    webhooks: list[WebhookStatus] = Field(default_factory=list, max_length=WEBHOOKS_LIMIT)
    adaptive: AdaptiveStatus | None = None  # the current adaptive step's decisions so far
    # Set by a full promotion of the current canary (kept on the Healthy status it led to).
    full_promotion: FullPromotion | None = None
    # The canary weight on the route object (HTTPRoute, canary Ingress, VirtualService) as the
    # last pass read it back and, where it differed, wrote it (None under the replicas router).
    # It differs from canaryWeight while traffic is being drained or a step's weight is being
    # written; a change by someone else is set back at once (docs/rollout-semantics.md, rule 9).
    route_weight: int | None = None
    # The revisions that were stable before the current one, newest first (rollbackWindow).
    previous_stables: list[str] = Field(default_factory=list, max_length=PREVIOUS_STABLES_LIMIT)
