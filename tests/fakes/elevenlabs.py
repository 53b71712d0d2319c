"""ElevenLabs' /v1/speech-to-text: xi-api-key; model_id, file, language_code,
timestamps_granularity, temperature; words interleaved with spacing tokens (ElevenLabs API
reference "Create transcript")."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.base import DURATION, SPOKEN, WORDS, FakeUpstream, Recorded, Rejection

FIELDS = {"model_id", "language_code", "timestamps_granularity", "temperature", "tag_audio_events", "diarize",
          "num_speakers", "seed", "file_format"}  # fmt: skip


def missing(field: str) -> Rejection:
    return Rejection(422, {"detail": [{"loc": ["body", field], "msg": "Field required", "type": "missing"}]})


class ElevenLabsFake(FakeUpstream):
    name = "elevenlabs"

    def error_body(self, status: int) -> Any:
        return {"detail": {"status": "internal_error", "message": "An internal error occurred."}}

    def wrong_shape(self) -> Any:
        return {"language_code": "eng", "text": SPOKEN, "words": [{"text": "The", "type": "word", "start": "zero"}]}

    def check(self, recorded: Recorded) -> None:
        if recorded.path != "/v1/speech-to-text":
            raise Rejection(404, {"detail": "Not Found"})
        if recorded.headers.get("xi-api-key") != self.key:
            raise Rejection(401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key" + self.leak()}})
        if recorded.file is None or recorded.file["field"] != "file":
            raise missing("file")
        if not recorded.field("model_id"):
            raise missing("model_id")
        for name, _ in recorded.fields:
            if name not in FIELDS:
                raise Rejection(422, {"detail": [{"loc": ["body", name], "msg": "Extra inputs are not permitted",
                                                  "type": "extra_forbidden"}]})  # fmt: skip
        if recorded.field("timestamps_granularity") not in (None, "none", "word", "character"):
            raise Rejection(422, {"detail": [{"loc": ["body", "timestamps_granularity"], "msg": "Input should be "
                                              "'none', 'word' or 'character'", "type": "enum"}]})  # fmt: skip

    def answer(self, recorded: Recorded) -> Response:
        words: list[dict[str, Any]] = []
        for index, (text, start, end) in enumerate(WORDS):
            if index:
                words.append({"text": " ", "type": "spacing", "start": start, "end": start, "logprob": 0.0})
            words.append({"text": text, "type": "word", "start": start, "end": end, "logprob": -0.05,
                          "speaker_id": "speaker_0"})  # fmt: skip
        return JSONResponse({"language_code": "eng", "language_probability": 0.98, "text": SPOKEN, "words": words,
                             "audio_duration_secs": DURATION})  # fmt: skip
