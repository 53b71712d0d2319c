"""The OpenAI audio transcription wire format, shared by OpenAI, Azure OpenAI, Groq and any
OpenAI-compatible server (vLLM, speaches, LocalAI): ``openai-compatible``, whose base URL is required.

Follows OpenAI's API reference, "Create transcription" (``POST /v1/audio/transcriptions``,
multipart). Heimdall asks upstream for ``verbose_json`` when the client wants segments (srt, vtt,
verbose_json) and ``json`` otherwise, then renders the client's format itself, so every format goes
through the one canonical transcript.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from heimdall.config import KeyConfig
from heimdall.core.errors import ProviderFailed
from heimdall.core.languages import language_name
from heimdall.core.types import (
    AudioInput,
    Logprob,
    ResponseFormat,
    Segment,
    StreamEvent,
    TextDelta,
    TextDone,
    Transcript,
    TranscriptionRequest,
    Usage,
    Word,
)
from heimdall.providers.base import Capabilities, stream_from_transcript
from heimdall.providers.upstream import Call, HttpProvider, openai_error_message

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
        logprobs = _logprobs(body["logprobs"])
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


class OpenAICompatibleProvider(HttpProvider):
    """OpenAI's wire format at a configurable base URL; subclasses change URL, auth and models."""

    name = "openai-compatible"
    path = "/v1/audio/transcriptions"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities()

    def url(self, key: KeyConfig | None, model: str) -> str:
        return self.upstream.base_url + self.path

    def auth_headers(self, key: KeyConfig) -> dict[str, str]:
        return {"Authorization": f"Bearer {key.value.get_secret_value()}"}

    def params(self, key: KeyConfig) -> dict[str, str] | None:
        return None

    def _post(self, model: str, fields: list[tuple[str, str]], audio: AudioInput, call: Call, *, stream: bool) -> Any:
        key = self.key_for(model) if self.config.keys else None
        body = multipart(fields, audio)
        headers = {"Content-Type": body.content_type, "Accept": "text/event-stream" if stream else "application/json"}
        if key is not None:
            headers.update(self.auth_headers(key))
        return self.upstream.post(
            self.url(key, model),
            call=call,
            headers=headers,
            params=self.params(key) if key is not None else None,
            data=body,
            message_of=openai_error_message,
            stream=stream,
        )

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        response = self._post(model, openai_fields(model, request, upstream_format(request)), audio, call, stream=False)
        return transcript_from_openai(self.upstream.json(response), self.name)

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """OpenAI's transcription stream (gpt-4o-*-transcribe), translated event by event; other models
        answer whole, as one delta."""
        if not self.capabilities(model).streaming:
            return stream_from_transcript(self.transcribe(model, request, audio, call))
        fields = [*openai_fields(model, request, "json"), ("stream", "true")]
        response = self._post(model, fields, audio, call, stream=True)
        return self._translate(self.upstream.sse_events(response))

    def _translate(self, events: Iterator[dict[str, Any]]) -> Iterator[StreamEvent]:
        for event in events:
            kind = event.get("type")
            if kind == "transcript.text.delta":
                yield TextDelta(str(event.get("delta", "")), _logprobs(event.get("logprobs")))
            elif kind == "transcript.text.done":
                usage = event.get("usage")
                yield TextDone(
                    str(event.get("text", "")),
                    Usage.model_validate({k: v for k, v in usage.items() if k in Usage.model_fields})
                    if isinstance(usage, dict)
                    else None,
                    _logprobs(event.get("logprobs")),
                )
                return
            elif isinstance(event.get("error"), dict):
                raise ProviderFailed(
                    self.upstream.redact(str(event["error"].get("message", "stream error"))),
                    provider=self.name,
                    is_bifrost_error=False,
                )
        raise ProviderFailed(
            f"{self.name} ended the stream before its done event.", code="stream_truncated", provider=self.name
        )


def _logprobs(raw: Any) -> list[Logprob] | None:
    if not isinstance(raw, list):
        return None
    return [Logprob(token=lp["token"], logprob=lp["logprob"], bytes=lp.get("bytes")) for lp in raw]
