"""Groq: OpenAI-compatible ``POST https://api.groq.com/openai/v1/audio/transcriptions``, Bearer.

Follows GroqCloud's API reference "Create transcription" (OpenAI-compatible, v1). Groq returns
json, text and verbose_json (segments; words with ``timestamp_granularities[]=word``) but not
srt/vtt, which Heimdall renders from verbose_json segments.
"""

from __future__ import annotations

from heimdall.providers.base import Capabilities
from heimdall.providers.openai_compatible import OpenAICompatibleProvider

MAX_FILE_BYTES = 25 * 1024 * 1024  # free tier; 100 MB on paid tiers via URL


class GroqProvider(OpenAICompatibleProvider):
    name = "groq"
    default_base_url = "https://api.groq.com/openai"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(max_file_bytes=MAX_FILE_BYTES, unsupported_fields=frozenset({"chunking_strategy"}))
