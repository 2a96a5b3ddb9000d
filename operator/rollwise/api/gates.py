"""MetricGate and ClusterMetricGate: what "healthy" means, owned by platform admins."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from rollwise.api.base import ApiModel
from rollwise.api.durations import Duration

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


class MetricProvider(ApiModel):
    prometheus: PrometheusProvider


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
    args: list[GateArg] = Field(default_factory=list)
    interval: Duration = "30s"
    count: int = Field(default=0, ge=0)
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=1, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    provider: MetricProvider
    threshold_range: ThresholdRange
