"""The committed speech fixtures and what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
TRANSCRIPTS: dict[str, str] = json.loads((AUDIO.parent / "transcripts.json").read_text())
FILES = {
    "hello": AUDIO / "hello.wav",
    "fox": AUDIO / "fox.flac",
    "story": AUDIO / "story.ogg",
    "guten_tag": AUDIO / "guten_tag.ogg",
}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def wer(fixture: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(TRANSCRIPTS[fixture]), normalise(hypothesis)))


def wav_bytes(size: int, seed: bytes = b"") -> bytes:
    """``size`` bytes that are a WAV file to any sniffer (16 kHz mono PCM header, then noise)."""
    import os
    import struct

    payload = max(0, size - 44)
    header = (
        b"RIFF" + struct.pack("<I", 36 + payload) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data" + struct.pack("<I", payload)
    )  # fmt: skip
    return (header + seed + os.urandom(payload))[:size] if size else b""


def long_speech_wav(seconds: float) -> bytes:
    """The speech fixtures decoded, tiled with a second of silence between them, cut to exactly
    ``seconds`` of 16 kHz mono 16-bit WAV: a long recording made of real speech."""
    import io
    import wave

    import av
    import numpy as np

    clips = []
    for path in (FILES["story"], FILES["fox"], FILES["hello"]):
        with av.open(str(path)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
            frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
            clips.append(np.concatenate([f.to_ndarray().reshape(-1) for f in frames]))
    silence = np.zeros(16000, dtype=np.int16)
    wanted = int(seconds * 16000)
    cycle = np.concatenate([part for clip in clips for part in (clip, silence)])
    pcm = np.tile(cycle, wanted // len(cycle) + 1)[:wanted]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.astype(np.int16).tobytes())
    return buffer.getvalue()
