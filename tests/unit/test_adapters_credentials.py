"""Credentials from Secret references: read by name in the object's namespace, used for the
request only, and scrubbed from every text the operator shows (log lines, Events, errors)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.credentials import CredentialError, SecretReader, SecretValues
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.webhooks import HookMetrics, HookSender
from rollwise.api.service import ServiceSpec
from rollwise.controller.logs import JsonFormatter
from tests.harness.receiver import Receiver
from tests.harness.wait import wait_for
from tests.unit.test_adapters_webhooks import KEY, Woken, call

MARKER = "tok3nMARKERq1w2e3r4"


class Secrets:
    """The hub API as SecretReader reads it: Secrets by (namespace, name)."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]], status: int = 0) -> None:
        self.secrets = secrets
        self.status = status
        self.reads: list[tuple[str, str]] = []

    def get(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((namespace, name))
        if self.status:
            raise AdapterError(f"Secret {namespace}/{name}", "refused", status=self.status)
        data = self.secrets.get((namespace, name))
        if data is None:
            return None
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def test_a_value_is_read_by_name_in_the_given_namespace_and_remembered_for_scrubbing() -> None:
    seen = SecretValues()
    api = Secrets({("shop", "hooks"): {"url": f"https://hooks.example/{MARKER}"}})

    value = SecretReader(api, "rollwise-system", seen).value("shop", "hooks", "url")

    assert value.endswith(MARKER) and api.reads == [("shop", "hooks")]
    assert MARKER not in seen.scrub(f"cannot reach {value}")


@pytest.mark.parametrize(
    ("api", "why"),
    [
        (Secrets({}), "does not exist"),
        (Secrets({("shop", "hooks"): {"other": MARKER}}), "no such key"),
        (Secrets({}, status=403), "may not read it (chart value secretRefs.enabled"),
    ],
)
def test_an_unreadable_reference_names_the_secret_and_key_never_a_value(
    api: Secrets, why: str
) -> None:
    with pytest.raises(CredentialError, match=r"Secret shop/hooks key url: ") as err:
        SecretReader(api, "rollwise-system", SecretValues()).value("shop", "hooks", "url")

    assert why in str(err.value) and MARKER not in str(err.value)


def test_a_webhook_url_from_a_secret_is_read_in_the_services_namespace_and_called(
    receiver: Receiver,
) -> None:
    api = Secrets({("shop", "hooks"): {"url": receiver.url(f"/ops?token={MARKER}")}})
    hooks = HookSender(
        wake=Woken(),
        metrics=HookMetrics(CollectorRegistry()),
        policy=OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True),
        secrets=SecretReader(api, "rollwise-system", SecretValues()),
    )

    hooks.send(KEY, [replace(call(""), url_secret=("hooks", "url"))])
    (outcome,) = wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="an outcome")

    assert outcome.ok and api.reads == [("shop", "hooks")]
    assert receiver.received(f"/ops?token={MARKER}")


def test_a_missing_url_secret_fails_the_call_saying_which_secret(receiver: Receiver) -> None:
    hooks = HookSender(
        wake=Woken(),
        policy=OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True),
        secrets=SecretReader(Secrets({}), "rollwise-system", SecretValues()),
    )

    hooks.send(KEY, [replace(call(""), url_secret=("hooks", "url"))])
    (outcome,) = wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="an outcome")

    assert not outcome.ok and "Secret shop/hooks key url: the Secret does not exist" in (
        outcome.error or ""
    )


def test_a_log_line_never_holds_a_secret_value_read_before() -> None:
    SecretReader(Secrets({("shop", "t"): {"k": MARKER}}), "ns").value("shop", "t", "k")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "failed: %s", (MARKER,), None)

    line = JsonFormatter().format(record)

    assert MARKER not in json.loads(line)["message"]


def test_a_webhook_sets_exactly_one_of_url_and_url_secret_ref() -> None:
    base = {
        "replicas": 1,
        "version": "1",
        "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}},
        "service": {"port": 80},
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    }
    hook = {"name": "h", "type": "rollback"}
    with pytest.raises(ValueError, match="exactly one of url, urlSecretRef"):
        ServiceSpec.model_validate(
            {**base, "strategy": {"canary": {"steps": [], "webhooks": [hook]}}}
        )
    ref = {**hook, "urlSecretRef": {"name": "hooks", "key": "url"}}
    spec = ServiceSpec.model_validate(
        {**base, "strategy": {"canary": {"steps": [{"setWeight": 5}], "webhooks": [ref]}}}
    )
    assert spec.strategy.canary.webhooks[0].url_secret_ref is not None
