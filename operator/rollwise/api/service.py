"""ProgressiveService: the spec a team declares (pod template or workloadRef, version, steps,
analysis, strategy) and the resource itself. Its traffic routing is in routing.py, its
webhooks and notifications in hooks.py, its status in service_status.py.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from rollwise.api.base import ApiModel, one_of
from rollwise.api.durations import Duration
from rollwise.api.hooks import Notifications, Webhook, check_unique, unique_names
from rollwise.api.routing import ReplicaRouting, TrafficRouting
from rollwise.api.service_status import PREVIOUS_STABLES_LIMIT, ServiceStatus

KIND = "ProgressiveService"
PLURAL = "progressiveservices"
SHORT_NAMES = ["psvc"]
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


class AdaptiveStep(ApiModel):
    """Raise the canary's weight from minWeight to maxWeight as fast as the gates allow.

    At each weight the gates measure for at least `interval`; then one decision: every gate
    passed, so the weight rises by minStep plus (maxStep - minStep) times the smallest margin
    of the gates (how far each one's value is from failing it, 0 to 1); a gate without a
    verdict yet or Inconclusive or Error, so the weight holds (at most maxHolds times, then the
    rollout rolls back); a gate breached its limits, so the rollout rolls back. The step
    completes once the gates pass at maxWeight. Every decision and its numbers are in history.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minWeight <= self.maxWeight",
                    "message": "adaptive.minWeight must not exceed maxWeight",
                },
                {
                    "rule": "self.minStep <= self.maxStep",
                    "message": "adaptive.minStep must not exceed maxStep",
                },
            ]
        }
    )
    min_weight: int = Field(ge=1, le=100, description="The weight the step starts at.")
    max_weight: int = Field(ge=1, le=100, description="The weight the step ends at.")
    min_step: int = Field(
        default=5, ge=1, le=100, description="The rise after a pass with no margin."
    )
    max_step: int = Field(
        default=25, ge=1, le=100, description="The rise after a pass with full margin."
    )
    interval: Duration = Field(
        default="1m", description="The least time at each weight before a decision."
    )
    max_holds: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Decisions without a pass (no data, errors) tolerated in the step before "
        "it rolls back: the step never waits for evidence without end.",
    )
    gates: list[GateRef] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveStep:
        if self.min_weight > self.max_weight:
            raise ValueError("adaptive.minWeight must not exceed maxWeight")
        if self.min_step > self.max_step:
            raise ValueError("adaptive.minStep must not exceed maxStep")
        return self


ONE_STEP = one_of("each step", "setWeight", "pause", "analysis", "setMirror", "adaptive")


