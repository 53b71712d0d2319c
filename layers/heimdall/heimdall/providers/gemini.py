"""Gemini: ``POST https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent``,
``x-goog-api-key``, JSON with the audio inline.

Follows the Gemini API reference "generateContent" and its audio-understanding guide (v1beta).
The audio travels base64-encoded as ``inline_data`` with the client's ``mime_type``; the JSON body is
streamed, encoding the spooled upload as it is sent, so the audio is never held in memory as base64.
Inline requests are capped at 20 MB, hence about 14 MB of audio. A transcription instruction is the
text part; ``language`` and ``prompt`` are translated into it and ``temperature`` into
``generationConfig``. Gemini returns text without timestamps: json and text only.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from collections.abc import Iterator

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from heimdall.core.errors import InvalidRequest, ProviderFailed
from heimdall.core.languages import LANGUAGE_NAMES
from heimdall.core.types import AudioInput, InputTokenDetails, ResponseFormat, Transcript, TranscriptionRequest, Usage
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Call, HttpProvider, path_segment
from heimdall.providers.wire import Count, OpenAIErrorBody, WireModel, invalid_answer

MAX_FILE_BYTES = 14 * 1024 * 1024  # 20 MB request limit, base64 inflates by 4/3
_RAW_CHUNK = 3 * 64 * 1024  # a multiple of 3: base64 chunks concatenate without padding
INSTRUCTION = (
    "Transcribe this audio verbatim. Answer with the transcript text only, without timestamps, "
    "speaker labels, commentary or formatting."
)


def instruction_for(request: TranscriptionRequest) -> str:
    text = INSTRUCTION
    if request.language:
        text += f" The speech is in {LANGUAGE_NAMES.get(request.language, request.language).title()}."
    if request.prompt:
        text += f" Context and spelling hints from the user: {request.prompt}"
    return text


def streamed_body(request: TranscriptionRequest, audio: AudioInput, mime_type: str) -> Iterator[bytes]:
    """The generateContent JSON, with the base64 audio produced chunk by chunk."""
    yield (
        '{"contents":[{"role":"user","parts":[{"text":'
        + json.dumps(instruction_for(request))
        + '},{"inline_data":{"mime_type":'
        + json.dumps(mime_type)
        + ',"data":"'
    ).encode()
    source = audio.rewind()
    while chunk := source.read(_RAW_CHUNK):
        yield base64.b64encode(chunk)
    tail = '"}}]}]'
    if request.temperature is not None:
        tail += ',"generationConfig":' + json.dumps({"temperature": request.temperature})
    yield (tail + "}").encode()


_ENUM_VALUE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


class GeminiWire(WireModel):
    """Gemini's JSON names fields in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel)


class GeminiPart(GeminiWire):
    text: str | None = None  # parts without text (inline data) carry no transcript
    thought: bool = False  # a thinking model's reasoning, not the answer


class GeminiContent(GeminiWire):
    parts: list[GeminiPart] = Field(default_factory=list)


class GeminiCandidate(GeminiWire):
    content: GeminiContent | None = None
    finish_reason: str | None = None


class GeminiModalityCount(GeminiWire):
    modality: str
    token_count: Count = 0


class GeminiUsage(GeminiWire):
    prompt_token_count: Count | None = None
    candidates_token_count: Count | None = None
    total_token_count: Count | None = None
    prompt_tokens_details: list[GeminiModalityCount] = Field(default_factory=list)

    def canonical(self) -> Usage:
        def tokens(modality: str) -> int:
            return sum(d.token_count for d in self.prompt_tokens_details if d.modality == modality)

        return Usage(
            type="tokens",
            input_tokens=self.prompt_token_count,
            input_token_details=InputTokenDetails(text_tokens=tokens("TEXT"), audio_tokens=tokens("AUDIO")),
            output_tokens=self.candidates_token_count,
            total_tokens=self.total_token_count,
        )


class GeminiFeedback(GeminiWire):
    block_reason: str | None = None


class GeminiAnswer(GeminiWire):
    """``{candidates: [{content: {parts: [{text}]}, finishReason}], usageMetadata, promptFeedback}``;
    a blocked prompt has no candidates (or one without content) and says why in promptFeedback."""

    candidates: list[GeminiCandidate] = Field(default_factory=list)
    usage_metadata: GeminiUsage | None = None
    prompt_feedback: GeminiFeedback | None = None

    def canonical(self) -> Transcript:
        content = self.candidates[0].content if self.candidates else None
        if content is None:
            why = ""
            if self.prompt_feedback and self.prompt_feedback.block_reason:
                why = f" (blocked: {_enum_value(self.prompt_feedback.block_reason)})"
            elif self.candidates and self.candidates[0].finish_reason:
                why = f" (finish reason: {_enum_value(self.candidates[0].finish_reason)})"
            raise invalid_answer("gemini", f"returned no transcript{why}")
        text = "".join(part.text or "" for part in content.parts if not part.thought)
        return Transcript(text=text.strip(), usage=self.usage_metadata.canonical() if self.usage_metadata else None)


def _enum_value(text: str) -> str:
    """A reason as the reference's enums spell it (``SAFETY``, ``MAX_TOKENS``); any other text is the
    provider's own and is not relayed (a careless or hostile upstream could put its key there)."""
    return text if _ENUM_VALUE.fullmatch(text) else "not one the reference names"


class GeminiProvider(HttpProvider):
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            formats=frozenset({ResponseFormat.JSON, ResponseFormat.TEXT}),
            word_timestamps=False,
            max_file_bytes=MAX_FILE_BYTES,
            unsupported_fields=frozenset({"chunking_strategy", "include[]"}),
        )

    def serves_on_loop(self) -> bool:
        return False  # its body is JSON, the audio base64-encoded as it is sent: its calls stay blocking

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        key = self.key_for(model)
        mime_type = audio.content_type
        if mime_type == "application/octet-stream":  # the client named none: go by its filename
            mime_type = mimetypes.guess_type(audio.filename)[0] or mime_type
        try:
            response = self.upstream.post(
                f"{self.upstream.base_url}/v1beta/models/{path_segment(model)}:generateContent",
                call=call,
                headers={"x-goog-api-key": key.value.get_secret_value(), "Content-Type": "application/json"},
                data=streamed_body(request, audio, mime_type),
                errors=OpenAIErrorBody,
            )
        except InvalidRequest as exc:
            if "API key" in exc.message:  # Google answers a bad key with 400 INVALID_ARGUMENT: not the client's fault
                raise ProviderFailed(
                    f"gemini rejected the gateway's credentials: {exc.message}",
                    code="provider_auth_failed",
                    provider=self.name,
                    is_bifrost_error=False,
                ) from None
            raise
        return self.upstream.answer(response, GeminiAnswer, call).canonical()
