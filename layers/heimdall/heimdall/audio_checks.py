"""What the uploaded bytes are, whatever the filename or content type claims.

The container is recognised from its first bytes (the formats OpenAI and the other providers take:
WAV, FLAC, MP3, Ogg/Opus, MP4/M4A, WebM, AIFF, AMR, CAF). The duration is read from the header —
exactly for WAV, through PyAV's demuxer for the rest when PyAV is installed (it comes with the local
engine); nothing is decoded.
"""

from __future__ import annotations

import struct
from typing import IO

from heimdall.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from heimdall.core.types import AudioInput

_HEAD = 64


def sniff(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"RF64"):
        return "wav"
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:6] == b"#!AMR\n" or head[:9] == b"#!AMR-WB\n":
        return "amr"
    if head[:4] == b"caff":
        return "caf"
    return None


def _wav_seconds(file: IO[bytes]) -> float | None:
    """Walk the RIFF chunks: data size / byte rate."""
    file.seek(12)
    byte_rate = None
    while True:
        header = file.read(8)
        if len(header) < 8:
            return None
        chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk == b"fmt ":
            fmt = file.read(size)
            if len(fmt) >= 12:
                byte_rate = struct.unpack("<I", fmt[8:12])[0]
            if size % 2:
                file.seek(1, 1)
            continue
        if chunk == b"data":
            return size / byte_rate if byte_rate else None
        file.seek(size + (size % 2), 1)


def _demuxed_seconds(file: IO[bytes]) -> float | None:
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(file, mode="r") as container:
            if container.duration is not None:
                return float(container.duration) / 1_000_000
            stream = next(iter(container.streams.audio), None)
            if stream is not None and stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, StopIteration, ValueError):
        return None  # the provider will say what is wrong with it
    return None


def check_audio(audio: AudioInput, max_seconds: float) -> float | None:
    """415 unless the bytes are an audio container; 413 when it runs longer than allowed.
    Returns the duration when the header told it."""
    file = audio.rewind()
    kind = sniff(file.read(_HEAD))
    if kind is None:
        raise UnsupportedMediaType(
            f"The file '{audio.filename}' is not audio Heimdall recognises (WAV, FLAC, MP3, Ogg/Opus, "
            "MP4/M4A, WebM, AIFF, AMR or CAF), whatever its name or content type says.",
            param="file",
            code="unsupported_audio_format",
        )
    try:
        seconds = _wav_seconds(file) if kind == "wav" else _demuxed_seconds(file)
    except (OSError, struct.error):
        raise InvalidRequest(f"The WAV file '{audio.filename}' has a malformed header.", param="file") from None
    finally:
        audio.rewind()
    if seconds is not None and seconds > max_seconds:
        raise PayloadTooLarge(
            f"The audio runs {seconds / 60:.1f} minutes; this gateway takes at most {max_seconds / 60:.0f}.",
            param="file",
            code="audio_too_long",
        )
    return seconds
