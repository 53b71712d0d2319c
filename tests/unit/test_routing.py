from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from heimdall.config import GatewayConfig, parse_config
from heimdall.core.errors import EngineUnavailable, HeimdallError, InvalidRequest, NotFound, ProviderFailed
from heimdall.core.types import AudioInput, ResponseFormat, Transcript, TranscriptionRequest
from heimdall.providers.base import Capabilities
from heimdall.routing import Router, Target


@dataclass
class ScriptedProvider:
    """A provider that answers from a script: an exception to raise, or text to return."""

    name: str
    outcome: HeimdallError | str = "ok"
    formats: frozenset[ResponseFormat] = frozenset(ResponseFormat)
    calls: list[str] = field(default_factory=list)

    def models(self) -> frozenset[str] | None:
        return None

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(formats=self.formats)

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Any) -> Transcript:
        self.calls.append(model)
        if isinstance(self.outcome, HeimdallError):
            raise self.outcome
        return Transcript(text=f"{self.name}:{self.outcome}")


AUDIO = AudioInput(io.BytesIO(b"RIFF"), "a.wav", "audio/wav", 4)
CONFIG = parse_config({"deployments": {"whisper": ["azure/whisper-1", "groq/whisper-large-v3", "local/tiny.en"]}})


def test_alias_then_request_fallbacks_then_alias_fallbacks() -> None:
    router = Router(CONFIG, {n: ScriptedProvider(n) for n in ("azure", "groq", "local", "openai")})
    assert router.resolve_targets("whisper", ("openai/whisper-1", "groq/whisper-large-v3")) == [
        Target("azure", "whisper-1"),
        Target("openai", "whisper-1"),
        Target("groq", "whisper-large-v3"),
        Target("local", "tiny.en"),
    ]


def test_keyless_gateway_sends_any_name_to_the_local_engine() -> None:
    router = Router(GatewayConfig(), {"local": ScriptedProvider("local")})
    assert router.resolve_targets("whisper-1") == [Target("local", "tiny.en")]


def test_configured_gateway_refuses_unknown_names() -> None:
    router = Router(CONFIG, {n: ScriptedProvider(n) for n in ("azure", "groq", "local")})
    with pytest.raises(NotFound, match="Unknown model or deployment 'whisper-1'"):
        router.resolve_targets("whisper-1")


def test_provider_failure_falls_back_and_says_where() -> None:
    azure = ScriptedProvider("azure", ProviderFailed("upstream 503", provider="azure", is_bifrost_error=False))
    groq = ScriptedProvider("groq")
    router = Router(CONFIG, {"azure": azure, "groq": groq, "local": ScriptedProvider("local")})
    routed = router.transcribe(TranscriptionRequest(model="whisper"), AUDIO)
    assert routed.target == Target("groq", "whisper-large-v3")
    assert routed.fallback_index == 1
    assert [(a.provider, a.status) for a in routed.attempts] == [("azure", 502)]


def test_a_client_mistake_stops_at_once() -> None:
    azure = ScriptedProvider("azure", InvalidRequest("cannot decode", param="file"))
    groq = ScriptedProvider("groq")
    router = Router(CONFIG, {"azure": azure, "groq": groq, "local": ScriptedProvider("local")})
    with pytest.raises(InvalidRequest):
        router.transcribe(TranscriptionRequest(model="whisper"), AUDIO)
    assert groq.calls == []


def test_incapable_target_is_skipped_without_a_call() -> None:
    azure = ScriptedProvider("azure", formats=frozenset({ResponseFormat.JSON}))
    groq = ScriptedProvider("groq")
    router = Router(CONFIG, {"azure": azure, "groq": groq, "local": ScriptedProvider("local")})
    routed = router.transcribe(TranscriptionRequest(model="whisper", response_format=ResponseFormat.SRT), AUDIO)
    assert routed.target.provider == "groq"
    assert azure.calls == []


def test_when_all_fail_the_primary_error_carries_every_attempt() -> None:
    providers = {
        "azure": ScriptedProvider("azure", ProviderFailed("azure down", provider="azure", is_bifrost_error=False)),
        "groq": ScriptedProvider("groq", ProviderFailed("groq down", provider="groq", is_bifrost_error=False)),
        "local": ScriptedProvider("local", EngineUnavailable("no engine", provider="local")),
    }
    with pytest.raises(ProviderFailed) as caught:
        Router(CONFIG, providers).transcribe(TranscriptionRequest(model="whisper"), AUDIO)
    assert caught.value.message == "azure down"
    assert [a["provider"] for a in caught.value.extra["attempts"]] == ["azure", "groq", "local"]
    assert [a["status"] for a in caught.value.extra["attempts"]] == [502, 502, 503]


@dataclass
class FlakyProvider(ScriptedProvider):
    """Fails ``failures`` times, then answers."""

    failures: int = 0

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Any) -> Transcript:
        self.calls.append(model)
        if len(self.calls) <= self.failures:
            raise ProviderFailed("flaky", provider=self.name, is_bifrost_error=False)
        return Transcript(text="ok")


RETRYING = parse_config(
    {
        "providers": {
            "groq": {
                "keys": [{"value": "k"}],
                "network_config": {"max_retries": 2, "retry_backoff_initial": 1, "retry_backoff_max": 4},
            }
        }
    }
)


def test_retries_count_retries_not_calls() -> None:
    flaky = FlakyProvider("groq", failures=2)
    routed = Router(RETRYING, {"groq": flaky}).transcribe(TranscriptionRequest(model="groq/whisper-large-v3"), AUDIO)
    assert routed.transcript.text == "ok"
    assert len(flaky.calls) == 3
    assert [a.status for a in routed.attempts] == [502, 502]


def test_retries_stop_at_one_plus_max_retries() -> None:
    flaky = FlakyProvider("groq", failures=10)
    with pytest.raises(ProviderFailed):
        Router(RETRYING, {"groq": flaky}).transcribe(TranscriptionRequest(model="groq/whisper-large-v3"), AUDIO)
    assert len(flaky.calls) == 3


def test_an_exhausted_budget_ends_the_request_without_calling() -> None:
    import time

    flaky = FlakyProvider("groq")
    with pytest.raises(HeimdallError) as caught:
        Router(RETRYING, {"groq": flaky}).transcribe(
            TranscriptionRequest(model="groq/whisper-large-v3"), AUDIO, deadline=time.monotonic()
        )
    assert caught.value.status_code == 504
    assert caught.value.code == "budget_exhausted"
    assert flaky.calls == []
