"""Provider calls made on the server's event loop (aiohttp), so a small request needs no worker thread.

Under ``make run`` a blocking provider call is handed to a worker thread and its result handed back:
waking the thread, the loop and anyio's bookkeeping cost more CPU than the call itself
(docs/performance.md). A served gateway therefore makes provider calls here (each HTTP provider but
Gemini describes its one call as an ``Exchange``) for uploads held in memory (at most 1 MiB) when
nothing in the request needs blocking I/O (no governance store, no cache, no proxy). Everything
else — Lambda, which runs no lifespan and ships no aiohttp, files on /tmp, streams, the engine,
governance — keeps the worker thread.

The answer is read and mapped as ``Upstream`` maps it: the same timeouts, size bounds and errors with
the same messages (the provider tests run against both). What differs is the HTTP parser: aiohttp
refuses some answers http.client lets through (a space before a header's colon, a Content-Length
given twice, a coding other than gzip or deflate) with a 502, and reads a 103 or a 101st header that
http.client refuses; a connection cut inside the headers is a dropped connection here (502
``provider_unreachable``), where http.client reads an empty answer (502 ``invalid_provider_response``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode

from heimdall.core.errors import HeimdallError
from heimdall.providers.upstream import (
    MAX_ANSWER_BYTES,
    MAX_ERROR_BYTES,
    READ_BLOCK,
    BoundedBody,
    Call,
    Outgoing,
    StreamedBody,
    Upstream,
)
from heimdall.providers.wire import ErrorBody

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")
#: An answer larger than this is parsed in a worker thread: 30 MB of word timings take a second of
#: pydantic, which would hold every other request the loop serves.
PARSE_ON_LOOP_BYTES = 256 * 1024
#: http.client's limit on a header line, so both paths read the same headers.
MAX_HEADER_LINE = 65536


def available() -> bool:
    """Whether aiohttp is installed (the ``serve`` extra installs it; the Lambda layer does not)."""
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


class LoopClient:
    """One aiohttp session for one server's event loop: opened when the server starts (the app's
    lifespan), closed when it stops."""

    def __init__(self) -> None:
        import ssl

        import aiohttp

        self._aiohttp = aiohttp
        self.session = aiohttp.ClientSession(
            # No cap on connections: a cap would make calls wait for one inside their timeout (the
            # worker-thread path is bounded by its threads, the loop by the requests it serves). The
            # trust store is read now, as the server starts (SSL_CERT_FILE, SSL_CERT_DIR honoured), not
            # when aiohttp was first imported.
            connector=aiohttp.TCPConnector(limit=0, ssl=ssl.create_default_context()),
            trust_env=False,  # calls through a proxy keep the worker thread
            cookie_jar=aiohttp.DummyCookieJar(),
            max_line_size=MAX_HEADER_LINE,
            max_field_size=MAX_HEADER_LINE,
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self,
        upstream: Upstream,
        outgoing: Outgoing,
        *,
        call: Call,
        errors: type[ErrorBody],
        read: Callable[[bytes, Mapping[str, str]], T],
    ) -> T:
        """POST ``outgoing`` and return ``read(body, headers)`` of its 2xx answer, or raise the error
        ``Upstream`` maps the same failure to: connecting within 10 s, the whole call by ``call.ends``.
        Redirects are not followed."""
        from yarl import URL

        aiohttp = self._aiohttp
        target = f"{outgoing.url}?{urlencode(outgoing.params)}" if outgoing.params else outgoing.url
        remaining = max(0.0, call.ends - time.monotonic())
        timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=min(remaining, 10.0))
        try:
            async with self.session.post(
                URL(target, encoded=True),  # the path as built: each segment is already percent-encoded
                data=_sent(outgoing.body),
                headers={
                    "Accept-Encoding": "gzip, deflate",
                    **outgoing.headers,
                    "Content-Length": str(len(outgoing.body)),
                },
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                if response.status >= 400:
                    try:
                        error_body: bytes | None = await _read(upstream, response, call, MAX_ERROR_BYTES)
                    except (HeimdallError, aiohttp.ClientError, OSError):  # TimeoutError is an OSError
                        error_body = None  # oversized, cut off or too slow: the status alone speaks
                    raise upstream.error_for(response.status, response.headers, error_body, errors)
                try:
                    body = await _read(upstream, response, call, MAX_ANSWER_BYTES)
                except TimeoutError:
                    raise  # a 504, below (TimeoutError is an OSError, and aiohttp's a ClientError too)
                except (aiohttp.ClientError, OSError):
                    raise upstream.unreachable("dropped the connection while answering") from None
                headers = response.headers
        except TimeoutError:  # asyncio's and aiohttp's timeouts are both TimeoutError on Python 3.11+
            raise upstream.timeout(call) from None
        except (aiohttp.ClientError, OSError):
            raise upstream.unreachable("could not be reached or dropped the connection") from None
        if len(body) <= PARSE_ON_LOOP_BYTES:
            return read(body, headers)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(read, body, headers)


async def _sent(body: StreamedBody) -> AsyncIterator[bytes]:
    """The body's parts as aiohttp takes them, the audio from the upload's own buffer: with the
    Content-Length given, it is sent as is, not chunked, and no joined copy is held during the call."""
    for part in body.parts():
        yield part


async def _read(upstream: Upstream, response: aiohttp.ClientResponse, call: Call, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes once decoded, by ``call.ends`` (as ``Upstream._read``)."""
    body = BoundedBody(upstream, call, limit, response.content_length)
    async for chunk in response.content.iter_chunked(READ_BLOCK):
        body.add(chunk)
    return body.value()
