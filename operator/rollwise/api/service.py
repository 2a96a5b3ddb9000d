"""ProgressiveService: one service, declared once; its rollout told in status."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from rollwise.api.base import ApiModel, StatusModel
from rollwise.api.durations import Duration, parse_duration

KIND = "ProgressiveService"
PLURAL = "progressiveservices"
SHORT_NAMES = ["psvc"]
PREVIOUS_STABLES_LIMIT = 10
HISTORY_LIMIT = 20
WEBHOOKS_LIMIT = 32  # webhook calls and notifications kept in status
MAX_NAME = 40  # <name>-migrate-<10-char revision>-<attempt> stays within 63

_OPEN = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)
_PRESERVE: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class Container(ApiModel):
    """A container as Kubernetes knows it; rollwise reads only name, image and env."""

    model_config = _OPEN | ConfigDict(json_schema_extra=_PRESERVE)
    name: str = Field(min_length=1)
    image: str = Field(min_length=1)


class PodSpec(ApiModel):
    """A core/v1 PodSpec; only the containers are checked here, the rest passes through."""

    model_config = _OPEN | ConfigDict(json_schema_extra=_PRESERVE)
    containers: list[Container] = Field(min_length=1)


class TemplateMetadata(ApiModel):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(ApiModel):
    """A core/v1 PodTemplateSpec."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: PodSpec


class ServicePorts(ApiModel):
    """The Services rollwise owns: `<name>`, `<name>-stable`, `<name>-canary`."""

    port: int = Field(default=80, ge=1, le=65535)
    target_port: int | str = Field(
        default=8080, json_schema_extra={"x-kubernetes-int-or-string": True}
    )


class MigrationSpec(ApiModel):
    """A Job run once per revision, before the new code gets traffic."""

    template: PodTemplate
    backoff_limit: int = Field(default=1, ge=0, le=20)
    active_deadline_seconds: int = Field(default=600, ge=1)
    concurrency_policy: Literal["Wait", "Replace"] = Field(
        default="Wait",
        description="One migration runs at a time per service. When a newer version's "
        "migration is due while an older version's Job still runs: Wait (until that Job "
        "ends) or Replace (delete it, its pods first, then start).",
    )


class PauseStep(ApiModel):
    """Wait for a duration, or for `promote` when there is none."""

    duration: Duration | None = None


class GateRef(ApiModel):
    """A MetricGate (or ClusterMetricGate with `cluster: true`) and its argument values."""

    name: str = Field(min_length=1, max_length=253)
    cluster: bool = False
    args: dict[str, str] = Field(default_factory=dict)


class AnalysisStep(ApiModel):
    gates: list[GateRef] = Field(min_length=1, max_length=10)


class CanaryStep(ApiModel):
    """Exactly one of setWeight, pause, analysis, setMirror."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.setWeight), has(self.pause), has(self.analysis),"
                    " has(self.setMirror)].filter(x, x).size() == 1",
                    "message": "each step sets exactly one of setWeight, pause, analysis, "
                    "setMirror",
                }
            ]
        }
    )
    set_weight: int | None = Field(default=None, ge=0, le=100)
    pause: PauseStep | None = None
    analysis: AnalysisStep | None = None
    set_mirror: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Copy this percentage of stable's requests to the canary (responses "
        "discarded) until a later setMirror changes it; promotion and abort set it to 0. "
        "gatewayAPI router only.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        given = [
            x is not None for x in (self.set_weight, self.pause, self.analysis, self.set_mirror)
        ]
        if sum(given) != 1:
            raise ValueError("each step sets exactly one of setWeight, pause, analysis, setMirror")
        return self


class BackgroundAnalysis(ApiModel):
    """Gates evaluated through every step from startingStep on."""

    gates: list[GateRef] = Field(min_length=1, max_length=10)
    starting_step: int = Field(default=0, ge=0)


HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"  # an RFC 7230 token, as Gateway API requires
COOKIE_VALUE = r"^[^;,\s\"\\]+$"  # RFC 6265 cookie-octets, no quoting


class HeaderMatch(ApiModel):
    """A request header the canary route requires (Gateway API HTTPHeaderMatch)."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    value: str = Field(min_length=1, max_length=4096)
    type: Literal["Exact", "RegularExpression"] = "Exact"


