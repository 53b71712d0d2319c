"""What every HTTP provider shares: the connection pool, key choice, bodies, timeouts, and error mapping.

One urllib3 connection pool per provider, created on first use and reused across requests (and
across invocations of a warm Lambda). Failures map as docs/api.md says: timeout → 504; connection reset,
HTML page, truncated, oversized or unparseable body, or JSON of the wrong shape → 502; upstream 429 →
429 with ``Retry-After``; upstream 5xx → 502; the provider's own JSON message is relayed
(``is_bifrost_error: false``), never raw HTML and never a key, even when the provider echoes one.
Answers are read by Heimdall, bounded in size and time, and only through typed models (``wire.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote, urlencode

from pydantic_core import from_json

from heimdall.config import KeyConfig, NetworkConfig, ProviderConfig
from heimdall.core.errors import (
    HeimdallError,
    InvalidRequest,
    NotFound,
    ProviderFailed,
    ProviderTimeout,
    RateLimited,
)
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest
from heimdall.providers.wire import ErrorBody, TranscriptAnswer, WireModel, invalid_answer, parse_answer

if TYPE_CHECKING:
    import urllib3

    from heimdall.providers.loop_client import LoopClient

M = TypeVar("M", bound=WireModel)
_REDACTED = "[redacted]"
_MAX_MESSAGE = 1000
#: The largest answer read: four hours of word timings with every field are a few MB.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: An error body is a message, not a document.
MAX_ERROR_BYTES = 64 * 1024
#: One server-sent event: a delta, or a done event with the whole text.
MAX_EVENT_BYTES = 1024 * 1024
#: How much of an answer is asked for at once (whatever has arrived is returned).
READ_BLOCK = 256 * 1024
#: Bodies are sent in blocks of this size; an upload of at most one block goes as one ``bytes``.
ONE_BLOCK = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EVENT_BLOCK = 512  # small reads: an event goes on as soon as it arrives


class Call(NamedTuple):
    """Per-attempt facts the router hands a provider: how long it may take, from sending to the answer's
    last byte (``ends``: a ``time.monotonic()`` instant), so no attempt outlives the request's budget."""

    timeout: float
    ends: float

    @classmethod
    def lasting(cls, seconds: float) -> Call:
        return cls(seconds, time.monotonic() + seconds)


class Outgoing(NamedTuple):
    """A request a provider is about to send: where, with which headers and query, and its body."""

    url: str
    headers: dict[str, str]
    params: dict[str, str] | None
    body: StreamedBody


class Exchange(NamedTuple):
    """One transcription call, described: what goes upstream, how the provider's errors read, and
    what its answer is. Either way of calling (``HttpProvider.transcribe``, ``transcribe_on_loop``)
    makes it."""

    outgoing: Outgoing
    errors: type[ErrorBody]
    answer: type[TranscriptAnswer]


def choose_key(name: str, keys: list[KeyConfig], model: str) -> KeyConfig:
    """Weighted random choice among the keys whose ``models`` allow ``model`` (empty = all)."""
    allowed = [k for k in keys if (not k.models or model in k.models) and k.weight > 0]
    if not allowed:
        raise NotFound(f"No {name} key is configured for model '{model}'.", code="no_key_for_model", provider=name)
    return random.choices(allowed, weights=[k.weight for k in allowed])[0]  # noqa: S311 - load spreading


def path_segment(text: str) -> str:
    """``text`` as exactly one URL path segment, whatever it holds: every reserved character
    percent-encoded (``/`` ``?`` ``#`` ``%`` included). The dot segments, which URL normalisation
    would resolve, are refused: names are checked long before this, so this only guards the class."""
    if text in ("", ".", ".."):
        raise InvalidRequest("A model or deployment name cannot be empty, '.' or '..'.", code="invalid_model")
    return quote(text, safe="")


