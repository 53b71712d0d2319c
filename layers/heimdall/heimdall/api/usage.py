"""``GET /v1/usage?from=&to=&group_by=key|provider|model``: usage totals, for keys config marks ``admin``.

``from`` and ``to`` are ISO 8601 instants (``2026-11-01T00:00:00Z``) or dates (``2026-11-01``, midnight
UTC); by default the last 24 hours. The range may not reach further back than the usage retention.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from heimdall.api.auth import authenticate
from heimdall.api.openapi import ERROR_RESPONSES
from heimdall.config import GatewayConfig
from heimdall.core.errors import EngineUnavailable, Forbidden, InvalidRequest, NotFound
from heimdall.governance.governor import Governor
from heimdall.governance.usage import GROUPS, summarize
from heimdall.observability import logger


def _instant(request: Request, name: str, default: float) -> float:
    text = request.query_params.get(name)
    if text is None or not text.strip():
        return default
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"'{name}' must be an ISO 8601 time (2026-11-01T00:00:00Z) or date (2026-11-01).",
            param=name,
            code="invalid_value",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def usage(request: Request) -> dict[str, Any]:
    key = authenticate(request)
    governor: Governor = request.app.state.governor
    config: GatewayConfig = request.app.state.config
    if governor.store is None or key is None:
        raise NotFound("Usage is recorded only when gateway keys are configured.", code="usage_not_configured")
    if not key.admin:
        raise Forbidden(f"Gateway key '{key.id}' may not read usage (needs \"admin\": true).", code="not_admin")
    group_by = request.query_params.get("group_by") or None
    if group_by is not None and group_by not in GROUPS:
        raise InvalidRequest("'group_by' must be key, provider or model.", param="group_by", code="invalid_value")
    now = governor.clock()
    # half-open [from, to): by default up to and including now; nothing is recorded in the future, so a
    # later `to` is cut to now (which also bounds the days a query walks)
    end = min(_instant(request, "to", now + 1), now + 1)
    start = _instant(request, "from", end - 86400)
    if not start < end:
        raise InvalidRequest("'from' must be before 'to'.", param="from", code="invalid_value")
    if start < now - governor.retention_seconds - 86400:
        raise InvalidRequest(
            f"Usage is kept {config.governance.usage_retention_days} days; 'from' reaches further back.",
            param="from",
            code="invalid_value",
        )
    assert governor.store is not None
    store = governor.store
    try:
        summary = await run_in_threadpool(lambda: summarize(store.records(start, end), group_by))
    except Exception:
        logger.exception("usage records could not be read")
        raise EngineUnavailable(
            "Usage records cannot be read right now; try again shortly.", code="usage_unavailable"
        ) from None
    return {"object": "usage", "from": _iso(start), "to": _iso(end), "group_by": group_by, **summary}


def add_usage_route(app: FastAPI) -> None:
    app.add_api_route(
        "/v1/usage",
        usage,
        methods=["GET"],
        tags=["Governance"],
        summary="Usage totals per key, provider or model (admin keys)",
        response_model=None,
        operation_id="getUsage",
        openapi_extra={
            "parameters": [
                {"name": "from", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "ISO 8601 instant or date (default: 24 hours before `to`)."},
                {"name": "to", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "ISO 8601 instant or date, exclusive (default: now)."},
                {"name": "group_by", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": sorted(GROUPS)}},
            ],
            "responses": {
                "200": {
                    "description": "Totals over the range, and one row per group when grouped",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **{status: ERROR_RESPONSES[status] for status in ("400", "401", "403", "404", "405", "503")},
            },
        },
    )  # fmt: skip
