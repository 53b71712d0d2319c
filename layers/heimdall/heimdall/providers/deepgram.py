"""Deepgram: ``POST https://api.deepgram.com/v1/listen?model=…``, ``Authorization: Token``, raw audio body.

Follows Deepgram's API reference "Transcribe pre-recorded audio" (``/v1/listen``). Options are query
parameters (``model``, ``language`` or ``detect_language``, ``smart_format``, ``punctuate``,
``utterances``); the body is the audio itself, with the client's ``Content-Type``. The answer is
``{metadata: {duration, request_id}, results: {channels: [{alternatives: [{transcript, words:
[{word, punctuated_word, start, end}]}], detected_language}], utterances: [{start, end,
transcript}]}}``: utterances become segments one-to-one (words are grouped when there are none).
Deepgram has no ``prompt`` or ``temperature``: asking for them is refused, or a fallback serves it.
"""

from __future__ import annotations

import math
from typing import Any

from heimdall.core.errors import ProviderFailed
from heimdall.core.languages import language_name
from heimdall.core.segments import segments_from_words
from heimdall.core.types import AudioInput, Segment, Transcript, TranscriptionRequest, Usage, Word
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Call, HttpProvider

MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024


def deepgram_error_message(body: Any) -> str | None:
    """``{"err_code", "err_msg", "request_id"}``."""
    if isinstance(body, dict):
        for field in ("err_msg", "message", "reason"):
            if isinstance(body.get(field), str):
                return str(body[field])
    return None


class DeepgramProvider(HttpProvider):
    name = "deepgram"
    default_base_url = "https://api.deepgram.com"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(
            max_file_bytes=MAX_FILE_BYTES,
            unsupported_fields=frozenset({"prompt", "temperature", "chunking_strategy", "include[]"}),
        )

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        key = self.key_for(model)
        params = {"model": model, "smart_format": "true", "punctuate": "true", "utterances": "true"}
        if request.language:
            params["language"] = request.language
        else:
            params["detect_language"] = "true"
        response = self.upstream.post(
            self.upstream.base_url + "/v1/listen",
            call=call,
            params=params,
            headers={
                "Authorization": f"Token {key.value.get_secret_value()}",
                "Content-Type": audio.content_type,
                "Accept": "application/json",
            },
            data=audio.rewind(),  # streamed from the spooled upload
            message_of=deepgram_error_message,
        )
        return self.from_wire(self.upstream.json(response))

    def from_wire(self, body: Any) -> Transcript:
        try:
            channel = body["results"]["channels"][0]
            alternative = channel["alternatives"][0]
            transcript = str(alternative["transcript"])
        except (KeyError, IndexError, TypeError):
            raise ProviderFailed(
                "deepgram returned JSON without results.channels[0].alternatives[0].transcript.",
                code="invalid_provider_response",
                provider=self.name,
                is_bifrost_error=False,
            ) from None
        words = [
            Word(word=str(w.get("punctuated_word") or w["word"]), start=float(w["start"]), end=float(w["end"]))
            for w in alternative.get("words") or []
        ]
        utterances = body["results"].get("utterances")
        if isinstance(utterances, list) and utterances:
            segments = [
                Segment(id=i, start=float(u["start"]), end=float(u["end"]), text=str(u["transcript"]))
                for i, u in enumerate(utterances)
            ]
        else:
            segments = segments_from_words(words)
        metadata = body.get("metadata") or {}
        duration = float(metadata["duration"]) if isinstance(metadata.get("duration"), int | float) else None
        language = channel.get("detected_language")
        return Transcript(
            text=transcript,
            language=language_name(language.split("-")[0]) if isinstance(language, str) else None,
            duration=duration,
            segments=segments,
            words=words,
            usage=Usage(type="duration", seconds=math.ceil(duration)) if duration is not None else None,
        )
