"""The embedded engine measured: throughput, memory and projected Lambda cost per local model, and
transcript quality on long and repetitive real speech with the previous and the current decoding
settings.

Real speech: Asterisk's English prompts (a human voice, with their texts; tests/support/recordings.py
fetches them with apt). Every decode runs in a fresh process, so its peak RSS (VmHWM) is its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: AWS Lambda, arm64, us-east-1: USD per GB-second of duration (the first 7.5 billion GB-s a month)
#: and per request. Lambda bills a GB as 1024 MB.
LAMBDA_ARM64_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000
#: Lambda gives a function one vCPU at 1769 MB, two at 3538 MB (CPU share grows with memory).
MB_FOR_THREADS = {1: 1769, 2: 3538}
#: List prices, USD per hour of audio, pay-as-you-go (each provider's pricing page, late 2025).
LIST_PRICES = {
    "OpenAI whisper-1 ($0.006/min)": 0.006 * 60,
    "Groq whisper-large-v3 ($0.111/h)": 0.111,
    "Groq whisper-large-v3-turbo ($0.04/h)": 0.04,
    "Deepgram nova-3 pre-recorded ($0.0043/min)": 0.0043 * 60,
}
AUDIO_SECONDS = 180

_DECODE = r"""
import io, json, os, sys, time
sys.path.insert(0, sys.argv[4])
from heimdall.config import LocalConfig
from heimdall.core.types import AudioInput, TranscriptionRequest
from heimdall.providers.local import LocalEngineOptions, LocalProvider
from heimdall.providers.local_models import MODELS
from tests.support import recordings

model, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
recording = recordings.continuous(seconds)
data = recording.wav()
provider = LocalProvider(
    LocalEngineOptions(cpu_threads=threads, model_dir=LocalConfig().model_dir), max_audio_seconds=4 * 3600
)
started = time.perf_counter()
provider._whisper(MODELS[model])
load = time.perf_counter() - started
audio = AudioInput(io.BytesIO(data), "speech.wav", "audio/wav", len(data))
request = TranscriptionRequest(model=f"local/{model}", response_format="verbose_json")
load_average = os.getloadavg()[0]
cpu = time.process_time()
started = time.perf_counter()
transcript = provider.transcribe(model, request, audio, None)
decode = time.perf_counter() - started
cpu = time.process_time() - cpu
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
wer = recordings.word_error_rate(recording.reference, transcript.text)
print(json.dumps({"load": load, "decode": decode, "cpu": cpu, "seconds": transcript.duration, "peak_rss_kb": hwm,
                  "wer": wer, "load_average": load_average}))
"""


def _decode(model: str, threads: int) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", _DECODE, model, str(threads), str(AUDIO_SECONDS), str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def cost_per_audio_hour(memory_mb: int, realtime_factor: float) -> tuple[float, str]:
    """Lambda duration cost of transcribing one hour of audio, and the arithmetic that gives it."""
    gb = memory_mb / 1024
    seconds = realtime_factor * 3600
    cost = gb * seconds * LAMBDA_ARM64_GB_SECOND
    return cost, f"{memory_mb}/1024 GB x {realtime_factor:.3f} x 3600 s x ${LAMBDA_ARM64_GB_SECOND} = ${cost:.4f}"


def engine_cost() -> dict[str, Any]:
    """Per local model: real-time factor on 1 and 2 threads, model load, peak RSS, and what an hour
    of audio would cost in Lambda at the memory that gives it that many vCPUs.

    On a shared machine the wall clock also counts other processes' turns, so the decode's own CPU
    time is reported too: with one thread on one vCPU (1769 MB), Lambda's billed duration is that CPU
    time, which makes it the load-independent basis of the 1-vCPU cost."""
    from heimdall.providers.local_models import MODELS

    results: dict[str, Any] = {}
    for model in MODELS:
        for threads in (1, 2):
            run = _decode(model, threads)
            rtf = run["decode"] / run["seconds"]
            prefix = f"{model} {threads} thread{'s' if threads > 1 else ''}"
            results[f"{prefix}: real-time factor (wall)"] = round(rtf, 3)
            results[f"{prefix}: CPU s per audio s"] = round(run["cpu"] / run["seconds"], 3)
            results[f"{prefix}: machine load average"] = round(run["load_average"], 1)
            results[f"{prefix}: model load s"] = round(run["load"], 2)
            results[f"{prefix}: peak RSS MB"] = round(run["peak_rss_kb"] / 1024)
            results[f"{prefix}: WER"] = round(run["wer"], 3)
            # One thread on one vCPU: billed time = its CPU time. Two: at best each vCPU busy all along.
            basis = run["cpu"] / run["seconds"] / threads
            memory = MB_FOR_THREADS[threads]
            results[f"{prefix}: Lambda $/audio hour"] = cost_per_audio_hour(memory, basis)[1]
            results[f"{prefix}: Lambda $/audio hour (wall clock)"] = cost_per_audio_hour(memory, rtf)[1]
    for name, price in LIST_PRICES.items():
        results[f"list price $/audio hour: {name}"] = round(price, 3)
    return results


_QUALITY = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from benchmarks.engine import quality_rows
print(json.dumps(quality_rows(sys.argv[1])))
"""

