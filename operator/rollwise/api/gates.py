"""MetricGate and ClusterMetricGate: what "healthy" means, owned by platform admins."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from rollwise.api.base import ApiModel, one_of
from rollwise.api.durations import Duration
from rollwise.api.service import PodTemplate

KIND = "MetricGate"
PLURAL = "metricgates"
CLUSTER_KIND = "ClusterMetricGate"
CLUSTER_PLURAL = "clustermetricgates"


class GateArg(ApiModel):
    """An argument whose value comes from the ProgressiveService's gate reference."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    default: str | None = None


class PrometheusProvider(ApiModel):
    address: str = Field(pattern=r"^https?://[^\s]+$")
    query: str = Field(min_length=1)
    timeout: Duration = "10s"


class JobProvider(ApiModel):
    """A Job run per measurement: it completing is a pass, it failing a failure.

    `{{args.X}}`, `{{canary.revision}}`, ... are substituted in the containers' `env[].value`
    only, never in command or args: a value reaches the script as data ($VAR), never as code.
    """

    template: PodTemplate
    backoff_limit: int = Field(default=0, ge=0, le=10)
    active_deadline_seconds: int = Field(default=300, ge=1, le=86400)
    # The Job is also deleted with its ProgressiveService (ownerReference); this bounds how long
    # finished measurement Jobs and their pods stay for `kubectl logs`.
    ttl_seconds_after_finished: int = Field(default=600, ge=0, le=604800)


class WebHeader(ApiModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    value: str = Field(max_length=4096, pattern=r"^[^\r\n]*$")


class WebProvider(ApiModel):
    """An HTTP GET or POST answering JSON; `jsonPath` picks the gate value out of it.

    Placeholders are substituted in `url` (percent-encoded) and `body` (JSON-string-escaped);
    headers are sent as written. Which URLs a gate may call is the operator's
    `--web-gate-allow` setting (namespaced MetricGates: only those; ClusterMetricGates: any).
    """

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    method: Literal["GET", "POST"] = "GET"
    headers: list[WebHeader] = Field(default_factory=list, max_length=20)
    body: str | None = Field(default=None, max_length=16384)
    json_path: str = Field(min_length=1, max_length=1024)
    timeout: Duration = "10s"


class ProviderKind(StrEnum):
    """A gate's metric provider: the one-of of `spec.provider`."""

    PROMETHEUS = "prometheus"
    JOB = "job"
    WEB = "web"


ONE_PROVIDER = one_of("provider", *ProviderKind)


class MetricProvider(ApiModel):
    """Exactly one provider: prometheus, job or web."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [ONE_PROVIDER.rule()]})
    prometheus: PrometheusProvider | None = None
    job: JobProvider | None = None
    web: WebProvider | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MetricProvider:
        ONE_PROVIDER.check(self)
        return self

    @property
    def kind(self) -> ProviderKind:
        if self.job is not None:
            return ProviderKind.JOB
        if self.web is not None:
            return ProviderKind.WEB
        return ProviderKind.PROMETHEUS


class ThresholdRange(ApiModel):
    """Pass when min <= value <= max; no expression is ever evaluated."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.min) || has(self.max)",
                    "message": "thresholdRange needs min, max or both",
                },
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "thresholdRange.min must not exceed max",
                },
            ]
        }
    )
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("thresholdRange needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("thresholdRange.min must not exceed max")
        return self


class MetricGateSpec(ApiModel):
    """How to measure (provider) and what passes (thresholdRange; a Job gate's Job decides)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.provider.job) || has(self.thresholdRange)",
                    "message": "thresholdRange is required for prometheus and web gates",
                },
                {
                    "rule": "!has(self.provider.job) || !has(self.thresholdRange)",
                    "message": "a job gate passes when its Job completes: remove thresholdRange",
                },
            ]
        }
    )
    args: list[GateArg] = Field(default_factory=list)
    interval: Duration = "30s"
    count: int = Field(default=0, ge=0)
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=1, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    provider: MetricProvider
    threshold_range: ThresholdRange | None = None

    @model_validator(mode="after")
    def _threshold_fits_provider(self) -> MetricGateSpec:
        if self.provider.job is None and self.threshold_range is None:
            raise ValueError("thresholdRange is required for prometheus and web gates")
        if self.provider.job is not None and self.threshold_range is not None:
            raise ValueError("a job gate passes when its Job completes: remove thresholdRange")
        return self
