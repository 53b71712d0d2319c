"""Mistral's /v1/audio/transcriptions (Voxtral): Bearer auth; model, file, language, temperature,
timestamp_granularities; anything else is a 422 (Mistral API reference "Create Transcription")."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.base import SPOKEN, FakeUpstream, Recorded, Rejection, data, sse

FIELDS = {"model", "language", "temperature", "timestamp_granularities", "diarize", "context_bias", "stream"}


class MistralFake(FakeUpstream):
    name = "mistral"

    def error_body(self, status: int) -> Any:
        return {"object": "error", "message": "Service unavailable.", "type": "internal_server_error",
                "param": None, "code": str(status)}  # fmt: skip

    def wrong_shape(self) -> Any:
        return {"model": "voxtral-mini-latest", "text": SPOKEN, "segments": [{"text": "The quick", "start": 0.0}]}

    def check(self, recorded: Recorded) -> None:
        if recorded.path != "/v1/audio/transcriptions":
            raise Rejection(404, {"detail": "Not Found"})
        if recorded.headers.get("authorization") != f"Bearer {self.key}":
            raise Rejection(401, {"message": "Unauthorized" + self.leak(), "request_id": "f0e1"})
        if recorded.file is None or recorded.file["field"] != "file":
            raise Rejection(422, {"object": "error", "message": "file: Field required", "type": "invalid_request_error",
                                  "param": None, "code": None})  # fmt: skip
        for name, _ in recorded.fields:
            if name not in FIELDS:
                raise Rejection(422, {"object": "error", "message": f"{name}: Extra inputs are not permitted",
                                      "type": "invalid_request_error", "param": None, "code": None})  # fmt: skip
        if not recorded.field("model"):
            raise Rejection(422, {"object": "error", "message": "model: Field required",
                                  "type": "invalid_request_error", "param": None, "code": None})  # fmt: skip

    def stream_events(self, recorded_fields: dict[str, str]) -> list[bytes]:
        words = SPOKEN.split(" ")
        return [
            data({"type": "transcription.language", "audio_language": "en"}),
            *[data({"type": "transcription.text.delta", "text": (" " if i else "") + w}) for i, w in enumerate(words)],
            data({"type": "transcription.done", "model": "voxtral-mini-latest", "text": SPOKEN, "language": "en",
                  "segments": [], "usage": {"prompt_audio_seconds": 7, "prompt_tokens": 4, "total_tokens": 120,
                                            "completion_tokens": 22}}),
        ]  # fmt: skip

    def answer(self, recorded: Recorded) -> Response:
        if recorded.field("stream") == "true":
            return sse(self.stream_events(dict(recorded.fields)))
        body: dict[str, Any] = {
            "model": recorded.field("model"),
            "text": SPOKEN,
            "language": recorded.field("language") or "en",
            "segments": [],
            "usage": {"prompt_audio_seconds": 7, "prompt_tokens": 4, "total_tokens": 120, "completion_tokens": 22},
        }
        if "segment" in recorded.all("timestamp_granularities"):
            body["segments"] = [
                {"text": "The quick brown fox jumps over the lazy dog.", "start": 0.0, "end": 3.46},
                {"text": "A second sentence follows after a short pause.", "start": 4.3, "end": 7.0},
            ]
        return JSONResponse(body)
