"""The store in AWS: one DynamoDB table (``HEIMDALL_GOVERNANCE_TABLE``: key ``pk``/``sk``, TTL ``expires``).

  pk = counter#{counter}   sk = {window start}     used (number), expires
  pk = usage#{YYYY-MM-DD}  sk = {ISO time}#{event}  the usage record's fields, expires

A reservation is one conditional ``UpdateItem`` per counter (``ADD used`` only while the limit holds),
which DynamoDB applies atomically however many Lambda instances race it. When a later counter refuses,
the ones already taken are given back. (A transaction would make that all-or-nothing, but concurrent
transactions on one hot counter cancel each other with TransactionConflict; single-item conditional
writes on one item simply queue.) The cost of the give-back: under contention near several limits at
once, a request may be refused that would have fit — never admitted one that would not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from heimdall.aws_clients import LazyClient
from heimdall.governance.store import Claim, UsageRecord, counter_expiry, fits
from heimdall.governance.windows import Window

_STRINGS = ("event_id", "key_id", "route", "model_requested", "provider", "model")
_NUMBERS = ("ts", "audio_seconds", "status", "latency_ms", "fallback_index", "cost")


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.9f}".rstrip("0").rstrip(".") or "0"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: DynamoDB's answers to a write it did not apply because it was asked too often: safe to send again.
_THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_COUNTER_TRIES = 4


class DynamoDBStore:
    def __init__(self, table: str) -> None:
        self.table = table
        self._dynamodb = LazyClient("dynamodb", connect_timeout=2, read_timeout=5)
        # Counter writes are not idempotent (ADD): botocore would send one again after a 5xx or a
        # timeout, which DynamoDB may already have applied — a request counted twice, a give-back
        # applied twice (a limit exceeded). They go out once; only a throttled one is sent again (_add).
        once = {"mode": "standard", "total_max_attempts": 1}
        self._counters = LazyClient("dynamodb", connect_timeout=2, read_timeout=5, retries=once)

    @property
    def dynamodb(self) -> Any:
        return self._dynamodb()

    @property
    def counters(self) -> Any:
        return self._counters()

    @staticmethod
    def _key(claim: Claim) -> dict[str, Any]:
        return {"pk": {"S": f"counter#{claim.counter}"}, "sk": {"S": f"{claim.window.start:.0f}"}}

    def _add(self, claim: Claim, *, conditional: bool) -> bool:
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(claim),
            "UpdateExpression": "SET expires = if_not_exists(expires, :expires) ADD used :amount",
            "ExpressionAttributeValues": {
                ":amount": {"N": str(claim.units)},
                ":expires": {"N": f"{counter_expiry(claim.window):.0f}"},
            },
        }
        if conditional:
            request["ConditionExpression"] = "attribute_not_exists(used) OR (used < :limit AND used <= :cap)"
            request["ExpressionAttributeValues"].update(
                {":limit": {"N": str(claim.limit_units)}, ":cap": {"N": str(claim.limit_units - claim.units)}}
            )
        from botocore.exceptions import ClientError

        tries = 0
        while True:
            try:
                self.counters.update_item(**request)
                return True
            except self.counters.exceptions.ConditionalCheckFailedException:
                return False
            except ClientError as exc:  # a 5xx, like a timeout (not a ClientError), is ambiguous: not sent again
                tries += 1
                if exc.response.get("Error", {}).get("Code") not in _THROTTLED or tries == _COUNTER_TRIES:
                    raise
            time.sleep(0.025 * 2**tries + random.uniform(0, 0.025))  # noqa: S311 - jitter, not security

    def reserve(self, claims: Sequence[Claim], now: float) -> Claim | None:
        taken: list[Claim] = []
        try:
            for claim in claims:
                # the condition cannot say this for a counter not yet written: checked here
                if not fits(0, claim) or not self._add(claim, conditional=True):
                    self.adjust([c.undo() for c in taken], now)
                    return claim
                taken.append(claim)
        except BaseException:
            self.adjust([c.undo() for c in taken], now)
            raise
        return None

    def adjust(self, claims: Sequence[Claim], now: float) -> None:
        for claim in claims:
            if claim.units:
                self._add(claim, conditional=False)

    def used(self, counter: str, window: Window) -> int:
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"counter#{counter}"}, "sk": {"S": f"{window.start:.0f}"}},
            ConsistentRead=True,
        ).get("Item")
        return int(item["used"]["N"]) if item else 0

    def record(self, record: UsageRecord, expires: float) -> None:
        item: dict[str, Any] = {
            "pk": {"S": f"usage#{_iso(record.ts)[:10]}"},
            "sk": {"S": f"{_iso(record.ts)}#{record.event_id}"},
            "expires": {"N": f"{expires:.0f}"},
            "cache_hit": {"BOOL": record.cache_hit},
        }
        for name in _STRINGS:
            value = getattr(record, name)
            if value is not None:
                item[name] = {"S": value}
        for name in _NUMBERS:
            value = getattr(record, name)
            if value is not None:
                item[name] = _n(value)
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def records(self, start: float, end: float) -> Iterator[UsageRecord]:
        day = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(end, UTC).date()
        paginator = self.dynamodb.get_paginator("query")
        while day <= last:
            pages = paginator.paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={
                    ":pk": {"S": f"usage#{day.isoformat()}"},
                    ":from": {"S": _iso(start)},
                    ":to": {"S": _iso(end)},
                },
            )
            for page in pages:
                for item in page.get("Items", []):
                    record = _record(item)
                    if start <= record.ts < end:
                        yield record
            day += timedelta(days=1)


def _record(item: dict[str, Any]) -> UsageRecord:
    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    fallback = number("fallback_index")
    return UsageRecord(
        ts=float(item["ts"]["N"]),
        event_id=item["event_id"]["S"],
        key_id=item.get("key_id", {}).get("S"),
        route=item["route"]["S"],
        model_requested=item.get("model_requested", {}).get("S"),
        provider=item.get("provider", {}).get("S"),
        model=item.get("model", {}).get("S"),
        audio_seconds=number("audio_seconds") or 0.0,
        status=int(number("status") or 0),
        latency_ms=number("latency_ms") or 0.0,
        fallback_index=None if fallback is None else int(fallback),
        cost=number("cost") or 0.0,
        cache_hit=bool(item.get("cache_hit", {}).get("BOOL", False)),
    )
