"""Durations counted from the audio itself, and decoding that cannot run past the limit."""

from __future__ import annotations

import io

import pytest

from heimdall.audio import RATE, check_audio, decode_pcm
from heimdall.chunking import pcm_pieces
from heimdall.core.errors import PayloadTooLarge
from heimdall.core.types import AudioInput
from tests.support import bombs


def audio(data: bytes) -> AudioInput:
    return AudioInput(io.BytesIO(data), "a", "application/octet-stream", len(data))


@pytest.mark.parametrize(
    "data",
    [
        bombs.flac_silence(300, claim=1),
        bombs.flac_silence(300, rate=44_100),
        bombs.flac_in_matroska(300),
        bombs.opus_silence(300, claim=1),
        bombs.opus_silence(300, container="webm", claim=1),
        bombs.mp3_silence(300, claim=1),
        bombs.aac_silence(300),
        bombs.wav_silence(300),
        bombs.wav_silence(300, claim=1),
        bombs.wav_silence(300, claim=0),
    ],
    ids=[
        "flac",
        "flac 44.1 kHz",
        "mka-flac",
        "ogg-opus",
        "webm-opus",
        "mp3",
        "m4a",
        "wav",
        "wav, two data chunks",
        "wav, data length 0",
    ],
)
def test_the_count_is_the_decoded_duration_whatever_the_header_claims(data: bytes) -> None:
    decoded = sum(len(pcm) for pcm in decode_pcm(audio(data), 3600)) / RATE
    # within a second: Opus trims its encoder delay, and the end as the last page's granule says
    assert check_audio(audio(data), 3600) == pytest.approx(decoded, abs=1)
    assert decoded == pytest.approx(300, abs=1)


def test_every_audio_stream_is_counted_not_just_the_first() -> None:
    """A provider's decoder picks its own stream (FFmpeg: the one with the most channels): the count
    is the longest, so a one-second first stream cannot vouch for five minutes in a second one."""
    assert check_audio(audio(bombs.two_audio_streams(1, 300)), 3600) == pytest.approx(300, abs=1)
    with pytest.raises(PayloadTooLarge):
        check_audio(audio(bombs.two_audio_streams(1, 300)), 60)


def test_decoding_stops_at_the_limit() -> None:
    """Ten hours behind a one-second header: decoding gives up after the limit's worth of samples."""
    produced = [0]

    def consume() -> None:
        for pcm in decode_pcm(audio(bombs.flac_silence(10 * 3600, claim=1)), 600):
            produced[0] += len(pcm)

    with pytest.raises(PayloadTooLarge) as refused:
        consume()
    assert refused.value.code == "audio_too_long"
    assert produced[0] <= 600 * RATE


def test_pieces_are_bounded_and_cover_the_file() -> None:
    limit = 300 * RATE
    pieces = list(pcm_pieces(audio(bombs.flac_silence(1000)), limit, 3600))
    assert all(len(piece.pcm) <= limit for piece in pieces)
    assert [piece.offset for piece in pieces] == pytest.approx(
        [sum(p.seconds for p in pieces[:index]) for index in range(len(pieces))]
    )
    assert sum(piece.seconds for piece in pieces) == pytest.approx(1000)
