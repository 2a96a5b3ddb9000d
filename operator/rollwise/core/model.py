"""Plain data that crosses the core's boundary: what was observed, and the Plan to apply.

The core never talks to the cluster. Adapters translate the world into `Observed` and a `Plan`
back into API calls; every action is derived from observed state, so applying a Plan twice, or
half of it before a crash, is repaired by the next pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from rollwise.api.gates import MetricGateSpec, ProviderKind
from rollwise.api.service import PodTemplate
from rollwise.api.service_status import ServiceStatus, Verdict


@dataclass(frozen=True)
class ReplicaSetState:
    """One ReplicaSet of this service (owned by it), summarised."""

    revision: str
    replicas: int  # spec.replicas
    ready_replicas: int = 0
    available_replicas: int = 0
    pods_failed: int = 0  # pods of this revision in phase Failed or crash-looping
    # What its pods that are not ready are doing, in words ("" if all are ready): for the
    # reason of a progress deadline.
    not_ready: str = ""


@dataclass(frozen=True)
class JobState:
    """The migration Job of one revision."""

    name: str
    revision: str
    owned: bool  # its ownerReference names this ProgressiveService's uid
    succeeded: bool = False
    failed: bool = False
    failure_reason: str | None = None  # the Job condition's reason and the pod's, for humans
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failed_pods: int = 0


@dataclass(frozen=True)
class GateJobState:
    """A measurement Job of a job gate (found by its deterministic name), summarised."""

    name: str
    owned: bool
    succeeded: bool = False
    failed: bool = False
    # The Job condition's reason and message, and the failed pod's termination, for humans.
    failure_reason: str | None = None
    # The last lines of the failed pod's log (bounded), when the kubelet serves them.
    log_tail: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class WebRequest:
    """One HTTP request of a web gate, placeholders already substituted."""

    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    body: str | None
    json_path: str
    # (header, Secret name, key): values the provider reads when it sends, never the core.
    secret_headers: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class GateAuth:
    """A Prometheus gate's credential, as Secret references (read by the provider)."""

    bearer: tuple[str, str] | None = None  # (Secret name, key)
    basic_user: str | None = None
    basic_password: tuple[str, str] | None = None


@dataclass(frozen=True)
class RangeQuery:
    """A comparison gate's second query and the window both are sampled over."""

    stable_query: str  # the query for stable's revision (GateQuery.query is the canary's)
    start: datetime
    end: datetime
    step_s: float


@dataclass(frozen=True)
class GateQuery:
    """A gate measurement the core wants taken now, with its query already resolved."""

    key: str  # gate identity in status: "<name>" or "cluster:<name>", plus "@bg" for background
    gate: str
    background: bool
    address: str  # Prometheus' address, or the web gate's URL
    query: str  # as shown in status: the PromQL, or "GET <url> jsonPath <path>"
    timeout_s: float
    provider: ProviderKind = ProviderKind.PROMETHEUS  # or web (a job gate is never queried)
    web: WebRequest | None = None
    # A ClusterMetricGate (platform-owned: any URL) or a namespaced MetricGate (only the URLs
    # the operator's --web-gate-allow names).
    cluster: bool = False
    namespace: str = ""  # the ProgressiveService's, for messages about a namespaced gate
    comparison: RangeQuery | None = None  # a comparison gate: canary and stable sampled
    # Provider parameters besides the query: influxdb's ("db", ...), graphite's ("from", ...).
    params: tuple[tuple[str, str], ...] = ()
    auth: GateAuth | None = None  # a Prometheus gate's credential from Secrets


@dataclass(frozen=True)
class MetricSample:
    """The outcome of one GateQuery: a value, no value (no data), or an error."""

    key: str
    query: str
    measured_at: datetime
    value: float | None = None  # None, NaN or +-Inf: no data
    error: str | None = None  # Prometheus unreachable, bad query, several series, timeout
    # A provider that judges by itself (a job gate's Job: Complete or Failed), not by a value.
    outcome: Verdict | None = None
    message: str | None = None  # why there is no value, or the Job's failure and log tail
    # A comparison gate's per-interval samples, one tuple per revision (NaN kept: no data).
    canary_values: tuple[float, ...] | None = None
    stable_values: tuple[float, ...] | None = None


