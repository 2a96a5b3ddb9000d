"""Sending webhook calls and notifications: HTTP POSTs off the pass's thread.

A pass plans `HookCall`s (each already recorded in the status it wrote); `HookSender.send`
hands them to a small thread pool and returns at once, so a slow or dead receiver never holds
a worker, and so never another service's pass. When an attempt finishes, its outcome is kept
for the service and the service is woken; its next pass folds the outcome into status and,
once that status is written, `acknowledge` drops it. Nothing here decides: retries, limits and
what an answer means are the core's (`rollwise.core.hooks`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from rollwise.adapters.credentials import CredentialError, SecretReader
from rollwise.adapters.outbound import OutboundPolicy, OutboundRefused, connection_failure
from rollwise.api.service_status import DeliveryResult, WebhookStatus
from rollwise.core.model import HookCall, HookOutcome
from rollwise.core.redaction import describe_url

log = logging.getLogger("rollwise.adapters.webhooks")

Key = tuple[str, str]
USER_AGENT = "rollwise-webhooks"
# Calls waiting for a sender thread, over all services; more are refused (not sent, no outcome:
# the entry stays pending in status and a later pass plans it again).
MAX_QUEUED = 1000


class HookMetrics:
    """`rollwise_notifications_total{receiver,outcome}` and `rollwise_webhook_calls_total`."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.notifications = Counter(
            "rollwise_notifications_total",
            "Notification attempts by receiver and outcome (delivered, retrying, failed)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.webhooks = Counter(
            "rollwise_webhook_calls_total",
            "Lifecycle webhook attempts by webhook type and outcome (delivered, retrying, failed)",
            ["type", "outcome"],
            registry=registry,
        )

    def count(self, call: HookCall, outcome: HookOutcome) -> None:
        result = "delivered" if outcome.ok else "failed" if call.last_attempt else "retrying"
        if call.type == "notification":
            self.notifications.labels(receiver=call.name, outcome=result).inc()
        else:
            self.webhooks.labels(type=call.type, outcome=result).inc()


def post(
    call: HookCall,
    session: requests.Session,
    now: Callable[[], datetime],
    policy: OutboundPolicy | None = None,
    secret_headers: Mapping[str, str] | None = None,
) -> HookOutcome:
    """One attempt; never raises. The URL goes through the outbound policy (a team wrote it:
    only under the allow-list); redirects are not followed (a receiver answers, or fails).
    `secret_headers`: the call's header values read from Secrets (never logged or shown)."""
    url = call.url
    if policy is not None:
        try:
            url = policy.check(call.url, platform=False, what=f"{call.type} {call.name}").url
        except OutboundRefused as err:
            return HookOutcome(id=call.id, attempt=call.attempt, at=now(), error=str(err))
    headers = {
        **dict(call.headers),
        **(secret_headers or {}),
        # The operator's own come last: the API refuses them in a spec's headers anyway.
        "Content-Type": call.content_type,
        "User-Agent": USER_AGENT,
        "X-Rollwise-Checksum": call.id,
        "X-Rollwise-Attempt": str(call.attempt),
        "Idempotency-Key": call.id,
    }
    try:
        response = session.post(
            url,
            data=call.body.encode(),
            headers=headers,
            timeout=(call.timeout_s, call.timeout_s),
            allow_redirects=False,
        )
        response.close()
        return HookOutcome(id=call.id, attempt=call.attempt, at=now(), code=response.status_code)
    except requests.Timeout:
        error = f"no answer within {call.timeout_s:g}s"
    except requests.ConnectionError as err:
        error = f"cannot connect to {describe_url(url)}: {connection_failure(err)}"
    except requests.RequestException as err:
        error = f"request to {describe_url(url)} failed: {connection_failure(err)}"
    return HookOutcome(id=call.id, attempt=call.attempt, at=now(), error=error)


def header_safe(value: str) -> bool:
    """Whether a header value read from a Secret is one line of text (no control character
    but tab): requests would refuse it with an error quoting the value."""
    return all(c == "\t" or (c >= " " and c != "\x7f") for c in value)


def _ref(key: Key) -> dict[str, Any]:
    """`extra=` naming the service, as the controller's JSON log formatter reads it."""
    return {"k8s_ref": {"namespace": key[0], "name": key[1]}}