class CanaryStep(ApiModel):
    """Exactly one of setWeight, pause, analysis, setMirror, adaptive."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [ONE_STEP.rule()]})
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
    adaptive: AdaptiveStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        ONE_STEP.check(self)
        return self


class BackgroundAnalysis(ApiModel):
    """Gates evaluated through every step from startingStep on."""

    gates: list[GateRef] = Field(min_length=1, max_length=10)
    starting_step: int = Field(default=0, ge=0)


_SURGE_DOC = (
    "a count or a percentage of replicas ('25%', rounded up for maxSurge and down for "
    "maxUnavailable, as Deployments do)"
)
_PERCENT = r"^(100|[1-9]?[0-9])%$"
_MIRROR_ROUTER = (
    "setMirror steps need trafficRouting.gatewayAPI: only a data plane can copy requests"
)


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
        default=None, max_length=16, json_schema_extra=unique_names("webhook")
    )

    @model_validator(mode="after")
    def _unique_webhooks(self) -> CanaryStrategy:
        check_unique("webhook", [w.name for w in self.webhooks or ()])
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


class BlueGreenStrategy(ApiModel):
    """Blue-green: the new revision at full size behind the preview Service `<name>-canary`,
    analysis on it, then the switch: the active Service `<name>` (or, under a traffic router,
    the route) moves to it in one write; analysis after the switch switches back on failure;
    the old revision is scaled down scaleDownDelaySeconds after the switch.

    It runs as canary steps (`kubectl rollwise status` shows them): setWeight 0 (the preview
    at full size), analysis (prePromotionAnalysis), pause until `promote` (unless
    autoPromotion), setWeight 100 (the switch), analysis (postPromotionAnalysis), pause
    scaleDownDelaySeconds; then promotion scales the old revision down. An abort at any point
    points the active Service back at the old revision, which kept its full size.
    """

    pre_promotion_analysis: AnalysisStep | None = None
    auto_promotion: bool = Field(
        default=False,
        description="Switch as soon as prePromotionAnalysis passed; false: wait for "
        "`kubectl rollwise promote`.",
    )
    post_promotion_analysis: AnalysisStep | None = None
    scale_down_delay_seconds: int = Field(
        default=30,
        ge=0,
        le=86400,
        description="How long the old revision keeps its full size after the switch (a switch "
        "back within it is instant).",
    )
    traffic_routing: TrafficRouting = Field(
        default_factory=lambda: TrafficRouting(replicas=ReplicaRouting())
    )
    webhooks: list[Webhook] | None = Field(
        default=None, max_length=16, json_schema_extra=unique_names("webhook")
    )

    def as_canary(self) -> dict[str, Any]:
        """The canary strategy (wire form) this blue-green runs as."""
        steps: list[dict[str, Any]] = [{"setWeight": 0}]
        if self.pre_promotion_analysis is not None:
            steps.append({"analysis": self.pre_promotion_analysis.to_wire()})
        if not self.auto_promotion:
            steps.append({"pause": {}})
        steps.append({"setWeight": 100})
        if self.post_promotion_analysis is not None:
            steps.append({"analysis": self.post_promotion_analysis.to_wire()})
        if self.scale_down_delay_seconds:
            steps.append({"pause": {"duration": f"{self.scale_down_delay_seconds}s"}})
        canary: dict[str, Any] = {
            "steps": steps,
            "trafficRouting": self.traffic_routing.to_wire(),
        }
        if self.webhooks:
            canary["webhooks"] = [w.to_wire() for w in self.webhooks]
        return canary


class Strategy(ApiModel):
    """Exactly one of canary and blueGreen (a blue-green runs as the canary steps it implies:
    `canary` is filled in from it when the spec is read)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.canary) != has(self.blueGreen)",
                    "message": "strategy sets exactly one of canary, blueGreen",
                }
            ]
        }
    )
    # Typed as always present: code reads the canary steps, a blue-green's included.
    canary: CanaryStrategy = Field(default=None, validate_default=False)  # type: ignore[assignment]
    blue_green: BlueGreenStrategy | None = Field(default=None, alias="blueGreen")

    @model_validator(mode="before")
    @classmethod
    def _blue_green_as_canary(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        blue_green = data.get("blueGreen", data.get("blue_green"))
        canary = data.get("canary")
        if blue_green is None:
            if canary is None:
                raise ValueError("strategy sets exactly one of canary, blueGreen")
            return data
        if not isinstance(blue_green, BlueGreenStrategy):
            blue_green = BlueGreenStrategy.model_validate(blue_green)
        implied = CanaryStrategy.model_validate(blue_green.as_canary())
        if canary is not None:
            given = canary if isinstance(canary, CanaryStrategy) else None
            if given is None:
                given = CanaryStrategy.model_validate(canary)
            # A spec read back from its own wire form carries the implied canary: that is fine.
            if given != implied:
                raise ValueError("strategy sets exactly one of canary, blueGreen")
        return {"canary": implied, "blueGreen": blue_green}


class WorkloadRef(ApiModel):
    """An existing Deployment whose pod template rollwise rolls out (it keeps the Deployment at
    0 replicas while it manages the pods, and hands them back when released)."""

    api_version: str = Field(default="apps/v1", pattern=r"^apps/v1$")
    kind: str = Field(default="Deployment", pattern=r"^Deployment$")
    name: str = Field(min_length=1, max_length=253)


class RollbackWindow(ApiModel):
    """How far back a return to an earlier revision skips steps and analysis."""

    revisions: int = Field(ge=1, le=PREVIOUS_STABLES_LIMIT)


ONE_WORKLOAD = one_of(
    "spec", "template", "workloadRef", message="set exactly one of template and workloadRef"
)


class ServiceSpec(ApiModel):
    """What a team declares: the pod template (or a Deployment holding it), its version, and
    how to roll it out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                ONE_WORKLOAD.rule(),
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
        ONE_WORKLOAD.check(self)
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
