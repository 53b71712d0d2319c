"""A fake upstream provider: a real HTTP server on 127.0.0.1 (uvicorn) that checks the wire
contract as strictly as the real service, answers with realistic bodies, records every request,
and injects faults on demand."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

SPOKEN = "The quick brown fox jumps over the lazy dog. A second sentence follows after a short pause."
WORDS = [
    ("The", 0.0, 0.3), ("quick", 0.3, 0.62), ("brown", 0.62, 0.98), ("fox", 0.98, 1.4), ("jumps", 1.4, 1.78),
    ("over", 1.78, 2.14), ("the", 2.14, 2.42), ("lazy", 2.42, 2.68), ("dog.", 2.68, 3.46), ("A", 4.3, 4.4),
    ("second", 4.4, 4.8), ("sentence", 4.8, 5.3), ("follows", 5.3, 5.7), ("after", 5.7, 6.0), ("a", 6.0, 6.1),
    ("short", 6.1, 6.4), ("pause.", 6.4, 7.0),
]  # fmt: skip
DURATION = 7.1


def wav_seconds(data: bytes) -> float | None:
    """The duration of a canonical PCM WAV (as Heimdall's long-audio pieces are), else None."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or data[36:40] != b"data":
        return None
    byte_rate = int.from_bytes(data[28:32], "little")
    return (len(data) - 44) / byte_rate if byte_rate else None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    fields: list[tuple[str, str]] = field(default_factory=list)
    file: dict[str, Any] | None = None
    json: Any = None
    audio_seconds: float | None = None  # for a PCM WAV upload: how long it is
    raw_path: str = ""  # the path as sent, before percent-decoding
    raw_query: str = ""  # the query string as sent
    peer: str = ""  # the client's address and port: one per connection

    def field(self, name: str) -> str | None:
        values = [v for k, v in self.fields if k == name]
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


@dataclass(frozen=True)
class Fault:
    """``status``: an error status with ``body`` (or the provider's own error body); ``timeout``,
    ``reset``, ``truncated``, ``html``, ``midstream``: a broken answer; ``slow``: the right answer,
    ``seconds`` late; ``drip``: a 200 whose body trickles in; ``shape``: a 200 with valid JSON of the
    wrong shape (the fake's ``wrong_shape``); ``body``: a 200 with ``body`` as it is (bytes, a list of
    byte chunks sent without a length, or JSON); ``events``: a 200 event stream of ``body`` (a list of
    raw ``data:`` payloads)."""

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 5.0


class Rejection(Exception):
    """A provider error response, raised to end the handler early."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.response = JSONResponse(body, status_code=status, headers=headers)


def sse(events: list[bytes]) -> StreamingResponse:
    async def body() -> Any:
        for event in events:
            yield event

    return StreamingResponse(body(), media_type="text/event-stream")


def data(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class FakeUpstream:
    """Subclasses implement ``check`` (raise Rejection with the provider's real error body) and
    ``answer`` (the provider's success body)."""

    name = "fake"

    def __init__(self, key: str) -> None:
        self.key = key
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.always: Fault | None = None
        self.echo_key_in_errors = False
        #: Seconds the answer to a request takes (a model of the provider's speed), else at once.
        self.latency: Callable[[Recorded], float] | None = None
        #: A fault for one request by what it carries (e.g. one piece of long audio), else None.
        self.fault_for: Callable[[Recorded], Fault | None] | None = None

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.always = None
        self.latency = None
        self.fault_for = None

    # -- the ASGI app -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        recorded = await self.record(request)
        self.requests.append(recorded)
        fault = self.faults.popleft() if self.faults else None
        fault = fault or (self.fault_for(recorded) if self.fault_for is not None else None) or self.always
        if self.latency is not None:
            await asyncio.sleep(self.latency(recorded))
        if fault is not None and fault.kind == "slow":  # a right answer, late
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None:
            await self.apply(fault, scope, receive, send)
            return
        try:
            self.check(recorded)
            response: Response = self.answer(recorded)
        except Rejection as rejection:
            response = rejection.response
        await response(scope, receive, send)

    async def record(self, request: Request) -> Recorded:
        recorded = Recorded(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            raw_path=request.scope["raw_path"].decode("latin-1"),
            raw_query=request.scope["query_string"].decode("latin-1"),
            peer=":".join(map(str, request.scope.get("client") or ())),
        )
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=10, max_fields=100)
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    recorded.file = {
                        "field": name,
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                    }
                    recorded.audio_seconds = wav_seconds(data)
                else:
                    recorded.fields.append((name, value))
        else:
            body = await request.body()
            if content_type.startswith("application/json"):
                recorded.json = json.loads(body)
            else:
                recorded.file = {
                    "content_type": content_type,
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "size": len(body),
                }
        return recorded

    async def apply(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.kind == "status":
            await JSONResponse(fault.body or self.error_body(fault.status), fault.status, fault.headers)(
                scope, receive, send
            )
        elif fault.kind == "timeout":
            await asyncio.sleep(fault.seconds)  # longer than the gateway's timeout: it gives up first
            await JSONResponse(self.error_body(500), 500)(scope, receive, send)
        elif fault.kind == "html":
            await Response(
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
                502,
                media_type="text/html",
            )(scope, receive, send)
        elif fault.kind == "shape":
            await JSONResponse(self.wrong_shape())(scope, receive, send)
        elif fault.kind == "body" and isinstance(fault.body, list) and all(isinstance(b, bytes) for b in fault.body):
            stream = sse(fault.body)  # chunks sent as they are, without a length
            stream.media_type = "application/json"
            await stream(scope, receive, send)
        elif fault.kind == "body":
            raw = fault.body if isinstance(fault.body, bytes) else json.dumps(fault.body).encode()
            await Response(raw, 200, fault.headers, media_type="application/json")(scope, receive, send)
        elif fault.kind == "drip":  # a 200 whose body trickles in, a byte every ``seconds``
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            for byte in fault.body:
                await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
                await asyncio.sleep(fault.seconds)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif fault.kind == "events":
            await sse([b"data: " + event + b"\n\n" for event in fault.body])(scope, receive, send)
        elif fault.kind == "truncated":
            await Response('{"text": "The quick brown fo', 200, media_type="application/json")(scope, receive, send)
        elif fault.kind == "midstream":  # a streaming answer that starts, then the connection drops
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for event in self.stream_events(recorded_fields={})[:2]:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            raise ConnectionResetError("fake upstream drops the stream")
        elif fault.kind == "reset":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b'{"text": "The qu', "more_body": True})
            raise ConnectionResetError("fake upstream drops the connection mid-response")

    # -- provider-specific ----------------------------------------------------------------------
    def error_body(self, status: int) -> Any:
        return {"error": {"message": f"The server had an error while processing your request ({status}).",
                          "type": "server_error", "param": None, "code": None}}  # fmt: skip

    def check(self, recorded: Recorded) -> None:
        raise NotImplementedError

    def answer(self, recorded: Recorded) -> Response:
        raise NotImplementedError

    def wrong_shape(self) -> Any:
        """Valid JSON that breaks the provider's documented answer: a required field of the wrong type."""
        return {"text": ["The quick brown fox"]}

    def stream_events(self, recorded_fields: dict[str, str]) -> list[bytes]:
        """The provider's server-sent events for SPOKEN (streaming providers override)."""
        return [b'data: {"type": "transcript.text.delta", "delta": "The"}\n\n'] * 3

    def leak(self) -> str:
        """Part of an error message that echoes the key, as careless providers do."""
        return f" (key used: {self.key})" if self.echo_key_in_errors else ""