class CookieMatch(ApiModel):
    """A cookie the canary route requires, exactly name=value (on the Cookie header)."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    value: str = Field(min_length=1, max_length=1024, pattern=COOKIE_VALUE)


class CanaryMatch(ApiModel):
    """Requests with all these headers and cookies go to the canary while its weight is > 0."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.headers) ? size(self.headers) : 0)"
                    " + (has(self.cookies) ? size(self.cookies) : 0) >= 1",
                    "message": "a canary match needs at least one header or cookie",
                },
                {
                    "rule": "(has(self.headers) ? size(self.headers) : 0)"
                    " + (has(self.cookies) ? size(self.cookies) : 0) <= 16",
                    "message": "a canary match has at most 16 headers and cookies together "
                    "(Gateway API's limit of header matches)",
                },
            ]
        }
    )
    # None rather than [] when absent, so the wire form is what the user wrote.
    headers: list[HeaderMatch] | None = Field(default=None, max_length=16)
    cookies: list[CookieMatch] | None = Field(default=None, max_length=8)

    @model_validator(mode="after")
    def _not_empty(self) -> CanaryMatch:
        if not self.headers and not self.cookies:
            raise ValueError("a canary match needs at least one header or cookie")
        if len(self.headers or ()) + len(self.cookies or ()) > 16:
            raise ValueError("a canary match has at most 16 headers and cookies together")
        return self


class HTTPRouteRef(ApiModel):
    """The user's HTTPRoute: rollwise sets its stable/canary weights and owns its rules named
    rollwise-canary-<n> (canaryMatches)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.traefikNativeLB) || "
                    "(has(self.mirrorWith) && self.mirrorWith == 'TraefikService')",
                    "message": "traefikNativeLB applies to mirrorWith: TraefikService only",
                }
            ]
        }
    )

    http_route: str = Field(min_length=1)
    canary_matches: list[CanaryMatch] | None = Field(default=None, max_length=8)
    # None rather than the default when absent, so the wire form is what the user wrote.
    mirror_with: Literal["RequestMirror", "TraefikService"] | None = Field(
        default=None,
        description="How setMirror copies requests: RequestMirror, the standard "
        "HTTPRequestMirrorFilter (percent) on each rule routing to stable, for "
        "implementations that support it; TraefikService, a traefik.io TraefikService "
        "<name>-mirror (mirroring) that rollwise owns and puts in place of the stable "
        "backendRef while mirroring (Traefik implements no RequestMirror filter). "
        "Default RequestMirror.",
    )

    traefik_native_lb: bool | None = Field(
        default=None,
        alias="traefikNativeLB",
        description="mirrorWith: TraefikService only: set Traefik's nativeLB (the Services' "
        "ClusterIPs instead of their endpoints) on the TraefikService's Service references. Set "
        "it when your Traefik runs with nativeLBByDefault: Traefik v3.6 does not apply "
        "providers.kubernetesCRD.nativeLBByDefault to TraefikServices.",
    )

    @model_validator(mode="after")
    def _native_lb_with_traefik_service(self) -> HTTPRouteRef:
        if self.traefik_native_lb is not None and self.mirror_with != "TraefikService":
            raise ValueError("traefikNativeLB applies to mirrorWith: TraefikService only")
        return self

    @property
    def mirror_mode(self) -> Literal["RequestMirror", "TraefikService"]:
        """How setMirror copies requests; RequestMirror when mirrorWith is not set."""
        return self.mirror_with or "RequestMirror"


class IngressRef(ApiModel):
    ingress: str = Field(min_length=1)


class VirtualServiceRef(ApiModel):
    virtual_service: str = Field(min_length=1)


class ReplicaRouting(ApiModel):
    """Weight approximated by the canary's share of ready pods."""


class TrafficRouting(ApiModel):
    """Exactly one router. Immutable: switching routers mid-flight would orphan weights."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.replicas), has(self.gatewayAPI), has(self.nginx),"
                    " has(self.istio)].filter(x, x).size() == 1",
                    "message": "trafficRouting sets exactly one of replicas, gatewayAPI, "
                    "nginx, istio",
                },
                {
                    "rule": "self == oldSelf",
                    "message": "trafficRouting is immutable; create a new ProgressiveService "
                    "to change the router",
                },
            ]
        }
    )
    replicas: ReplicaRouting | None = None
    gateway_api: HTTPRouteRef | None = Field(default=None, alias="gatewayAPI")
    nginx: IngressRef | None = None
    istio: VirtualServiceRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TrafficRouting:
        given = [x is not None for x in (self.replicas, self.gateway_api, self.nginx, self.istio)]
        if sum(given) > 1:
            raise ValueError(
                "trafficRouting sets exactly one of replicas, gatewayAPI, nginx, istio"
            )
        return self

    @property
    def kind(self) -> str:
        """The router's name: replicas (the default), gatewayAPI, nginx or istio."""
        if self.gateway_api is not None:
            return "gatewayAPI"
        if self.nginx is not None:
            return "nginx"
        if self.istio is not None:
            return "istio"
        return "replicas"


