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
from collections.abc import Iterator
from typing import Any

from heimdall.core.errors import InvalidRequest, ProviderFailed
from heimdall.core.languages import LANGUAGE_NAMES
from heimdall.core.types import AudioInput, InputTokenDetails, ResponseFormat, Transcript, TranscriptionRequest, Usage
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Call, HttpProvider, openai_error_message, path_segment

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
                message_of=openai_error_message,
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
        return self.from_wire(self.upstream.json(response))

    def from_wire(self, body: Any) -> Transcript:
        try:
            candidate = body["candidates"][0]
            text = "".join(str(part.get("text", "")) for part in candidate["content"]["parts"])
        except (KeyError, IndexError, TypeError):
            reason = body.get("promptFeedback", {}).get("blockReason") if isinstance(body, dict) else None
            raise ProviderFailed(
                f"gemini returned no transcript{f' (blocked: {reason})' if reason else ''}.",
                code="invalid_provider_response",
                provider=self.name,
                is_bifrost_error=False,
            ) from None
        usage = None
        meta = body.get("usageMetadata")
        if isinstance(meta, dict):
            audio_tokens = sum(
                d.get("tokenCount", 0) for d in meta.get("promptTokensDetails") or [] if d.get("modality") == "AUDIO"
            )
            text_tokens = sum(
                d.get("tokenCount", 0) for d in meta.get("promptTokensDetails") or [] if d.get("modality") == "TEXT"
            )
            usage = Usage(
                type="tokens",
                input_tokens=meta.get("promptTokenCount"),
                input_token_details=InputTokenDetails(text_tokens=text_tokens, audio_tokens=audio_tokens),
                output_tokens=meta.get("candidatesTokenCount"),
                total_tokens=meta.get("totalTokenCount"),
            )
        return Transcript(text=text.strip(), usage=usage)
