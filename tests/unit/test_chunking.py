"""Long audio in pieces: bounded work in flight, and the first piece that fails for good stops the rest."""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Iterator

import pytest

from heimdall import chunking
from heimdall.core.errors import ProviderFailed
from heimdall.core.types import AudioInput, Transcript

PIECE_BYTES = 2_200_000  # about 69 s of 16 kHz PCM: the smallest limit pieces are cut for
SECONDS = 700  # ten pieces or more


def silence(seconds: int) -> AudioInput:
    payload = seconds * chunking.BYTES_PER_SECOND
    header = (
        b"RIFF" + struct.pack("<I", 36 + payload) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data" + struct.pack("<I", payload)
    )  # fmt: skip
    return AudioInput(io.BytesIO(header + bytes(payload)), "long.wav", "audio/wav", len(header) + payload)


@pytest.fixture
def cut_count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pieces have been cut so far."""
    count = [0]
    split = chunking.split

    def counting(audio: AudioInput, max_bytes: int, max_seconds: float) -> Iterator[chunking.Piece]:
        for piece in split(audio, max_bytes, max_seconds):
            count[0] += 1
            yield piece

    monkeypatch.setattr(chunking, "split", counting)
    return count


def test_the_first_piece_that_fails_for_good_stops_the_rest(cut_count: list[int]) -> None:
    """The first call fails; the others hold until it has, so the pool is full when it does."""
    sent: list[int] = []
    failed = threading.Event()
    lock = threading.Lock()

    def transcribe_piece(piece: AudioInput) -> Transcript:
        with lock:
            sent.append(piece.size)
            first = len(sent) == 1
        if first:
            failed.set()
            raise ProviderFailed("upstream 503", provider="openai")
        failed.wait(timeout=10)
        return Transcript(text="x")

    with pytest.raises(ProviderFailed):
        chunking.transcribe_in_pieces(silence(SECONDS), PIECE_BYTES, transcribe_piece, max_seconds=3600)
    assert len(sent) <= chunking.PARALLELISM  # of ten pieces or more
    assert cut_count[0] <= chunking.PARALLELISM + 1


def test_pieces_in_flight_are_bounded_and_progress_is_reported(cut_count: list[int]) -> None:
    lock = threading.Lock()
    running = [0, 0]  # calls in flight now, most ever
    finished = [0]
    cut_not_done: list[int] = []
    reports: list[tuple[int, int | None]] = []

    def transcribe_piece(piece: AudioInput) -> Transcript:
        with lock:
            running[0] += 1
            running[1] = max(running)
            cut_not_done.append(cut_count[0] - finished[0])
        with lock:
            running[0] -= 1
            finished[0] += 1
        return Transcript(text="x")

    transcript = chunking.transcribe_in_pieces(
        silence(SECONDS),
        PIECE_BYTES,
        transcribe_piece,
        lambda done, total: reports.append((done, total)),
        max_seconds=3600,
    )
    assert transcript.duration == pytest.approx(SECONDS, abs=0.01)
    assert running[1] <= chunking.PARALLELISM
    assert max(cut_not_done) <= chunking.PARALLELISM + 1  # decoding never runs ahead of the provider
    total = cut_count[0]
    assert total >= 10
    assert reports[-1] == (total, total)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
