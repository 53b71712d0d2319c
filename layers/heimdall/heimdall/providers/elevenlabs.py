"""ElevenLabs Scribe: ``POST https://api.elevenlabs.io/v1/speech-to-text``, ``xi-api-key``, multipart.

Follows ElevenLabs' API reference "Create transcript" (Speech to Text, v1). Fields: ``model_id``
(``scribe_v1``, ``scribe_v2``), ``file``, ``language_code``, ``temperature``,
``timestamps_granularity`` (``none``/``word``/``character``). The answer is ``{language_code,
language_probability, text, words: [{text, type: word|spacing|audio_event, start, end}],
audio_duration_secs}``: spacing tokens are not words, segments (hence srt/vtt/verbose_json) are
built from the word timings, and the duration is the audio's (not the last word's end). There is
no ``prompt``: asking for one is refused, or a fallback serves it.
"""

from __future__ import annotations

import math

from pydantic import Field

from heimdall.core.languages import language_name
from heimdall.core.segments import segments_from_words
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest, Usage, Word
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Exchange, HttpProvider, Outgoing, multipart
from heimdall.providers.wire import ErrorBody, Seconds, Timeline, TranscriptAnswer, WireModel

MAX_FILE_BYTES = 3 * 1024 * 1024 * 1024
# ElevenLabs reports ISO 639-3; the names Heimdall reports come from ISO 639-1.
ISO_639_3_TO_1 = {
    "eng": "en", "spa": "es", "fra": "fr", "deu": "de", "ita": "it", "por": "pt", "nld": "nl", "pol": "pl",
    "rus": "ru", "ukr": "uk", "jpn": "ja", "kor": "ko", "cmn": "zh", "zho": "zh", "ara": "ar", "hin": "hi",
    "tur": "tr", "swe": "sv", "dan": "da", "nor": "no", "fin": "fi", "ces": "cs", "ell": "el", "heb": "he",
}  # fmt: skip


class ElevenLabsErrorItem(WireModel):
    msg: str


class ElevenLabsErrorDetail(WireModel):
    message: str


class ElevenLabsErrorBody(ErrorBody):
    """``{"detail": {"status", "message"}}``, validation's ``{"detail": [{"msg", ...}]}``, or a string."""

    detail: ElevenLabsErrorDetail | list[ElevenLabsErrorItem] | str

    def message(self) -> str | None:
        if isinstance(self.detail, ElevenLabsErrorDetail):
            return self.detail.message
        if isinstance(self.detail, list):
            return self.detail[0].msg if self.detail else None
        return self.detail


class ElevenLabsWord(WireModel):
    """One token: ``type`` is ``word``, ``spacing`` or ``audio_event``; times may be null."""

    text: str
    type: str = "word"
    start: Seconds | None = None
    end: Seconds | None = None


class ElevenLabsTranscription(TranscriptAnswer):
    text: str
    language_code: str | None = None
    words: Timeline[ElevenLabsWord] = Field(default_factory=list)
    audio_duration_secs: Seconds | None = None

    def canonical(self) -> Transcript:
        spoken = [w for w in self.words if w.type == "word" and w.text.strip()]
        timed = all(w.start is not None and w.end is not None for w in spoken)
        # Spacing tokens are not words; a word without times means there are no timings at all.
        words = [Word(word=w.text.strip(), start=w.start or 0, end=w.end or 0) for w in spoken] if timed else None
        duration = self.audio_duration_secs
        if duration is None and words:
            duration = words[-1].end  # older answers carry no duration: the last word's end is the best known
        code = self.language_code
        return Transcript(
            text=self.text.strip(),
            language=language_name(ISO_639_3_TO_1.get(code, code)) if code else None,
            duration=duration,
            segments=segments_from_words(words) if words is not None else None,
            words=words,
            usage=Usage(type="duration", seconds=math.ceil(duration)) if duration is not None else None,
        )


class ElevenLabsProvider(HttpProvider):
    name = "elevenlabs"
    default_base_url = "https://api.elevenlabs.io"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES, unsupported_fields=frozenset({"prompt", "chunking_strategy", "include[]"})
        )

    def exchange(self, model: str, request: TranscriptionRequest, audio: AudioInput) -> Exchange:
        key = self.key_for(model)
        fields: list[tuple[str, str]] = [("model_id", model), ("timestamps_granularity", "word")]
        if request.language:
            fields.append(("language_code", request.language))
        if request.temperature is not None:
            fields.append(("temperature", repr(request.temperature)))
        body = multipart(fields, audio)
        headers = {"xi-api-key": key.value.get_secret_value(), "Content-Type": body.content_type}
        outgoing = Outgoing(self.upstream.base_url + "/v1/speech-to-text", headers, None, body)
        return Exchange(outgoing, ElevenLabsErrorBody, ElevenLabsTranscription)
