"""The Secrets a ProgressiveService names, looked up when the spec is applied: by name in its
own namespace, only their keys looked at, each problem naming the Secret and the field."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.references import missing_references
from rollwise.api.service import ServiceSpec
from tests.unit.core.world import spec_from

MARKER = "tok3nMARKERrefs1"


class Api:
    """Secrets by name in one namespace (`status`: every get refused with it)."""

    def __init__(self, secrets: dict[str, dict[str, str]], status: int = 0) -> None:
        self.secrets = secrets
        self.status = status
        self.gets: list[tuple[str, str | None, str]] = []

    def get(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.gets.append((resource.kind, namespace, name))
        if self.status:
            raise AdapterError(f"Secret {namespace}/{name}", "refused", status=self.status)
        data = self.secrets.get(name)
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def hooked() -> ServiceSpec:
    token = {"name": "Authorization", "valueSecretRef": {"name": "auth", "key": "token"}}
    return spec_from(
        strategy={
            "canary": {
                "steps": [{"setWeight": 50}],
                "webhooks": [
                    {"name": "a", "type": "event", "url": "http://h/", "headers": [token]}
                ],
            }
        },
        notifications={
            "when": ["Promoted"],
            "receivers": [
                {"name": "chat", "slack": {"urlSecretRef": {"name": "chat", "key": "url"}}},
                {"name": "ops", "webhook": {"url": "http://h/"}, "headers": [token]},
            ],
        },
    )


def test_present_secrets_with_their_keys_are_fine_and_each_is_read_once() -> None:
    api = Api({"auth": {"token": MARKER}, "chat": {"url": f"http://h/{MARKER}"}})

    assert missing_references(api, "shop", hooked()) == ()  # type: ignore[arg-type]
    assert api.gets == [("Secret", "shop", "auth"), ("Secret", "shop", "chat")]


def test_a_missing_secret_and_a_missing_key_are_each_named_with_the_field() -> None:
    api = Api({"auth": {"other": MARKER}})

    missing = missing_references(api, "shop", hooked())  # type: ignore[arg-type]

    assert missing == (
        "Secret shop/auth (spec.strategy.canary.webhooks[0].headers[0].valueSecretRef) "
        "has no key token",
        "Secret shop/chat (spec.notifications.receivers[0].slack.urlSecretRef) does not exist",
        "Secret shop/auth (spec.notifications.receivers[1].headers[0].valueSecretRef) "
        "has no key token",
    )
    assert not [m for m in missing if MARKER in m]


def test_secrets_the_operator_may_not_read_say_how_to_grant_it() -> None:
    missing = missing_references(Api({}, status=403), "shop", hooked())  # type: ignore[arg-type]

    assert len(missing) == 3
    assert all("cannot be read" in m and "secretRefs.enabled" in m for m in missing)


def test_another_failure_to_read_is_an_adapter_error_for_the_pass_to_retry() -> None:
    with pytest.raises(AdapterError):
        missing_references(Api({}, status=500), "shop", hooked())  # type: ignore[arg-type]
