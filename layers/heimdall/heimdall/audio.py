"""What the uploaded bytes are, how long they run, and their samples, decoded within the limit.

The container is recognised from its first bytes (the formats OpenAI and the other providers take:
WAV, FLAC, MP3, Ogg/Opus, MP4/M4A, WebM, AIFF, AMR, CAF), whatever the filename or content type
claims. Its duration is never taken from a header, which may say anything: a small file can hold
hours of silence (a decompression bomb) behind a header that claims one second.

- ``check_audio`` counts the audio packet by packet with PyAV's demuxer, without decoding: each
  packet's length comes from the codec's own frame header (FFmpeg's parsers; Opus's TOC byte;
  the fixed frame size of MP3, AAC, AMR…), not from the container's claims. It stops as soon as
  the count passes the limit, so a ten-hour bomb is refused in a fraction of a second. PCM WAV is
  measured from the bytes it actually holds, without PyAV.
- ``decode_pcm`` is the only way Heimdall decodes: 16 kHz mono frames, streamed, counting the
  decoded duration and stopping at the limit. Whatever the check could not see (a container whose
  timestamps lie), decoding itself cannot go past the limit, and it never holds more than a frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import IO, Any

from heimdall.core.containers import HEAD, sniff
from heimdall.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from heimdall.core.types import AudioInput

RATE = 16_000  # what the pieces and the local engine take
#: Below this a "sample rate" is a trick, not audio: hours of playback from a few samples.
MIN_SAMPLE_RATE = 4_000
_PCM_WAV_FORMATS = {1, 3}  # integer and float PCM; 0xFFFE (extensible) names its own subformat
#: A WAV file has a handful of chunks; a file of thousands of tiny ones is left to PyAV's demuxer (C).
_MAX_WAV_CHUNKS = 64


def too_long(max_seconds: float) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The audio runs longer than {max_seconds / 60:.0f} minutes, the longest this gateway takes.",
        param="file",
        code="audio_too_long",
    )


def _undecodable(audio: AudioInput) -> InvalidRequest:
    return InvalidRequest(
        f"The file '{audio.filename}' could not be decoded as audio.", param="file", code="invalid_audio"
    )


def _rate_too_low(rate: int) -> InvalidRequest:
    return InvalidRequest(
        f"The audio's sample rate ({rate} Hz) is below {MIN_SAMPLE_RATE} Hz.", param="file", code="invalid_audio"
    )


def _pcm_wav_seconds(file: IO[bytes], size: int) -> float | None:
    """Plain PCM WAV with one data chunk: the bytes of it that are really there, over the sample frame
    rate. None — PyAV's demuxer counts, reading the file as a provider's FFmpeg does — for anything
    else: not plain PCM (ADPCM, GSM, µ-law…); a data chunk whose length field is 0, which FFmpeg reads
    to the end of the file; a second data chunk, which FFmpeg plays after the first; more chunks than
    a WAV file has."""
    file.seek(12)
    rate = align = None
    seconds: float | None = None
    for _ in range(_MAX_WAV_CHUNKS):
        header = file.read(8)
        if len(header) < 8:
            return seconds
        chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
        if chunk == b"fmt " and rate is None:
            fmt = file.read(length)
            if len(fmt) < 16 or struct.unpack("<H", fmt[:2])[0] not in _PCM_WAV_FORMATS:
                return None
            channels, rate, _, align = struct.unpack("<HIIH", fmt[2:14])
            if not channels or not align or rate < MIN_SAMPLE_RATE:
                return None
            file.seek(length % 2, 1)
            continue
        if chunk == b"data":
            if rate is None or align is None or length == 0 or seconds is not None:
                return None
            held = min(length, size - file.tell())  # a header may claim more (or all of 4 GB)
            seconds = held / align / rate
        file.seek(length + (length % 2), 1)  # past the end when the data chunk claims more than is there
    return None


def _opus_samples(packet: bytes) -> int:
    """An Opus packet's length at 48 kHz, from its TOC byte (RFC 6716 §3.1): what the decoder outputs."""
    if not packet:
        return 0
    config, code = packet[0] >> 3, packet[0] & 3
    if config < 12:
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:
        frame = (480, 960)[config % 2]
    else:
        frame = (120, 240, 480, 960)[config % 4]
    frames = 1 if code == 0 else 2 if code in (1, 2) else (packet[1] & 0x3F if len(packet) > 1 else 0)
    return min(frames * frame, 5760)  # the decoder refuses packets over 120 ms


def _flac_samples(packet: bytes) -> int:
    """A FLAC frame's block size, from its frame header (RFC 9639 §9.1): what the decoder outputs."""
    if len(packet) < 7:
        return 0
    code = packet[2] >> 4
    if code == 1:
        return 192
    if 2 <= code <= 5:
        return 576 << (code - 2)
    if code >= 8:
        return 256 << (code - 8)
    if code in (6, 7):  # the size follows the frame number, coded like UTF-8
        at = 4 + (1 if packet[4] < 0x80 else 8 - (~packet[4] & 0xFF).bit_length())
        return int.from_bytes(packet[at : at + code - 5], "big") + 1
    return 0


