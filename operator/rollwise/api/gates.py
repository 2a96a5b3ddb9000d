"""MetricGate and ClusterMetricGate: what "healthy" means, owned by platform admins."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from rollwise.api.base import ApiModel, one_of
from rollwise.api.durations import Duration, parse_duration
from rollwise.api.headers import WebHeader
from rollwise.api.secrets import SecretKeyRef
from rollwise.api.service import PodTemplate

KIND = "MetricGate"
PLURAL = "metricgates"
CLUSTER_KIND = "ClusterMetricGate"
CLUSTER_PLURAL = "clustermetricgates"


class GateArg(ApiModel):
    """An argument whose value comes from the ProgressiveService's gate reference."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    default: str | None = None
    # Inside a `=~`/`!~` matcher a value is regex-escaped (it matches itself only) unless the
    # gate's owner declares the argument a regex: then a team's value may widen the match.
    regex: bool = False


class BasicAuth(ApiModel):
    """HTTP basic authentication; the password from a Secret."""

    username: str = Field(min_length=1, max_length=256, pattern=r"^[^:\r\n]+$")
    password_secret_ref: SecretKeyRef


class PrometheusProvider(ApiModel):
    """A PromQL query; credentials from Secrets only (never in `address`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.bearerTokenSecretRef) || !has(self.basicAuth)",
                    "message": "set at most one of bearerTokenSecretRef, basicAuth",
                },
                {
                    "rule": "!self.address.matches('^https?://[^/]*@')",
                    "message": "no user or password in address: use basicAuth or "
                    "bearerTokenSecretRef",
                },
            ]
        }
    )
    address: str = Field(pattern=r"^https?://[^\s]+$")
    query: str = Field(min_length=1)
    timeout: Duration = "10s"
    bearer_token_secret_ref: SecretKeyRef | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> PrometheusProvider:
        if self.bearer_token_secret_ref is not None and self.basic_auth is not None:
            raise ValueError("set at most one of bearerTokenSecretRef, basicAuth")
        return self


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


class WebProvider(ApiModel):
    """An HTTP GET or POST answering JSON; `jsonPath` picks the gate value out of it.

    Placeholders are substituted in `url` (percent-encoded) and `body` (JSON-string-escaped);
    headers are sent as written. Which URLs a gate may call is the operator's outbound policy
    (namespaced MetricGates: under `--outbound-allow` only; ClusterMetricGates: any but
    link-local and metadata addresses).
    """

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    method: Literal["GET", "POST"] = "GET"
    headers: list[WebHeader] = Field(default_factory=list, max_length=20)
    body: str | None = Field(default=None, max_length=16384)
    json_path: str = Field(min_length=1, max_length=1024)
    timeout: Duration = "10s"


class InfluxDBProvider(ApiModel):
    """InfluxDB 1.x: an InfluxQL query over HTTP (`/query`). The gate value is the last row of
    its one series, which must select one field (e.g. `SELECT mean("value") FROM ...`).
    Placeholders are substituted like PromQL's: a value with a quote, brace or control
    character is refused."""

    address: str = Field(pattern=r"^https?://[^\s]+$")
    database: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.\-]+$")
    query: str = Field(min_length=1)
    timeout: Duration = "10s"


class GraphiteProvider(ApiModel):
    """Graphite's render API (`/render?format=json`). The gate value is the newest non-null
    datapoint of the target's one series (aggregate several, e.g. `sumSeries(...)`).
    Placeholder values must be one path node (letters, digits, `_`, `-`): a value can never
    add a node or a wildcard."""

    address: str = Field(pattern=r"^https?://[^\s]+$")
    target: str = Field(min_length=1, max_length=4096)
    from_: str = Field(
        default="-5min",
        alias="from",
        pattern=r"^-[0-9]+(s|min|h|d)$",
        description="How far back to read, in Graphite's relative form: -30s, -5min, -1h.",
    )
    timeout: Duration = "10s"


class ProviderKind(StrEnum):
    """A gate's metric provider: the one-of of `spec.provider`."""

    PROMETHEUS = "prometheus"
    JOB = "job"
    WEB = "web"
    INFLUXDB = "influxdb"
    GRAPHITE = "graphite"


ONE_PROVIDER = one_of("provider", *ProviderKind)


