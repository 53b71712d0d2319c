"""The embedded offline engine: faster-whisper running Whisper on the CPU.

The models (``tiny.en``, English; ``base``, multilingual) and where their weights come from are in
``local_models``; faster-whisper ships its Silero VAD model, so nothing is downloaded at run time.
Each model is loaded once per process, on first use, and the engine decodes one request at a time
(a Lambda serves one request per instance anyway; on a laptop, queuing beats two decodes fighting
for two cores).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

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
from heimdall.providers.local_models import DEFAULT, MODELS, LocalModel, WeightsMissing
from heimdall.providers.upstream import Call

MODEL = DEFAULT
MAX_FILE_BYTES = 25 * 1024 * 1024
#: The engine holds the decoded audio two minutes at a time (3.8 MB of 16 kHz PCM; faster-whisper's
#: features and VAD for it take about 100 MB more, where a 13-minute stretch took 280 MB), decoded by
#: Heimdall and bounded by the duration limit: a small file that decodes to hours costs no more.
HELD_SECONDS = 120


class LocalEngineOptions(NamedTuple):
    cpu_threads: int = 2
    compute_type: str = "int8"
    vad_filter: bool = True
    beam_size: int = 5
    model_dir: str = ".cache/heimdall/models"  # where weights that must be joined live (config: local.model_dir)


#: How Whisper decodes, chosen on minutes of real speech: continuous, one prompt repeated with
#: pauses, and prompts far apart in silence (docs/performance.md, "Long and repetitive audio").
DECODING: dict[str, Any] = {
    # Each 30 s window is decoded from its own audio. Conditioned on the text before it, Whisper
    # writes again what it just wrote: an unspoken extra copy of a repeated IVR prompt, and a loop,
    # once started, carries on into the next window.
    "condition_on_previous_text": False,
    # Whisper's gzip test takes the faithful transcript of repetitive speech for a loop (six copies
    # of one prompt compress 6.5:1, the limit is 2.4) and resamples the window at rising
    # temperatures, whose guesses skipped minutes of audio. Loops are kept from starting instead:
    # no conditioning, silence (what Whisper hallucinates on) never decoded, and each piece
    # (speech_pieces) decoded on its own.
    "compression_ratio_threshold": None,
    # A window Whisper is unsure of (mean log-probability under -1) is still tried again warmer,
    # and one that is unsure and likely silence is dropped (VAD already took most silence out).
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
}


#: Speech is decoded in pieces cut by VAD (Silero, which faster-whisper ships): stretches of speech
#: less than MERGE_GAP_SECONDS apart are grouped into pieces of at most PIECE_SECONDS, one Whisper
#: window each. A piece starts and ends in a pause, so no window cuts a word in two (which cost
#: accuracy without the previous text to lean on); a piece is decoded on its own, so whatever goes
#: wrong in one cannot spill into the next, nor skip past its end; and long silences are never
#: decoded at all (Whisper invents text in them).
PIECE_SECONDS = 28.0
MERGE_GAP_SECONDS = 4.0
RATE = 16_000


def speech_pieces(samples: Any) -> list[float]:
    """The pieces to decode as faster-whisper's ``clip_timestamps``: [start, end, start, end, …] s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    pieces: list[list[int]] = []
    for chunk in get_speech_timestamps(samples, VadOptions(max_speech_duration_s=PIECE_SECONDS)):
        if (
            pieces
            and chunk["start"] - pieces[-1][1] <= MERGE_GAP_SECONDS * RATE
            and chunk["end"] - pieces[-1][0] <= PIECE_SECONDS * RATE
        ):
            pieces[-1][1] = chunk["end"]
        else:
            pieces.append([chunk["start"], chunk["end"]])
    return [sample / RATE for piece in pieces for sample in piece]


def decoding_options(request: TranscriptionRequest) -> dict[str, Any]:
    options = {**DECODING, "word_timestamps": request.wants_words}
    if request.temperature is not None:
        options["temperature"] = request.temperature  # the client's one value: no fallback
    return options


def engine_installed() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None