_SURGE_DOC = (
    "a count or a percentage of replicas ('25%', rounded up for maxSurge and down for "
    "maxUnavailable, as Deployments do)"
)
_PERCENT = r"^(100|[1-9]?[0-9])%$"
_MIRROR_ROUTER = (
    "setMirror steps need trafficRouting.gatewayAPI: only a data plane can copy requests"
)


class WebhookType(StrEnum):
    """When a lifecycle webhook is called, and whether the rollout waits for its answer."""

    CONFIRM_ROLLOUT = "confirmRollout"  # blocks: before anything of the new revision runs
    PRE_ROLLOUT = "preRollout"  # blocks: after the migration, before the first step's traffic
    CONFIRM_PROMOTION = "confirmPromotion"  # blocks: after the last step, before promotion
    POST_ROLLOUT = "postRollout"  # notifies: the new revision was promoted
    ROLLBACK = "rollback"  # notifies: a rollback began (traffic drained)
    EVENT = "event"  # notifies: every lifecycle transition


BLOCKING_WEBHOOKS = frozenset(
    {WebhookType.CONFIRM_ROLLOUT, WebhookType.PRE_ROLLOUT, WebhookType.CONFIRM_PROMOTION}
)
HOOK_URL = r"^https?://[^\s/?#@]+(/[^\s#]*)?$"
HOOK_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_TIMEOUT_BOUNDS: JsonDict = {
    "rule": "!has(self.timeout) || (duration(self.timeout) >= duration('100ms') && "
    "duration(self.timeout) <= duration('60s'))",
    "message": "timeout must be between 100ms and 60s",
}


def _timeout_within_bounds(timeout: str) -> None:
    if not 0.1 <= parse_duration(timeout) <= 60.0:
        raise ValueError(f"timeout {timeout!r} must be between 100ms and 60s")


class Webhook(ApiModel):
    """A lifecycle webhook: an HTTP POST of the rollout's state at one moment of the rollout."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_TIMEOUT_BOUNDS]})
    name: str = Field(min_length=1, max_length=63, pattern=HOOK_NAME)
    type: WebhookType
    url: str = Field(max_length=2048, pattern=HOOK_URL)
    timeout: Duration = "10s"
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="preRollout: failed calls before the rollout is rolled back; postRollout, "
        "rollback, event: deliveries tried before giving up. confirm* hooks retry until 2xx.",
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _bounded_timeout(self) -> Webhook:
        _timeout_within_bounds(self.timeout)
        return self

    @property
    def blocking(self) -> bool:
        return self.type in BLOCKING_WEBHOOKS


def _unique_names(what: str) -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.all(x, self.exists_one(y, y.name == x.name))",
                "message": f"{what} names must be unique",
            }
        ]
    }


def _check_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} name {name!r} is used twice; names must be unique")
        seen.add(name)


class CanaryStrategy(ApiModel):
    """The canary steps and how pods move between revisions.

    maxSurge/maxUnavailable bound every move of pods between stable and canary under the
    replicas router (weight changes, promotion, abort): at most replicas+maxSurge pods exist,
    and at least replicas-maxUnavailable are ready. A traffic router sizes the canary beside a
    full stable, so only promotion and abort are bounded there.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.maxSurge) && has(self.maxUnavailable) && "
                    "string(self.maxSurge) in ['0', '0%'] && "
                    "string(self.maxUnavailable) in ['0', '0%'])",
                    "message": "maxSurge and maxUnavailable cannot both be 0: no pod could move",
                },
                {
                    "rule": "!self.steps.exists(s, has(s.setMirror)) || "
                    "(has(self.trafficRouting) && has(self.trafficRouting.gatewayAPI))",
                    "message": _MIRROR_ROUTER,
                },
            ]
        }
    )
    steps: list[CanaryStep] = Field(min_length=1, max_length=50)
    analysis: BackgroundAnalysis | None = None
    traffic_routing: TrafficRouting = Field(
        default_factory=lambda: TrafficRouting(replicas=ReplicaRouting())
    )
    max_surge: int | str = Field(
        default="25%",
        description=f"Extra pods allowed above replicas while pods move: {_SURGE_DOC}.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    max_unavailable: int | str = Field(
        default="25%",
        description=f"Ready pods allowed below replicas while pods move: {_SURGE_DOC}.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    webhooks: list[Webhook] | None = Field(
        default=None, max_length=16, json_schema_extra=_unique_names("webhook")
    )

    @model_validator(mode="after")
    def _unique_webhooks(self) -> CanaryStrategy:
        _check_unique("webhook", [w.name for w in self.webhooks or ()])
        return self

    @model_validator(mode="after")
    def _surge_is_a_count_or_percentage(self) -> CanaryStrategy:
        for field, value in (
            ("maxSurge", self.max_surge),
            ("maxUnavailable", self.max_unavailable),
        ):
            if isinstance(value, int) and value < 0:
                raise ValueError(f"{field} must not be negative")
            if isinstance(value, str) and not re.match(_PERCENT, value):
                raise ValueError(
                    f"{field} {value!r} is neither a count nor a percentage like '25%'"
                )
        if str(self.max_surge) in ("0", "0%") and str(self.max_unavailable) in ("0", "0%"):
            raise ValueError("maxSurge and maxUnavailable cannot both be 0: no pod could move")
        return self

    @model_validator(mode="after")
    def _mirror_needs_a_data_plane(self) -> CanaryStrategy:
        mirrors = any(step.set_mirror is not None for step in self.steps)
        if mirrors and self.traffic_routing.gateway_api is None:
            raise ValueError(_MIRROR_ROUTER)
        return self

    @model_validator(mode="after")
    def _background_starts_within_steps(self) -> CanaryStrategy:
        if self.analysis is not None and self.analysis.starting_step >= len(self.steps):
            raise ValueError(
                f"analysis.startingStep {self.analysis.starting_step} is past the last step; "
                f"use 0 to {len(self.steps) - 1}"
            )
        return self


