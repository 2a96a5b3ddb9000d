"""Credentials from Secret references: read by name in the object's namespace, used for the
request only, and scrubbed from every text the operator shows (log lines, Events, errors)."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from rollwise.adapters.credentials import CredentialError, SecretReader, SecretValues
from rollwise.adapters.errors import AdapterError
from rollwise.adapters.outbound import OutboundPolicy
from rollwise.adapters.providers.comparison import ComparisonProvider
from rollwise.adapters.providers.prometheus import PrometheusProvider
from rollwise.adapters.providers.web import WebProvider
from rollwise.adapters.webhooks import HookMetrics, HookSender
from rollwise.api.service import ServiceSpec
from rollwise.controller.logs import JsonFormatter
from rollwise.core.model import GateAuth, GateQuery, RangeQuery, WebRequest
from tests.harness.receiver import Receiver
from tests.harness.wait import wait_for
from tests.unit.adapters.test_webhooks import KEY, Woken, call

MARKER = "tok3nMARKERq1w2e3r4"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


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


class Echo(BaseHTTPRequestHandler):
    """Answers a Prometheus-shaped scalar, and a JSON value for web gates; records headers."""

    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        Echo.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps(
            {"status": "success", "data": {"resultType": "scalar", "result": [0, "0.5"]}, "v": 1}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo() -> Iterator[str]:
    Echo.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_web_gate_header_and_a_prometheus_bearer_come_from_secrets_in_the_gates_namespace(
    echo: str,
) -> None:
    api = Secrets(
        {("shop", "slo"): {"token": MARKER}, ("rollwise-system", "prom"): {"t": "pt0ken1"}}
    )
    reader = SecretReader(api, "rollwise-system", SecretValues())
    policy = OutboundPolicy((echo + "/",), allow_loopback=True)
    web = WebRequest(
        url=echo + "/slo", method="GET", headers=(), body=None, json_path="$.v",
        secret_headers=(("Authorization", "slo", "token"),),
    )  # fmt: skip
    web_query = GateQuery(
        key="slo", gate="slo", background=False, address=web.url, query="GET", timeout_s=2,
        provider="web", web=web, cluster=False, namespace="shop",
    )  # fmt: skip
    prom_query = GateQuery(
        key="p", gate="p", background=False, address=echo, query="up", timeout_s=2,
        cluster=True, namespace="shop", auth=GateAuth(bearer=("prom", "t")),
    )  # fmt: skip

    web_sample = WebProvider(policy, secrets=reader).measure(web_query, NOW)
    prom_sample = PrometheusProvider(policy=policy, secrets=reader).measure(prom_query, NOW)

    assert web_sample.value == 1.0 and prom_sample.value == 0.5
    assert [s.get("authorization") for s in Echo.seen] == [MARKER, "Bearer pt0ken1"]
    assert ("shop", "slo") in api.reads and ("rollwise-system", "prom") in api.reads
    assert MARKER not in (web_sample.query + str(web_sample.error))


def test_a_gate_whose_secret_is_missing_errs_naming_it_and_sends_nothing(echo: str) -> None:
    reader = SecretReader(Secrets({}), "rollwise-system", SecretValues())
    query = GateQuery(
        key="p", gate="p", background=False, address=echo, query="up", timeout_s=2,
        cluster=False, namespace="shop", auth=GateAuth(basic_user="u", basic_password=("db", "pw")),
    )  # fmt: skip
    policy = OutboundPolicy((echo + "/",), allow_loopback=True)

    sample = PrometheusProvider(policy=policy, secrets=reader).measure(query, NOW)

    assert sample.error is not None
    assert "MetricGate shop/p: Secret shop/db key pw: the Secret does not exist" in sample.error
    assert Echo.seen == []


def test_a_url_secret_is_scrubbed_also_where_a_log_shows_only_its_path() -> None:
    seen = SecretValues()
    seen.remember(f"https://hooks.example.com/services/T0/{MARKER}?sig=abcdef123")

    line = seen.scrub(f'hooks.example.com:443 "POST /services/T0/{MARKER}?sig=abcdef123 HTTP/1.1"')

    assert MARKER not in line and "abcdef123" not in line


def test_webhook_headers_are_sent_with_their_secret_values_read_in_the_services_namespace(
    receiver: Receiver,
) -> None:
    seen = SecretValues()
    api = Secrets({("shop", "hooks"): {"token": f"Bearer {MARKER}"}})
    hooks = HookSender(
        wake=Woken(),
        policy=OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True),
        secrets=SecretReader(api, "rollwise-system", seen),
    )
    sent = replace(
        call(receiver.url("/ops")),
        headers=(("X-Team", "payments"),),
        secret_headers=(("Authorization", "hooks", "token"),),
    )

    hooks.send(KEY, [sent])
    (outcome,) = wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="an outcome")

    assert outcome.ok and api.reads == [("shop", "hooks")]
    (request,) = receiver.received("/ops")
    assert request.headers["authorization"] == f"Bearer {MARKER}"
    assert request.headers["x-team"] == "payments"
    assert request.headers["x-rollwise-checksum"] == sent.id, "the operator's own stay"
    assert MARKER not in seen.scrub(f"sent Authorization: Bearer {MARKER}")


@pytest.mark.parametrize(
    ("secrets", "why"),
    [
        ({}, "Secret shop/hooks key token: the Secret does not exist"),
        (
            {("shop", "hooks"): {"token": f"{MARKER}\nHost: admin.internal"}},
            "Secret shop/hooks key token: the value is not one line of text",
        ),
    ],
)
def test_a_header_secret_that_is_missing_or_not_one_line_fails_the_call_and_sends_nothing(
    receiver: Receiver, secrets: dict[tuple[str, str], dict[str, str]], why: str
) -> None:
    hooks = HookSender(
        wake=Woken(),
        policy=OutboundPolicy(("http://127.0.0.1:*/",), allow_loopback=True),
        secrets=SecretReader(Secrets(secrets), "rollwise-system", SecretValues()),
    )
    sent = replace(
        call(receiver.url("/ops")), secret_headers=(("Authorization", "hooks", "token"),)
    )

    hooks.send(KEY, [sent])
    (outcome,) = wait_for(lambda: hooks.outcomes(KEY), timeout=10, message="an outcome")

    assert not outcome.ok and why in (outcome.error or "")
    assert MARKER not in (outcome.error or "")
    assert receiver.received() == []


def test_a_comparison_gate_sends_its_prometheus_bearer_from_the_secret(echo: str) -> None:
    """Both range queries of a comparison gate carry the gate's credential, like a plain
    Prometheus gate's query (before, a comparison gate sent none)."""
    secrets = Secrets({("shop", "prom"): {"t": MARKER}})
    reader = SecretReader(secrets, "rollwise-system", SecretValues())
    policy = OutboundPolicy((echo + "/",), allow_loopback=True)
    window = RangeQuery(stable_query="up", start=NOW, end=NOW, step_s=15)
    query = GateQuery(
        key="c", gate="c", background=False, address=echo, query="up", timeout_s=2,
        cluster=False, namespace="shop", auth=GateAuth(bearer=("prom", "t")), comparison=window,
    )  # fmt: skip

    sample = ComparisonProvider(policy=policy, secrets=reader).measure(query, NOW)

    assert Echo.seen and Echo.seen[0].get("authorization") == f"Bearer {MARKER}"
    assert MARKER not in str(sample.error)
