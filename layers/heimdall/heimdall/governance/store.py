"""The shared state behind limits and usage: atomic counters per window, and usage records.

Two implementations behind one small interface: DynamoDB in AWS (conditional writes in one
transaction, so every Lambda instance sees the same counters) and SQLite under ``make run`` (one
``BEGIN IMMEDIATE`` transaction, which serialises writers across threads and processes). Neither
needs a lock of Heimdall's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from heimdall.governance.windows import Window

_UNITS = {"requests": "requests", "audio_seconds": "seconds of audio", "dollars": "US dollars"}
#: Counters hold integers in the smallest unit that matters (milliseconds, nanodollars): exact sums in
#: both stores, never a float's rounding drift or a decimal's exponent.
SCALE = {"requests": 1, "audio_seconds": 1000, "dollars": 1_000_000_000}


#: The route a job's usage record names: the request that created it (``POST /v1/uploads``).
UPLOAD_ROUTE = "/v1/uploads"


class Claim(NamedTuple):
    """``amount`` of one limit's counter in ``window``, allowed while it stays within ``limit``."""

    kind: str  # "rate_limit" or "budget"
    limit_id: str
    metric: str  # "requests", "audio_seconds" or "dollars"
    reset_duration: str
    window: Window
    amount: float
    limit: float

    @property
    def counter(self) -> str:
        return f"{self.kind}:{self.limit_id}:{self.metric}"

    @property
    def code(self) -> str:
        return "budget_exceeded" if self.kind == "budget" else f"{self.metric}_limit_exceeded"

    def describe(self) -> str:
        """What the client is told: ``rate limit 'rl-a' (10 requests per 1m)``."""
        name = "budget" if self.kind == "budget" else "rate limit"
        return f"{name} '{self.limit_id}' ({self.limit:g} {_UNITS[self.metric]} per {self.reset_duration})"

    @property
    def units(self) -> int:
        return round(self.amount * SCALE[self.metric])

    @property
    def limit_units(self) -> int:
        return round(self.limit * SCALE[self.metric])

    def undo(self) -> Claim:
        return self._replace(amount=-self.amount)

    def by(self, amount: float) -> Claim:
        return self._replace(amount=amount)


class UsageRecord(NamedTuple):
    ts: float
    event_id: str
    key_id: str | None  # None: a job of a file an operator dropped into the bucket
    route: str
    model_requested: str | None
    provider: str | None
    model: str | None  # the model that served it (provider's own id), else None
    audio_seconds: float
    status: int
    latency_ms: float
    fallback_index: int | None
    cost: float
    cache_hit: bool

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


class GovernanceStore(Protocol):
    def reserve(self, claims: Sequence[Claim], now: float) -> Claim | None:
        """Add every claim, or none: returns the first claim that would pass its limit (nothing added)."""

    def adjust(self, claims: Sequence[Claim], now: float) -> None:
        """Add each claim's amount unconditionally (a negative amount releases a reservation)."""

    def used(self, counter: str, window: Window) -> int:
        """The counter's total in a window, in its SCALE units (0 when nothing was counted)."""

    def record(self, record: UsageRecord, expires: float) -> None:
        """Keep one usage record until ``expires`` (seconds since the epoch)."""

    def records(self, start: float, end: float) -> Iterator[UsageRecord]:
        """The usage records with ``start <= ts < end``."""


def fits(used: int, claim: Claim) -> bool:
    """A claim fits while the counter, with it, stays within the limit, and the limit is not already
    spent (so a zero-amount claim, like a budget check for audio of unknown length, is refused too)."""
    return used < claim.limit_units and used + claim.units <= claim.limit_units


def counter_expiry(window: Window) -> float:
    """A counter is kept a day past its window (DynamoDB TTL and the SQLite sweep remove it)."""
    return window.end + 86400
