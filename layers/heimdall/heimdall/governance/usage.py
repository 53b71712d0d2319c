"""Usage totals over a time range, optionally grouped by key, provider or model (GET /v1/usage)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from heimdall.governance.store import UsageRecord

GROUPS = {"key": "key_id", "provider": "provider", "model": "model"}


class Totals:
    """One group's sums, record by record."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.cache_hits = 0
        self.audio_seconds = 0.0
        self.cost = 0.0

    def add(self, record: UsageRecord) -> None:
        self.requests += 1
        if record.status >= 400:
            self.errors += 1
            return  # a failed request transcribed nothing and was charged nothing
        self.cache_hits += record.cache_hit
        self.audio_seconds += record.audio_seconds
        self.cost += record.cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "audio_seconds": round(self.audio_seconds, 3),
            "cost": round(self.cost, 8),
        }


def group_of(record: UsageRecord, group_by: str) -> str | None:
    if group_by == "key":
        return record.key_id
    if group_by == "provider":
        return record.provider
    if record.provider and record.model:
        return f"{record.provider}/{record.model}"  # the model that served it
    return record.model_requested


def summarize(records: Iterable[UsageRecord], group_by: str | None) -> dict[str, Any]:
    totals = Totals()
    groups: dict[str | None, Totals] = {}
    for record in records:
        totals.add(record)
        if group_by is not None:
            groups.setdefault(group_of(record, group_by), Totals()).add(record)
    body: dict[str, Any] = {"totals": totals.as_dict()}
    if group_by is not None:
        field = GROUPS[group_by]
        ordered = sorted(groups.items(), key=lambda item: (-item[1].cost, -item[1].requests, str(item[0])))
        body["data"] = [{field: name, **group.as_dict()} for name, group in ordered]
    return body
