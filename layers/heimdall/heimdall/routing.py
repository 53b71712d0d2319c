"""Model resolution and fallbacks: which targets serve a request, and in what order.

A client names a configured alias (``deployments``), or a target ``provider/model`` directly.
Targets are tried strictly in order: the alias's first target, the request's ``fallbacks``,
then the alias's remaining targets. A mistake in the client's own input ends the request at once;
a provider-side failure moves on to the next target. When every target fails the client gets the
primary target's error, with every try listed in ``extra_fields.attempts``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeGuard, TypeVar, cast

from heimdall.config import PROVIDER_NAMES, GatewayConfig, NetworkConfig
from heimdall.core.errors import (
    HeimdallError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderFailed,
    ProviderTimeout,
)
from heimdall.core.languages import language_name
from heimdall.core.types import AudioInput, StreamEvent, Transcript, TranscriptionRequest
from heimdall.providers.base import Capabilities, LoopProvider, Provider, requested_fields, stream_events
from heimdall.providers.local import MODEL as LOCAL_MODEL
from heimdall.providers.upstream import Call

if TYPE_CHECKING:
    from heimdall.providers.loop_client import LoopClient

T = TypeVar("T")


class Target(NamedTuple):
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


class Attempt(NamedTuple):
    provider: str
    model: str
    status: int
    latency_ms: int

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "latency": self.latency_ms,
        }


class RoutedStream(NamedTuple):
    first: StreamEvent
    rest: Iterator[StreamEvent]
    target: Target
    fallback_index: int
    attempts: list[Attempt]


class RoutedTranscript(NamedTuple):
    transcript: Transcript
    target: Target
    fallback_index: int
    attempts: list[Attempt]


class TargetGate(Protocol):
    """Asked before each target is tried (governance's per-provider limits): an error skips the
    target as if it had failed, so the next one serves; ``release`` undoes ``admit`` when it failed."""

    def admit(self, target: Target) -> HeimdallError | None: ...

    def release(self, target: Target) -> None: ...


def parse_target(text: str) -> Target | None:
    provider, sep, model = text.partition("/")
    if not sep or provider not in PROVIDER_NAMES or not model.strip():
        return None
    return Target(provider, model)


class Router:
    def __init__(self, config: GatewayConfig, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.providers = dict(providers)

    @property
    def keyless_default(self) -> bool:
        """No aliases and no upstream providers: a model name without a ``provider/`` prefix
        (``whisper-1``, what an SDK sends) means the local engine."""
        return not self.config.deployments and not self.config.providers and "local" in self.providers

    def resolve_targets(self, name: str, fallbacks: tuple[str, ...] = ()) -> list[Target]:
        if name in self.config.deployments:
            alias_targets = [parse_target(t) for t in self.config.deployments[name]]
            primary, *alias_fallbacks = [t for t in alias_targets if t is not None]
        elif (direct := parse_target(name)) is not None:
            primary, alias_fallbacks = direct, []
        elif "/" in name:  # provider/model with a provider no one knows: never the local engine's
            configured = ", ".join(sorted(self.providers)) or "none"
            raise NotFound(
                f"Unknown provider '{name.partition('/')[0]}' in '{name}': the providers are "
                f"{', '.join(sorted(PROVIDER_NAMES))} (configured here: {configured}).",
                param="model",
                code="model_not_found",
            )
        elif self.keyless_default:
            primary, alias_fallbacks = Target("local", LOCAL_MODEL), []
        else:
            raise NotFound(
                f"Unknown model or deployment '{name}': name a configured deployment "
                f"({', '.join(sorted(self.config.deployments)) or 'none configured'}) or provider/model.",
                param="model",
                code="model_not_found",
            )
        requested = []
        for text in fallbacks:
            target = parse_target(text)
            if target is None:
                raise InvalidRequest(
                    f"Fallback '{text}' is not provider/model.", param="fallbacks", code="invalid_fallback"
                )
            requested.append(target)
        ordered: list[Target] = []
        for target in (primary, *requested, *alias_fallbacks):
            if target not in ordered:
                ordered.append(target)
        for target in ordered:
            self._check_servable(target, primary=target == primary)
        return ordered

    def _check_servable(self, target: Target, *, primary: bool) -> None:
        provider = self.providers.get(target.provider)
        param = "model" if primary else "fallbacks"
        if provider is None:
            raise NotFound(
                f"Provider '{target.provider}' is not configured on this gateway.",
                param=param,
                code="provider_not_configured",
            )
        models = provider.models()
        if models is not None and target.model not in models:
            raise NotFound(
                f"Provider '{target.provider}' has no model '{target.model}' (available: {', '.join(sorted(models))}).",
                param=param,
                code="model_not_found",
                provider=target.provider,
            )

    def _capability_error(
        self, target: Target, caps: Capabilities, request: TranscriptionRequest, audio: AudioInput, *, in_pieces: bool
    ) -> HeimdallError | None:
        unsupported = sorted(requested_fields(request) & caps.unsupported_fields)
        if unsupported:
            return InvalidRequest(
                f"{target} cannot take '{unsupported[0]}'; leave it out or add a fallback that can.",
                param=unsupported[0],
                code="unsupported_parameter",
                provider=target.provider,
            )
        if caps.max_file_bytes is not None and audio.size > caps.max_file_bytes and not in_pieces:
            return PayloadTooLarge(
                f"{target} takes files up to {caps.max_file_bytes // (1024 * 1024)} MB; this one is "
                f"{audio.size / (1024 * 1024):.1f} MB.",
                param="file",
                code="file_too_large_for_provider",
                provider=target.provider,
            )
        if request.response_format not in caps.formats:
            return InvalidRequest(
                f"{target} cannot produce response_format '{request.response_format}'.",
                param="response_format",
                code="unsupported_response_format",
                provider=target.provider,
            )
        if request.wants_words and not caps.word_timestamps:
            return InvalidRequest(
                f"{target} has no word timestamps.",
                param="timestamp_granularities",
                code="unsupported_value",
                provider=target.provider,
            )
        if "logprobs" in request.include and not caps.logprobs:
            return InvalidRequest(
                f"{target} does not return logprobs.",
                param="include[]",
                code="unsupported_value",
                provider=target.provider,
            )
        if request.language and caps.languages is not None and request.language not in caps.languages:
            known = "English-only" if caps.languages == {"en"} else f"it knows {', '.join(sorted(caps.languages))}"
            return InvalidRequest(
                f"{target} cannot transcribe language '{request.language}' ({known}).",
                param="language",
                code="unsupported_language",
                provider=target.provider,
            )
        return None

    def transcribe(
        self,
        request: TranscriptionRequest,
        audio: AudioInput,
        deadline: float | None = None,
        gate: TargetGate | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> RoutedTranscript:
        """Try the targets in order until one succeeds; ``deadline`` is a ``time.monotonic()`` instant;
        ``progress(done, total)`` hears of each piece when the audio is cut into pieces."""

        def call_provider(provider: Provider, target: Target, call: Call) -> Transcript:
            return provider.transcribe(target.model, request, audio, call)

        transcript, target, index, attempts = self._route(
            request, audio, deadline, call_provider, gate, pieces=True, progress=progress
        )
        return RoutedTranscript(_with_language(transcript, request), target, index, attempts)

    def serves_on_loop(self, request: TranscriptionRequest, audio: AudioInput) -> bool:
        """Whether every target of the request can be called on the server's event loop: its provider
        makes its call there (``transcribe_on_loop``, no proxy) and the audio is within its size limit."""
        for target in self.resolve_targets(request.model, request.fallbacks):
            provider = self.providers[target.provider]
            limit = provider.capabilities(target.model).max_file_bytes
            if not _serves_on_loop(provider) or (limit is not None and audio.size > limit):
                return False
        return True

    async def transcribe_on_loop(
        self, request: TranscriptionRequest, audio: AudioInput, deadline: float, client: LoopClient
    ) -> RoutedTranscript:
        """``transcribe`` for a request ``serves_on_loop`` accepted and no gate: the same targets in
        the same order, retries, fallbacks and errors, each provider call made on the event loop."""
        import asyncio

        targets = self.resolve_targets(request.model, request.fallbacks)
        attempts: list[Attempt] = []
        primary_error: HeimdallError | None = None
        for index, target in enumerate(targets):
            provider = cast("LoopProvider", self.providers[target.provider])  # serves_on_loop said so
            error = self._capability_error(target, provider.capabilities(target.model), request, audio, in_pieces=False)
            if error is not None:
                attempts.append(Attempt(target.provider, target.model, error.status_code, 0))
                primary_error = primary_error or error
                continue
            retries = _Retries(target, self._network(target.provider), deadline, attempts)
            while (call := retries.next_call()) is not None:
                started = time.perf_counter()
                try:
                    transcript = await provider.transcribe_on_loop(target.model, request, audio, call, client)
                    return RoutedTranscript(_with_language(transcript, request), target, index, attempts)
                except HeimdallError as exc:
                    if (wait := retries.failed(exc, started)) is not None:
                        await asyncio.sleep(wait)
            error = retries.error
            if error.client_fault:
                raise _with_attempts(error, attempts)
            primary_error = primary_error or error
        assert primary_error is not None  # targets is never empty
        raise _with_attempts(primary_error, attempts)

    def open_stream(
        self,
        request: TranscriptionRequest,
        audio: AudioInput,
        deadline: float | None = None,
        gate: TargetGate | None = None,
    ) -> RoutedStream:
        """Like ``transcribe``, for a stream: a target counts as serving once its first event arrived,
        so failures before that are retried and fall back like any other; later ones end the stream."""

        def first_event(provider: Provider, target: Target, call: Call) -> tuple[StreamEvent, Iterator[StreamEvent]]:
            events = iter(stream_events(provider, target.model, request, audio, call))
            first = next(events, None)
            if first is None:
                raise ProviderFailed(f"{target} ended its stream without an event.", provider=target.provider)
            return first, events

        (first, rest), target, index, attempts = self._route(request, audio, deadline, first_event, gate)
        return RoutedStream(first, rest, target, index, attempts)

    def _route(
        self,
        request: TranscriptionRequest,
        audio: AudioInput,
        deadline: float | None,
        attempt: Callable[[Provider, Target, Call], T],
        gate: TargetGate | None,
        *,
        pieces: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> tuple[T, Target, int, list[Attempt]]:
        """``pieces``: audio over a target's size limit is cut and transcribed in pieces (T is a
        Transcript then) instead of refused."""
        if deadline is None:
            deadline = deadline_for(self.config.client_config.request_budget_seconds)
        targets = self.resolve_targets(request.model, request.fallbacks)
        attempts: list[Attempt] = []
        primary_error: HeimdallError | None = None
        for index, target in enumerate(targets):
            caps = self.providers[target.provider].capabilities(target.model)
            limit = caps.max_file_bytes
            in_pieces = pieces and limit is not None and audio.size > limit and pieces_available()
            error = self._capability_error(target, caps, request, audio, in_pieces=in_pieces)
            if error is None and gate is not None:
                error = gate.admit(target)
            if error is None:
                if in_pieces:
                    assert limit is not None
                    result, error = self._in_pieces(target, request, audio, deadline, attempts, limit, progress)
                else:
                    result, error = self._try_target(target, deadline, attempts, attempt)
                if error is None:
                    return result, target, index, attempts
                if gate is not None:
                    gate.release(target)
                if error.client_fault:
                    raise _with_attempts(error, attempts)
            else:
                attempts.append(Attempt(target.provider, target.model, error.status_code, 0))
            primary_error = primary_error or error
        assert primary_error is not None  # targets is never empty
        raise _with_attempts(primary_error, attempts)

    def _in_pieces(
        self,
        target: Target,
        request: TranscriptionRequest,
        audio: AudioInput,
        deadline: float,
        attempts: list[Attempt],
        limit: int,
        progress: Callable[[int, int | None], None] | None,
    ) -> tuple[Any, HeimdallError | None]:
        """Each piece with its own retries; any piece failing for good fails the target."""
        from heimdall.chunking import transcribe_in_pieces

        def one_piece(piece: AudioInput) -> Transcript:
            transcript, error = self._try_target(
                target, deadline, attempts, lambda p, t, call: p.transcribe(t.model, request, piece, call)
            )
            if error is not None:
                raise error
            assert transcript is not None
            return transcript

        try:
            max_seconds = self.config.client_config.max_audio_seconds
            pieces = transcribe_in_pieces(audio, int(limit * 0.95), one_piece, progress, max_seconds=max_seconds)
            return pieces, None
        except HeimdallError as exc:
            return None, exc

    def _try_target(
        self,
        target: Target,
        deadline: float,
        attempts: list[Attempt],
        attempt: Callable[[Provider, Target, Call], T],
    ) -> tuple[T | None, HeimdallError | None]:
        """One target, retried per its network_config: 1 + max_retries calls at most."""
        provider = self.providers[target.provider]
        retries = _Retries(target, self._network(target.provider), deadline, attempts)
        while (call := retries.next_call()) is not None:
            started = time.perf_counter()
            try:
                return attempt(provider, target, call), None
            except HeimdallError as exc:
                if (wait := retries.failed(exc, started)) is not None:
                    time.sleep(wait)
        return None, retries.error

    def _network(self, provider: str) -> NetworkConfig:
        if provider in self.config.providers:
            return self.config.providers[provider].network_config
        return NetworkConfig(
            max_retries=0, default_request_timeout_in_seconds=self.config.client_config.request_budget_seconds
        )


class _Retries:
    """One target's calls, retried per its network_config (1 + max_retries calls at most) within the
    request's deadline: the router makes each call and waits between them, blocking or on the loop."""

    def __init__(self, target: Target, network: NetworkConfig, deadline: float, attempts: list[Attempt]) -> None:
        self.target, self.network, self.deadline, self.attempts = target, network, deadline, attempts
        self.retry = 0
        self._error: HeimdallError | None = None
        self._done = False

    @property
    def error(self) -> HeimdallError:
        """Why the target is done: its last call's error, or the budget that ran out."""
        assert self._error is not None, "asked before the target was done"
        return self._error

    def next_call(self) -> Call | None:
        """The next call's facts, or None when the target is done (``error`` says why)."""
        if self._done:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.05:
            self._done = True
            self._error = ProviderTimeout(
                "The request's time budget ran out before the provider could answer.",
                code="budget_exhausted",
                provider=self.target.provider,
            )
            return None
        return Call.lasting(min(self.network.default_request_timeout_in_seconds, remaining))

    def failed(self, error: HeimdallError, started: float) -> float | None:
        """Records a failed call; the seconds to wait before the next one, or None when there is none."""
        self._error = error
        self.attempts.append(Attempt(self.target.provider, self.target.model, error.status_code, _elapsed_ms(started)))
        self._done = True
        if error.client_fault or not error.retryable or self.retry == self.network.max_retries:
            return None
        wait = _backoff(self.network, self.retry)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after * 1000 > self.network.retry_backoff_max:
                return None  # the provider asks for longer than we wait: fall back or relay it
            wait = max(wait, retry_after)
        if time.monotonic() + wait >= self.deadline:
            return None
        self.retry += 1
        self._done = False
        return wait