class Strategy(ApiModel):
    canary: CanaryStrategy


class Transition(StrEnum):
    """Lifecycle transitions a notification (or an `event` webhook) is sent for."""

    STARTED = "Started"
    STEP_STARTED = "StepStarted"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    MIGRATION_FAILED = "MigrationFailed"


TEMPLATE_FIELDS = (
    "service",
    "namespace",
    "revision",
    "version",
    "phase",
    "step",
    "weight",
    "type",
    "name",
    "transition",
    "message",
    "checksum",
)
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def template_placeholders(template: str) -> list[str]:
    """The field names a `{{field}}` template refers to."""
    return PLACEHOLDER.findall(template)


class WebhookReceiver(ApiModel):
    """A generic HTTP receiver: the JSON payload, or `template` with `{{field}}` replaced."""

    url: str = Field(max_length=2048, pattern=HOOK_URL)
    template: str | None = Field(
        default=None,
        max_length=4096,
        description="The request body; {{field}} is replaced by the payload field, JSON-string "
        f"escaped (no quotes added). Fields: {', '.join(TEMPLATE_FIELDS)}.",
    )

    @model_validator(mode="after")
    def _known_placeholders(self) -> WebhookReceiver:
        for name in template_placeholders(self.template or ""):
            if name not in TEMPLATE_FIELDS:
                raise ValueError(
                    f"template placeholder {{{{{name}}}}} is unknown; use one of "
                    + ", ".join(TEMPLATE_FIELDS)
                )
        return self


class SlackReceiver(ApiModel):
    """A Slack incoming webhook (or anything Slack-compatible): `{"text": ..., "channel"?}`."""

    url: str = Field(max_length=2048, pattern=HOOK_URL)
    channel: str | None = Field(default=None, max_length=80)