class LocalProvider:
    name = "local"

    def __init__(self, options: LocalEngineOptions | None = None, *, max_audio_seconds: float) -> None:
        self.options = options or LocalEngineOptions()
        self.max_audio_seconds = max_audio_seconds
        self._models: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def models(self) -> frozenset[str]:
        return frozenset(MODELS)

    def capabilities(self, model: str) -> Capabilities:
        # Files over 25 MB are cut by the router (four pieces in flight); whatever arrives here is
        # decoded HELD_SECONDS at a time all the same, so a small file that decodes to hours is bounded too.
        spec = MODELS[model]
        return Capabilities(
            word_timestamps=spec.word_timestamps, languages=spec.languages, max_file_bytes=MAX_FILE_BYTES
        )

    @property
    def loaded(self) -> bool:
        return bool(self._models)

    def _whisper(self, spec: LocalModel) -> Any:
        with self._load_lock:
            if spec.id not in self._models:
                try:
                    from faster_whisper import WhisperModel

                    weights = spec.weights(Path(self.options.model_dir))
                except OSError as exc:  # the model directory cannot be written (a read-only file system)
                    raise EngineUnavailable(
                        f"The local engine's model {spec.id} cannot be prepared here: "
                        "its model directory (providers.local.model_dir) is not writable.",
                        provider=self.name,
                    ) from exc
                except (ImportError, WeightsMissing) as exc:
                    raise EngineUnavailable(
                        f"The local engine's model {spec.id} is not installed in this deployment "
                        f"(install heimdall[{spec.extra}], or deploy the container image); "
                        "configure a provider or name another target.",
                        provider=self.name,
                    ) from exc
                self._models[spec.id] = WhisperModel(
                    str(weights),
                    device="cpu",
                    compute_type=self.options.compute_type,
                    cpu_threads=self.options.cpu_threads,
                )
            return self._models[spec.id]

    def _check_language(self, model: str, request: TranscriptionRequest) -> None:
        spec = MODELS[model]
        if spec.languages is not None and request.language not in (None, *spec.languages):
            raise InvalidRequest(  # the router refuses it first; a direct caller gets the same answer
                f"The local engine's model {model} cannot transcribe language '{request.language}'.",
                param="language",
                code="unsupported_language",
                provider=self.name,
            )

    def _options(self, model: str, request: TranscriptionRequest) -> dict[str, Any]:
        spec = MODELS[model]
        return {
            **decoding_options(request),
            # English-only weights take no language token; a multilingual model detects one when not told.
            "language": request.language if spec.multilingual else "en",
            "beam_size": self.options.beam_size,
            "initial_prompt": request.prompt,
        }

    def _stretches(self, audio: AudioInput) -> Iterator[Any]:
        """The audio decoded by Heimdall, not by faster-whisper (which decodes a whole file into
        memory, however long it turns out to be): HELD_SECONDS at most at a time, cut at a quiet
        moment, and 413 ``audio_too_long`` once the decoded duration passes the gateway's limit."""
        from heimdall.chunking import pcm_pieces

        return pcm_pieces(audio, HELD_SECONDS * RATE, self.max_audio_seconds)

    def _run(self, whisper: Any, stretch: Any, options: dict[str, Any]) -> tuple[Iterator[Any], Any]:
        """Start transcribing one stretch; its segments come as they are decoded."""
        import numpy as np

        samples = stretch.pcm.astype(np.float32) / 32768.0  # what faster-whisper's own decoder produces
        options = dict(options)
        pieces = speech_pieces(samples) if self.options.vad_filter else []
        if pieces:
            options["clip_timestamps"] = pieces
        else:  # no VAD, or no speech found: faster-whisper's own path (which then finds none either)
            options["vad_filter"] = self.options.vad_filter
        return whisper.transcribe(samples, **options)  # type: ignore[no-any-return]

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Transcript:
        from heimdall.chunking import PieceSpan, stitch

        self._check_language(model, request)
        options = self._options(model, request)
        parts = []
        with self._run_lock:
            whisper = self._whisper(MODELS[model])
            for stretch in self._stretches(audio):
                segments, info = self._run(whisper, stretch, options)
                transcript = _to_transcript(list(segments), info, request.wants_words)
                parts.append((PieceSpan(stretch.offset, stretch.seconds), transcript))  # not the samples
        if len(parts) == 1:
            return parts[0][1]
        return stitch(parts, parts[-1][0].offset + parts[-1][0].seconds)

    def stream(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Call) -> Iterator[StreamEvent]:
        """One delta per segment, as each is decoded: the first leaves long before the file is done.
        The first stretch is decoded before the stream is returned, so unreadable audio is an HTTP error."""
        self._check_language(model, request)
        options = self._options(model, request)
        self._run_lock.acquire()
        try:
            whisper = self._whisper(MODELS[model])
            stretches = self._stretches(audio)
            first = next(stretches)
            segments, _ = self._run(whisper, first, options)
        except BaseException:
            self._run_lock.release()
            raise
        return self._deltas(whisper, options, first, segments, stretches)

    def _deltas(
        self, whisper: Any, options: dict[str, Any], stretch: Any, segments: Iterator[Any], stretches: Iterator[Any]
    ) -> Iterator[StreamEvent]:
        try:
            text = ""
            while True:
                for segment in segments:
                    delta = segment.text if text else segment.text.lstrip()
                    text += delta
                    yield TextDelta(delta)
                following = next(stretches, None)
                if following is None:
                    break
                stretch = following
                segments, _ = self._run(whisper, stretch, options)
            yield TextDone(text, Usage(type="duration", seconds=math.ceil(stretch.offset + stretch.seconds)))
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