class HookSender:
    """The thread pool, the outcomes not yet recorded in status, and the calls in flight."""

    def __init__(
        self,
        *,
        wake: Callable[[Key], None],
        leads: Callable[[], bool] = lambda: True,
        metrics: HookMetrics | None = None,
        workers: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: OutboundPolicy | None = None,
        secrets: SecretReader | None = None,
    ) -> None:
        self._policy = policy or OutboundPolicy()
        self._secrets = secrets
        self._wake = wake
        self._leads = leads
        self._metrics = metrics
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, int]] = set()
        self._outcomes: dict[Key, dict[tuple[str, int], HookOutcome]] = {}
        self._local = threading.local()

    def outcomes(self, key: Key) -> tuple[HookOutcome, ...]:
        """The finished attempts of one service that its status does not record yet."""
        with self._lock:
            return tuple(self._outcomes.get(key, {}).values())

    def acknowledge(self, key: Key, recorded: Iterable[WebhookStatus]) -> None:
        """Status with these entries was written: drop the outcomes it records."""
        pending = {(e.id, e.attempts + 1) for e in recorded if e.result is DeliveryResult.PENDING}
        with self._lock:
            held = self._outcomes.get(key)
            if not held:
                return
            for call in [c for c in held if c not in pending]:
                del held[call]
            if not held:
                del self._outcomes[key]

    def send(self, key: Key, calls: Iterable[HookCall]) -> None:
        """Start these attempts unless they are in flight or answered already; returns at once."""
        for call in calls:
            attempt = (call.id, call.attempt)
            with self._lock:
                if attempt in self._in_flight or attempt in self._outcomes.get(key, {}):
                    continue
                if len(self._in_flight) >= MAX_QUEUED:
                    log.warning(
                        "webhook queue full (%d): %s %s not sent now",
                        MAX_QUEUED,
                        call.type,
                        call.name,
                        extra=_ref(key),
                    )
                    continue
                self._in_flight.add(attempt)
            self._pool.submit(self._run, key, call)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._policy.session()  # no proxy, no redirect, every peer checked
            self._local.session = session
        return session

    def _run(self, key: Key, call: HookCall) -> None:
        attempt = (call.id, call.attempt)
        try:
            if not self._leads():
                # Only the leader sends; the entry stays pending for the next leader.
                return
            try:
                url = self._url(key, call)
                secret_headers = self._secret_headers(key, call)
            except CredentialError as err:
                at = self._clock()
                outcome = HookOutcome(id=call.id, attempt=call.attempt, at=at, error=str(err))
            else:
                call_now = replace(call, url=url)
                session = self._session()
                outcome = post(call_now, session, self._clock, self._policy, secret_headers)
            if self._metrics is not None:
                self._metrics.count(call, outcome)
            context = _ref(key)
            if outcome.ok:
                log.info(
                    "%s %s delivered (attempt %d)",
                    call.type,
                    call.name,
                    call.attempt,
                    extra=context,
                )
            else:
                log.warning(
                    "%s %s attempt %d: %s",
                    call.type,
                    call.name,
                    call.attempt,
                    f"HTTP {outcome.code}" if outcome.code is not None else outcome.error,
                    extra=context,
                )
            with self._lock:
                self._outcomes.setdefault(key, {})[attempt] = outcome
        except Exception:
            log.exception("webhook %s failed unexpectedly", call.name, extra=_ref(key))
            return
        finally:
            with self._lock:
                self._in_flight.discard(attempt)
        self._wake(key)

    def _url(self, key: Key, call: HookCall) -> str:
        """The call's URL: as written, or read now from its Secret in the service's namespace."""
        if call.url_secret is None:
            return call.url
        if self._secrets is None:
            raise CredentialError("urlSecretRef: this operator reads no Secrets")
        return self._secrets.value(key[0], *call.url_secret)

    def _secret_headers(self, key: Key, call: HookCall) -> dict[str, str]:
        """The header values the call takes from Secrets in the service's namespace, read now
        (and so remembered for redaction); CredentialError naming the Secret and key only."""
        if not call.secret_headers:
            return {}
        if self._secrets is None:
            raise CredentialError("valueSecretRef: this operator reads no Secrets")
        values: dict[str, str] = {}
        for header, name, secret_key in call.secret_headers:
            value = self._secrets.value(key[0], name, secret_key)
            if not header_safe(value):
                raise CredentialError(
                    f"Secret {key[0]}/{name} key {secret_key}: the value is not one line of "
                    f"text, so it cannot be header {header}"
                )
            values[header] = value
        return values

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
