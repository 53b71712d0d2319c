"""The small interface every provider implements, and the capabilities the router checks first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from heimdall.core.types import AudioInput, ResponseFormat, Transcript, TranscriptionRequest
from heimdall.providers.upstream import Call

ALL_FORMATS = frozenset(ResponseFormat)


@dataclass(frozen=True)
class Capabilities:
    """What one model can serve, so the router refuses or falls back before any upstream call."""

    formats: frozenset[ResponseFormat] = ALL_FORMATS
    word_timestamps: bool = True
    streaming: bool = False
    logprobs: bool = False
    languages: frozenset[str] | None = None  # None: any language the request may name
    max_file_bytes: int | None = None
    #: Request fields this model cannot take and Heimdall cannot translate (refused, or a fallback serves).
    unsupported_fields: frozenset[str] = frozenset()


def requested_fields(request: TranscriptionRequest) -> set[str]:
    """The optional fields the client actually set."""
    fields = {
        name
        for name in ("language", "prompt", "temperature", "chunking_strategy")
        if getattr(request, name) is not None
    }
    if request.include:
        fields.add("include[]")
    return fields


class Provider(Protocol):
    name: str

    def models(self) -> frozenset[str] | None:
        """The model ids this provider serves, or None when any id is passed through upstream."""

    def capabilities(self, model: str) -> Capabilities: ...

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        """Transcribe, or raise a HeimdallError subclass carrying status and retryability."""
