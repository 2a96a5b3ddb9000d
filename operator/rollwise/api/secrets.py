"""A reference to one key of a Secret: where credentials come from (never a spec field).

The Secret is read in the namespace of the object that names it (a ProgressiveService's, a
MetricGate's); a ClusterMetricGate's in the operator's own namespace. Its value is used for
the request only and never reaches status, Events or logs.
"""

from __future__ import annotations

from pydantic import Field
from pydantic.config import JsonDict

from rollwise.api.base import ApiModel


class SecretKeyRef(ApiModel):
    """`name` and `key` of a Secret in the namespace of the object that names it."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


def one_of_url(url: str | None, ref: SecretKeyRef | None, where: str) -> None:
    """Exactly one of `url` and `urlSecretRef`; ValueError saying so."""
    if (url is None) == (ref is None):
        raise ValueError(f"{where} sets exactly one of url, urlSecretRef")


URL_OR_SECRET: JsonDict = {
    "rule": "has(self.url) != has(self.urlSecretRef)",
    "message": "set exactly one of url, urlSecretRef (a URL holding a token belongs in a Secret)",
}

# A cloud metadata address written as such is refused at apply time already; the operator's
# outbound policy refuses every link-local and metadata address however it is written.
NO_METADATA_URL: JsonDict = {
    "rule": "!has(self.url) || !self.url.matches("
    "'^https?://(169[.]254[.]|[[]fd00:ec2::254[]]|metadata[.]google[.]internal|metadata/)')",
    "message": "url names a cloud metadata address, which the operator never calls",
}
