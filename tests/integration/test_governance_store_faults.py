"""The DynamoDB governance store when DynamoDB misbehaves: faults injected by a proxy on 127.0.0.1 in
front of moto's server (tests/support/dynamodb_faults.py), reached by boto3 as in Lambda. A counter
write is an ADD: one DynamoDB applied but whose answer was lost must not be sent again (a request
counted twice, a give-back applied twice); one DynamoDB throttled was not applied and is."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from heimdall.config import GatewayConfig
from heimdall.core.errors import EngineUnavailable
from heimdall.governance.dynamodb_store import DynamoDBStore
from heimdall.governance.limits import Limits
from heimdall.governance.store import Claim
from heimdall.governance.windows import window_at
from tests.support.aws import create_governance_table, moto_endpoint
from tests.support.dynamodb_faults import fault_proxy

NOW = window_at("1h", time.time()).start + 15.0
LOST_ANSWER = {"after": (500, "InternalServerError")}  # applied by DynamoDB, answered as a failure
THROTTLED = {"error": (400, "ProvisionedThroughputExceededException")}  # not applied


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def table(moto: str) -> str:
    name = f"governance-{uuid.uuid4().hex}"
    create_governance_table(name)
    return name


def claim(limit: float) -> Claim:
    return Claim("rate_limit", "rl", "requests", "1h", window_at("1h", NOW), 1, float(limit))


def store_via(proxy: str, table: str, monkeypatch: pytest.MonkeyPatch) -> DynamoDBStore:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)  # read when the lazy clients are built
    store = DynamoDBStore(table)
    store.counters  # built now, against the proxy
    return store


def used(moto: str, table: str, counted: Claim) -> int:
    client = boto3.client("dynamodb", endpoint_url=moto)
    item = client.get_item(TableName=table, Key=DynamoDBStore._key(counted), ConsistentRead=True).get("Item")
    return int(item["used"]["N"]) if item else 0


def nth_update(n: int, action: dict[str, Any]) -> Any:
    return lambda operation, body, seen: action if (operation == "UpdateItem" and seen == n) else None


def test_a_reservation_whose_answer_was_lost_is_not_counted_twice(
    moto: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as a limit that cannot be checked (503, fail closed), and counted at most once."""
    counted = claim(limit=10)
    with fault_proxy(moto, nth_update(1, LOST_ANSWER)) as (proxy, seen):
        limits = Limits(GatewayConfig().governance, store_via(proxy, table, monkeypatch), lambda: NOW)
        with pytest.raises(EngineUnavailable):
            limits.reserve([counted])
    assert seen.count("UpdateItem") == 1
    assert used(moto, table, counted) == 1


def test_a_give_back_whose_answer_was_lost_is_not_applied_twice(
    moto: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A give-back applied twice took the counter below zero: a limit of 2 then admitted 3."""
    counted = claim(limit=2)
    with fault_proxy(moto, nth_update(2, LOST_ANSWER)) as (proxy, _):
        store = store_via(proxy, table, monkeypatch)
        assert store.reserve([counted], NOW) is None
        limits = Limits(GatewayConfig().governance, store, lambda: NOW)
        limits.adjust([counted.undo()])  # no provider answered: given back (its answer lost; logged)
        admitted = sum(store.reserve([counted], NOW) is None for _ in range(5))
    assert admitted == 2
    assert used(moto, table, counted) == 2


def test_a_throttled_counter_write_is_sent_again_and_counted_once(
    moto: str, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = claim(limit=10)
    throttled_twice = lambda operation, body, seen: THROTTLED if operation == "UpdateItem" and seen <= 2 else None  # noqa: E731
    with fault_proxy(moto, throttled_twice) as (proxy, seen):
        assert store_via(proxy, table, monkeypatch).reserve([counted], NOW) is None
    assert seen.count("UpdateItem") == 3
    assert used(moto, table, counted) == 1