#: The decoding settings before long and repetitive audio was measured (faster-whisper's defaults).
PREVIOUS = {"condition_on_previous_text": True, "compression_ratio_threshold": 2.4}


def quality_rows(settings: str) -> dict[str, Any]:
    """WER and longest missed speech for each recording with ``settings`` (previous | current)."""
    import io

    from heimdall.core.types import AudioInput, TranscriptionRequest
    from heimdall.providers import local
    from tests.support import recordings

    if settings == "previous":  # faster-whisper's own VAD path, its default thresholds
        local.DECODING.update(PREVIOUS)
        local.speech_pieces = lambda samples: []
    provider = local.LocalProvider(max_audio_seconds=4 * 3600)

    built = {
        "continuous speech, 3 min": lambda: recordings.continuous(180),
        "one IVR prompt repeated, 2 s pauses, 160 s": lambda: recordings.repetitive("Please enter your pass", 160, 2.0),
        "hello.wav repeated, 2 s pauses, 160 s": lambda: recordings.fixture_repeated("hello", 160, 2.0),
        "prompts in 5-20 s silences, 5 min": lambda: recordings.sparse(300),
    }
    rows: dict[str, Any] = {}
    for name, build in built.items():
        recording = build()
        data = recording.wav()
        audio = AudioInput(io.BytesIO(data), "speech.wav", "audio/wav", len(data))
        request = TranscriptionRequest(model="local/tiny.en", response_format="verbose_json")
        transcript = provider.transcribe("tiny.en", request, audio, None)  # type: ignore[arg-type]
        covered = [(s.start, s.end) for s in transcript.segments or []]
        rows[f"{name}: WER"] = round(recordings.word_error_rate(recording.reference, transcript.text), 3)
        rows[f"{name}: longest missed speech s"] = recordings.longest_gap(recording.spans, covered)
    return rows


def engine_quality() -> dict[str, Any]:
    """Each recording with the previous settings and with the current ones (tiny.en, 2 threads)."""
    results: dict[str, Any] = {}
    for settings in ("previous", "current"):
        run = subprocess.run(
            [sys.executable, "-c", _QUALITY, settings, str(ROOT)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        for key, value in json.loads(run.stdout.strip().splitlines()[-1]).items():
            results[f"{settings}: {key}"] = value
    return results


_COLD = r"""
import importlib.util, json, os, sys, time
sys.path.insert(0, sys.argv[1])
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", os.path.join(sys.argv[1], "functions/api/app.py"))
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
init = time.perf_counter() - started
from tests.support.lambda_events import LambdaContext, V1_TEMPLATE
event = json.loads(V1_TEMPLATE.read_text())
started = time.perf_counter()
response = app.handler(event, LambdaContext())
first = time.perf_counter() - started
started = time.perf_counter()
app.handler(event, LambdaContext())
warm = time.perf_counter() - started
print(json.dumps({"init": init, "first": first, "warm": warm, "status": response["statusCode"]}))
"""


def engine_cold_start(runs: int = 3) -> dict[str, Any]:
    """A Lambda cold start of the API function with the engine, without the image pull: a fresh
    process imports functions/api/app.py (the init phase), then answers the committed API Gateway
    event (hello.wav, 4.2 s, no config: the engine loads tiny.en on this first request)."""
    samples: list[dict[str, Any]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
    for _ in range(runs):
        command = [sys.executable, "-c", _COLD, str(ROOT)]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=600)
        samples.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert all(s["status"] == 200 for s in samples)

    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 2)

    return {
        "init (import + create_app) s": median("init"),
        "first request (model load + decode) s": median("first"),
        "same request warm s": median("warm"),
        "cold start to first answer s": round(median("init") + median("first"), 2),
        "runs": runs,
    }
