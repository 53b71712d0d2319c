"""The two governance stores behave alike: SQLite (make run) and DynamoDB (moto's server, over HTTP)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from heimdall.governance.dynamodb_store import DynamoDBStore
from heimdall.governance.sqlite_store import SqliteStore
from heimdall.governance.store import Claim, GovernanceStore, UsageRecord
from heimdall.governance.windows import window_at
from tests.support.aws import create_governance_table, moto_endpoint

NOW = 1_795_000_000.0  # 2026-11-18, a fixed instant: windows are computed, never waited for


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> GovernanceStore:
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "governance.sqlite3")
    request.getfixturevalue("aws")
    name = f"governance-{uuid.uuid4().hex}"
    create_governance_table(name)
    return DynamoDBStore(name)


def claim(limit_id: str, amount: float, limit: float, *, reset: str = "1m", now: float = NOW) -> Claim:
    return Claim("rate_limit", limit_id, "requests", reset, window_at(reset, now), amount, limit)


def test_50_racing_reservations_on_a_limit_of_10_admit_exactly_10(store: GovernanceStore) -> None:
    start = threading.Barrier(50)

    def one(_: int) -> bool:
        start.wait()
        return store.reserve([claim("rl", 1, 10)], NOW) is None

    with ThreadPoolExecutor(50) as pool:
        admitted = sum(pool.map(one, range(50)))
    assert admitted == 10
    assert store.used("rate_limit:rl:requests", window_at("1m", NOW)) == 10


def test_a_refused_claim_takes_nothing_from_the_others(store: GovernanceStore) -> None:
    assert store.reserve([claim("b", 5, 5)], NOW) is None
    refused = store.reserve([claim("a", 1, 10), claim("b", 1, 5)], NOW)
    assert refused is not None and refused.limit_id == "b"
    assert store.used("rate_limit:a:requests", window_at("1m", NOW)) == 0


def test_a_claim_larger_than_the_whole_limit_is_refused_even_on_a_fresh_counter(store: GovernanceStore) -> None:
    assert store.reserve([claim("big", 11, 10)], NOW) is not None
    assert store.reserve([claim("zero", 0, 0)], NOW) is not None


def test_released_reservations_make_room_again(store: GovernanceStore) -> None:
    held = [claim("rl", 1, 2), claim("rl", 1, 2)]
    for c in held:
        assert store.reserve([c], NOW) is None
    assert store.reserve([claim("rl", 1, 2)], NOW) is not None
    store.adjust([held[0].undo()], NOW)
    assert store.reserve([claim("rl", 1, 2)], NOW) is None


def test_the_next_window_starts_from_zero(store: GovernanceStore) -> None:
    for _ in range(3):
        assert store.reserve([claim("rl", 1, 3)], NOW) is None
    assert store.reserve([claim("rl", 1, 3)], NOW) is not None
    later = window_at("1m", NOW).end + 1
    assert store.reserve([claim("rl", 1, 3, now=later)], later) is None


def test_usage_records_come_back_by_time_range(store: GovernanceStore) -> None:
    def record(ts: float, event: str) -> UsageRecord:
        return UsageRecord(ts, event, "team-a", "/v1/audio/transcriptions", "whisper", "openai", "whisper-1",
                           4.2, 200, 12.5, 0, 0.00042, False)  # fmt: skip

    day = 86400
    for ts, event in [(NOW - 2 * day, "old"), (NOW - 60, "a"), (NOW, "b"), (NOW + day, "next-day")]:
        store.record(record(ts, event), expires=ts + 90 * day)
    found = list(store.records(NOW - day, NOW + day))
    assert [r.event_id for r in found] == ["a", "b"]
    assert found[0] == record(NOW - 60, "a")


def test_a_record_without_a_key_comes_back_without_one(store: GovernanceStore) -> None:
    """A job of a file an operator dropped into the bucket has no gateway key."""
    record = UsageRecord(NOW, "job-1", None, "/v1/uploads", None, "openai", "whisper-1", 4.2, 200, 900.0, 0,
                         0.00042, False)  # fmt: skip
    store.record(record, expires=NOW + 86400)
    assert list(store.records(NOW - 1, NOW + 1)) == [record]
