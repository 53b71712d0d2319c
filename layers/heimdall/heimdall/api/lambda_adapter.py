"""The Lambda handler: Mangum around the app, with the request body decoded as it is read.

API Gateway delivers an upload base64-encoded inside the event. Mangum decodes it whole
(``base64.b64decode(str)``: an ASCII copy of the text plus the decoded bytes, about 2.3x the audio
on top of the event itself). Here the body text is set aside before Mangum sees it and handed to
the app 1 MiB at a time as the route pulls it (base64-decoded, or UTF-8 encoded when API Gateway
passed it as text), so one upload adds a few MiB at most, whatever its size, and a route that
stops at its limit never decodes the rest.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENCODED_BODY = "heimdall.encoded_body"
TEXT_BODY = "heimdall.text_body"
CHUNK_CHARS = 1024 * 1024  # a multiple of 4: every slice decodes on its own


class StreamedBody:
    """ASGI middleware: feeds the app the event's body in chunks, decoded as they are asked for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = scope.get("aws.event")
        event = event if isinstance(event, dict) else {}
        encoded: str | None = event.get(ENCODED_BODY) or event.get(TEXT_BODY)
        if scope["type"] != "http" or not encoded:
            await self.app(scope, receive, send)
            return
        decode: Callable[[str], bytes] = base64.b64decode if ENCODED_BODY in event else str.encode
        offset = 0
        mangum_body_consumed = False

        async def receive_decoded() -> Message:
            nonlocal offset, mangum_body_consumed
            if not mangum_body_consumed:
                await receive()  # Mangum's own (now empty) body message
                mangum_body_consumed = True
            if offset < len(encoded):
                chunk = decode(encoded[offset : offset + CHUNK_CHARS])
                offset += CHUNK_CHARS
                return {"type": "http.request", "body": chunk, "more_body": offset < len(encoded)}
            return await receive()

        await self.app(scope, receive_decoded, send)


def lambda_handler(app: ASGIApp) -> Any:
    """The function Lambda calls for API Gateway REST (v1) and HTTP API (v2) events."""
    from mangum import Mangum

    mangum = Mangum(StreamedBody(app), lifespan="off")  # the app has no start-up work to run

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("body"):
            kind = ENCODED_BODY if event.get("isBase64Encoded") else TEXT_BODY
            event = {**event, "body": "", "isBase64Encoded": False, kind: event["body"]}
        response: dict[str, Any] = mangum(event, context)
        return response

    return handler
