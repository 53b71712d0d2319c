"""Per-request context: the correlation id, the request log line, and the last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so a body is never buffered or copied on its way through.
The correlation id is API Gateway's request id when there is one, else a fresh id; it is returned
as ``x-request-id`` and as ``event_id`` in error envelopes.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdall.core.errors import HeimdallError
from heimdall.observability import logger, record_request_metrics

if TYPE_CHECKING:
    from heimdall.governance.governor import Governor


def _correlation_id(scope: Scope) -> str:
    event = scope.get("aws.event")
    if isinstance(event, dict):
        request_id = (event.get("requestContext") or {}).get("requestId")
        if isinstance(request_id, str) and request_id:
            return request_id
    return str(uuid.uuid4())


def request_log(scope: Scope) -> dict[str, Any]:
    """Fields the route adds to this request's log line (provider, model, audio bytes...)."""
    state = scope.setdefault("state", {})
    log: dict[str, Any] = state.setdefault("log", {})
    return log


def error_response(request: Request, exc: HeimdallError) -> JSONResponse:
    event_id = request.scope.get("state", {}).get("event_id") or str(uuid.uuid4())
    log = request_log(request.scope)
    if exc.provider and "provider" not in log:
        log["provider"] = exc.provider
    log["error_code"] = exc.code
    body = exc.envelope(event_id=event_id, model_requested=log.get("model"))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Any = None, governor: Governor | None = None) -> None:
        self.app = app
        self.metrics = metrics  # Powertools Metrics in Lambda (flushed per invocation), else None
        self.governor = governor  # writes the usage record after the response (blocking I/O: a thread)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        event_id = _correlation_id(scope)
        scope.setdefault("state", {})["event_id"] = event_id
        log = request_log(scope)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = event_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"event_id": event_id})
            if status is None:
                request = Request(scope)
                await error_response(request, HeimdallError("Internal error."))(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            facts = {
                "event_id": event_id,
                "method": scope.get("method"),
                "route": getattr(route, "path", None),
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                **log,
            }
            logger.info("request", extra=facts)
            if self.metrics is not None:
                record_request_metrics(self.metrics, facts)
            if self.governor is not None:
                usage = self.governor.usage_record(facts)
                if usage is not None:  # most requests have none: no thread is woken for them
                    await run_in_threadpool(self.governor.write_usage, usage)
