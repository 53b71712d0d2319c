"""Groq's OpenAI-compatible route (/openai/v1/audio/transcriptions): Bearer auth; json, text and
verbose_json only (GroqCloud API reference)."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import Recorded, Rejection
from tests.fakes.openai import OpenAIFake, invalid


class GroqFake(OpenAIFake):
    name = "groq"
    path = "/openai/v1/audio/transcriptions"

    def check(self, recorded: Recorded) -> None:
        if recorded.path != self.path:
            raise Rejection(404, {"error": {"message": "Unknown request URL", "type": "invalid_request_error",
                                            "code": "unknown_url"}})  # fmt: skip
        self.check_auth(recorded)
        fmt = recorded.field("response_format") or "json"
        if fmt not in ("json", "text", "verbose_json"):
            raise invalid("response_format must be one of [json text verbose_json]", "response_format")
        self.check_form(recorded)

    def verbose(self, recorded: Recorded) -> dict[str, Any]:
        body = super().verbose(recorded)
        body["language"] = "English"  # Groq capitalises the language name
        body["x_groq"] = {"id": "req_01jx0test"}
        del body["usage"]
        return body
