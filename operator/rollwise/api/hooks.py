"""A ProgressiveService's lifecycle webhooks and notifications: when they are called, where
they go, and the message templates.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from rollwise.api.base import ApiModel, one_of
from rollwise.api.durations import Duration, parse_duration
from rollwise.api.headers import HOOK_HEADERS, WebHeader, check_hook_headers
from rollwise.api.secrets import NO_METADATA_URL, URL_OR_SECRET, SecretKeyRef, one_of_url


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
HEADERS_LIMIT = 10
TIMEOUT_BOUNDS: JsonDict = {
    "rule": "!has(self.timeout) || (duration(self.timeout) >= duration('100ms') && "
    "duration(self.timeout) <= duration('60s'))",
    "message": "timeout must be between 100ms and 60s",
}


def timeout_within_bounds(timeout: str) -> None:
    if not 0.1 <= parse_duration(timeout) <= 60.0:
        raise ValueError(f"timeout {timeout!r} must be between 100ms and 60s")


class Webhook(ApiModel):
    """A lifecycle webhook: an HTTP POST of the rollout's state at one moment of the rollout."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [TIMEOUT_BOUNDS, URL_OR_SECRET, NO_METADATA_URL]
        }
    )
    name: str = Field(min_length=1, max_length=63, pattern=HOOK_NAME)
    type: WebhookType
    url: str | None = Field(default=None, max_length=2048, pattern=HOOK_URL)
    url_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The URL from a Secret in the service's namespace (a URL holding a token, "
        "as chat webhooks do, belongs there); exactly one of url, urlSecretRef.",
    )
    timeout: Duration = "10s"
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="preRollout: failed calls before the rollout is rolled back; postRollout, "
        "rollback, event: deliveries tried before giving up. confirm* hooks retry until 2xx.",
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)
    headers: list[WebHeader] = Field(
        default_factory=list, max_length=HEADERS_LIMIT, json_schema_extra=HOOK_HEADERS
    )

    @model_validator(mode="after")
    def _bounded_timeout(self) -> Webhook:
        timeout_within_bounds(self.timeout)
        one_of_url(self.url, self.url_secret_ref, f"webhook {self.name}")
        check_hook_headers(self.headers, f"webhook {self.name}")
        return self

    @property
    def blocking(self) -> bool:
        return self.type in BLOCKING_WEBHOOKS


def unique_names(what: str) -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": "self.all(x, self.exists_one(y, y.name == x.name))",
                "message": f"{what} names must be unique",
            }
        ]
    }


def check_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} name {name!r} is used twice; names must be unique")
        seen.add(name)


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

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [URL_OR_SECRET, NO_METADATA_URL]}
    )
    url: str | None = Field(default=None, max_length=2048, pattern=HOOK_URL)
    url_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The URL from a Secret in the service's namespace (a URL holding a token, "
        "as chat webhooks do, belongs there); exactly one of url, urlSecretRef.",
    )
    template: str | None = Field(
        default=None,
        max_length=4096,
        description="The request body; {{field}} is replaced by the payload field, JSON-string "
        f"escaped (no quotes added). Fields: {', '.join(TEMPLATE_FIELDS)}.",
    )

    @model_validator(mode="after")
    def _known_placeholders(self) -> WebhookReceiver:
        one_of_url(self.url, self.url_secret_ref, "a webhook receiver")
        for name in template_placeholders(self.template or ""):
            if name not in TEMPLATE_FIELDS:
                raise ValueError(
                    f"template placeholder {{{{{name}}}}} is unknown; use one of "
                    + ", ".join(TEMPLATE_FIELDS)
                )
        return self


class SlackReceiver(ApiModel):
    """A Slack incoming webhook (or anything Slack-compatible): `{"text": ..., "channel"?}`."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [URL_OR_SECRET, NO_METADATA_URL]}
    )
    url: str | None = Field(default=None, max_length=2048, pattern=HOOK_URL)
    url_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The URL from a Secret in the service's namespace (a URL holding a token, "
        "as chat webhooks do, belongs there); exactly one of url, urlSecretRef.",
    )
    channel: str | None = Field(default=None, max_length=80)

    @model_validator(mode="after")
    def _one_url(self) -> SlackReceiver:
        one_of_url(self.url, self.url_secret_ref, "a slack receiver")
        return self


ONE_RECEIVER = one_of("a receiver", "webhook", "slack")


class NotificationReceiver(ApiModel):
    """Where notifications go: exactly one of webhook, slack."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                ONE_RECEIVER.rule(),
                TIMEOUT_BOUNDS,
            ]
        }
    )
    name: str = Field(min_length=1, max_length=63, pattern=HOOK_NAME)
    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    timeout: Duration = "5s"
    max_attempts: int = Field(default=3, ge=1, le=10)
    headers: list[WebHeader] = Field(
        default_factory=list, max_length=HEADERS_LIMIT, json_schema_extra=HOOK_HEADERS
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> NotificationReceiver:
        ONE_RECEIVER.check(self)
        timeout_within_bounds(self.timeout)
        check_hook_headers(self.headers, f"receiver {self.name}")
        return self

    @property
    def url(self) -> str | None:
        target = self.webhook or self.slack
        assert target is not None
        return target.url

    @property
    def url_secret_ref(self) -> SecretKeyRef | None:
        target = self.webhook or self.slack
        assert target is not None
        return target.url_secret_ref


class Notifications(ApiModel):
    """Which transitions to tell, and to whom. Never blocks a rollout.

    The transitions are listed under `when`. The first spelling, `on`, is read by YAML 1.1
    parsers (kubectl's among them) as the boolean key `true`, so an unquoted `on:` never reaches
    the apiserver as `on`; it is still accepted when it does (quoted `"on":`, or JSON).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.when) != has(self.on)",
                    "message": "notifications lists its transitions under `when` (or the "
                    'deprecated, quoted "on"), exactly once',
                }
            ]
        }
    )
    when: list[Transition] | None = Field(
        default=None,
        min_length=1,
        max_length=7,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    on: list[Transition] | None = Field(
        default=None,
        min_length=1,
        max_length=7,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    receivers: list[NotificationReceiver] = Field(
        min_length=1, max_length=8, json_schema_extra=unique_names("receiver")
    )

    @model_validator(mode="after")
    def _unique_receivers(self) -> Notifications:
        check_unique("receiver", [r.name for r in self.receivers])
        if (self.when is None) == (self.on is None):
            raise ValueError(
                'notifications lists its transitions under `when` (or the deprecated, quoted "on")'
                ", exactly once"
            )
        if len(set(self.transitions)) != len(self.transitions):
            raise ValueError("notifications.when lists a transition twice")
        return self

    @property
    def transitions(self) -> list[Transition]:
        """The transitions to tell, whichever spelling listed them."""
        return list(self.when or self.on or ())
