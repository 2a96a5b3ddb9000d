"""API server refusals whose cause is not the object's spec: an admission webhook or policy,
or an object too large for etcd. Their advice must name that cause ("fix the field in the
ProgressiveService" sends the reader to the wrong place)."""

from __future__ import annotations

import re

_WEBHOOK = re.compile(r'admission webhook "([^"]+)"')
_POLICY = re.compile(r'ValidatingAdmissionPolicy \'([^\']+)\'|policy "([^"]+)"')
_TOO_LARGE = re.compile(r"too large|entity too large|exceeds the maximum", re.IGNORECASE)


def advice_for(code: int, message: str, obj: str, verb: str) -> str | None:
    """The fix for a refusal caused by something other than the spec; None for the others."""
    webhook = _WEBHOOK.search(message)
    policy = _POLICY.search(message)
    if webhook or policy or "denied the request" in message or "admission" in message.lower():
        who = (
            f"admission webhook {webhook.group(1)}"
            if webhook
            else f"admission policy {policy.group(1) or policy.group(2)}"
            if policy
            else "an admission webhook or policy"
        )
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
