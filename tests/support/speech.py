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