class MetricProvider(ApiModel):
    """Exactly one provider: prometheus, job, web, influxdb or graphite."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [ONE_PROVIDER.rule()]})
    prometheus: PrometheusProvider | None = None
    job: JobProvider | None = None
    web: WebProvider | None = None
    influxdb: InfluxDBProvider | None = None
    graphite: GraphiteProvider | None = None

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
        if self.influxdb is not None:
            return ProviderKind.INFLUXDB
        if self.graphite is not None:
            return ProviderKind.GRAPHITE
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


class Comparison(ApiModel):
    """Canary versus stable: the query is run once per revision (`{{revision}}` is the revision
    measured) as a range query over the same window, one sample per `step`, and a one-sided
    Mann-Whitney U test decides whether the canary is worse. It fails only when the test is
    significant (p < alpha) and the effect is at least `effectSize` (and the medians differ by
    at least `minDifference`, when set); fewer than `minSamples` samples on either side is
    Inconclusive, never a pass."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.step) >= duration('1s')",
                    "message": "comparison.step must be at least 1s",
                },
            ]
        }
    )
    window: Duration = Field(
        default="5m",
        description="How far back both revisions are sampled (never before the gate became "
        "active, so both sides cover the same time).",
    )
    step: Duration = Field(
        default="15s",
        description="One sample per step (the range query's resolution). Use the same "
        "duration in the query's rate() window, so that samples do not overlap.",
    )
    test: str = Field(
        default="MannWhitneyU",
        pattern=r"^MannWhitneyU$",
        description="The statistical test; MannWhitneyU (one-sided) is the one there is.",
    )
    worse: Literal["higher", "lower"] = Field(
        default="higher",
        description="Which canary values are a regression: higher (error rate, latency) or "
        "lower (success rate, throughput).",
    )
    alpha: float = Field(
        default=0.05,
        ge=0.0001,
        le=0.5,
        description="The significance level: the false-positive rate on an equal canary.",
    )
    min_samples: int = Field(
        default=10,
        ge=4,
        le=1000,
        description="Samples needed on each side; fewer is Inconclusive.",
    )
    effect_size: float = Field(
        default=0.6,
        ge=0.5,
        le=1.0,
        description="The smallest effect that fails the canary: the probability that a canary "
        "sample is worse than a stable one (0.5: no difference, 1: every one worse).",
    )
    min_difference: float | None = Field(
        default=None,
        ge=0,
        description="Also needed to fail: the medians differ by at least this much (in the "
        "query's unit), in the worse direction.",
    )

    @model_validator(mode="after")
    def _window_holds_samples(self) -> Comparison:
        step = parse_duration(self.step)
        if step < 1:
            raise ValueError("comparison.step must be at least 1s")
        if parse_duration(self.window) < step * self.min_samples:
            raise ValueError(
                f"comparison.window {self.window} holds fewer than minSamples "
                f"({self.min_samples}) steps of {self.step}: the gate could never pass"
            )
        if parse_duration(self.window) / step > 10000:
            raise ValueError("comparison.window / step is over 10000 samples; raise step")
        return self


class MetricGateSpec(ApiModel):
    """How to measure (provider) and what passes (thresholdRange; comparison: the canary
    against stable; a Job gate's Job decides)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.provider.job) || has(self.thresholdRange) || "
                    "has(self.comparison)",
                    "message": "thresholdRange (or comparison) is required for every provider "
                    "but job",
                },
                {
                    "rule": "!has(self.comparison) || (has(self.provider.prometheus) && "
                    "!has(self.thresholdRange))",
                    "message": "comparison needs the prometheus provider and no thresholdRange",
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
    comparison: Comparison | None = None

    @model_validator(mode="after")
    def _threshold_fits_provider(self) -> MetricGateSpec:
        if self.comparison is not None:
            if self.provider.prometheus is None or self.threshold_range is not None:
                raise ValueError("comparison needs the prometheus provider and no thresholdRange")
            return self
        if self.provider.job is None and self.threshold_range is None:
            raise ValueError(
                "thresholdRange (or comparison) is required for every provider but job"
            )
        if self.provider.job is not None and self.threshold_range is not None:
            raise ValueError("a job gate passes when its Job completes: remove thresholdRange")
        return self