class NotificationReceiver(ApiModel):
    """Where notifications go: exactly one of webhook, slack."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.webhook) != has(self.slack)",
                    "message": "a receiver sets exactly one of webhook, slack",
                },
                _TIMEOUT_BOUNDS,
            ]
        }
    )
    name: str = Field(min_length=1, max_length=63, pattern=HOOK_NAME)
    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    timeout: Duration = "5s"
    max_attempts: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _exactly_one(self) -> NotificationReceiver:
        if (self.webhook is None) == (self.slack is None):
            raise ValueError("a receiver sets exactly one of webhook, slack")
        _timeout_within_bounds(self.timeout)
        return self

    @property
    def url(self) -> str:
        target = self.webhook or self.slack
        assert target is not None
        return target.url


class Notifications(ApiModel):
    """Which transitions to tell, and to whom. Never blocks a rollout."""

    on: list[Transition] = Field(
        min_length=1, max_length=7, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    receivers: list[NotificationReceiver] = Field(
        min_length=1, max_length=8, json_schema_extra=_unique_names("receiver")
    )

    @model_validator(mode="after")
    def _unique_receivers(self) -> Notifications:
        _check_unique("receiver", [r.name for r in self.receivers])
        if len(set(self.on)) != len(self.on):
            raise ValueError("notifications.on lists a transition twice")
        return self


class WorkloadRef(ApiModel):
    """An existing Deployment whose pod template rollwise rolls out (it keeps the Deployment at
    0 replicas while it manages the pods, and hands them back when released)."""

    api_version: str = Field(default="apps/v1", pattern=r"^apps/v1$")
    kind: str = Field(default="Deployment", pattern=r"^Deployment$")
    name: str = Field(min_length=1, max_length=253)


class RollbackWindow(ApiModel):
    """How far back a return to an earlier revision skips steps and analysis."""

    revisions: int = Field(ge=1, le=PREVIOUS_STABLES_LIMIT)


class ServiceSpec(ApiModel):
    """What a team declares: the pod template (or a Deployment holding it), its version, and
    how to roll it out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.template) != has(self.workloadRef)",
                    "message": "set exactly one of template and workloadRef",
                },
                {
                    "rule": "has(self.workloadRef) == has(oldSelf.workloadRef)",
                    "message": "template and workloadRef cannot be swapped on a live service; "
                    "create a new ProgressiveService",
                },
            ]
        }
    )
    replicas: int = Field(default=1, ge=0, le=10000)
    version: str | None = Field(default=None, max_length=128)
    template: PodTemplate | None = None
    workload_ref: WorkloadRef | None = None
    service: ServicePorts = Field(default_factory=ServicePorts)
    migration: MigrationSpec | None = None
    strategy: Strategy
    progress_deadline_seconds: int = Field(default=600, ge=1)
    abort_scale_down_delay_seconds: int = Field(default=30, ge=0)
    rollback_window: RollbackWindow | None = Field(
        default=None,
        description="A revision that was stable within the last `revisions` promotions is "
        "promoted without steps or analysis when the spec returns to it (a fast rollback).",
    )
    notifications: Notifications | None = None
    release_train: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="A ReleaseTrain in this namespace that releases this service's version: "
        "while it lists this service, it sets version (and image, env) over this spec.",
    )

    @model_validator(mode="after")
    def _template_or_workload_ref(self) -> ServiceSpec:
        if (self.template is None) == (self.workload_ref is None):
            raise ValueError("set exactly one of template and workloadRef")
        return self

    def pod_template(self) -> PodTemplate:
        """The pod template to roll out; a workloadRef's is filled in from the Deployment
        (`with_template`) before any decision is made."""
        if self.template is None:
            raise ValueError("spec.template was not read from workloadRef yet")
        return self.template

    def with_template(self, template: PodTemplate) -> ServiceSpec:
        """This spec with the pod template read from its workloadRef."""
        return self.model_copy(update={"template": template})

    def resolved_version(self) -> str:
        """The declared version, else the first container's image tag, else "latest"."""
        if self.version:
            return self.version
        image = self.pod_template().spec.containers[0].image
        name, _, digest = image.rsplit("/", 1)[-1].partition("@")
        if ":" in name:
            return name.split(":", 1)[1]
        return digest[:19] if digest else "latest"


# ---------------------------------------------------------------- status


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
    # Set by a full promotion of the current canary (kept on the Healthy status it led to).
    full_promotion: FullPromotion | None = None
    # The canary weight on the route object (HTTPRoute, canary Ingress, VirtualService) as the
    # last pass read it back and, where it differed, wrote it (None under the replicas router).
    # It differs from canaryWeight while traffic is being drained or a step's weight is being
    # written; a change by someone else is set back at once (docs/rollout-semantics.md, rule 9).
    route_weight: int | None = None
    # The revisions that were stable before the current one, newest first (rollbackWindow).
    previous_stables: list[str] = Field(default_factory=list, max_length=PREVIOUS_STABLES_LIMIT)


class ProgressiveService(ApiModel):
    """The whole object as read from the cluster (metadata kept loosely)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )
    api_version: str = "rollwise.dev/v1alpha1"
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ServiceSpec
    status: ServiceStatus = Field(default_factory=ServiceStatus)
