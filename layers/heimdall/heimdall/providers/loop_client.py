"""Provider calls made on the server's event loop (aiohttp), so a small request needs no worker thread.

Under ``make run`` a blocking provider call is handed to a worker thread and its result handed back:
waking the thread, the loop and anyio's bookkeeping cost more CPU than the call itself
(docs/performance.md). A served gateway therefore makes its provider calls here, for uploads held in
memory whose duration is known from their header, when nothing in the request needs blocking I/O
(no governance store, no cache). Everything else — Lambda, which serves one request at a time and
ships no aiohttp, files on disk, streams, the engine, governance — keeps the worker thread.

The answer is read and mapped exactly as ``Upstream`` maps it (the same sizes, the same errors, the
same messages): only the transport differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode

from heimdall.core.errors import HeimdallError
from heimdall.providers.upstream import MAX_ANSWER_BYTES, MAX_ERROR_BYTES, Call, StreamedBody, Upstream
from heimdall.providers.wire import ErrorBody, WireModel

if TYPE_CHECKING:
    import aiohttp

M = TypeVar("M", bound=WireModel)
_READ_BLOCK = 256 * 1024


def available() -> bool:
    """Whether aiohttp is installed (the ``serve`` extra installs it; the Lambda layer does not)."""
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


class LoopClient:
    """One aiohttp session for the server's loop: created when the server starts, closed when it stops."""

    def __init__(self) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        # No proxy from the environment (calls through a proxy keep the worker thread) and no cookies.
        self.session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        await self.session.close()

    async def answer(
        self,
        upstream: Upstream,
        url: str,
        *,
        call: Call,
        headers: Mapping[str, str],
        errors: type[ErrorBody],
        body: StreamedBody,
        model: type[M],
        params: Mapping[str, str] | None = None,
    ) -> M:
        """POST ``body`` and return the answer as ``model``, or raise the error ``Upstream`` maps the
        same failure to. Redirects are not followed."""
        from yarl import URL

        aiohttp = self._aiohttp
        target = f"{url}?{urlencode(params)}" if params else url
        sent = {"Accept-Encoding": "gzip, deflate", **headers}  # aiohttp adds the Content-Length
        timeout = aiohttp.ClientTimeout(total=call.timeout, sock_connect=min(call.timeout, 10.0))
        try:
            async with self.session.post(
                URL(target, encoded=True),  # the path as built: each segment is already percent-encoded
                data=b"".join(body),  # one block: the route sends only uploads of at most 1 MiB this way
                headers=sent,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                if response.status >= 400:
                    try:
                        error_body: bytes | None = await _read(upstream, response, MAX_ERROR_BYTES)
                    except (HeimdallError, TimeoutError, aiohttp.ClientError, OSError):
                        error_body = None  # oversized, cut off or too slow: the status alone speaks
                    raise upstream.error_for(response.status, response.headers, error_body, errors)
                try:
                    answer = await _read(upstream, response, MAX_ANSWER_BYTES)
                except TimeoutError:
                    raise  # a 504, below (TimeoutError is an OSError, and aiohttp's a ClientError too)
                except (aiohttp.ClientError, OSError) as exc:
                    raise upstream.unreachable("dropped the connection while answering", exc) from None
                return upstream.parse(answer, response.headers, model)
        except TimeoutError:  # asyncio's and aiohttp's timeouts are both TimeoutError on Python 3.11+
            raise upstream.timeout(call) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise upstream.unreachable("could not be reached or dropped the connection", exc) from None


async def _read(upstream: Upstream, response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes once decoded (the session's timeout bounds the time)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise upstream.too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_BLOCK):
        size += len(chunk)
        if size > limit:
            raise upstream.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
