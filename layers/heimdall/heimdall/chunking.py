"""Long audio: decode, cut at silences into pieces a provider takes, transcribe them with bounded
parallelism, and stitch the transcripts back into one.

The audio is decoded with PyAV (no ffmpeg binary) to 16 kHz mono 16-bit PCM, one frame at a time;
at most one piece of PCM (≤ the provider's size limit) is in memory at once, and each piece is
written to its own temporary WAV file. A cut falls at the quietest 100 ms within the last 30 s of a
piece, so words are not split. Stitching renumbers segment ids, offsets segment and word times by
the piece's start, and reports the whole file's duration.
"""

from __future__ import annotations

import math
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from heimdall.audio import RATE, decode_pcm
from heimdall.core.errors import InvalidRequest
from heimdall.core.types import AudioInput, Segment, Transcript, Usage, Word

BYTES_PER_SECOND = RATE * 2
WAV_HEADER = 44
SEARCH_SECONDS = 30.0
WINDOW = RATE // 10  # 100 ms
PARALLELISM = 4


@dataclass
class Piece:
    audio: AudioInput
    offset: float  # seconds from the start of the file
    seconds: float


def _wav_header(samples: int) -> bytes:
    data = samples * 2
    return (
        b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, BYTES_PER_SECOND, 2, 16)
        + b"data" + struct.pack("<I", data)
    )  # fmt: skip


def wav_bytes(pcm: Any) -> bytes:
    """16 kHz mono int16 samples as a WAV file."""
    return _wav_header(len(pcm)) + bytes(pcm.tobytes())


def _quietest_cut(pcm: Any, limit: int) -> int:
    """The sample index to cut at: the start of the quietest 100 ms window in the last 30 s."""
    import numpy as np

    start = max(0, limit - int(SEARCH_SECONDS * RATE))
    tail = pcm[start:limit].astype(np.float32)
    windows = len(tail) // WINDOW
    if windows < 2:
        return limit
    energy = np.square(tail[: windows * WINDOW].reshape(windows, WINDOW)).mean(axis=1)
    quietest = int(np.argmin(energy[1:])) + 1  # never cut at the very start of the search span
    return start + quietest * WINDOW + WINDOW // 2


@dataclass
class PcmPiece:
    """A piece of decoded audio: 16 kHz mono int16 samples, and where it starts in the file."""

    pcm: Any
    offset: float

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE


def pcm_pieces(audio: AudioInput, max_samples: int, max_seconds: float) -> Iterator[PcmPiece]:
    """The decoded audio in pieces of at most ``max_samples``, cut at the quietest moment near each
    limit, covering the whole file. Decoding runs one piece ahead at most, so about two pieces of
    samples are held at once; 413 ``audio_too_long`` once the decoded audio passes ``max_seconds``."""
    import numpy as np

    frames: list[Any] = []  # decoded PCM not yet handed out; joined only when a piece is cut
    buffered = 0
    emitted = 0  # samples already handed out
    for frame in decode_pcm(audio, max_seconds):
        frames.append(frame)
        buffered += len(frame)
        while buffered > max_samples:
            buffer = np.concatenate(frames)
            frames = []
            cut = _quietest_cut(buffer, max_samples)
            yield PcmPiece(buffer[:cut], emitted / RATE)
            emitted += cut
            frames = [buffer[cut:].copy()]
            buffered = len(frames[0])
    if buffered or not emitted:
        yield PcmPiece(np.concatenate(frames) if frames else np.empty(0, dtype=np.int16), emitted / RATE)


def split(audio: AudioInput, max_bytes: int, max_seconds: float) -> Iterator[Piece]:
    """Yield WAV pieces of at most ``max_bytes`` each, cut at silences, covering the whole file;
    413 ``audio_too_long`` once the decoded audio passes ``max_seconds``."""
    limit = (max_bytes - WAV_HEADER) // 2  # samples per piece
    if limit < RATE * 2 * SEARCH_SECONDS:
        raise InvalidRequest("The provider's size limit is too small to cut this audio into pieces.", param="file")
    for part in pcm_pieces(audio, limit, max_seconds):
        file = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - owned by the Piece
        file.write(_wav_header(len(part.pcm)))
        file.write(part.pcm.tobytes())
        file.seek(0)
        name = f"{audio.filename.rsplit('.', 1)[0]}.part{int(part.offset):06d}.wav"
        yield Piece(AudioInput(file, name, "audio/wav", WAV_HEADER + len(part.pcm) * 2), part.offset, part.seconds)


