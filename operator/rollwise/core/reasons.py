"""Every condition type and every condition/Event reason, in one place, as string enums (a
mistyped member is an AttributeError and a mypy error, never a new reason)."""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    PAUSED = "Paused"
    MIGRATION_COMPLETE = "MigrationComplete"


class Reason(StrEnum):
    # rollout lifecycle
    ROLLOUT_STARTED = "RolloutStarted"
    INITIAL_DEPLOY = "InitialDeploy"
    STEP_COMPLETED = "StepCompleted"
    WEIGHT_SET = "WeightSet"
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
    # spec and adapters
    INVALID_SPEC = "InvalidSpec"
    APPLY_FAILED = "ApplyFailed"