class Action(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class ManualRequest:
    """A person's request, read from the `rollwise.dev/request` annotation."""

    id: str
    action: Action
    by: str
    # promote only: `full` skips the remaining steps, pauses and analysis; `force` also
    # promotes a RolledBack revision.
    full: bool = False
    force: bool = False


@dataclass(frozen=True)
class WorkloadState:
    """The Deployment a workloadRef names, summarised (its template goes into the spec)."""

    name: str
    replicas: int  # its spec.replicas
    ready_replicas: int = 0
    # Labelled as ours and our finalizer on the ProgressiveService: the handover has begun.
    adopted: bool = False
    # Someone's applied manifest sets spec.replicas: GitOps would show the 0 we hold as drift.
    manifest_sets_replicas: bool = False


@dataclass(frozen=True)
class HookOutcome:
    """What one HTTP attempt of a webhook call or notification got: a status code or an error."""

    id: str
    attempt: int
    at: datetime
    code: int | None = None
    error: str | None = None  # connection refused, timeout, ...

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


@dataclass(frozen=True)
class Observed:
    """Everything decide() may know about the world, gathered in one pass."""

    namespace: str
    name: str
    generation: int
    replica_sets: dict[str, ReplicaSetState] = field(default_factory=dict)  # by revision
    jobs: dict[str, JobState] = field(default_factory=dict)  # by revision
    gate_jobs: dict[str, GateJobState] = field(default_factory=dict)  # by Job name
    # Gate specs by gate identity ("<name>" or "cluster:<name>"); None when it does not exist.
    gates: dict[str, MetricGateSpec | None] = field(default_factory=dict)
    # Why a gate that exists cannot be used (its spec does not validate), by gate identity;
    # such a gate is None in `gates` and is reported as invalid, not as missing.
    gate_errors: dict[str, str] = field(default_factory=dict)
    samples: tuple[MetricSample, ...] = ()
    request: ManualRequest | None = None
    request_error: str | None = None  # the annotation exists but could not be read
    # The three Services read back in the terms of EnsureServices; None when any is missing.
    services: EnsureServices | None = None
    # The canary weight a traffic router currently has; None for the replicas router.
    router_weight: int | None = None
    # The share of stable's requests the router copies to the canary; None when unknown.
    router_mirror: int | None = 0
    # spec.workloadRef's Deployment; None when there is none or it could not be found.
    workload: WorkloadState | None = None
    # The ProgressiveService is being deleted (only a workloadRef's finalizer holds it).
    deleting: bool = False
    # Webhook and notification attempts that finished since their entry was last written.
    hook_outcomes: tuple[HookOutcome, ...] = ()
    # Objects the spec names that do not exist (its route object), each as a sentence.
    missing_references: tuple[str, ...] = ()


# ------------------------------------------------------------------ actions (the Plan's verbs)


@dataclass(frozen=True)
class ScaleReplicaSet:
    """Create the revision's ReplicaSet from spec.template if missing, else scale it."""

    revision: str
    replicas: int


@dataclass(frozen=True)
class DeleteReplicaSet:
    revision: str


@dataclass(frozen=True)
class EnsureServices:
    """Services `<name>`, `<name>-stable`, `<name>-canary` with these revision selectors.

    `main_revisions` is what `<name>` selects: `()` means every pod of the service (while traffic
    may reach the canary), `(stable,)` only the stable revision (steady state, and at once when an
    abort drains the canary: how the replicas router sets weight 0 without waiting for pods).
    """

    stable_revision: str
    canary_revision: str | None
    main_revisions: tuple[str, ...]


@dataclass(frozen=True)
class SetRouterWeight:
    """Set the canary weight at a traffic router (gatewayAPI, nginx, istio), and the share of
    stable's requests copied to the canary (`mirror`, gatewayAPI only; 0: no copies)."""

    stable_revision: str
    canary_revision: str | None
    weight: int
    mirror: int = 0


@dataclass(frozen=True)
class CreateMigrationJob:
    """Create the migration Job from spec.migration; on AlreadyExists adopt it only if ours.

    The name is deterministic per (revision, attempt), so a crash between creating the Job and
    recording it in status can never start a second migration: the retry meets AlreadyExists.
    """

    revision: str
    job_name: str


@dataclass(frozen=True)
class CreateGateJob:
    """Create one measurement Job of a job gate; on AlreadyExists adopt it only if ours.

    The name is deterministic per (revision, gate, step, gate start, measurement index), so a
    restarted operator adopts the Job it created before its status write instead of starting
    a second one. `template` has the gate's placeholders substituted in env values.
    """

    job_name: str
    revision: str
    gate: str
    template: PodTemplate
    backoff_limit: int
    active_deadline_seconds: int
    ttl_seconds_after_finished: int


@dataclass(frozen=True)
class DeleteJob:
    """Delete one of this service's Jobs (a measurement no longer awaited, a migration a newer
    version stops); only if ours, its pods with it. Gone already is done."""

    job_name: str
    # Foreground: the Job stays (being deleted) until its pods are gone, so nothing sees it
    # ended while its pods still run (a stopped migration).
    foreground: bool = False


@dataclass(frozen=True)
class AdoptWorkload:
    """Label the workloadRef's Deployment as ours (its events wake this service) and add the
    finalizer that makes a deletion hand its pods back before rollwise's go."""

    name: str


@dataclass(frozen=True)
class ScaleWorkload:
    """Scale the workloadRef's Deployment through its scale subresource (never its spec)."""

    name: str
    replicas: int


@dataclass(frozen=True)
class ReleaseWorkload:
    """The Deployment serves again: remove our label from it and our finalizer from the
    ProgressiveService, which the garbage collector then deletes with everything it owns."""

    name: str


PlanAction = (
    ScaleReplicaSet
    | DeleteReplicaSet
    | EnsureServices
    | SetRouterWeight
    | CreateMigrationJob
    | CreateGateJob
    | DeleteJob
    | AdoptWorkload
    | ScaleWorkload
    | ReleaseWorkload
)


_LINE_BREAK = re.compile(r"[ \t]*[\r\n]+[ \t]*")


def one_line(text: str) -> str:
    """Text for one table cell or one Event line: line breaks (with the indentation around
    them) and tabs as one space, spacing within a line kept."""
    return _LINE_BREAK.sub(" ", text).replace("\t", " ").strip()


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event to post on the ProgressiveService. Its message is one line: a
    multi-line query quoted in it would break `kubectl get events` and `describe` tables."""

    reason: str
    message: str
    warning: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message))


@dataclass(frozen=True)
class HookCall:
    """One HTTP POST of a webhook or notification, sent only once the status recording it is
    written (so its id, the payload's checksum, is durable before anything is sent)."""

    id: str
    attempt: int
    name: str
    type: str  # a WebhookType, or "notification"
    url: str  # empty when it comes from a Secret: the sender reads it, the core never sees it
    body: str
    content_type: str
    timeout_s: float
    last_attempt: bool  # no retry after this one (confirm* hooks: never true)
    url_secret: tuple[str, str] | None = None  # (Secret name, key) in the service's namespace
    headers: tuple[tuple[str, str], ...] = ()  # the team's headers, as written
    # (header, Secret name, key) in the service's namespace: read by the sender, never the core.
    secret_headers: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    """What to do now, the status to write, and when to look again."""

    actions: tuple[PlanAction, ...]
    status: ServiceStatus
    events: tuple[EventRecord, ...] = ()
    requeue_after: float | None = None  # seconds; None: wait for a watch event
    calls: tuple[HookCall, ...] = ()  # sent after the status write, off the pass's thread
