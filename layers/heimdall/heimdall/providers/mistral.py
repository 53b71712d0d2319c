"""Mistral (Voxtral): ``POST https://api.mistral.ai/v1/audio/transcriptions``, Bearer, multipart.

Follows Mistral's API reference "Create Transcription" (``/v1/audio/transcriptions``, 2025-2026).
Fields: ``model``, ``file``, ``language``, ``temperature``, ``timestamp_granularities`` (``segment``,
``word``). The answer is ``{model, text, language, segments: [{text, start, end}], usage:
{prompt_audio_seconds, prompt_tokens, completion_tokens, total_tokens}}``; Heimdall renders srt, vtt
and verbose_json from the segments. There is no ``prompt``: asking for one is refused (or a fallback
serves it) rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import AliasChoices, Field

from heimdall.core.errors import ProviderFailed
from heimdall.core.languages import language_name
from heimdall.core.types import (
    AudioInput,
    Segment,
    StreamEvent,
    TextDelta,
    TextDone,
    Transcript,
    TranscriptionRequest,
    Usage,
    Word,
)
from heimdall.providers.base import Capabilities
from heimdall.providers.openai_compatible import SEGMENT_FORMATS
from heimdall.providers.upstream import Call, Exchange, HttpProvider, Outgoing, multipart
from heimdall.providers.wire import Count, OpenAIErrorBody, Seconds, Timeline, TranscriptAnswer, WireModel

MAX_FILE_BYTES = 1024 * 1024 * 1024


class MistralErrorItem(WireModel):
    msg: str


class MistralErrorBody(OpenAIErrorBody):
    """``{"object": "error", "message": ...}``, or FastAPI-style ``{"detail": ...}`` from its gateway;
    also the ``error`` event of its stream."""

    detail: list[MistralErrorItem] | str | None = None

    def message(self) -> str | None:
        if isinstance(self.detail, list):
            return self.detail[0].msg if self.detail else None
        return self.detail or super().message()


class MistralSegment(WireModel):
    text: str
    start: Seconds
    end: Seconds


class MistralWord(WireModel):
    word: str = Field(validation_alias=AliasChoices("word", "text"))
    start: Seconds
    end: Seconds


class MistralUsage(WireModel):
    prompt_audio_seconds: Seconds | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    total_tokens: Count | None = None


class MistralTranscription(TranscriptAnswer):
    """The answer, and the stream's ``transcription.done`` event."""

    text: str
    language: str | None = None
    segments: Timeline[MistralSegment] | None = None
    words: Timeline[MistralWord] | None = None
    usage: MistralUsage | None = None

    def canonical(self) -> Transcript:
        segments = None
        if self.segments is not None:
            segments = [Segment(id=i, start=s.start, end=s.end, text=s.text) for i, s in enumerate(self.segments)]
        usage = None
        duration = segments[-1].end if segments else None
        if self.usage is not None:
            usage = Usage(
                type="tokens",
                input_tokens=self.usage.prompt_tokens,
                output_tokens=self.usage.completion_tokens,
                total_tokens=self.usage.total_tokens,
                seconds=self.usage.prompt_audio_seconds,
            )
            if self.usage.prompt_audio_seconds is not None:
                duration = self.usage.prompt_audio_seconds  # the audio's length, not the last segment's end
        return Transcript(
            text=self.text,
            language=language_name(self.language) if self.language else None,
            duration=duration,
            segments=segments,
            words=None
            if self.words is None
            else [Word(word=w.word.strip(), start=w.start, end=w.end) for w in self.words],
            usage=usage,
        )


class MistralDelta(WireModel):
    text: str


STREAM_EVENTS: dict[str, type[WireModel]] = {
    "transcription.text.delta": MistralDelta,
    "transcription.done": MistralTranscription,
    "error": MistralErrorBody,
}


class MistralProvider(HttpProvider):
    name = "mistral"
    default_base_url = "https://api.mistral.ai"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES, unsupported_fields=frozenset({"prompt", "chunking_strategy", "include[]"})
        )

    def _outgoing(self, model: str, request: TranscriptionRequest, audio: AudioInput, *, stream: bool) -> Outgoing:
        key = self.key_for(model)
        fields: list[tuple[str, str]] = [("model", model)]
        if request.language:
            fields.append(("language", request.language))
        if request.temperature is not None:
            fields.append(("temperature", repr(request.temperature)))
        granularities = {str(g) for g in request.timestamp_granularities}
        if request.response_format in SEGMENT_FORMATS:
            granularities.add("segment")
        fields += [("timestamp_granularities", g) for g in sorted(granularities)]
        if stream:
            fields.append(("stream", "true"))
        body = multipart(fields, audio)
        headers = {
            "Authorization": f"Bearer {key.value.get_secret_value()}",
            "Content-Type": body.content_type,
            "Accept": "text/event-stream" if stream else "application/json",
        }
        return Outgoing(self.upstream.base_url + "/v1/audio/transcriptions", headers, None, body)

    def exchange(self, model: str, request: TranscriptionRequest, audio: AudioInput) -> Exchange:
        return Exchange(self._outgoing(model, request, audio, stream=False), MistralErrorBody, MistralTranscription)

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """Mistral's stream: ``transcription.text.delta`` events (``text``), then ``transcription.done``
        (the whole answer); ``transcription.language`` and ``transcription.segment`` carry nothing new."""
        response = self.upstream.send(self._outgoing(model, request, audio, stream=True), call, MistralErrorBody)
        return self._translate(self.upstream.events(response, STREAM_EVENTS, call))

    def _translate(self, events: Iterator[WireModel]) -> Iterator[StreamEvent]:
        for event in events:
            if isinstance(event, MistralDelta):
                yield TextDelta(event.text)
            elif isinstance(event, MistralTranscription):
                done = event.canonical()
                yield TextDone(done.text, done.usage)
                return
            elif isinstance(event, MistralErrorBody):
                raise ProviderFailed(
                    self.upstream.relayed(event.message() or "stream error"), provider=self.name, is_bifrost_error=False
                )
        raise ProviderFailed(
            "mistral ended the stream before its done event.", code="stream_truncated", provider=self.name
        )
