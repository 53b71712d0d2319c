"""Per-key metrics: their own series, only for a key that authenticated (so at most one per configured key)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from heimdall.observability import record_request_metrics


def emitted(capsys: pytest.CaptureFixture[str], facts: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = Metrics(namespace="Heimdall", service="heimdall")
    record_request_metrics(metrics, facts)
    metrics.flush_metrics()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def test_an_authenticated_request_is_counted_under_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    blobs = emitted(capsys, {"status": 200, "latency_ms": 12, "provider": "openai", "key_id": "team-a",
                             "audio_seconds": 4.2})  # fmt: skip
    by_key = {name: blob for blob in blobs for name in blob if name.endswith("ByKey")}
    assert set(by_key) == {"RequestsByKey", "AudioSecondsByKey"}
    for blob in by_key.values():
        assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "key"]]
        assert blob["key"] == "team-a"
    assert by_key["AudioSecondsByKey"]["AudioSecondsByKey"] in (4.2, [4.2])
    (request_blob,) = [b for b in blobs if "Requests" in b]
    assert "key" not in request_blob  # the existing series keep their dimensions


def test_no_key_no_key_series(capsys: pytest.CaptureFixture[str]) -> None:
    blobs = emitted(capsys, {"status": 401, "latency_ms": 1})
    assert not [b for b in blobs if any(name.endswith("ByKey") for name in b)]
