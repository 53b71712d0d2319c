"""The committed speech fixtures and what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
TRANSCRIPTS: dict[str, str] = json.loads((AUDIO.parent / "transcripts.json").read_text())
FILES = {"hello": AUDIO / "hello.wav", "fox": AUDIO / "fox.flac", "story": AUDIO / "story.ogg"}


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
