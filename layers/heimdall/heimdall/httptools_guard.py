"""The slow-client guard (heimdall/http_guard.py) on uvicorn's httptools protocol: llhttp parses
HTTP in C, which costs less CPU per request than h11 in Python (docs/performance.md). ``make run``
serves through it when httptools is installed (the ``serve`` extra installs it).

llhttp reports a request as callbacks: ``on_message_begin`` (its first byte), ``on_headers_complete``,
``on_body``, ``on_message_complete``; uvicorn keeps the request's state on its ``cycle`` (``more_body``
until the body's last byte, ``response_complete`` once the answer is sent).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from heimdall.http_guard import SlowClientGuard


class GuardedHttpToolsProtocol(SlowClientGuard, HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_init()
        self._in_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_connection(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._guard_data()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        body_unread = self.body_unread()
        super().on_response_complete()
        self._guard_answered(body_unread)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def reading_headers(self) -> bool:
        # A pipelined request's headers arriving while the app is at work on the one before are not
        # waited for: h11 does not read them until then either.
        return self._in_headers and not self.at_work()

    def reading_body(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.response_complete

    def at_work(self) -> bool:
        cycle = self.cycle
        return cycle is not None and not cycle.more_body and not cycle.response_complete

    def body_unread(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body
