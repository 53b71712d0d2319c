"""ElevenLabs Scribe: ``POST https://api.elevenlabs.io/v1/speech-to-text``, ``xi-api-key``, multipart.

Follows ElevenLabs' API reference "Create transcript" (Speech to Text, v1). Fields: ``model_id``
(``scribe_v1``, ``scribe_v2``), ``file``, ``language_code``, ``temperature``,
``timestamps_granularity`` (``none``/``word``/``character``). The answer is ``{language_code,
language_probability, text, words: [{text, type: word|spacing|audio_event, start, end}]}``:
spacing tokens are not words, and segments (hence srt/vtt/verbose_json) are built from the word
timings. There is no ``prompt``: asking for one is refused, or a fallback serves it.
"""

from __future__ import annotations

import math
from typing import Any

from heimdall.core.errors import ProviderFailed
from heimdall.core.languages import language_name
from heimdall.core.segments import segments_from_words
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest, Usage, Word
from heimdall.providers.base import Capabilities
from heimdall.providers.openai_compatible import multipart
from heimdall.providers.upstream import Call, HttpProvider

MAX_FILE_BYTES = 3 * 1024 * 1024 * 1024
# ElevenLabs reports ISO 639-3; the names Heimdall reports come from ISO 639-1.
ISO_639_3_TO_1 = {
    "eng": "en", "spa": "es", "fra": "fr", "deu": "de", "ita": "it", "por": "pt", "nld": "nl", "pol": "pl",
    "rus": "ru", "ukr": "uk", "jpn": "ja", "kor": "ko", "cmn": "zh", "zho": "zh", "ara": "ar", "hin": "hi",
    "tur": "tr", "swe": "sv", "dan": "da", "nor": "no", "fin": "fi", "ces": "cs", "ell": "el", "heb": "he",
}  # fmt: skip


def elevenlabs_error_message(body: Any) -> str | None:
    """``{"detail": {"status", "message"}}``, or validation's ``{"detail": [{"msg", ...}]}``."""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return str(detail["message"])
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return str(detail[0].get("msg"))
        if isinstance(detail, str):
            return detail
    return None


class ElevenLabsProvider(HttpProvider):
    name = "elevenlabs"
    default_base_url = "https://api.elevenlabs.io"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES, unsupported_fields=frozenset({"prompt", "chunking_strategy", "include[]"})
        )

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        key = self.key_for(model)
        fields: list[tuple[str, str]] = [("model_id", model), ("timestamps_granularity", "word")]
        if request.language:
            fields.append(("language_code", request.language))
        if request.temperature is not None:
            fields.append(("temperature", repr(request.temperature)))
        body = multipart(fields, audio)
        response = self.upstream.post(
            self.upstream.base_url + "/v1/speech-to-text",
            call=call,
            headers={"xi-api-key": key.value.get_secret_value(), "Content-Type": body.content_type},
            data=body,
            message_of=elevenlabs_error_message,
        )
        return self.from_wire(self.upstream.json(response))

    def from_wire(self, body: Any) -> Transcript:
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise ProviderFailed(
                "elevenlabs returned JSON without a transcript text.",
                code="invalid_provider_response",
                provider=self.name,
                is_bifrost_error=False,
            )
        words = [
            Word(word=str(w["text"]).strip(), start=float(w["start"]), end=float(w["end"]))
            for w in body.get("words") or []
            if w.get("type", "word") == "word" and str(w.get("text", "")).strip()
        ]
        code = body.get("language_code")
        duration = words[-1].end if words else None
        return Transcript(
            text=body["text"].strip(),
            language=language_name(ISO_639_3_TO_1.get(code, code)) if isinstance(code, str) else None,
            duration=duration,
            segments=segments_from_words(words),
            words=words,
            usage=Usage(type="duration", seconds=math.ceil(duration)) if duration is not None else None,
        )
