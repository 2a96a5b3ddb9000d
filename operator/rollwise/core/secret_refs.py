"""The Secret keys a ProgressiveService names (webhook and notification URLs and headers), read
in its own namespace: which they are, and what is wrong with one, for the check made when the
spec is applied (core.references). Plain data: the adapter looks the Secrets up."""

from __future__ import annotations

from dataclasses import dataclass

from rollwise.api.headers import WebHeader
from rollwise.api.secrets import SecretKeyRef
from rollwise.api.service import ServiceSpec


@dataclass(frozen=True)
class SecretUse:
    """One Secret key a ProgressiveService names, and the field that names it."""

    name: str
    key: str
    field: str  # e.g. spec.notifications.receivers[0].slack.urlSecretRef


def secret_uses(spec: ServiceSpec) -> list[SecretUse]:
    """Every Secret key the spec names (in its own namespace), in spec order."""
    uses: list[SecretUse] = []

    def add(ref: SecretKeyRef | None, field: str) -> None:
        if ref is not None:
            uses.append(SecretUse(ref.name, ref.key, field))

    def add_headers(headers: list[WebHeader], where: str) -> None:
        for j, header in enumerate(headers):
            add(header.value_secret_ref, f"{where}.headers[{j}].valueSecretRef")

    for i, hook in enumerate(spec.strategy.canary.webhooks or ()):
        where = f"spec.strategy.canary.webhooks[{i}]"
        add(hook.url_secret_ref, f"{where}.urlSecretRef")
        add_headers(hook.headers, where)
    for i, receiver in enumerate(spec.notifications.receivers if spec.notifications else ()):
        where = f"spec.notifications.receivers[{i}]"
        kind = "webhook" if receiver.webhook is not None else "slack"
        add(receiver.url_secret_ref, f"{where}.{kind}.urlSecretRef")
        add_headers(receiver.headers, where)
    return uses


def secret_problem(use: SecretUse, namespace: str, keys: frozenset[str] | None) -> str | None:
    """What is wrong with one Secret use given the keys its Secret holds (None: no such
    Secret), as a sentence naming the Secret, the key and the field; None when nothing is."""
    where = f"Secret {namespace}/{use.name} ({use.field})"
    if keys is None:
        return f"{where} does not exist"
    if use.key not in keys:
        return f"{where} has no key {use.key}"
    return None