class Redactor:
    """Removes every configured secret from text that may reach a client or a log."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(_REDACTED, text) if self._pattern else text


class Upstream:
    def __init__(self, provider: str, network: NetworkConfig, default_base_url: str, secrets: Iterable[str]) -> None:
        self.provider = provider
        self.network = network
        self.base_url = (network.base_url or default_base_url).rstrip("/")
        self.redact = Redactor(secrets)
        self._pools: dict[str, urllib3.PoolManager] | None = None
        self._hosts: dict[str, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, url: str) -> urllib3.PoolManager:
        """The connection pool for ``url``'s scheme: through the proxy the environment names for it,
        read once (``NO_PROXY`` is not consulted)."""
        with self._lock:
            if self._pools is None:
                import urllib.request  # pulls in http.client and ssl: paid on first use, not at start-up

                import urllib3

                proxies = urllib.request.getproxies()
                self._pools = {
                    scheme: urllib3.ProxyManager(proxies[scheme]) if proxies.get(scheme) else urllib3.PoolManager()
                    for scheme in ("http", "https")
                }
            return self._pools["https" if url.startswith("https:") else "http"]

    def proxied(self, url: str) -> bool:
        """Whether calls to ``url`` go through a proxy the environment names."""
        import urllib3

        return isinstance(self.pool(url), urllib3.ProxyManager)

    def _host_pool(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str] | None:
        """The host's own connection pool and the path to ask it for, when ``url`` goes there without a
        proxy: PoolManager.urlopen parses the URL, looks the pool up by a normalised key and merges
        settings on every call (about a tenth of a 100 KB call's CPU); the host never changes."""
        import urllib3

        if self.proxied(url):
            return None
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        origin = f"{scheme}://{host}"
        pool = self._hosts.get(origin)
        if pool is None:
            with self._lock:
                pool = self._hosts.get(origin)
                if pool is None:
                    # Up to 16 idle connections kept per host: PoolManager's pools keep one, so calls
                    # made at once each opened a connection of their own, closed after it.
                    pool = self._hosts[origin] = urllib3.connection_from_url(origin, maxsize=16)
        return pool, f"/{path}"

    def post(
        self,
        url: str,
        *,
        call: Call,
        headers: Mapping[str, str],
        errors: type[ErrorBody],
        params: Mapping[str, str] | None = None,
        data: StreamedBody | Iterable[bytes] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """POST and return a 2xx response whose body is still to be read (``answer`` or ``events``),
        or raise the mapped error. Redirects are not followed: a provider's API does not move."""
        import urllib3
        from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

        sent = {"Accept-Encoding": "gzip, deflate", **headers}
        if isinstance(data, StreamedBody):
            sent["Content-Length"] = str(len(data))  # sent as is, not chunked
        target = f"{url}?{urlencode(params)}" if params else url
        options: dict[str, Any] = {
            "body": data,
            "headers": sent,
            "timeout": urllib3.Timeout(connect=min(call.timeout, 10.0), read=call.timeout),
            "retries": False,  # the router retries, with backoff and a budget
            "redirect": False,
            "preload_content": False,  # read by Heimdall, bounded in size and time
        }
        try:
            direct = self._host_pool(target)
            if direct is None:
                response = self.pool(target).urlopen("POST", target, **options)
            else:
                pool, path = direct
                response = pool.urlopen("POST", path, assert_same_host=False, **options)
        except NewConnectionError:  # refused at once: urllib3 makes it a ConnectTimeoutError too, not a 504
            raise self.unreachable("could not be reached or dropped the connection") from None
        except TimeoutError:
            raise self.timeout(call) from None
        except (HTTPError, OSError):
            raise self.unreachable("could not be reached or dropped the connection") from None
        if response.status >= 400:
            raise self.error_from(response, errors, call)
        return response

    def send(self, outgoing: Outgoing, call: Call, errors: type[ErrorBody]) -> urllib3.BaseHTTPResponse:
        """``post`` of the request a provider described."""
        url, headers, params, body = outgoing
        return self.post(url, call=call, headers=headers, params=params, data=body, errors=errors)

    def timeout(self, call: Call) -> ProviderTimeout:
        return ProviderTimeout(f"{self.provider} did not answer within {call.timeout:.1f} s.", provider=self.provider)

    def unreachable(self, what: str) -> ProviderFailed:
        """A connection that failed or broke: Heimdall's own 502 (the provider said nothing). The message
        names what happened, not the HTTP client's exception, so both ways of calling say the same."""
        return ProviderFailed(f"{self.provider} {what}.", code="provider_unreachable", provider=self.provider)

    def error_from(self, response: urllib3.BaseHTTPResponse, errors: type[ErrorBody], call: Call) -> HeimdallError:
        try:
            body: bytes | None = self._read(response, call, MAX_ERROR_BYTES)
        except HeimdallError:
            body = None  # oversized, cut off or too slow: the status alone speaks
        return self.error_for(response.status, response.headers, body, errors)

    def error_for(
        self, status: int, headers: Mapping[str, str], body: bytes | None, errors: type[ErrorBody]
    ) -> HeimdallError:
        """The error an answer of ``status`` maps to, with the provider's own message from ``body``
        when it has the shape the provider documents (nothing from an HTML page or JSON of another
        shape)."""
        message = self._message(status, body, errors)
        common: dict[str, Any] = {"provider": self.provider, "is_bifrost_error": False}
        if status == 429:
            return RateLimited(message, retry_after=_retry_after(headers), **common)
        if status in (401, 403):
            return ProviderFailed(
                f"{self.provider} rejected the gateway's credentials: {message}", code="provider_auth_failed", **common
            )
        if status == 404:
            return NotFound(message, code="upstream_not_found", **common)
        if status in (408, 409):
            return ProviderFailed(message, code=f"upstream_{status}", **common)
        if 400 <= status < 500:
            return InvalidRequest(message, code="upstream_rejected", client_fault=True, **common)
        return ProviderFailed(message, code=f"upstream_{status}", **common)

    def _message(self, status: int, body: bytes | None, errors: type[ErrorBody]) -> str:
        extracted = None
        if body is not None:
            with contextlib.suppress(ValueError, RecursionError):  # pydantic's ValidationError is a ValueError
                extracted = errors.model_validate(_json(body)).message()
        text = extracted or f"{self.provider} answered HTTP {status} without a readable error message."
        return self.relayed(text)

    def relayed(self, text: str) -> str:
        """A provider's message as a client may see it: no secret, bounded length."""
        return self.redact(text)[:_MAX_MESSAGE]

    def answer(self, response: urllib3.BaseHTTPResponse, model: type[M], call: Call) -> M:
        """The body as ``model``; a 502 for a body that is truncated, HTML, not JSON, over
        MAX_ANSWER_BYTES or of the wrong shape; a 504 when it trickles in past the call's timeout."""
        return self.parse(self._read(response, call, MAX_ANSWER_BYTES), response.headers, model)

    def parse(self, body: bytes, headers: Mapping[str, str], model: type[M]) -> M:
        """A 2xx answer's body as ``model``, or the 502 that says what is wrong with it."""
        try:
            document = _json(body)
        except (ValueError, RecursionError):
            raise invalid_answer(
                self.provider, f"returned a body that is not valid JSON ({_media_type(headers)}, {len(body)} bytes)"
            ) from None
        return parse_answer(model, document, self.provider)

    def events(
        self, response: urllib3.BaseHTTPResponse, models: Mapping[str, type[WireModel]], call: Call
    ) -> Iterator[WireModel]:
        """The events of a server-sent event stream (``data: {...}`` lines; ``[DONE]`` ends it), each
        validated by the model registered for its ``type`` (an object without one but with ``error``
        is the ``error`` event); events of other types are skipped, as a newer API may add some."""
        for data in self._data_lines(response, call):
            if data == b"[DONE]":
                return
            try:
                event = _json(data)
            except (ValueError, RecursionError):
                raise invalid_answer(self.provider, "sent a stream event that is not JSON") from None
            if not isinstance(event, dict):
                raise invalid_answer(
                    self.provider, f"sent a stream event that is not an object ({type(event).__name__})"
                )
            kind = event.get("type", "error" if "error" in event else None)
            model = models.get(kind) if isinstance(kind, str) else None
            if model is not None:
                yield parse_answer(model, event, self.provider)

    def _read(self, response: urllib3.BaseHTTPResponse, call: Call, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (decoded), by ``call.ends``: read as it arrives, so a
        body that trickles in is cut off at the call's end, not after a block's worth of it."""
        length = response.headers.get("content-length", "")
        declared = int(length) if length.isascii() and length.isdigit() else None  # '²'.isdigit() too
        with self._reading(response, call):  # closed however it ends, refused at once included
            body = BoundedBody(self, call, limit, declared)
            while chunk := response.read1(READ_BLOCK):
                body.add(chunk)
        return body.value()

    def _data_lines(self, response: urllib3.BaseHTTPResponse, call: Call) -> Iterator[bytes]:
        """The ``data:`` payloads of an event stream; each line at most MAX_EVENT_BYTES, the whole
        stream at most MAX_ANSWER_BYTES, by ``call.ends``."""
        pending = bytearray()
        size = 0
        ends = call.ends
        with self._reading(response, call):
            for chunk in response.stream(_EVENT_BLOCK):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise self.too_large(MAX_ANSWER_BYTES)
                if time.monotonic() > ends:
                    raise self.timeout(call)
                pending += chunk
                if b"\n" in chunk or b"\r" in chunk:
                    lines = bytes(pending).splitlines(keepends=True)
                    pending = bytearray(lines.pop() if not lines[-1].endswith((b"\n", b"\r")) else b"")
                    for line in lines:
                        if len(line.rstrip(b"\r\n")) > MAX_EVENT_BYTES:  # one that ended in the read that took it over
                            raise invalid_answer(self.provider, f"sent a stream event over {MAX_EVENT_BYTES} bytes")
                        if line.startswith(b"data:"):
                            yield line[5:].strip()
                if len(pending) > MAX_EVENT_BYTES:
                    raise invalid_answer(self.provider, f"sent a stream event over {MAX_EVENT_BYTES} bytes")
            if pending.startswith(b"data:"):
                yield bytes(pending[5:]).strip()

    @contextmanager
    def _reading(self, response: urllib3.BaseHTTPResponse, call: Call) -> Iterator[None]:
        """Maps a failure while reading a body. A body read to its end has already given its connection
        back to the pool; one left unread has it closed (and the pool opens another)."""
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        try:
            yield
        except ReadTimeoutError:
            raise self.timeout(call) from None
        except (HTTPError, OSError):
            raise self.unreachable("dropped the connection while answering") from None
        finally:
            response.close()
            response.release_conn()

    def too_large(self, limit: int) -> ProviderFailed:
        return invalid_answer(self.provider, f"sent an answer over {limit // 1024} KiB")


class BoundedBody:
    """An answer's body as it arrives: at most ``limit`` bytes (decoded), by the call's end, or the 502 /
    504 that says which bound it passed."""

    def __init__(self, upstream: Upstream, call: Call, limit: int, declared: int | None) -> None:
        """``declared``: the answer's Content-Length, refused at once when it is over ``limit``."""
        self.upstream, self.call, self.limit = upstream, call, limit
        if declared is not None and declared > limit:
            raise upstream.too_large(limit)
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise self.upstream.too_large(self.limit)
        if time.monotonic() > self.call.ends:
            raise self.upstream.timeout(self.call)
        self.chunks.append(chunk)

    def value(self) -> bytes:
        return b"".join(self.chunks)


class StreamedBody:
    """A request body of known length — ``head``, the audio, ``tail`` — sent with ``Content-Length``
    as it is iterated. Audio held in memory is sent from its own buffer; audio in a file is read in
    1 MiB blocks. Unlike a buffering multipart encoder it copies no byte through a buffer of its
    own, and never asks the file for ``fileno()`` (which moves a spooled file from memory to disk)."""

    def __init__(self, audio: AudioInput, content_type: str, head: bytes = b"", tail: bytes = b"") -> None:
        self.audio = audio
        self.content_type = content_type
        self.head = head
        self.tail = tail

    def __len__(self) -> int:
        return len(self.head) + self.audio.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        source = self.audio.rewind()
        if self.audio.size <= ONE_BLOCK:  # one send instead of three, for a copy of at most one block
            yield self.head + source.read() + self.tail
            return
        if isinstance(source, io.BytesIO):
            yield from self.parts()
            return
        if self.head:
            yield self.head
        while block := source.read(ONE_BLOCK):
            yield block
        if self.tail:
            yield self.tail

    def parts(self) -> Iterator[bytes]:
        """Head, audio and tail as they are, for audio held in memory: the audio is the upload's own
        buffer (``getvalue()`` shares it), so no copy of it is made or held while the call waits."""
        source = self.audio.rewind()
        assert isinstance(source, io.BytesIO), "parts() is for audio held in memory"
        return (part for part in (self.head, source.getvalue(), self.tail) if part)


def multipart(fields: list[tuple[str, str]], audio: AudioInput, file_field: str = "file") -> StreamedBody:
    """``multipart/form-data``: the fields, then the audio with the client's filename and content type
    (parameters encoded as browsers and urllib3 do: ``"`` and line breaks percent-escaped)."""
    from urllib3.fields import format_multipart_header_param as param

    boundary = secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; {param("name", name)}\r\n\r\n{value}\r\n'
             for name, value in fields]  # fmt: skip
    parts.append(
        f"--{boundary}\r\nContent-Disposition: form-data; {param('name', file_field)}; "
        f"{param('filename', audio.filename)}\r\nContent-Type: {_CONTROL.sub('', audio.content_type)}\r\n\r\n"
    )
    return StreamedBody(
        audio, f"multipart/form-data; boundary={boundary}", "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()
    )


class HttpProvider:
    """What every HTTP provider adapter starts from: its config, its one upstream session, its keys."""

    name = "http"
    default_base_url = ""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        secrets = [k.value.get_secret_value() for k in config.keys]
        self.upstream = Upstream(self.name, config.network_config, self.default_base_url, secrets)

    def models(self) -> frozenset[str] | None:
        return None  # any model id the upstream serves

    def key_for(self, model: str) -> KeyConfig:
        return choose_key(self.name, self.config.keys, model)

    def exchange(self, model: str, request: TranscriptionRequest, audio: AudioInput) -> Exchange:
        """The one call that transcribes ``audio``; a provider whose transcription takes another shape
        overrides ``transcribe`` instead (and ``serves_on_loop``)."""
        raise NotImplementedError(f"{self.name} makes its own calls")

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        exchange = self.exchange(model, request, audio)
        response = self.upstream.send(exchange.outgoing, call, exchange.errors)
        return self.upstream.answer(response, exchange.answer, call).canonical()

    def serves_on_loop(self) -> bool:
        """Whether ``transcribe_on_loop`` may be used: not through a proxy (those calls stay blocking)."""
        return not (self.upstream.proxied("http://") or self.upstream.proxied("https://"))

    async def transcribe_on_loop(
        self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call, client: LoopClient
    ) -> Transcript:
        """``transcribe`` with the call made on the server's event loop (``providers/loop_client.py``)."""
        exchange = self.exchange(model, request, audio)

        def read(body: bytes, headers: Mapping[str, str]) -> Transcript:
            return self.upstream.parse(body, headers, exchange.answer).canonical()

        return await client.call(self.upstream, exchange.outgoing, call=call, errors=exchange.errors, read=read)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: Azure's ``retry-after-ms`` first, then ``Retry-After`` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        first = (headers.get(name) or "nan").split(",", 1)[0]  # a header sent twice reads "1, 1" in urllib3
        try:
            seconds = float(first) / scale
        except ValueError:
            continue  # an HTTP date: treat as unknown
        if math.isfinite(seconds):  # inf, nan, 1e400: not a wait anyone can honour
            return max(0.0, seconds)
    return None


def _json(body: bytes) -> Any:
    """JSON as the RFC defines it, read by pydantic-core: ``NaN`` and ``Infinity`` are not numbers, and
    a lone surrogate (``"\\ud800"``) is not text (it could never be encoded into the client's answer).
    UTF-16/32 and a UTF-8 byte order mark are accepted, as the RFC allows a reader to."""
    text = body.decode(json.detect_encoding(body)).removeprefix("\ufeff")
    return from_json(text, allow_inf_nan=False)


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")


def _media_type(headers: Mapping[str, str]) -> str:
    """The answer's media type for a message, without its parameters: a header's text is the provider's
    (a careless one puts its key there), so only a well-formed type/subtype is named."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip()
    if not media_type:
        return "no content type"
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else "an unreadable content type"
