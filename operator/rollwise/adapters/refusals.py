"""API server refusals whose cause is not the object's spec: an admission webhook or policy,
or an object too large for etcd. Their advice must name that cause ("fix the field in the
ProgressiveService" sends the reader to the wrong place)."""

from __future__ import annotations

import re

_WEBHOOK = re.compile(r'admission webhook "([^"]+)"')
_POLICY = re.compile(r'ValidatingAdmissionPolicy \'([^\']+)\'|policy "([^"]+)"')
_TOO_LARGE = re.compile(r"too large|entity too large|exceeds the maximum", re.IGNORECASE)


def admission_of(message: str) -> str | None:
    """Who refused, when an admission webhook or policy did: "admission webhook x.example",
    "admission policy p", or "an admission webhook or policy"; None for other refusals."""
    webhook = _WEBHOOK.search(message)
    if webhook:
        return f"admission webhook {webhook.group(1)}"
    policy = _POLICY.search(message)
    if policy:
        return f"admission policy {policy.group(1) or policy.group(2)}"
    if (
        "denied the request" in message
        or "denied request" in message
        or "admission" in message.lower()
    ):
        return "an admission webhook or policy"
    return None


def advice_for(code: int, message: str, obj: str, verb: str) -> str | None:
    """The fix for a refusal caused by something other than the spec; None for the others."""
    who = admission_of(message)
    if who is not None:
        return (
            f"{who} refused rollwise's {verb} of {obj}: ask its owner to allow rollwise's "
            "ServiceAccount; the ProgressiveService's spec is not at fault"
        )
    if code == 413 or _TOO_LARGE.search(message):
        return (
            f"{obj} is too large for etcd: shrink the ProgressiveService's pod template "
            "(env values, annotations, inlined config)"
        )
    return None
