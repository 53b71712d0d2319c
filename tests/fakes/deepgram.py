"""Deepgram's /v1/listen: Token auth, options in the query, raw audio body with an audio
Content-Type (Deepgram API reference "Transcribe pre-recorded audio")."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.base import DURATION, SPOKEN, WORDS, FakeUpstream, Recorded, Rejection


def dg_error(status: int, code: str, message: str) -> Rejection:
    return Rejection(status, {"err_code": code, "err_msg": message, "request_id": "5e7c0c2a-test"})


class DeepgramFake(FakeUpstream):
    name = "deepgram"

    def error_body(self, status: int) -> Any:
        return {"err_code": "INTERNAL_SERVER_ERROR", "err_msg": "Something went wrong.", "request_id": "x"}

    def wrong_shape(self) -> Any:
        alternative = {"transcript": SPOKEN, "words": [{"word": "the"}]}  # a word without its times
        return {"metadata": {"duration": DURATION}, "results": {"channels": [{"alternatives": [alternative]}]}}

    def check(self, recorded: Recorded) -> None:
        if recorded.path != "/v1/listen":
            raise dg_error(404, "NOT_FOUND", "Not found.")
        if recorded.headers.get("authorization") != f"Token {self.key}":
            raise dg_error(401, "INVALID_AUTH", "Invalid credentials." + self.leak())
        content_type = recorded.headers.get("content-type", "")
        if recorded.file is None or not (
            content_type.startswith("audio/") or content_type == "application/octet-stream"
        ):
            raise dg_error(415, "UNSUPPORTED_MEDIA_TYPE", f"Unsupported content type {content_type!r}.")
        if recorded.file["size"] == 0:
            raise dg_error(400, "Bad Request", "Bad Request: failed to process audio: corrupt or unsupported data")
        if "model" not in recorded.query:
            raise dg_error(400, "Bad Request", "Bad Request: model is required for this request")

    def answer(self, recorded: Recorded) -> Response:
        words = [{"word": w.rstrip(".").lower(), "start": s, "end": e, "confidence": 0.99, "punctuated_word": w}
                 for w, s, e in WORDS]  # fmt: skip
        body: dict[str, Any] = {
            "metadata": {"request_id": "5e7c0c2a-test", "duration": DURATION, "channels": 1,
                         "models": ["1abfe86b"]},
            "results": {"channels": [{"alternatives": [{"transcript": SPOKEN, "confidence": 0.99, "words": words}]}]},
        }  # fmt: skip
        if recorded.query.get("detect_language") == "true":  # a named language is not echoed back
            body["results"]["channels"][0].update(detected_language="en", language_confidence=0.99)
        if recorded.query.get("utterances") == "true":
            body["results"]["utterances"] = [
                {"start": 0.0, "end": 3.46, "confidence": 0.99, "channel": 0, "id": "u0",
                 "transcript": "The quick brown fox jumps over the lazy dog.", "words": words[:9]},
                {"start": 4.3, "end": 7.0, "confidence": 0.99, "channel": 0, "id": "u1",
                 "transcript": "A second sentence follows after a short pause.", "words": words[9:]},
            ]  # fmt: skip
        return JSONResponse(body)
