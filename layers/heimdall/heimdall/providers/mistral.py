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
from typing import Any

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
from heimdall.providers.openai_compatible import SEGMENT_FORMATS, multipart
from heimdall.providers.upstream import Call, HttpProvider, openai_error_message

MAX_FILE_BYTES = 1024 * 1024 * 1024


def mistral_error_message(body: Any) -> str | None:
    """``{"object": "error", "message": ...}``, or FastAPI-style ``{"detail": ...}`` from its gateway."""
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
        if isinstance(body.get("detail"), list) and body["detail"]:
            return str(body["detail"][0].get("msg"))
    return openai_error_message(body)


class MistralProvider(HttpProvider):
    name = "mistral"
    default_base_url = "https://api.mistral.ai"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES, unsupported_fields=frozenset({"prompt", "chunking_strategy", "include[]"})
        )

    def _post(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call, *, stream: bool) -> Any:
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
        return self.upstream.post(
            self.upstream.base_url + "/v1/audio/transcriptions",
            call=call,
            headers={
                "Authorization": f"Bearer {key.value.get_secret_value()}",
                "Content-Type": body.content_type,
                "Accept": "text/event-stream" if stream else "application/json",
            },
            data=body,
            message_of=mistral_error_message,
            stream=stream,
        )

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        return self.from_wire(self.upstream.json(self._post(model, request, audio, call, stream=False)))

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """Mistral's stream: ``transcription.text.delta`` events (``text``), then ``transcription.done``
        (the whole answer); ``transcription.language`` and ``transcription.segment`` carry nothing new."""
        response = self._post(model, request, audio, call, stream=True)
        return self._translate(self.upstream.sse_events(response))

    def _translate(self, events: Iterator[dict[str, Any]]) -> Iterator[StreamEvent]:
        for event in events:
            kind = event.get("type")
            if kind == "transcription.text.delta":
                yield TextDelta(str(event.get("text", "")))
            elif kind == "transcription.done":
                done = self.from_wire(event)
                yield TextDone(done.text, done.usage)
                return
            elif kind == "error" or isinstance(event.get("error"), dict):
                error = event.get("error")
                detail: dict[str, Any] = error if isinstance(error, dict) else event
                raise ProviderFailed(
                    self.upstream.redact(str(detail.get("message", "stream error"))),
                    provider=self.name,
                    is_bifrost_error=False,
                )
        raise ProviderFailed(
            "mistral ended the stream before its done event.", code="stream_truncated", provider=self.name
        )

    def from_wire(self, body: Any) -> Transcript:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise ProviderFailed(
                "mistral returned JSON without a transcript text.",
                code="invalid_provider_response",
                provider=self.name,
                is_bifrost_error=False,
            )
        segments = None
        if isinstance(body.get("segments"), list):
            segments = [
                Segment(id=i, start=float(s["start"]), end=float(s["end"]), text=str(s["text"]))
                for i, s in enumerate(body["segments"])
            ]
        words = None
        if isinstance(body.get("words"), list):
            words = [
                Word(word=str(w.get("word", w.get("text", ""))).strip(), start=float(w["start"]), end=float(w["end"]))
                for w in body["words"]
            ]
        usage = None
        raw_usage = body.get("usage")
        if isinstance(raw_usage, dict):
            usage = Usage(
                type="tokens",
                input_tokens=raw_usage.get("prompt_tokens"),
                output_tokens=raw_usage.get("completion_tokens"),
                total_tokens=raw_usage.get("total_tokens"),
                seconds=raw_usage.get("prompt_audio_seconds"),
            )
        duration = segments[-1].end if segments else None
        language = body.get("language")
        return Transcript(
            text=body["text"],
            language=language_name(language) if isinstance(language, str) else None,
            duration=duration,
            segments=segments,
            words=words,
            usage=usage,
        )
