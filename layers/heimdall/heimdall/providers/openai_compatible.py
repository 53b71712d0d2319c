"""The OpenAI audio transcription wire format, shared by OpenAI, Azure OpenAI, Groq and any
OpenAI-compatible server (vLLM, speaches, LocalAI): ``openai-compatible``, whose base URL is required.

Follows OpenAI's API reference, "Create transcription" (``POST /v1/audio/transcriptions``,
multipart). Heimdall asks upstream for ``verbose_json`` when the client wants segments (srt, vtt,
verbose_json) and ``json`` otherwise, then renders the client's format itself, so every format goes
through the one canonical transcript.
"""

from __future__ import annotations

from collections.abc import Iterator

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
from heimdall.providers.upstream import Call, Exchange, HttpProvider, Outgoing, multipart
from heimdall.providers.wire import Count, OpenAIErrorBody, Seconds, Timeline, TranscriptAnswer, WireModel

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


class OpenAIWord(WireModel):
    word: str
    start: Seconds
    end: Seconds


class OpenAISegment(WireModel):
    seek: int | None = None
    start: Seconds
    end: Seconds
    text: str
    tokens: list[int] | None = None
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


class OpenAILogprob(WireModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class OpenAITokenDetails(WireModel):
    text_tokens: Count | None = None
    audio_tokens: Count | None = None


class OpenAIUsage(WireModel):
    """``{"type": "tokens", input_tokens, output_tokens, total_tokens, input_token_details}`` or
    ``{"type": "duration", "seconds": <number>}`` (2.5 is as valid as 8); other types are skipped."""

    type: str
    seconds: Seconds | None = None
    input_tokens: Count | None = None
    input_token_details: OpenAITokenDetails | None = None
    output_tokens: Count | None = None
    total_tokens: Count | None = None

    def canonical(self) -> Usage | None:
        if self.type not in ("tokens", "duration"):
            return None
        return Usage.model_validate(self.model_dump(exclude_none=True))


class OpenAITranscription(TranscriptAnswer):
    """The ``json`` and ``verbose_json`` bodies."""

    text: str
    language: str | None = None
    duration: Seconds | None = None
    segments: Timeline[OpenAISegment] | None = None
    words: Timeline[OpenAIWord] | None = None
    logprobs: Timeline[OpenAILogprob] | None = None
    usage: OpenAIUsage | None = None

    def canonical(self) -> Transcript:
        return Transcript(
            text=self.text,
            language=language_name(self.language.lower()) if self.language else None,
            duration=self.duration,
            segments=None
            if self.segments is None
            else [Segment(id=index, **s.model_dump()) for index, s in enumerate(self.segments)],
            words=None if self.words is None else [Word(**w.model_dump()) for w in self.words],
            logprobs=_logprobs(self.logprobs),
            usage=self.usage.canonical() if self.usage else None,
        )


class OpenAIDelta(WireModel):
    delta: str
    logprobs: Timeline[OpenAILogprob] | None = None


class OpenAIDone(WireModel):
    text: str
    logprobs: Timeline[OpenAILogprob] | None = None
    usage: OpenAIUsage | None = None


STREAM_EVENTS: dict[str, type[WireModel]] = {
    "transcript.text.delta": OpenAIDelta,
    "transcript.text.done": OpenAIDone,
    "error": OpenAIErrorBody,
}


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

    def _outgoing(self, model: str, fields: list[tuple[str, str]], audio: AudioInput, *, stream: bool) -> Outgoing:
        key = self.key_for(model) if self.config.keys else None
        body = multipart(fields, audio)
        headers = {"Content-Type": body.content_type, "Accept": "text/event-stream" if stream else "application/json"}
        if key is not None:
            headers.update(self.auth_headers(key))
        return Outgoing(self.url(key, model), headers, self.params(key) if key is not None else None, body)

    def exchange(self, model: str, request: TranscriptionRequest, audio: AudioInput) -> Exchange:
        fields = openai_fields(model, request, upstream_format(request))
        return Exchange(self._outgoing(model, fields, audio, stream=False), OpenAIErrorBody, OpenAITranscription)

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """OpenAI's transcription stream (gpt-4o-*-transcribe), translated event by event; other models
        answer whole, as one delta."""
        if not self.capabilities(model).streaming:
            return stream_from_transcript(self.transcribe(model, request, audio, call))
        fields = [*openai_fields(model, request, "json"), ("stream", "true")]
        response = self.upstream.send(self._outgoing(model, fields, audio, stream=True), call, OpenAIErrorBody)
        return self._translate(self.upstream.events(response, STREAM_EVENTS, call))

    def _translate(self, events: Iterator[WireModel]) -> Iterator[StreamEvent]:
        for event in events:
            if isinstance(event, OpenAIDelta):
                yield TextDelta(event.delta, _logprobs(event.logprobs))
            elif isinstance(event, OpenAIDone):
                yield TextDone(event.text, event.usage.canonical() if event.usage else None, _logprobs(event.logprobs))
                return
            elif isinstance(event, OpenAIErrorBody):
                raise ProviderFailed(
                    self.upstream.relayed(event.message() or "stream error"), provider=self.name, is_bifrost_error=False
                )
        raise ProviderFailed(
            f"{self.name} ended the stream before its done event.", code="stream_truncated", provider=self.name
        )


def _logprobs(raw: list[OpenAILogprob] | None) -> list[Logprob] | None:
    return None if raw is None else [Logprob(**lp.model_dump()) for lp in raw]
