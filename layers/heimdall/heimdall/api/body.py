"""Request bodies read up to their limit and no further.

A body is never buffered before its size is checked: a declared ``Content-Length`` over the limit
is refused before a byte is read, and a body sent without one (chunked) is refused as soon as the
bytes received pass the limit, so a route holds at most its limit plus one chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from heimdall.core.errors import InvalidRequest, PayloadTooLarge


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return PayloadTooLarge(f"The {what} is larger than the gateway's limit of {size}.")


async def limited_stream(request: Request, limit: int, what: str = "request body") -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 413 once more than ``limit`` bytes are announced or sent."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit, what)
            yield chunk
    except ClientDisconnect:  # gone, or cut off by the server for stalling: nobody reads the answer
        raise InvalidRequest(f"The {what} ended before it was complete.", code="incomplete_body") from None


async def read_body(request: Request, limit: int, what: str = "request body") -> bytes:
    """The whole body, when it is at most ``limit`` bytes."""
    body = bytearray()
    async for chunk in limited_stream(request, limit, what):
        body += chunk
    return bytes(body)
