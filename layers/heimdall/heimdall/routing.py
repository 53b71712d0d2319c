"""Model resolution and fallbacks: which targets serve a request, and in what order.

A client names a configured alias (``deployments``), or a target ``provider/model`` directly.
Targets are tried strictly in order: the alias's first target, the request's ``fallbacks``,
then the alias's remaining targets. A mistake in the client's own input ends the request at once;
a provider-side failure moves on to the next target. When every target fails the client gets the
primary target's error, with every try listed in ``extra_fields.attempts``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from heimdall.config import PROVIDER_NAMES, GatewayConfig
from heimdall.core.errors import HeimdallError, InvalidRequest, NotFound
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest
from heimdall.providers.base import Provider
from heimdall.providers.local import MODEL as LOCAL_MODEL


@dataclass(frozen=True)
class Target:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Attempt:
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


@dataclass
class RoutedTranscript:
    transcript: Transcript
    target: Target
    fallback_index: int
    attempts: list[Attempt] = field(default_factory=list)


def parse_target(text: str) -> Target | None:
    provider, sep, model = text.partition("/")
    if not sep or provider not in PROVIDER_NAMES or not model.strip():
        return None
    return Target(provider, model)


def _is_client_mistake(err: HeimdallError) -> bool:
    """Errors no other target would fix: the client's own input was wrong."""
    return err.is_bifrost_error and 400 <= err.status_code < 500 and err.status_code not in (408, 409, 429)


class Router:
    def __init__(self, config: GatewayConfig, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.providers = dict(providers)

    @property
    def keyless_default(self) -> bool:
        """No aliases and no upstream providers: every model name means the local engine."""
        return not self.config.deployments and not self.config.providers and "local" in self.providers

    def resolve_targets(self, name: str, fallbacks: tuple[str, ...] = ()) -> list[Target]:
        if name in self.config.deployments:
            alias_targets = [parse_target(t) for t in self.config.deployments[name]]
            primary, *alias_fallbacks = [t for t in alias_targets if t is not None]
        elif (direct := parse_target(name)) is not None:
            primary, alias_fallbacks = direct, []
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

    def _capability_error(self, target: Target, request: TranscriptionRequest) -> HeimdallError | None:
        caps = self.providers[target.provider].capabilities(target.model)
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

    def transcribe(self, request: TranscriptionRequest, audio: AudioInput) -> RoutedTranscript:
        targets = self.resolve_targets(request.model, request.fallbacks)
        attempts: list[Attempt] = []
        primary_error: HeimdallError | None = None
        for index, target in enumerate(targets):
            error = self._capability_error(target, request)
            started = time.perf_counter()
            if error is None:
                try:
                    transcript = self.providers[target.provider].transcribe(target.model, request, audio)
                    return RoutedTranscript(transcript, target, index, attempts)
                except HeimdallError as exc:
                    if _is_client_mistake(exc):
                        raise
                    error = exc
            attempts.append(Attempt(target.provider, target.model, error.status_code, _elapsed_ms(started)))
            primary_error = primary_error or error
        assert primary_error is not None  # targets is never empty
        primary_error.extra["attempts"] = [a.as_dict() for a in attempts]
        raise primary_error


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
