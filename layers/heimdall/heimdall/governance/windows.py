"""Reset durations in Bifrost's notation (``30s``, ``5m``, ``1h``, ``1d``, ``1w``, ``1M``, ``1Q``, ``1Y``)
and the window a moment falls in.

Windows are fixed and aligned in UTC, the same instant for every Lambda instance, so a counter is keyed
by (limit, window start) and needs no stored ``last_reset`` that concurrent writers would race to move.
Sub-day windows are aligned to the Unix epoch (``1h`` starts on the hour), days at midnight UTC, weeks on
Monday, months/quarters/years on the 1st — what Bifrost calls ``calendar_aligned``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import NamedTuple

DURATION = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d|w|M|Q|Y)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_MONDAY = 4 * 86400  # 1970-01-05 00:00 UTC, the first Monday after the epoch


class Window(NamedTuple):
    start: float
    end: float


#: The longest window: a calendar window of more would end past the year 9999 Python's dates reach.
MAX_YEARS = 100


def parse_duration(text: str) -> tuple[int, str]:
    """``"5m"`` → (5, "m"); ValueError for anything else, or for more than MAX_YEARS."""
    match = DURATION.match(text)
    if match is None:
        raise ValueError(f"'{text[:20]}' is not a reset duration like 30s, 5m, 1h, 1d, 1w, 1M, 1Q or 1Y")
    count, unit = int(match.group(1)), match.group(2)
    months = count * _MONTHS[unit] if unit in _MONTHS else count * _SECONDS[unit] / (365.25 / 12 * 86400)
    if months > MAX_YEARS * 12:
        raise ValueError(f"'{text}' is longer than {MAX_YEARS} years")
    return count, unit


def duration_seconds(text: str) -> float:
    """A duration's nominal length (a month is 30 days): for a cache TTL, not for windows."""
    count, unit = parse_duration(text)
    return count * (_SECONDS.get(unit) or _MONTHS[unit] * 30 * 86400)


def window_at(duration: str, now: float) -> Window:
    """The window of ``duration`` that contains the instant ``now`` (seconds since the epoch)."""
    count, unit = parse_duration(duration)
    if unit in _SECONDS:
        length = count * _SECONDS[unit]
        origin = _MONDAY if unit == "w" else 0
        start = origin + (now - origin) // length * length
        return Window(start, start + length)
    months = count * _MONTHS[unit]
    moment = datetime.fromtimestamp(now, UTC)
    index = (moment.year - 1970) * 12 + moment.month - 1
    first = index // months * months
    return Window(_month_start(first), _month_start(first + months))


def _month_start(index: int) -> float:
    return datetime(1970 + index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()