def _packet_seconds(codec: Any) -> Callable[[Any], float] | None:
    """How long a packet of this codec plays, read from the codec's own framing rather than the
    container's timestamps; None when the codec's framing does not say (the audio is decoded then)."""
    rate = codec.sample_rate or 0
    if codec.name == "opus":
        return lambda packet: _opus_samples(bytes(memoryview(packet)[:2])) / 48_000
    if not rate:
        return None
    if codec.name == "flac":
        return lambda packet: _flac_samples(bytes(memoryview(packet)[:16])) / rate
    if codec.frame_size:  # a fixed-size frame: MP3, AAC, AMR, AC-3…
        seconds: float = codec.frame_size / rate
        return lambda packet: seconds if packet.size else 0.0
    return None


def _bounded_frames(container: Any, max_seconds: float) -> Iterator[Any]:
    """Decoded frames, counted: 413 as soon as they run past ``max_seconds``, before the frame that
    passes it is used; 400 for a sample rate that turns a few samples into hours."""
    decoded = 0.0
    for frame in container.decode(audio=0):
        decoded += frame.samples / frame.sample_rate
        if decoded > max_seconds:
            raise too_long(max_seconds)
        if frame.sample_rate < MIN_SAMPLE_RATE:
            raise _rate_too_low(frame.sample_rate)
        yield frame


def _counted_seconds(audio: AudioInput, max_seconds: float) -> float:
    """The longest audio stream's length: each packet's, demuxed but not decoded, or decoded when the
    codec's framing does not tell; stops as soon as one stream passes ``max_seconds``. Every audio
    stream is counted, not just the first: a provider's decoder picks its own (FFmpeg's default is the
    one with the most channels), so a short first stream must not vouch for a long second one."""
    import av

    try:
        with av.open(audio.rewind(), mode="r") as container:
            streams = list(container.streams.audio)
            if not streams:
                raise InvalidRequest("The file has no audio stream.", param="file", code="invalid_audio")
            lengths = {stream.index: _packet_seconds(stream.codec_context) for stream in streams}
            seconds = dict.fromkeys(lengths, 0.0)
            for packet in container.demux(*streams):
                index = packet.stream.index
                length = lengths[index]
                if length is not None:
                    seconds[index] += length(packet)
                else:
                    frames: list[Any] = packet.decode()  # audio frames: the packet is an audio stream's
                    for frame in frames:
                        if frame.sample_rate < MIN_SAMPLE_RATE:
                            raise _rate_too_low(frame.sample_rate)
                        seconds[index] += frame.samples / frame.sample_rate
                if seconds[index] > max_seconds:
                    raise too_long(max_seconds)
            for stream in streams:
                rate = stream.codec_context.sample_rate or 0
                if rate and rate < MIN_SAMPLE_RATE:
                    raise _rate_too_low(rate)
            return max(seconds.values())
    except (av.error.FFmpegError, ValueError, OverflowError, ZeroDivisionError):
        raise _undecodable(audio) from None


def check_audio(audio: AudioInput, max_seconds: float) -> float:
    """415 unless the bytes are an audio container; 400 when it cannot be read as audio; 413 when it
    runs longer than ``max_seconds``. Returns its duration."""
    seconds = pcm_wav_seconds(audio, max_seconds)
    if seconds is None:
        seconds = _counted_seconds(audio, max_seconds)
        audio.rewind()
        if seconds > max_seconds:
            raise too_long(max_seconds)
    return seconds


def pcm_wav_seconds(audio: AudioInput, max_seconds: float) -> float | None:
    """``check_audio`` for what needs no demuxer: the 415 for bytes that are no audio container, and
    the duration (or the 413) of PCM WAV, counted from the bytes it holds in microseconds. None
    when PyAV must count (``check_audio`` does)."""
    file = audio.rewind()
    kind = sniff(file.read(HEAD))
    if kind is None:
        raise UnsupportedMediaType(
            f"The file '{audio.filename}' is not audio Heimdall recognises (WAV, FLAC, MP3, Ogg/Opus, "
            "MP4/M4A, WebM, AIFF, AMR or CAF), whatever its name or content type says.",
            param="file",
            code="unsupported_audio_format",
        )
    try:
        seconds = _pcm_wav_seconds(file, audio.size) if kind == "wav" else None
    except (OSError, struct.error):
        seconds = None
    audio.rewind()
    if seconds is not None and seconds > max_seconds:
        raise too_long(max_seconds)
    return seconds


def decode_pcm(audio: AudioInput, max_seconds: float) -> Iterator[Any]:
    """The audio as 16 kHz mono int16 NumPy arrays, one decoded frame at a time. Raises 413
    ``audio_too_long`` as soon as the decoded duration passes ``max_seconds``, before resampling
    the frame that passes it, and 400 ``invalid_audio`` when it cannot be decoded."""
    import av
    import numpy as np

    try:
        with av.open(audio.rewind(), mode="r") as container:
            if not container.streams.audio:
                raise InvalidRequest("The file has no audio stream.", param="file", code="invalid_audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in _bounded_frames(container, max_seconds):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
    except (av.error.FFmpegError, ValueError, ZeroDivisionError):
        raise _undecodable(audio) from None
