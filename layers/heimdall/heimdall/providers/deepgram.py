"""Deepgram: ``POST https://api.deepgram.com/v1/listen?model=…``, ``Authorization: Token``, raw audio body.

Follows Deepgram's API reference "Transcribe pre-recorded audio" (``/v1/listen``). Options are query
parameters (``model``, ``language`` or ``detect_language``, ``smart_format``, ``punctuate``,
``utterances``); the body is the audio itself, with the media type of the container its bytes are (a
client's ``Content-Type`` may be any well-formed type, which Deepgram would refuse). The answer is
``{metadata: {duration, request_id}, results: {channels: [{alternatives: [{transcript, words:
[{word, punctuated_word, start, end}]}], detected_language}], utterances: [{start, end,
transcript}]}}``: utterances become segments one-to-one (words are grouped when there are none).
Deepgram has no ``prompt`` or ``temperature``: asking for them is refused, or a fallback serves it.
"""

from __future__ import annotations

import math

from pydantic import Field

from heimdall.core.containers import sniffed_media_type
from heimdall.core.languages import language_name
from heimdall.core.segments import segments_from_words
from heimdall.core.types import AudioInput, Segment, Transcript, TranscriptionRequest, Usage, Word
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Exchange, HttpProvider, Outgoing, StreamedBody
from heimdall.providers.wire import ErrorBody, Seconds, Timeline, TranscriptAnswer, WireModel

MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024


class DeepgramErrorBody(ErrorBody):
    """``{"err_code", "err_msg", "request_id"}`` (older answers: ``message`` or ``reason``)."""

    err_msg: str | None = None
    message_: str | None = Field(default=None, alias="message")
    reason: str | None = None

    def message(self) -> str | None:
        return self.err_msg or self.message_ or self.reason


class DeepgramWord(WireModel):
    word: str
    punctuated_word: str | None = None
    start: Seconds
    end: Seconds


class DeepgramAlternative(WireModel):
    transcript: str
    words: Timeline[DeepgramWord] = Field(default_factory=list)


class DeepgramChannel(WireModel):
    alternatives: list[DeepgramAlternative] = Field(min_length=1)
    detected_language: str | None = None


class DeepgramUtterance(WireModel):
    start: Seconds
    end: Seconds
    transcript: str


class DeepgramResults(WireModel):
    channels: list[DeepgramChannel] = Field(min_length=1)
    utterances: Timeline[DeepgramUtterance] | None = None


class DeepgramMetadata(WireModel):
    duration: Seconds | None = None


class DeepgramTranscription(TranscriptAnswer):
    metadata: DeepgramMetadata = Field(default_factory=DeepgramMetadata)
    results: DeepgramResults

    def canonical(self) -> Transcript:
        channel = self.results.channels[0]
        alternative = channel.alternatives[0]
        words = [Word(word=w.punctuated_word or w.word, start=w.start, end=w.end) for w in alternative.words]
        if self.results.utterances:
            segments = [
                Segment(id=i, start=u.start, end=u.end, text=u.transcript)
                for i, u in enumerate(self.results.utterances)
            ]
        else:
            segments = segments_from_words(words)
        duration = self.metadata.duration
        language = channel.detected_language
        return Transcript(
            text=alternative.transcript,
            language=language_name(language.split("-")[0]) if language else None,
            duration=duration,
            segments=segments,
            words=words,
            usage=Usage(type="duration", seconds=math.ceil(duration)) if duration is not None else None,
        )


class DeepgramProvider(HttpProvider):
    name = "deepgram"
    default_base_url = "https://api.deepgram.com"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES,
            unsupported_fields=frozenset({"prompt", "temperature", "chunking_strategy", "include[]"}),
        )

    def exchange(self, model: str, request: TranscriptionRequest, audio: AudioInput) -> Exchange:
        key = self.key_for(model)
        params = {"model": model, "smart_format": "true", "punctuate": "true", "utterances": "true"}
        if request.language:
            params["language"] = request.language
        else:
            params["detect_language"] = "true"
        content_type = sniffed_media_type(audio)  # the client's own type may be any well-formed one
        headers = {
            "Authorization": f"Token {key.value.get_secret_value()}",
            "Content-Type": content_type,
            "Accept": "application/json",
        }
        body = StreamedBody(audio, content_type)  # the audio itself, streamed from the upload
        outgoing = Outgoing(self.upstream.base_url + "/v1/listen", headers, params, body)
        return Exchange(outgoing, DeepgramErrorBody, DeepgramTranscription)
