"""Credentials the operator read from Secrets, remembered only so that they can be scrubbed
from everything it writes for people: status, Events and logs (core.redaction.redact).

Values are kept in memory, never written anywhere; the set is bounded (oldest first out).
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rollwise.adapters.errors import AdapterError
from rollwise.adapters.kubeapi import Resource
from rollwise.core.redaction import MIN_SECRET, redact

SECRETS = Resource("Secret", "", "v1", "secrets")

MAX_REMEMBERED = 4096


class SecretValues:
    """Every credential value read so far (thread-safe, bounded)."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._limit = limit
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, value: str) -> str:
        """Remember `value`, and for a URL also the parts a log line may show alone (its path
        with query, e.g. urllib3's `"POST /services/T0/<token> HTTP/1.1"`, and query values)."""
        with self._lock:
            for part in (value, *_url_parts(value)):
                self._values[part] = None
                self._values.move_to_end(part)
            while len(self._values) > self._limit:
                self._values.popitem(last=False)
        return value

    def values(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._values)

    def scrub(self, text: str) -> str:
        """`text` with these values and anything credential-like redacted."""
        return redact(text, self.values())


def _url_parts(value: str) -> list[str]:
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return []
    found = [parts.path + (f"?{parts.query}" if parts.query else ""), parts.path]
    found += [v for _, v in parse_qsl(parts.query)]
    if parts.password:
        found.append(parts.password)
    return [p for p in found if len(p) >= MIN_SECRET and p.strip("/")]


# One per process: the Secret readers add to it, the log formatter and Event poster read it.
SEEN = SecretValues()


class CredentialError(ValueError):
    """A Secret reference that cannot give a value; names the Secret and key, never a value."""


class SecretReader:
    """Reads one key of one Secret (by name: the operator never lists Secrets), remembering the
    value in SEEN so that it is scrubbed wherever text is shown."""

    def __init__(self, api: Any, own_namespace: str, seen: SecretValues = SEEN) -> None:
        self._api = api
        self.own_namespace = own_namespace
        self._seen = seen

    def namespace_for(self, cluster: bool, namespace: str) -> str:
        """Where a gate's Secret is read: a namespaced gate's own namespace (the service's),
        a ClusterMetricGate's in the operator's namespace."""
        return self.own_namespace if cluster else namespace

    def value(self, namespace: str, name: str, key: str) -> str:
        where = f"Secret {namespace}/{name} key {key}"
        try:
            secret = self._api.get(SECRETS, namespace, name)
        except AdapterError as err:
            if err.status == 403:
                raise CredentialError(
                    f"{where}: the operator may not read it (chart value secretRefs.enabled "
                    "grants get on Secrets in the watched namespaces)"
                ) from None
            raise CredentialError(f"{where}: cannot be read ({err.status or 'error'})") from None
        if secret is None:
            raise CredentialError(f"{where}: the Secret does not exist")
        data = (secret.get("data") or {}).get(key)
        if not isinstance(data, str):
            raise CredentialError(f"{where}: the Secret has no such key")
        try:
            value = base64.b64decode(data, validate=True).decode().strip()
        except (ValueError, UnicodeDecodeError):
            raise CredentialError(f"{where}: the value is not UTF-8 text") from None
        if not value:
            raise CredentialError(f"{where}: the value is empty")
        return self._seen.remember(value)
