"""Audio that is not what its header says: long silence in small files (decompression bombs), and
headers that claim a second for hours of audio. Made at test time with PyAV and NumPy, or written
byte by byte where that is faster (FLAC frames of constant silence); nothing big is committed.

Every maker takes the real length (``seconds``) and what the header should claim (``claim``,
default: the truth).
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from functools import cache
from typing import Any

import av
import numpy as np

FLAC_BLOCK = 65_535  # the longest FLAC frame: one frame of constant silence is 15 bytes


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _utf8_number(value: int) -> bytes:
    """FLAC's frame number: UTF-8's variable-length coding of an integer (up to 31 bits)."""
    if value < 0x80:
        return bytes([value])
    length = 2
    while value >= 1 << (5 * length + 1):
        length += 1
    tail = []
    for _ in range(length - 1):
        tail.append(0x80 | (value & 0x3F))
        value >>= 6
    return bytes([((0xFF << (8 - length)) & 0xFF) | value, *reversed(tail)])


def flac_silence(seconds: float, *, rate: int = 8_000, claim: float | None = None) -> bytes:
    """Mono 16-bit FLAC of ``seconds`` of silence in frames of 65,535 samples; STREAMINFO says ``claim``."""
    total = round(seconds * rate)
    claimed = round((seconds if claim is None else claim) * rate)
    info = struct.pack(">HH", FLAC_BLOCK, FLAC_BLOCK) + bytes(6)  # block sizes; frame sizes unknown
    packed = (rate << 44) | (0 << 41) | (15 << 36) | claimed  # rate, channels-1, bits-1, total samples
    info += packed.to_bytes(8, "big") + bytes(16)  # no MD5
    out = bytearray(b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info)
    number = 0
    while total > 0:
        block = min(FLAC_BLOCK, total)
        header = bytes([0xFF, 0xF8, 0x70, 0x08]) + _utf8_number(number) + struct.pack(">H", block - 1)
        frame = header + bytes([_crc8(header)]) + b"\x00\x00\x00"  # CONSTANT subframe, value 0
        out += frame + struct.pack(">H", _crc16(frame))
        total -= block
        number += 1
    return bytes(out)


def flac_in_matroska(seconds: float, *, rate: int = 8_000) -> bytes:
    """FLAC frames of silence in Matroska whose every block says it starts at 0 and lasts nothing:
    the container's timestamps claim no time at all, the frames hold ``seconds``."""
    buffer = io.BytesIO()
    with (
        av.open(io.BytesIO(flac_silence(seconds, rate=rate))) as source,
        av.open(buffer, "w", format="matroska") as out,
    ):
        stream: Any = out.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(audio=0):
            if not packet.size:
                continue
            packet.stream = stream
            packet.pts = packet.dts = 0
            packet.duration = 0
            out.mux(packet)
    return buffer.getvalue()


