"""Gemini's generateContent with inline audio: x-goog-api-key; a JSON body whose parts carry the
instruction text and base64 ``inline_data`` (Gemini API reference "generateContent", v1beta)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.base import SPOKEN, FakeUpstream, Recorded, Rejection

ROUTE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")


def google_error(status: int, state: str, message: str) -> Rejection:
    return Rejection(status, {"error": {"code": status, "message": message, "status": state}})


class GeminiFake(FakeUpstream):
    name = "gemini"

    def error_body(self, status: int) -> Any:
        return {"error": {"code": status, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}

    async def record(self, request: Any) -> Recorded:
        """Decodes the inline audio as it arrives, so every request's audio is recorded (faults included)."""
        recorded = await super().record(request)
        try:
            inline = next(p["inline_data"] for p in recorded.json["contents"][0]["parts"] if "inline_data" in p)
            audio = base64.b64decode(inline["data"], validate=True)
            recorded.file = {"content_type": inline["mime_type"], "sha256": hashlib.sha256(audio).hexdigest(),
                             "size": len(audio)}  # fmt: skip
        except (KeyError, IndexError, TypeError, StopIteration, binascii.Error):
            pass  # check() answers what Google would
        return recorded

    def wrong_shape(self) -> Any:
        return {"candidates": [{"content": {"parts": [{"text": SPOKEN}]}}],
                "usageMetadata": {"promptTokensDetails": [["AUDIO", 200]]}}  # fmt: skip

    def check(self, recorded: Recorded) -> None:
        if ROUTE.match(recorded.path) is None:
            raise google_error(404, "NOT_FOUND", f"Method not found: {recorded.path}")
        if recorded.headers.get("x-goog-api-key") != self.key:
            raise google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key." + self.leak())
        try:
            parts = recorded.json["contents"][0]["parts"]
            inline = next(p["inline_data"] for p in parts if "inline_data" in p)
            audio = base64.b64decode(inline["data"], validate=True)
            assert any(isinstance(p.get("text"), str) for p in parts)
            assert audio
        except (KeyError, IndexError, TypeError, StopIteration, binascii.Error, AssertionError):
            raise google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None

    def answer(self, recorded: Recorded) -> Response:
        return JSONResponse({
            "candidates": [{"content": {"parts": [{"text": SPOKEN + "\n"}], "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 240, "candidatesTokenCount": 22, "totalTokenCount": 262,
                              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40},
                                                      {"modality": "AUDIO", "tokenCount": 200}]},
            "modelVersion": "gemini-2.5-flash",
        })  # fmt: skip