def _serves_on_loop(provider: Provider) -> TypeGuard[LoopProvider]:
    serves = getattr(provider, "serves_on_loop", None)
    return serves is not None and bool(serves())


def _with_attempts(error: HeimdallError, attempts: list[Attempt]) -> HeimdallError:
    """The error the client gets once no target serves, with every try listed (``extra_fields.attempts``)."""
    error.extra["attempts"] = [a.as_dict() for a in attempts]
    return error


def _with_language(transcript: Transcript, request: TranscriptionRequest) -> Transcript:
    """A provider told the language need not echo it (Deepgram does not); OpenAI always reports one."""
    if transcript.language is None and request.language:
        return transcript.model_copy(update={"language": language_name(request.language)})
    return transcript


def deadline_for(budget_seconds: float, lambda_context: Any = None, reserve_seconds: float = 1.0) -> float:
    """When a request must be answered (a ``time.monotonic()`` instant): the budget, and in Lambda
    also the function's remaining time less a reserve to send the answer or record the result."""
    deadline = time.monotonic() + budget_seconds
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        deadline = min(deadline, time.monotonic() + remaining() / 1000 - reserve_seconds)
    return deadline


def pieces_available() -> bool:
    """Cutting long audio needs PyAV and NumPy (the engine's dependencies, and the layer's)."""
    import importlib.util

    return importlib.util.find_spec("av") is not None and importlib.util.find_spec("numpy") is not None


def _backoff(network: NetworkConfig, retry: int) -> float:
    """Exponential backoff with jitter, in seconds: half fixed, half random, capped."""
    ceiling: float = min(network.retry_backoff_initial * (2**retry), network.retry_backoff_max) / 1000
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
