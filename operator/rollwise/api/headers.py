"""A request header whose value is written as such or comes from a Secret (a token): the one
header model of web gates, lifecycle webhooks and notification receivers."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from rollwise.api.base import ApiModel
from rollwise.api.secrets import SecretKeyRef

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
# Headers the operator sets itself or that steer where a request goes: a team's hook may not
# set them (Host would pick another virtual host behind an allowed address; the rollwise
# headers are the receiver's idempotency key).
RESERVED_HOOK_HEADERS = (
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "idempotency-key",
    "x-rollwise-checksum",
    "x-rollwise-attempt",
)


class WebHeader(ApiModel):
    """A request header: its value as written, or from a Secret (a token)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) != has(self.valueSecretRef)",
                    "message": "a header sets exactly one of value, valueSecretRef",
                }
            ]
        }
    )
    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME)
    value: str | None = Field(default=None, max_length=4096, pattern=r"^[^\r\n]*$")
    value_secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _one_value(self) -> WebHeader:
        if (self.value is None) == (self.value_secret_ref is None):
            raise ValueError("a header sets exactly one of value, valueSecretRef")
        return self


HOOK_HEADERS: JsonDict = {
    "x-kubernetes-validations": [
        {
            "rule": "self.all(h, self.exists_one(o, o.name.lowerAscii() == h.name.lowerAscii()))",
            "message": "header names must be unique (case-insensitively)",
        },
        {
            "rule": "self.all(h, !(h.name.lowerAscii() in "
            + "["
            + ", ".join(f"'{n}'" for n in RESERVED_HOOK_HEADERS)
            + "]))",
            "message": "headers may not set "
            + ", ".join(RESERVED_HOOK_HEADERS)
            + ": the operator sets them",
        },
    ]
}


def check_hook_headers(headers: list[WebHeader], where: str) -> None:
    """The CEL rules of HOOK_HEADERS in Python: unique names, none reserved; ValueError."""
    seen: set[str] = set()
    for header in headers:
        name = header.name.lower()
        if name in RESERVED_HOOK_HEADERS:
            raise ValueError(f"{where}: header {header.name} is set by the operator")
        if name in seen:
            raise ValueError(f"{where}: header {header.name} is given twice")
        seen.add(name)


PlainHeaders = tuple[tuple[str, str], ...]
SecretHeaders = tuple[tuple[str, str, str], ...]  # (header, Secret name, key)


def split_headers(headers: list[WebHeader]) -> tuple[PlainHeaders, SecretHeaders]:
    """(name, value) of the headers written as such, and (name, Secret name, key) of those
    whose value the sender reads from a Secret when it sends (the core never sees it)."""
    plain = tuple((h.name, h.value) for h in headers if h.value is not None)
    secret = tuple(
        (h.name, h.value_secret_ref.name, h.value_secret_ref.key)
        for h in headers
        if h.value_secret_ref is not None
    )
    return plain, secret
