"""OpenAI: ``POST https://api.openai.com/v1/audio/transcriptions``, ``Authorization: Bearer``.

Follows OpenAI's API reference "Create transcription" (audio API, v1, as of 2026). whisper-1 returns
every format and word/segment timestamps; the gpt-4o-*-transcribe models return text only (json,
text), with logprobs on request and no timestamps, so srt/vtt/verbose_json are refused before any
call (or served by a fallback).
"""

from __future__ import annotations

from heimdall.core.types import ResponseFormat
from heimdall.providers.base import Capabilities
from heimdall.providers.openai_compatible import OpenAICompatibleProvider

MAX_FILE_BYTES = 25 * 1024 * 1024
TEXT_ONLY = frozenset({ResponseFormat.JSON, ResponseFormat.TEXT})


def openai_capabilities(model: str) -> Capabilities:
    if model.startswith("gpt-4o"):
        return Capabilities(
            formats=TEXT_ONLY, word_timestamps=False, streaming=True, logprobs=True, max_file_bytes=MAX_FILE_BYTES
        )
    return Capabilities(max_file_bytes=MAX_FILE_BYTES)


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    default_base_url = "https://api.openai.com"

    def capabilities(self, model: str) -> Capabilities:
        return openai_capabilities(model)
