"""The small interface every provider implements, and the capabilities the router checks first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from heimdall.core.types import (
    AudioInput,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextDone,
    Transcript,
    TranscriptionRequest,
)
from heimdall.providers.upstream import Call

if TYPE_CHECKING:
    from heimdall.providers.loop_client import LoopClient

ALL_FORMATS = frozenset(ResponseFormat)


class Capabilities(NamedTuple):
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


def stream_from_transcript(transcript: Transcript) -> Iterator[StreamEvent]:
    """For providers without a stream: the whole text as one delta, then the done event."""
    yield TextDelta(transcript.text, transcript.logprobs)
    yield TextDone(transcript.text, transcript.usage, transcript.logprobs)


def stream_events(
    provider: Provider, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call
) -> Iterator[StreamEvent]:
    """The provider's own stream where it has one, else its transcript as a one-delta stream."""
    native = getattr(provider, "stream", None)
    if native is not None:
        events: Iterator[StreamEvent] = native(model, request, audio, call)
        return events
    return stream_from_transcript(provider.transcribe(model, request, audio, call))


class Provider(Protocol):
    name: str

    def models(self) -> frozenset[str] | None:
        """The model ids this provider serves, or None when any id is passed through upstream."""

    def capabilities(self, model: str) -> Capabilities: ...

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        """Transcribe, or raise a HeimdallError subclass carrying status and retryability.

        A provider with a stream of its own also has ``stream(model, request, audio, call)`` returning
        an iterator of TextDelta … TextDone; errors before the iterator is returned, or from its first
        ``next``, are retried and fall back like ``transcribe``'s."""


class LoopProvider(Provider, Protocol):
    """A provider that can also make its call on a server's event loop (``providers/loop_client.py``)."""

    def serves_on_loop(self) -> bool:
        """Whether ``transcribe_on_loop`` may be used now (not through a proxy, say)."""

    async def transcribe_on_loop(
        self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call, client: LoopClient
    ) -> Transcript:
        """``transcribe``, awaited on the loop: the same answers and the same errors."""
