"""Nothing credential-like reaches status, Events or logs.

Two habits, both here: a URL is shown only as `scheme://host[:port]/…` (its path and query can
be the credential, as in a chat webhook URL or a `?token=`), and any text about to be shown is
scrubbed of what looks like a credential (userinfo in a URL, `token=...`, `Authorization:` or
`Bearer ...`) and of every value the operator read from a Secret (`redact(text, secrets)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

REDACTED = "[redacted]"

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.-]*(?:token|secret|password|passwd|pwd|key|sig|signature|auth|"
    r"credential|session)[a-z0-9_.-]*)=)[^&#\s\"']+"
)
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:authorization|proxy-authorization|x-api-key|api-key|x-auth-token|cookie)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\"'\n,}]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
# Secret values shorter than this are not searched for (they would redact ordinary words).
MIN_SECRET = 6


def describe_url(url: str) -> str:
    """`scheme://host[:port]/…`: enough to tell which destination, never its path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(an unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme or '?'}://{host}" + (f":{port}" if port else "")
    if parts.path.strip("/") or parts.query:
        shown += "/…"
    return shown


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret value and anything credential-like replaced."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
