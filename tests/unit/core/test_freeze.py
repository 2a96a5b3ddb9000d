"""Freeze windows: open or not at an instant, and when the freeze ends, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rollwise.api.train import FreezeWindow
from rollwise.core.freeze import frozen_until, last_opening, wall_to_instant

BERLIN = ZoneInfo("Europe/Berlin")


def cron(schedule: str, duration: str, zone: str = "Europe/Berlin") -> FreezeWindow:
    return FreezeWindow(schedule=schedule, duration=duration, time_zone=zone)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_weekend_freeze_in_berlin_is_open_from_friday_evening_local_time() -> None:
    window = cron("0 18 * * 5", "62h")  # Friday 18:00 to Monday 08:00
    friday = utc(2026, 6, 5, 16, 0)  # 18:00 CEST

    assert frozen_until([window], friday - timedelta(seconds=1)) is None
    assert frozen_until([window], friday) == utc(2026, 6, 8, 6, 0)  # Monday 08:00 CEST
    assert frozen_until([window], utc(2026, 6, 8, 6, 0)) is None


def test_a_time_skipped_by_spring_forward_opens_the_window_at_the_jump() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day.
    assert wall_to_instant(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    window = cron("30 2 * * *", "1h")

    assert last_opening(window, utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 1, 0)
    assert frozen_until([window], utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 2, 0)


def test_a_time_repeated_by_fall_back_opens_the_window_once_at_its_first_occurrence() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice.
    assert wall_to_instant(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    window = cron("30 2 * * *", "45m")

    assert frozen_until([window], utc(2026, 10, 25, 0, 40)) == utc(2026, 10, 25, 1, 15)
    # The second 02:30 (01:30 UTC) opens nothing.
    assert frozen_until([window], utc(2026, 10, 25, 1, 40)) is None


def test_overlapping_windows_make_one_freeze_until_the_last_closes() -> None:
    windows = [
        FreezeWindow(start=utc(2026, 1, 1, 0, 0), end=utc(2026, 1, 1, 2, 0)),
        FreezeWindow(start=utc(2026, 1, 1, 1, 0), end=utc(2026, 1, 1, 5, 0)),
        FreezeWindow(start=utc(2026, 1, 1, 5, 0), end=utc(2026, 1, 1, 6, 0)),  # touching
    ]

    assert frozen_until(windows, utc(2026, 1, 1, 0, 30)) == utc(2026, 1, 1, 6, 0)


def test_a_schedule_that_never_lets_go_reports_a_bounded_end_after_now() -> None:
    window = cron("* * * * *", "2m", "UTC")
    at = utc(2026, 1, 1, 0, 0, 30)

    end = frozen_until([window], at)

    assert end is not None and end > at + timedelta(hours=1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "0 18 * * 5", "duration": "1h", "timeZone": "Mars/Olympus"}, "IANA"),
        ({"schedule": "0 25 * * *", "duration": "1h", "timeZone": "UTC"}, "cron"),
        ({"schedule": "0 18 * * 5", "duration": "1h"}, "either"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "after its start"),
        ({"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}, "timezone"),
    ],
)
def test_bad_windows_are_rejected_with_what_to_write(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FreezeWindow.model_validate(fields)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
# Each schedule with a duration shorter than its shortest gap between openings (DST days
# included), so that every freeze ends: a duration at least the gap freezes for good.
SCHEDULES = {
    "0 18 * * 5": 6 * 24 * 60,
    "30 2 * * *": 22 * 60,
    "*/20 * * * *": 19,
    "0 0 1 * *": 27 * 24 * 60,
    "15 1-3 * * 0": 14,
}
instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    at=instants,
    zone=st.sampled_from(ZONES),
    schedule=st.sampled_from(sorted(SCHEDULES)),
    share=st.floats(min_value=0.0, max_value=1.0),
)
def test_frozen_until_is_after_now_and_the_freeze_holds_until_then(
    at: datetime, zone: str, schedule: str, share: float
) -> None:
    minutes = max(1, int(SCHEDULES[schedule] * share))
    window = cron(schedule, f"{minutes}m", zone)

    end = frozen_until([window], at)

    if end is None:
        opened = last_opening(window, at)
        assert opened is None or opened + timedelta(minutes=minutes) <= at
        return
    assert end > at
    # Frozen all the way, with the same end; the end itself is not frozen.
    for fraction in (0.0, 0.25, 0.5, 0.99):
        probe = at + (end - at) * fraction
        assert frozen_until([window], probe) == end
    assert frozen_until([window], end) is None


@settings(max_examples=200, deadline=None)
@given(
    wall=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)),
    zone=st.sampled_from(ZONES),
    later=st.integers(min_value=1, max_value=6 * 60),
)
def test_wall_clock_mapping_never_goes_backwards(wall: datetime, zone: str, later: int) -> None:
    tz = ZoneInfo(zone)
    first = wall_to_instant(wall, tz)
    second = wall_to_instant(wall + timedelta(minutes=later), tz)

    assert first <= second
    # An existing wall time maps to an instant that reads as that wall time.
    if first.astimezone(tz).replace(tzinfo=None) != wall:
        # A gap: mapped to the jump, which reads as a later wall time.
        assert first.astimezone(tz).replace(tzinfo=None) > wall


@settings(max_examples=100, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), schedule=st.sampled_from(sorted(SCHEDULES)))
def test_last_opening_is_at_or_before_now_and_no_opening_lies_between(
    at: datetime, zone: str, schedule: str
) -> None:
    window = cron(schedule, "1m", zone)

    opened = last_opening(window, at)

    assert opened is not None and opened <= at
    assert last_opening(window, opened) == opened