class Span(Protocol):
    """Where a piece lies in the file."""

    @property
    def offset(self) -> float: ...

    @property
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class PieceSpan:
    """Where a transcribed piece lay, kept once its samples are let go."""

    offset: float
    seconds: float


def stitch(parts: Sequence[tuple[Span, Transcript]], total_seconds: float) -> Transcript:
    segments: list[Segment] = []
    words: list[Word] = []
    texts: list[str] = []
    token_usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    tokens_seen = False
    for piece, transcript in parts:
        offset = piece.offset
        if transcript.text.strip():
            texts.append(transcript.text.strip())
        for segment in transcript.segments or []:
            start = round(offset + segment.start, 3)
            end = round(offset + min(segment.end, piece.seconds), 3)
            segments.append(segment.model_copy(update={"id": len(segments), "start": start, "end": max(start, end)}))
        for word in transcript.words or []:
            words.append(
                word.model_copy(update={"start": round(offset + word.start, 3), "end": round(offset + word.end, 3)})
            )
        if transcript.usage is not None and transcript.usage.type == "tokens":
            tokens_seen = True
            for name in token_usage:
                token_usage[name] += getattr(transcript.usage, name) or 0
    first = parts[0][1] if parts else None
    usage = Usage(type="duration", seconds=math.ceil(total_seconds))
    if tokens_seen:
        usage = Usage(
            type="tokens",
            input_tokens=token_usage["input_tokens"],
            output_tokens=token_usage["output_tokens"],
            total_tokens=token_usage["total_tokens"],
        )
    return Transcript(
        text=" ".join(texts),
        language=first.language if first else None,
        duration=round(total_seconds, 3),
        segments=segments if any(t.segments is not None for _, t in parts) else None,
        words=words if any(t.words is not None for _, t in parts) else None,
        usage=usage,
    )


def transcribe_in_pieces(
    audio: AudioInput,
    max_bytes: int,
    transcribe_piece: Callable[[AudioInput], Transcript],
    progress: Callable[[int, int | None], None] | None = None,
    *,
    max_seconds: float,
) -> Transcript:
    """Cut, transcribe up to PARALLELISM pieces at a time, and stitch in the order of the file.

    At most PARALLELISM pieces are submitted at once (one more is cut and waits), so decoding never
    runs ahead of the provider and /tmp holds a few pieces, not the whole file. The first piece that
    fails for good ends the job: nothing more is cut or sent, and its error is raised once the
    pieces already in flight have returned. ``progress(done, total)`` is told after each piece
    (``total`` is None until the last piece has been cut)."""
    pieces: list[Piece] = []
    results: dict[int, Transcript] = {}
    in_flight: dict[Future[Transcript], int] = {}
    all_cut = False

    def settle(block: bool) -> None:
        done, _ = wait(in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            index = in_flight.pop(future)
            results[index] = future.result()  # the first final failure is raised here
            if progress is not None:
                progress(len(results), len(pieces) if all_cut else None)

    pool = ThreadPoolExecutor(max_workers=PARALLELISM, thread_name_prefix="piece")
    try:
        for piece in split(audio, max_bytes, max_seconds):
            pieces.append(piece)
            settle(block=len(in_flight) >= PARALLELISM)
            in_flight[pool.submit(transcribe_piece, piece.audio)] = len(pieces) - 1
        all_cut = True
        if progress is not None:
            progress(len(results), len(pieces))
        while in_flight:
            settle(block=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # pieces in flight finish before their files close
        for piece in pieces:
            piece.audio.file.close()
    total = pieces[-1].offset + pieces[-1].seconds if pieces else 0.0
    return stitch([(piece, results[index]) for index, piece in enumerate(pieces)], total)