def _encoded(codec: str, container: str, rate: int, seconds: float, options: dict[str, str] | None = None) -> bytes:
    """``seconds`` of silence encoded by PyAV, frame by frame."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=rate, options=options or {})
        stream.layout = "mono"
        _write_silence(out, stream, seconds, rate, "mono")
    return buffer.getvalue()


def _write_silence(out: Any, stream: Any, seconds: float, rate: int, layout: str) -> None:
    """``seconds`` of silence into ``stream`` of ``out``, in the codec's frame size, then flushed."""
    size = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format
    dtype = {"flt": np.float32, "s16": np.int16, "s32": np.int32}[fmt.name.rstrip("p")]
    channels = 2 if layout == "stereo" else 1
    silence = np.zeros((channels, size) if fmt.is_planar else (1, size * channels), dtype=dtype)
    for start in range(0, round(seconds * rate), size):
        frame = av.AudioFrame.from_ndarray(silence, format=fmt.name, layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


@cache
def _silent_opus_packet() -> bytes:
    """One 120 ms Opus packet of silence, as libopus codes it once it has settled."""
    data = _encoded("libopus", "ogg", 48_000, 2.4, {"frame_duration": "120"})
    with av.open(io.BytesIO(data)) as container:
        packets = [bytes(p) for p in container.demux(audio=0) if p.size]
    return packets[-2]


def opus_silence(seconds: float, *, container: str = "ogg", claim: float | None = None) -> bytes:
    """Opus in Ogg (or WebM) made of one silent 120 ms packet repeated; the container claims ``claim``."""
    packet_bytes = _silent_opus_packet()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream: Any = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        for index in range(round(seconds / 0.12)):
            packet = av.Packet(packet_bytes)
            packet.stream, packet.time_base = stream, Fraction(1, 48_000)
            packet.pts = packet.dts = index * 5760
            packet.duration = 5760
            out.mux(packet)
    data = bytearray(buffer.getvalue())
    if claim is not None:
        (_claim_ogg if container == "ogg" else _claim_matroska)(data, claim)
    return bytes(data)


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _claim_ogg(data: bytearray, claim: float) -> None:
    """Rewrite the last page's granule position (what demuxers read as the length)."""
    last = data.rfind(b"OggS")
    data[last + 6 : last + 14] = struct.pack("<q", round(claim * 48_000) + 312)
    data[last + 22 : last + 26] = bytes(4)
    data[last + 22 : last + 26] = struct.pack("<I", _ogg_crc(bytes(data[last:])))


def _claim_matroska(data: bytearray, claim: float) -> None:
    """Rewrite Segment/Info/Duration (element 0x4489, a float in milliseconds)."""
    at = data.find(b"\x44\x89\x88")
    if at >= 0:
        data[at + 3 : at + 11] = struct.pack(">d", claim * 1000)
    else:
        at = data.find(b"\x44\x89\x84")
        data[at + 3 : at + 7] = struct.pack(">f", claim * 1000)


def mp3_silence(seconds: float, *, claim: float | None = None) -> bytes:
    """8 kHz MP3: ``claim`` seconds encoded by LAME (with its Xing header counting those frames),
    then the last frame repeated until the file runs ``seconds``."""
    head_seconds = min(seconds, claim if claim is not None else seconds, 2.0)
    data = _encoded("libmp3lame", "mp3", 8_000, head_seconds, {"b": "8000"})
    with av.open(io.BytesIO(data)) as container:
        last = bytes([p for p in container.demux(audio=0) if p.size][-1])
    frames = round((seconds - head_seconds) * 8_000 / 576)
    if claim is None:  # an honest header: let the Xing frame count nothing, the frames speak
        data = data.replace(b"Xing", b"Xinq").replace(b"Info", b"Infq")
    return data + last * max(0, frames)


def aac_silence(seconds: float) -> bytes:
    """8 kHz AAC in MP4 (M4A), as an encoder writes it."""
    return _encoded("aac", "mp4", 8_000, seconds)


def wav_silence(seconds: float, *, rate: int = 4_000, claim: float | None = None) -> bytes:
    """16-bit mono PCM WAV of silence. With ``claim``, the first data chunk holds that many seconds
    and a second data chunk the rest (FFmpeg plays both); ``claim=0`` writes one data chunk whose
    length field is 0 (FFmpeg reads it to the end of the file)."""
    pcm = bytes(2 * round(seconds * rate))
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    if claim is None:
        chunks = b"data" + struct.pack("<I", len(pcm)) + pcm
    elif claim == 0:
        chunks = b"data" + struct.pack("<I", 0) + pcm
    else:
        first = 2 * round(claim * rate)
        chunks = (b"data" + struct.pack("<I", first) + pcm[:first]
                  + b"data" + struct.pack("<I", len(pcm) - first) + pcm[first:])  # fmt: skip
    body = b"WAVE" + fmt + chunks
    return b"RIFF" + struct.pack("<I", len(body)) + body


def two_audio_streams(first: float, second: float, *, rate: int = 8_000) -> bytes:
    """Matroska with two FLAC streams of silence: a mono one of ``first`` seconds, then a stereo one
    of ``second`` seconds (FFmpeg's default pick: the stream with the most channels)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        tracks = [(out.add_stream("flac", rate=rate, layout=layout), seconds, layout)
                  for seconds, layout in ((first, "mono"), (second, "stereo"))]  # fmt: skip
        for stream, seconds, layout in tracks:
            _write_silence(out, stream, seconds, rate, layout)
    return buffer.getvalue()
