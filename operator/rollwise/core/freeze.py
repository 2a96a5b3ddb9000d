"""Freeze windows: is a time inside one, and when does the freeze end. Pure.

A cron window opens at every wall-clock time its five-field schedule names in its time zone and
stays open for its duration. Wall-clock times are mapped to instants as people expect across
daylight-saving changes: a time that happens twice (clocks go back) opens the window at its
first occurrence; a time that does not exist that day (clocks go forward) opens it at the
instant the clocks jump, so no opening is skipped. That mapping never goes backwards in time,
which is what lets the latest opening before an instant be found by walking back.

Overlapping or touching windows make one freeze: it ends when the last of them closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from rollwise.api.durations import parse_duration
from rollwise.api.train import FreezeWindow

# Walking back from a wall-clock time this much later than the instant covers every fold (no
# zone moves its clocks by more than 2 h at once).
_FOLD_MARGIN = timedelta(hours=3)
# A chain of windows (or a schedule that never lets go, like `* * * * *` for 2m) is followed
# this far, or over so many openings; the freeze is then reported as lasting at least until there
# (the train looks again then).
HORIZON = timedelta(days=400)
_MAX_STEPS = 2_000
_MAX_CHAIN = 300


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone` (see the module docstring)."""
    aware = wall.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant  # exists (the first occurrence if it happens twice)
    # In a gap: the jump happens at the instant that the wall time after the gap denotes;
    # fold=1 reads the wall time with the offset after the jump, which lies before that
    # instant, so search forward from it in minutes (gaps are whole minutes, at most 2 h).
    probe = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    probe = probe.replace(second=0, microsecond=0)
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += timedelta(minutes=1)
    # Back to the first instant at or after which the wall clock passes `wall`.
    while (probe - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None) >= wall:
        probe -= timedelta(minutes=1)
    return probe


def _window_length(window: FreezeWindow) -> timedelta:
    return timedelta(seconds=parse_duration(window.duration or "0s"))


def last_opening(window: FreezeWindow, at: datetime) -> datetime | None:
    """The latest instant at or before `at` at which a cron window opened (None: never)."""
    if window.schedule is None or window.time_zone is None:
        return None
    zone = ZoneInfo(window.time_zone)
    wall_at = at.astimezone(zone).replace(tzinfo=None)
    # croniter's get_prev is strictly before its start: one microsecond past the margin.
    walker = croniter(window.schedule, wall_at + _FOLD_MARGIN + timedelta(microseconds=1))
    for _ in range(_MAX_STEPS):
        wall = walker.get_prev(datetime)
        instant = wall_to_instant(wall, zone)
        if instant <= at:
            return instant
        if wall < wall_at - _FOLD_MARGIN:
            return None  # pragma: no cover - the mapping never runs backwards this far
    return None  # pragma: no cover


def _openings_after(window: FreezeWindow, after: datetime) -> Iterator[datetime]:
    """The instants strictly after `after` at which a cron window opens, in order."""
    if window.schedule is None or window.time_zone is None:
        return
    zone = ZoneInfo(window.time_zone)
    wall_after = after.astimezone(zone).replace(tzinfo=None)
    walker = croniter(window.schedule, wall_after - _FOLD_MARGIN)
    for _ in range(_MAX_CHAIN):
        instant = wall_to_instant(walker.get_next(datetime), zone)
        if instant > after:
            yield instant


def window_end_if_open(window: FreezeWindow, at: datetime) -> datetime | None:
    """When this window closes, if it is open at `at` (its own openings chained); else None."""
    if window.start is not None and window.end is not None:
        return window.end if window.start <= at < window.end else None
    opened = last_opening(window, at)
    if opened is None:
        return None
    length = _window_length(window)
    end = opened + length
    if end <= at:
        return None
    for nxt in _openings_after(window, opened):
        if nxt > end or end - at > HORIZON:
            break
        end = max(end, nxt + length)
    return end


def frozen_until(windows: list[FreezeWindow], at: datetime) -> datetime | None:
    """The end of the freeze `at` is in (every window open then or opening before that end
    counts), or None when no window is open at `at`."""
    end: datetime | None = None
    probe = at
    for _ in range(10):
        ends = [e for e in (window_end_if_open(w, probe) for w in windows) if e is not None]
        if not ends:
            return end
        latest = max(ends)
        if end is not None and latest <= end:
            return end
        end = latest
        if end - at > HORIZON:
            return end
        probe = end
    return end  # pragma: no cover


def frozen_by(windows: list[FreezeWindow], at: datetime) -> list[FreezeWindow]:
    """The windows open at `at`."""
    return [w for w in windows if window_end_if_open(w, at) is not None]
