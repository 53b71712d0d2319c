"""uvicorn's HTTP/1.1 protocols with the bounds a server facing slow or idle clients needs.

uvicorn bounds the idle time between requests on a kept-alive connection (``timeout_keep_alive``)
and nothing else: a client that sends half its headers, or half its body, and then waits holds its
connection (and a file descriptor) for ever, and a thousand of them leave nothing for anyone else.
``SlowClientGuard`` adds, to either of uvicorn's protocols:

- a deadline for a request's headers, counted from the connection (or, on a kept-alive connection,
  from the request's first byte) — a client that trickles a byte at a time does not extend it;
- a deadline for the body's next byte while the request is still being received;
- a cap on open connections, below the process's file-descriptor limit: at the cap, a new
  connection takes the place of the one that has waited on its client longest (half-sent headers
  or body, or an idle kept-alive connection), and is refused only when every connection is at work;
- a close, after a short linger, once an answer has gone out before its request's body was read
  (a 413 after the limit): uvicorn would otherwise read and discard the rest, however long.

``GuardedH11Protocol`` (h11, pure Python) serves the streaming function (functions/streaming/run.sh,
``--http heimdall.http_guard:GuardedH11Protocol --backlog 128``), whose requirements carry uvicorn
alone; ``make run`` (heimdall/server.py) serves through ``GuardedHttpToolsProtocol``
(heimdall/httptools_guard.py: llhttp's C parser, less CPU per request) when httptools is
installed, as the ``serve`` extra does, and through the h11 one otherwise; each with
``backlog=BACKLOG``.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
BODY_IDLE_SECONDS = 15.0
LINGER_SECONDS = 2.0
MAX_CONNECTIONS = 1000
#: The listening socket's backlog, which is also how many connections asyncio accepts in one go,
#: before any of them is seen here: the cap keeps room for two such bursts.
BACKLOG = 128
#: Kept free for everything else the process opens (the model, temporary files, upstream sockets),
#: and for connections accepted before the cap can close the ones they replace.
RESERVED_FDS = 64 + 2 * BACKLOG


def connection_cap() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


class SlowClientGuard:
    """The deadlines and the connection cap, for a uvicorn protocol that says where its request is:
    ``reading_headers``, ``reading_body`` (the request's body is still arriving, unanswered),
    ``at_work`` (the whole request is in and the app has not answered) and ``body_unread`` (the
    answer went out before the body was read to its end)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    logger: Any
    _unset_keepalive_if_required: Callable[[], None]  # the protocol's own: stops its keep-alive timer

    def _guard_init(self) -> None:
        self._deadline: asyncio.TimerHandle | None = None
        self._header_deadline_armed = False
        self.waiting_since = time.monotonic()  # when this connection began waiting on its client

    # -- the protocol's state, each in its own terms -----------------------------------------------
    def reading_headers(self) -> bool:
        raise NotImplementedError

    def reading_body(self) -> bool:
        raise NotImplementedError

    def at_work(self) -> bool:
        raise NotImplementedError

    def body_unread(self) -> bool:
        raise NotImplementedError

    # -- the bounds ------------------------------------------------------------------------------
    def _guard_connection(self, transport: asyncio.Transport) -> None:
        """After the protocol's own connection_made."""
        self.waiting_since = time.monotonic()
        self._arm(HEADER_SECONDS)
        self._header_deadline_armed = True
        if len(self.connections) > connection_cap() and not self._evict_one():
            self.logger.warning("Connection refused: every connection is at work (cap %d).", connection_cap())
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            transport.close()

    def _guard_data(self) -> None:
        """After the protocol has taken in the bytes received."""
        if self.transport.is_closing():
            return
        if self.reading_body():
            self.waiting_since = time.monotonic()
            self._header_deadline_armed = False
            self._arm(BODY_IDLE_SECONDS)  # reset by every byte of the body
        elif self.reading_headers():
            if not self._header_deadline_armed:  # the next request on a kept-alive connection has begun
                self.waiting_since = time.monotonic()
                self._header_deadline_armed = True
                self._arm(HEADER_SECONDS)
        elif self.at_work():  # the whole request is in: the app is at work
            self._disarm()

    def _guard_answered(self, body_unread: bool) -> None:
        """After the protocol's own on_response_complete; ``body_unread`` as it was before it."""
        self._disarm()
        self._header_deadline_armed = False
        self.waiting_since = time.monotonic()
        if body_unread and not self.transport.is_closing():
            # Answered before the body was read (a 413): stop here rather than drain the rest. The
            # linger lets the client read the answer before the close resets the connection.
            self._unset_keepalive_if_required()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

    @property
    def waiting_on_client(self) -> bool:
        """Nothing of this connection's is at work: it waits for headers, a body, or a next request."""
        if self.transport is None or self.transport.is_closing():
            return False
        return not self.at_work()

    def _evict_one(self) -> bool:
        waiting = [c for c in self.connections if isinstance(c, SlowClientGuard) and c is not self
                   and c.waiting_on_client]  # fmt: skip
        if not waiting:
            return False
        oldest = min(waiting, key=lambda connection: connection.waiting_since)
        oldest.transport.close()
        return True

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class GuardedH11Protocol(SlowClientGuard, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_init()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_connection(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._guard_data()

    def on_response_complete(self) -> None:
        body_unread = self.body_unread()
        super().on_response_complete()
        self._guard_answered(body_unread)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def reading_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def reading_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY and self.conn.our_state is not h11.DONE

    def at_work(self) -> bool:
        their, ours = self.conn.their_state, self.conn.our_state
        return not (their is h11.IDLE or (their is h11.SEND_BODY and ours is not h11.DONE) or ours is h11.DONE)

    def body_unread(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY
