"""The ``text/event-stream`` answer of the reference: ``transcript.text.delta`` events, one
``transcript.text.done``, then ``data: [DONE]``.

The router has already received the first event (so failures before it were retried, fell back, or
became an ordinary HTTP error). A failure after it becomes one ``data:`` event carrying the error
envelope, and the stream ends there, without ``[DONE]``. Events carry no timings, so the bytes are
the same under uvicorn and through Mangum (which buffers the whole stream in Lambda).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import iterate_in_threadpool

from heimdall.core.errors import HeimdallError
from heimdall.core.formats import extra_fields
from heimdall.core.types import StreamEvent, TextDelta, TranscriptionRequest
from heimdall.observability import logger
from heimdall.routing import RoutedStream

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _frame(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _payload(event: StreamEvent, extra_fields: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        body: dict[str, Any] = {"type": "transcript.text.delta", "delta": event.delta}
    else:
        body = {"type": "transcript.text.done", "text": event.text}
        if event.usage is not None:
            body["usage"] = event.usage.model_dump(exclude_none=True)
    if event.logprobs is not None:
        body["logprobs"] = [lp.model_dump(exclude_none=True) for lp in event.logprobs]
    body["extra_fields"] = extra_fields
    return body


async def event_stream(
    routed: RoutedStream,
    request: TranscriptionRequest,
    *,
    event_id: str,
    log: dict[str, Any],
    on_close: Callable[[], None],
) -> AsyncIterator[bytes]:
    base = extra_fields(
        provider=routed.target.provider,
        model_requested=request.model,
        model_deployment=routed.target.model,
        fallback_index=routed.fallback_index,
    )
    index = 0
    try:
        yield _frame(_payload(routed.first, {**base, "chunk_index": index}))
        async for event in iterate_in_threadpool(routed.rest):
            index += 1
            yield _frame(_payload(event, {**base, "chunk_index": index}))
        yield _frame("[DONE]")
    except HeimdallError as exc:
        log.update(stream_error=exc.code, stream_events=index + 1)
        logger.warning("stream failed after it started", extra={"event_id": event_id, "error_code": exc.code})
        envelope = exc.envelope(event_id=event_id, model_requested=request.model)
        envelope["extra_fields"]["chunk_index"] = index + 1
        yield _frame(envelope)
    finally:
        log.setdefault("stream_events", index + 1)
        close = getattr(routed.rest, "close", None)
        if callable(close):
            close()  # a client that went away: stop the provider's stream (and free the engine)
        on_close()
