"""Durations as users write them: "500ms", "30s", "2m", "1h30m"."""

from __future__ import annotations

import pytest

from rollwise.api.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("0s", 0.0),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h1m1s1ms", 3661.001),
        ("90s", 90.0),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "-1s", "1 m", "m", "1.s", "1m30", "PT1M", "1H"])
def test_bad_durations_are_rejected_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; write e\.g\. 500ms, 30s, 2m"):
        parse_duration(text)
