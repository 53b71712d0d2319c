"""The canonical request and transcript every route and provider speaks.

Field names follow the reference (Bifrost's "Create transcription" page, which mirrors OpenAI's
verbose_json); optional fields stay ``None`` rather than being filled with invented values.
"""

# No ``from __future__ import annotations`` here: pydantic compiles and evaluates every string
# annotation of a model when it builds it, at every cold start (docs/performance.md, "Cold start").

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import IO, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict


class ResponseFormat(StrEnum):
    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VERBOSE_JSON = "verbose_json"
    VTT = "vtt"


class TimestampGranularity(StrEnum):
    WORD = "word"
    SEGMENT = "segment"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Word(_Wire):
    word: str
    start: float
    end: float


class Segment(_Wire):
    id: int
    seek: int | None = None
    start: float
    end: float
    text: str
    tokens: list[int] | None = None
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


class Logprob(_Wire):
    token: str
    logprob: float
    bytes: list[int] | None = None


class InputTokenDetails(_Wire):
    text_tokens: int | None = None
    audio_tokens: int | None = None


class Usage(_Wire):
    type: Literal["tokens", "duration"]
    seconds: int | float | None = None  # a number in OpenAI's reference: 2.5 as well as 8
    input_tokens: int | None = None
    input_token_details: InputTokenDetails | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


class Transcript(_Wire):
    """What a provider returns, whatever its wire format was."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[Segment] | None = None
    words: list[Word] | None = None
    logprobs: list[Logprob] | None = None
    usage: Usage | None = None


_MIME_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"  # noqa: S105 - an RFC 9110 token, not a password
_MEDIA_TYPE = re.compile(
    rf'{_MIME_TOKEN}/{_MIME_TOKEN}( ?; ?{_MIME_TOKEN}=({_MIME_TOKEN}|"[ !#-\[\]-~]*"))*'
)  # printable ASCII
UNKNOWN_MEDIA_TYPE = "application/octet-stream"


def media_type(text: str) -> str:
    """The client's content type when it is a well-formed MIME type (RFC 9110 tokens), else
    ``application/octet-stream``: it travels upstream as a header value (Deepgram's Content-Type, a
    multipart part's), where anything else could add a header."""
    text = text.strip()
    return text if len(text) <= 255 and _MEDIA_TYPE.fullmatch(text) else UNKNOWN_MEDIA_TYPE


#: Bifrost's ``file_format`` values: the audio formats OpenAI's transcription API names, and their types.
AUDIO_FORMATS: dict[str, str] = {
    "flac": "audio/flac", "m4a": "audio/mp4", "mp3": "audio/mpeg", "mp4": "audio/mp4", "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg", "oga": "audio/ogg", "ogg": "audio/ogg", "opus": "audio/ogg", "wav": "audio/wav",
    "webm": "audio/webm", "aiff": "audio/aiff",
}  # fmt: skip


def named_for_format(filename: str, file_format: str | None) -> str:
    """The filename, with ``file_format`` as its extension when its own says nothing of the format."""
    if file_format is None or filename.rpartition(".")[2].lower() in AUDIO_FORMATS:
        return filename
    return f"{filename}.{file_format}"


@dataclass(frozen=True)
class AudioInput:
    """The uploaded audio: a seekable file (in memory, or on /tmp past the process's budget), never a bytes copy."""

    file: IO[bytes]
    filename: str
    content_type: str
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_type", media_type(self.content_type))

    def rewind(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def with_format(self, file_format: str | None) -> Self:
        """Bifrost's ``file_format``: names the format where the filename and content type do not."""
        if file_format is None:
            return self
        content_type = AUDIO_FORMATS[file_format] if self.content_type == UNKNOWN_MEDIA_TYPE else self.content_type
        return replace(self, filename=named_for_format(self.filename, file_format), content_type=content_type)


class TranscriptionRequest(NamedTuple):
    """A validated transcription request, independent of the route it came through."""

    model: str
    response_format: ResponseFormat = ResponseFormat.JSON
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    timestamp_granularities: frozenset[TimestampGranularity] = frozenset()
    stream: bool = False
    fallbacks: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    chunking_strategy: str | None = None
    #: The audio's format when its filename does not say (Bifrost's ``file_format``): ``mp3``, ``wav``…
    file_format: str | None = None

    @property
    def wants_words(self) -> bool:
        return TimestampGranularity.WORD in self.timestamp_granularities


class TextDelta(NamedTuple):
    """A piece of transcript text, as a stream produces it."""

    delta: str
    logprobs: list[Logprob] | None = None


class TextDone(NamedTuple):
    """The end of a stream: the whole text (the deltas joined) and the usage."""

    text: str
    usage: Usage | None = None
    logprobs: list[Logprob] | None = None


StreamEvent = TextDelta | TextDone
