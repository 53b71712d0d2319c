"""The OpenAI audio transcription wire format, shared by OpenAI, Azure OpenAI, Groq and any
OpenAI-compatible server (vLLM, speaches, LocalAI): ``openai-compatible``, whose base URL is required.

Follows OpenAI's API reference, "Create transcription" (``POST /v1/audio/transcriptions``,
multipart). Heimdall asks upstream for ``verbose_json`` when the client wants segments (srt, vtt,
verbose_json) and ``json`` otherwise, then renders the client's format itself, so every format goes
through the one canonical transcript.
"""

from __future__ import annotations

from typing import Any

from heimdall.config import KeyConfig, ProviderConfig
from heimdall.core.errors import ProviderFailed
from heimdall.core.languages import language_name
from heimdall.core.types import (
    AudioInput,
    Logprob,
    ResponseFormat,
    Segment,
    Transcript,
    TranscriptionRequest,
    Usage,
    Word,
)
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Call, Upstream, choose_key, openai_error_message

SEGMENT_FORMATS = frozenset({ResponseFormat.SRT, ResponseFormat.VTT, ResponseFormat.VERBOSE_JSON})


def upstream_format(request: TranscriptionRequest) -> str:
    return "verbose_json" if request.response_format in SEGMENT_FORMATS else "json"


def openai_fields(model: str, request: TranscriptionRequest, response_format: str | None) -> list[tuple[str, str]]:
    """The form fields, named and repeated as OpenAI's API takes them."""
    fields: list[tuple[str, str]] = [("model", model)]
    if response_format:
        fields.append(("response_format", response_format))
    for name in ("language", "prompt", "chunking_strategy"):
        value = getattr(request, name)
        if value is not None:
            fields.append((name, value))
    if request.temperature is not None:
        fields.append(("temperature", repr(request.temperature)))
    fields += [("timestamp_granularities[]", str(g)) for g in sorted(request.timestamp_granularities)]
    fields += [("include[]", item) for item in request.include]
    return fields


def multipart(fields: list[tuple[str, str]], audio: AudioInput, file_field: str = "file") -> Any:
    """A streaming multipart body: the audio is read from its spooled file as it is sent."""
    from requests_toolbelt import MultipartEncoder

    parts: list[tuple[str, Any]] = [*fields, (file_field, (audio.filename, audio.rewind(), audio.content_type))]
    return MultipartEncoder(fields=parts)


def transcript_from_openai(body: Any, provider: str) -> Transcript:
    """OpenAI's json / verbose_json body as a canonical transcript."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ProviderFailed(
            f"{provider} returned JSON without a transcript text.",
            code="invalid_provider_response",
            provider=provider,
            is_bifrost_error=False,
        )
    segments = None
    if isinstance(body.get("segments"), list):
        segments = [
            Segment(
                id=index,
                seek=s.get("seek"),
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s.get("text", "")),
                tokens=s.get("tokens"),
                temperature=s.get("temperature"),
                avg_logprob=s.get("avg_logprob"),
                compression_ratio=s.get("compression_ratio"),
                no_speech_prob=s.get("no_speech_prob"),
            )
            for index, s in enumerate(body["segments"])
        ]
    words = None
    if isinstance(body.get("words"), list):
        words = [Word(word=str(w["word"]), start=float(w["start"]), end=float(w["end"])) for w in body["words"]]
    logprobs = None
    if isinstance(body.get("logprobs"), list):
        logprobs = [Logprob(token=lp["token"], logprob=lp["logprob"], bytes=lp.get("bytes")) for lp in body["logprobs"]]
    usage = None
    if isinstance(body.get("usage"), dict) and body["usage"].get("type") in ("tokens", "duration"):
        raw = body["usage"]
        usage = Usage.model_validate({k: v for k, v in raw.items() if k in Usage.model_fields})
    language = body.get("language")
    return Transcript(
        text=body["text"],
        language=language_name(language.lower()) if isinstance(language, str) else None,
        duration=float(body["duration"]) if isinstance(body.get("duration"), int | float) else None,
        segments=segments,
        words=words,
        logprobs=logprobs,
        usage=usage,
    )


class OpenAICompatibleProvider:
    """OpenAI's wire format at a configurable base URL; subclasses change URL, auth and models."""

    name = "openai-compatible"
    default_base_url = ""
    path = "/v1/audio/transcriptions"

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        secrets = [k.value.get_secret_value() for k in config.keys]
        self.upstream = Upstream(self.name, config.network_config, self.default_base_url, secrets)

    def models(self) -> frozenset[str] | None:
        return None  # any model id the upstream serves

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities()

    def url(self, key: KeyConfig, model: str) -> str:
        return self.upstream.base_url + self.path

    def auth_headers(self, key: KeyConfig) -> dict[str, str]:
        return {"Authorization": f"Bearer {key.value.get_secret_value()}"}

    def params(self, key: KeyConfig) -> dict[str, str] | None:
        return None

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        key = choose_key(self.name, self.config.keys, model) if self.config.keys else None
        body = multipart(openai_fields(model, request, upstream_format(request)), audio)
        headers = {"Content-Type": body.content_type, "Accept": "application/json"}
        if key is not None:
            headers.update(self.auth_headers(key))
        response = self.upstream.post(
            self.url(key, model) if key is not None else self.upstream.base_url + self.path,
            call=call,
            headers=headers,
            params=self.params(key) if key is not None else None,
            data=body,
            message_of=openai_error_message,
        )
        return transcript_from_openai(self.upstream.json(response), self.name)
