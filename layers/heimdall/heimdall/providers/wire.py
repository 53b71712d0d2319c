"""Typed provider answers: every body and stream event a provider sends is validated by a pydantic
model before an adapter reads it.

An answer of the wrong shape (a field missing or of the wrong type, a list where an object belongs,
``NaN``, infinite or negative times) is the provider's failure, exactly like a 5xx: a 502
``invalid_provider_response`` (``is_bifrost_error: false``) that is retried and falls back — never
a ``KeyError`` turned into a 500. The models accept what each provider's reference allows and
ignore fields they do not use, so a provider adding a field breaks nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heimdall.core.errors import ProviderFailed
from heimdall.core.types import Transcript

#: No transcribed audio runs longer than a year: a larger time is a broken answer, not a long file.
MAX_SECONDS = 366 * 24 * 3600.0

#: A time in the audio, in seconds: finite, not negative, not absurd (an int stays an int).
Seconds = Annotated[int | float, Field(ge=0, le=MAX_SECONDS)]
#: A token or item count.
Count = Annotated[int, Field(ge=0)]

#: At most this many words, segments, utterances or logprobs in one answer: 4 hours of fast speech
#: with ElevenLabs' spacing tokens is about 100,000 entries. A longer list is a broken answer, refused
#: before it costs seconds of parsing and rendering (about 75 µs an entry) past the call's timeout.
MAX_TIMELINE_ITEMS = 100_000

M = TypeVar("M", bound="WireModel")
T = TypeVar("T")

#: A list of timed items (words, segments, utterances, logprobs), bounded in length.
Timeline = Annotated[list[T], Field(max_length=MAX_TIMELINE_ITEMS)]


class WireModel(BaseModel):
    """The base of every provider answer model: unknown fields ignored, numbers finite."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True, defer_build=True)


class TranscriptAnswer(WireModel):
    """A provider's whole transcription answer; ``canonical()`` is Heimdall's transcript of it."""

    def canonical(self) -> Transcript:
        raise NotImplementedError


class ErrorBody(WireModel):
    """A provider's error body; ``message`` is what Heimdall relays (or None when it says nothing)."""

    def message(self) -> str | None:
        raise NotImplementedError


def invalid_answer(provider: str, what: str) -> ProviderFailed:
    return ProviderFailed(
        f"{provider} {what}.", code="invalid_provider_response", provider=provider, is_bifrost_error=False
    )


def parse_answer(model: type[M], body: Any, provider: str) -> M:
    """``body`` (parsed JSON) as ``model``, or a 502 naming where the shape is wrong (never a value)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"])[:200] or "the body"
        raise invalid_answer(
            provider, f"returned an answer of the wrong shape ({where}: {first['msg']}; {exc.error_count()} problem(s))"
        ) from None


class ErrorDetail(WireModel):
    message: str


class OpenAIErrorBody(ErrorBody):
    """``{"error": {"message": ...}}`` (OpenAI, Azure, Groq, Gemini), ``{"error": "..."}``, or a bare
    ``{"message": ...}``; also the ``error`` event of their streams."""

    error: ErrorDetail | str | None = None
    message_: str | None = Field(default=None, alias="message")

    def message(self) -> str | None:
        if isinstance(self.error, ErrorDetail):
            return self.error.message
        return self.error or self.message_
