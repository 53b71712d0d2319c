"""Structured logging: one JSON line per request (Powertools Logger), never audio, never keys; and,
in Lambda, CloudWatch metrics in the embedded metric format (Powertools Metrics)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="heimdall")


def record_request_metrics(metrics: Any, facts: dict[str, Any]) -> None:
    """One invocation, one request: its latency, size, outcome and the provider that served it."""
    from aws_lambda_powertools.metrics import MetricUnit

    if facts.get("provider"):
        metrics.add_dimension(name="provider", value=str(facts["provider"]))
    status = int(facts.get("status") or 500)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=float(facts.get("latency_ms") or 0))
    if facts.get("audio_bytes"):
        metrics.add_metric(name="AudioBytes", unit=MetricUnit.Bytes, value=int(facts["audio_bytes"]))
    if status >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    elif status >= 400:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    if facts.get("fallback_index"):
        metrics.add_metric(name="Fallbacks", unit=MetricUnit.Count, value=1)
    if facts.get("key_id"):
        record_key_metrics(metrics, str(facts["key_id"]), float(facts.get("audio_seconds") or 0))


def record_key_metrics(metrics: Any, key_id: str, audio_seconds: float) -> None:
    """Requests and audio seconds per gateway key, as their own metrics (the series above keep their
    dimensions). The key dimension's cardinality is bounded by the config: a key id is known only once a
    presented key matched one of ``governance.virtual_keys`` (an unknown key is a 401 with no id), so
    there are at most as many series as configured keys — never a client-chosen value."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    dimensions = {"service": metrics.service} if getattr(metrics, "service", None) else None
    for name, unit, value in (
        ("RequestsByKey", MetricUnit.Count, 1.0),
        ("AudioSecondsByKey", MetricUnit.Seconds, audio_seconds),
    ):
        with single_metric(
            name=name, unit=unit, value=value, namespace=metrics.namespace, default_dimensions=dimensions
        ) as metric:
            metric.add_dimension(name="key", value=key_id)
