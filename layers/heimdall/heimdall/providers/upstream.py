"""What every HTTP provider shares: the session, key choice, timeouts, and error mapping.

One ``requests.Session`` per provider, created on first use and reused across requests (and across
invocations of a warm Lambda). Failures map as DESIGN §4 says: timeout → 504; connection reset,
HTML page, truncated or unparseable body → 502; upstream 429 → 429 with ``Retry-After``; upstream 5xx
→ 502; the provider's own JSON message is relayed (``is_bifrost_error: false``), never raw HTML and
never a key, even when the provider echoes one.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from heimdall.config import KeyConfig, NetworkConfig, ProviderConfig
from heimdall.core.errors import (
    HeimdallError,
    InvalidRequest,
    NotFound,
    ProviderFailed,
    ProviderTimeout,
    RateLimited,
)

if TYPE_CHECKING:
    import requests

MessageOf = Callable[[Any], str | None]
_REDACTED = "[redacted]"
_MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Call:
    """Per-attempt facts the router hands a provider: how long it may take."""

    timeout: float


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
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                import urllib.request  # pulls in http.client and ssl: paid on first use, not at start-up

                import requests
                from requests.adapters import HTTPAdapter

                class LargeBlocks(HTTPAdapter):
                    """Sends bodies in 1 MiB blocks (urllib3's default is 16 KiB: a 10 MB upload
                    would take 640 read-and-send rounds through the multipart encoder)."""

                    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                        super().init_poolmanager(*args, **{**kwargs, "blocksize": 1024 * 1024})

                session = requests.Session()
                # requests re-reads proxy variables and ~/.netrc on every call when trust_env is on
                # (about 1 ms a request); read the proxies once instead. NO_PROXY is not consulted.
                session.trust_env = False
                session.proxies = {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}
                session.mount("https://", LargeBlocks())
                session.mount("http://", LargeBlocks())
                self._session = session
            return self._session

    def post(
        self,
        url: str,
        *,
        call: Call,
        headers: Mapping[str, str],
        message_of: MessageOf,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        """POST and return a 2xx response, or raise the mapped error."""
        import requests

        try:
            response = self.session.post(
                url,
                params=params,
                data=data,
                headers=dict(headers),
                timeout=(min(call.timeout, 10.0), call.timeout),
                stream=stream,
            )
        except requests.Timeout:
            raise ProviderTimeout(
                f"{self.provider} did not answer within {call.timeout:.1f} s.", provider=self.provider
            ) from None
        except requests.RequestException as exc:
            raise self.unreachable("could not be reached or dropped the connection", exc) from None
        if response.status_code >= 400:
            raise self.error_from(response, message_of)
        return response

    def unreachable(self, what: str, exc: Exception) -> ProviderFailed:
        """A connection that failed or broke: Heimdall's own 502 (the provider said nothing)."""
        return ProviderFailed(
            f"{self.provider} {what} ({type(exc).__name__}).", code="provider_unreachable", provider=self.provider
        )

    def error_from(self, response: requests.Response, message_of: MessageOf) -> HeimdallError:
        status = response.status_code
        message = self._message(response, message_of)
        common: dict[str, Any] = {"provider": self.provider, "is_bifrost_error": False}
        if status == 429:
            return RateLimited(message, retry_after=_retry_after(response.headers), **common)
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

    def _message(self, response: requests.Response, message_of: MessageOf) -> str:
        status = response.status_code
        try:
            extracted = message_of(response.json())
        except (ValueError, AttributeError, TypeError, KeyError, IndexError):
            extracted = None  # HTML error pages and truncated bodies are never relayed
        text = extracted or f"{self.provider} answered HTTP {status} without a readable error message."
        return self.redact(str(text))[:_MAX_MESSAGE]

    def json(self, response: requests.Response) -> Any:
        """The body as JSON, or a 502 for a truncated, HTML or otherwise unparseable body."""
        import requests

        try:
            return response.json()
        except (ValueError, requests.RequestException):
            raise ProviderFailed(
                f"{self.provider} returned a body that is not valid JSON "
                f"({response.headers.get('content-type', 'no content type')}).",
                code="invalid_provider_response",
                provider=self.provider,
                is_bifrost_error=False,
            ) from None

    def sse_events(self, response: requests.Response) -> Iterator[dict[str, Any]]:
        """The JSON objects of a server-sent event stream (``data: {...}`` lines; ``[DONE]`` ends it)."""
        import requests

        try:
            for line in response.iter_lines(decode_unicode=False):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ProviderFailed(
                        f"{self.provider} sent a stream event that is not JSON.",
                        code="invalid_provider_response",
                        provider=self.provider,
                        is_bifrost_error=False,
                    ) from None
                if isinstance(event, dict):
                    yield event
        except requests.RequestException as exc:
            raise self.unreachable("dropped the stream", exc) from None
        finally:
            response.close()


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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: Azure's ``retry-after-ms`` first, then ``Retry-After`` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue  # an HTTP date: treat as unknown
    return None


def openai_error_message(body: Any) -> str | None:
    """``{"error": {"message": ...}}`` (OpenAI, Azure, Groq, Gemini) or a bare ``{"message": ...}``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None
