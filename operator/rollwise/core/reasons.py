"""Every condition type and every condition/Event reason of every kind, in one place, as string
enums (a mistyped member is an AttributeError and a mypy error, never a new reason).
ProgressiveService and ReleaseTrain share Reason and ConditionType; a FleetRollout's are
FleetReason and FleetConditionType."""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    PAUSED = "Paused"
    MIGRATION_COMPLETE = "MigrationComplete"
    # kstatus: Reconciling -> InProgress, Stalled -> Failed (docs/rollout-semantics.md)
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    INVALID_SPEC = "InvalidSpec"
    # ReleaseTrain only
    FROZEN = "Frozen"
    INVALID = "Invalid"


class Reason(StrEnum):
    # rollout lifecycle
    ROLLOUT_STARTED = "RolloutStarted"
    INITIAL_DEPLOY = "InitialDeploy"
    STEP_COMPLETED = "StepCompleted"
    WEIGHT_SET = "WeightSet"
    ADAPTIVE_RAISED = "AdaptiveWeightRaised"  # an adaptive step's pass raised the weight
    ADAPTIVE_HELD = "AdaptiveWeightHeld"  # an adaptive step's weak evidence held it
    MIRROR_SET = "MirrorSet"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    PROMOTING = "Promoting"
    PROMOTED = "Promoted"
    HEALTHY = "Healthy"
    SUPERSEDED = "Superseded"
    # migration
    MIGRATION_STARTED = "MigrationStarted"
    MIGRATION_ADOPTED = "MigrationAdopted"
    MIGRATION_SUCCEEDED = "MigrationSucceeded"
    MIGRATION_FAILED = "MigrationFailed"
    MIGRATION_RETRY = "MigrationRetry"
    NO_MIGRATION = "NoMigration"
    # analysis
    GATE_PASSED = "GatePassed"
    GATE_FAILED = "GateFailed"
    GATE_INCONCLUSIVE = "GateInconclusive"
    GATE_ERROR = "GateError"
    GATE_MISSING = "GateMissing"
    GATE_INVALID = "GateInvalid"
    # abort and rollback
    ABORTED = "Aborted"
    TRAFFIC_DRAINED = "TrafficDrained"
    ROLLED_BACK = "RolledBack"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    RETRY = "Retry"
    # manual requests
    REQUEST_ACCEPTED = "RequestAccepted"
    REQUEST_IGNORED = "RequestIgnored"
    REQUEST_INVALID = "RequestInvalid"
    # workloadRef: adopting and releasing a Deployment
    WORKLOAD_ADOPTED = "WorkloadAdopted"
    WORKLOAD_MISSING = "WorkloadMissing"
    WORKLOAD_DRIFT = "WorkloadReplicasInManifest"
    WORKLOAD_RELEASING = "WorkloadReleasing"
    WORKLOAD_RELEASED = "WorkloadReleased"
    # webhooks and notifications
    WEBHOOK_FAILED = "WebhookFailed"
    NOTIFICATION_FAILED = "NotificationFailed"
    # ReleaseTrain: the run of a version set, and each member in it
    RELEASE_STARTED = "ReleaseStarted"
    MEMBER_STARTED = "MemberStarted"
    MEMBER_WAITING = "MemberWaiting"
    MEMBER_UNCHANGED = "MemberUnchanged"
    MEMBER_PROMOTED = "MemberPromoted"
    MEMBER_FAILED = "MemberFailed"
    MEMBER_ROLLING_BACK = "MemberRollingBack"
    MEMBER_ROLLED_BACK = "MemberRolledBack"
    TRAIN_FROZEN = "TrainFrozen"
    TRAIN_HALTED = "TrainHalted"
    TRAIN_SUCCEEDED = "TrainSucceeded"
    TRAIN_FAILED = "TrainFailed"
    TRAIN_ABORTED = "TrainAborted"
    TRAIN_INVALID = "TrainInvalid"
    # spec and adapters
    INVALID_SPEC = "InvalidSpec"
    APPLY_FAILED = "ApplyFailed"
    # rollout semantics (docs/rollout-semantics.md)
    FULL_PROMOTION = "FullPromotion"
    RETURNED_TO_STABLE = "ReturnedToStable"
    ROLLBACK_WINDOW = "RollbackWindow"
    MIGRATION_WAITING = "MigrationWaiting"
    ROUTE_REASSERTED = "RouteReasserted"


class FleetConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    # kstatus (Flux, cli-utils): Reconciling -> InProgress, Stalled -> Failed
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class FleetReason(StrEnum):
    """FleetRollout Event, history and condition reasons."""

    STARTED = "FleetStarted"
    WAVE_STARTED = "WaveStarted"
    APPROVAL_NEEDED = "ApprovalNeeded"
    APPROVED = "WaveApproved"
    MEMBER_PATCHING = "MemberPatching"
    MEMBER_PATCHED = "MemberPatched"
    MEMBER_SUCCEEDED = "MemberSucceeded"
    MEMBER_FAILED = "MemberFailed"
    MEMBER_ALREADY_AT_VERSION = "MemberAlreadyAtVersion"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    MEMBER_REACHABLE = "MemberReachable"
    MEMBER_ROLLING_BACK = "MemberRollingBack"
    MEMBER_ROLLED_BACK = "MemberRolledBack"
    SOAKING = "WaveSoaking"
    WAVE_SUCCEEDED = "WaveSucceeded"
    WAVE_FAILED = "WaveFailed"
    HALTED = "FleetHalted"
    ROLLING_BACK = "FleetRollingBack"
    ROLLED_BACK = "FleetRolledBack"
    SUCCEEDED = "FleetSucceeded"
    ABORTED = "Aborted"
    INVALID = "FleetInvalid"
    REQUEST_ACCEPTED = "RequestAccepted"
    REQUEST_IGNORED = "RequestIgnored"
