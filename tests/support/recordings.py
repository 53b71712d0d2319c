"""Long recordings of real human speech with their transcripts, for judging the embedded engine.

The speech is Asterisk's core English prompts (Allison Smith, CC BY-SA 3.0): 364 telephone prompts,
25 minutes of a real voice at 8 kHz, each with its text (``core-sounds-en.txt``), as Debian packages
them (``asterisk-core-sounds-en-wav``, ``asterisk-core-sounds-en``). They are fetched with apt on
first use into ``.cache/`` (never committed) and assembled into recordings whose speech spans are
known to the sample, so a test can tell exactly which speech a transcript left out:

- ``continuous``: different prompts one after the other with short natural pauses (minutes of speech);
- ``repetitive``: one prompt over and over with pauses, as an IVR menu or a chant plays it;
- ``sparse``: prompts far apart in long silences, as a call on hold or a voicemail sounds.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16_000
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "asterisk-core-sounds-en"
PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison"
TEXTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class CorpusUnavailable(RuntimeError):
    """apt could not fetch the prompts (no apt on this machine, or no Debian archive reachable)."""


@dataclass(frozen=True)
class Recording:
    pcm: np.ndarray  # int16, 16 kHz mono
    spans: list[tuple[float, float]]  # where speech is, in seconds
    reference: str  # what is said, in order

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE

    def wav(self) -> bytes:
        import io

        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(self.pcm.tobytes())
        return buffer.getvalue()


def normalise(text: str) -> str:
    """Lower case, no punctuation, digits spelled out: what WER compares."""
    text = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " "))
    text = re.sub(r"\d", lambda m: f" {_NUMBERS[int(m.group())]} ", text)
    return re.sub(r"\s+", " ", text).strip()


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def longest_gap(spans: list[tuple[float, float]], covered: list[tuple[float, float]]) -> float:
    """The longest stretch of speech, in seconds of speech, that no ``covered`` interval touches:
    consecutive missed spans add up (a skip from 28 s to 148 s counts all the speech in between)."""
    step = 0.01
    end = max([e for _, e in spans] + [e for _, e in covered] + [0.0])
    speech = np.zeros(int(end / step) + 2, dtype=bool)
    hit = np.zeros_like(speech)
    for start, stop in spans:
        speech[int(start / step) : int(stop / step)] = True
    for start, stop in covered:
        hit[int(start / step) : int(stop / step) + 1] = True
    longest = run = 0
    for is_speech, is_hit in zip(speech, hit, strict=True):
        if is_speech and not is_hit:
            run += 1
        elif is_speech:
            longest, run = max(longest, run), 0
    return round(max(longest, run) * step, 2)


def _fetch() -> Path:
    marker = CACHE / "ready"
    if marker.exists():
        return CACHE
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusUnavailable("apt-get/dpkg-deb not found: the speech corpus comes from Debian's archive")
    with tempfile.TemporaryDirectory() as work:
        download = ["apt-get", "download", *PACKAGES]
        if subprocess.run(download, cwd=work, capture_output=True, check=False).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            result = subprocess.run(download, cwd=work, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise CorpusUnavailable(f"apt-get download {' '.join(PACKAGES)} failed: {result.stderr.strip()}")
        CACHE.mkdir(parents=True, exist_ok=True)
        for deb in Path(work).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
    marker.touch()
    return CACHE


def prompts() -> list[tuple[np.ndarray, str]]:
    """Every spoken prompt as 16 kHz PCM with its text, sorted by text: no tones ("[beep]"), no
    silences ("(5 seconds of silence)"), no symbols read aloud ("press *")."""
    import av

    root = _fetch()
    found = []
    with gzip.open(root / TEXTS, "rt") as texts:
        lines = texts.read().splitlines()
    for line in lines:
        name, _, text = line.partition(": ")
        path = root / SOUNDS / f"{name}.wav"
        if line.startswith(";") or not text or re.search(r"[][()*#]", text) or not path.exists():
            continue
        with av.open(str(path)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
            frames += resampler.resample(None)
        found.append((np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16), text))
    return sorted(found, key=lambda p: p[1])


def assemble(parts: list[tuple[np.ndarray, str]], pauses: list[float]) -> Recording:
    chunks, spans, texts, at = [], [], [], 0
    for (pcm, text), pause in zip(parts, pauses, strict=True):
        chunks.append(pcm)
        spans.append((at / RATE, (at + len(pcm)) / RATE))
        texts.append(text)
        silence = np.zeros(int(pause * RATE), dtype=np.int16)
        chunks.append(silence)
        at += len(pcm) + len(silence)
    return Recording(np.concatenate(chunks), spans, " ".join(texts))


def continuous(seconds: float, min_words: int = 8) -> Recording:
    """Different prompts (the longer ones: sentences, not single words), 0.3-0.7 s apart."""
    chosen, total = [], 0.0
    for pcm, text in prompts():
        if len(text.split()) >= min_words and total < seconds:
            chosen.append((pcm, text))
            total += len(pcm) / RATE + 0.5
    rng = np.random.default_rng(7)
    return assemble(chosen, [float(p) for p in rng.uniform(0.3, 0.7, len(chosen))])


def repetitive(text_starts: str, seconds: float, pause: float) -> Recording:
    """The prompt whose text starts with ``text_starts``, repeated with ``pause`` s between, for ``seconds``."""
    pcm, text = next(p for p in prompts() if p[1].startswith(text_starts))
    count = int(seconds // (len(pcm) / RATE + pause)) + 1
    return assemble([(pcm, text)] * count, [pause] * count)


def sparse(seconds: float, silence: tuple[float, float] = (5.0, 20.0)) -> Recording:
    """Prompts separated by long silences drawn from ``silence`` (seconds)."""
    rng = np.random.default_rng(11)
    pool = [p for p in prompts() if len(p[1].split()) >= 4]
    chosen, pauses, total = [], [], 0.0
    while total < seconds:
        pcm, text = pool[int(rng.integers(len(pool)))]
        pause = float(rng.uniform(*silence))
        chosen.append((pcm, text))
        pauses.append(pause)
        total += len(pcm) / RATE + pause
    return assemble(chosen, pauses)


def fixture_repeated(name: str, seconds: float, pause: float) -> Recording:
    """A committed speech fixture (tests/fixtures/audio) repeated with ``pause`` s between, for ``seconds``."""
    import av

    from tests.support.speech import FILES, TRANSCRIPTS

    with av.open(str(FILES[name])) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        frames = [f for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)
    count = int(seconds // (len(pcm) / RATE + pause)) + 1
    return assemble([(pcm, TRANSCRIPTS[name])] * count, [pause] * count)
