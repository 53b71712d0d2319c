"""Limit windows: fixed, aligned in UTC, the same for every instance that asks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from heimdall.governance.windows import parse_duration, window_at


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("duration", "moment", "start", "end"),
    [
        ("30s", "2026-11-24T07:35:45", "2026-11-24T07:35:30", "2026-11-24T07:36:00"),
        ("1m", "2026-11-24T07:35:05", "2026-11-24T07:35:00", "2026-11-24T07:36:00"),
        ("5m", "2026-11-24T07:38:05", "2026-11-24T07:35:00", "2026-11-24T07:40:00"),
        ("1h", "2026-11-24T07:35:05", "2026-11-24T07:00:00", "2026-11-24T08:00:00"),
        ("1d", "2026-11-24T07:35:05", "2026-11-24T00:00:00", "2026-11-25T00:00:00"),
        ("1w", "2026-11-24T07:35:05", "2026-11-23T00:00:00", "2026-11-30T00:00:00"),  # Monday to Monday
        ("1M", "2026-11-24T07:35:05", "2026-11-01T00:00:00", "2026-12-01T00:00:00"),
        ("1M", "2026-12-31T23:59:59", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("1Q", "2026-11-24T07:35:05", "2026-10-01T00:00:00", "2027-01-01T00:00:00"),
        ("1Y", "2026-11-24T07:35:05", "2026-01-01T00:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_window_contains_the_moment_and_is_aligned(duration: str, moment: str, start: str, end: str) -> None:
    window = window_at(duration, at(moment))
    assert (window.start, window.end) == (at(start), at(end))


@pytest.mark.parametrize("text", ["100Y", "400Q", "1200M", "5200w", "36500d", "876000h"])
def test_the_longest_windows_are_computed(text: str) -> None:
    """Up to a hundred years, every window has an end a date can hold (more is refused at start-up)."""
    window = window_at(text, at("2026-12-31T23:59:59"))
    assert window.start <= at("2026-12-31T23:59:59") < window.end


def test_the_next_window_starts_where_the_last_ended() -> None:
    first = window_at("1h", at("2026-11-24T07:59:59"))
    assert window_at("1h", first.end).start == first.end


@pytest.mark.parametrize("text", ["", "1", "m", "0m", "1.5h", "1x", "-1d", "1 m", "01m"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="reset duration"):
        parse_duration(text)
