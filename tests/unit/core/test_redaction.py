"""Nothing credential-like is shown: URLs as scheme://host:port/…, known secrets and
credential-shaped text scrubbed."""

from __future__ import annotations

import pytest

from rollwise.core.redaction import REDACTED, describe_url, redact

MARKER = "tok3nMARKERz9y8x7"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.example.com/services/T0/B0/{MARKER}", "https://hooks.example.com/…"),
        (f"http://prom.monitoring.svc:9090/?token={MARKER}", "http://prom.monitoring.svc:9090/…"),
        (f"http://user:{MARKER}@prom:9090", "http://prom:9090"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("not a url", "?://?/…"),
    ],
)
def test_a_url_is_shown_as_its_destination_only(url: str, shown: str) -> None:
    assert describe_url(url) == shown
    assert MARKER not in describe_url(url)


@pytest.mark.parametrize(
    "text",
    [
        f"cannot connect to http://u:{MARKER}@x/",
        f"GET https://x/y?token={MARKER}&a=1",
        f"GET https://x/y?api_key={MARKER}",
        f"Authorization: Bearer {MARKER}",
        f'{{"authorization": "{MARKER}"}}',
        f"bearer {MARKER}",
        f"the secret value is {MARKER}!",
    ],
)
def test_credential_like_text_and_known_secrets_are_redacted(text: str) -> None:
    scrubbed = redact(text, secrets=[MARKER])

    assert MARKER not in scrubbed and REDACTED in scrubbed
    assert MARKER not in redact(text) or "secret value" in text  # patterns alone, but free text


def test_short_secret_values_are_not_searched_for() -> None:
    assert redact("a b c", secrets=["a"]) == "a b c"
