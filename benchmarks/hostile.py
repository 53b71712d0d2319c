"""Hostile input against the served gateway: what the serving process's peak RSS gains, and how long
a refusal takes, for decompression bombs, the largest bodies each route allows, and bodies past the
limit; the same through the Lambda handler. Slow clients holding connections open against /health.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measures import AUDIO, ROOT, _free_port, _wait_healthy

sys.path.insert(0, str(ROOT))

from tests.support import bombs
from tests.support import multipart as mp
from tests.support.raw_http import send_until_answered
from tests.support.speech import wav_bytes

KEY = "sk-bench-0123456789"
MB = 1024 * 1024
TRANSCRIPTION_PATHS = {
    "/v1/audio/transcriptions": "openai/whisper-1",
    "/openai/v1/audio/transcriptions": "openai/whisper-1",
    "/openai/audio/transcriptions": "openai/whisper-1",
    "/openai/openai/deployments/openai/whisper-1/audio/transcriptions": None,
}


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS", "VmHWM")):
                fields[line.split(":")[0]] = int(line.split()[1])
    return fields


def _measured(pid: int, send: Callable[[], int]) -> dict[str, Any]:
    """Reset the process's peak RSS, send, and report the status, the time and the peak it added."""
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    before = _status(pid)["VmRSS"]
    started = time.perf_counter()
    status = send()
    seconds = time.perf_counter() - started
    return {
        "status": status,
        "s": round(seconds, 2),
        "peak added MB": round((_status(pid)["VmHWM"] - before) / 1024, 1),
    }


@contextmanager
def _gateway() -> Iterator[tuple[str, int]]:
    """python -m heimdall (uvicorn, as ``make run``) with the local engine and a fake OpenAI upstream."""
    fake_port, port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({
            "providers": {"openai": {"keys": [{"value": KEY}], "network_config": {
                "base_url": f"http://127.0.0.1:{fake_port}", "max_retries": 0}}},
        }))  # fmt: skip
        env = {**os.environ, "PORT": str(port), "HEIMDALL_CONFIG": str(config),
               "HEIMDALL_AUDIO_BUCKET": "bench-never-reached", "POWERTOOLS_LOG_LEVEL": "WARNING"}  # fmt: skip
        processes = [
            subprocess.Popen([sys.executable, "-m", "benchmarks.fake_upstream", str(fake_port), KEY], cwd=ROOT,
                             stdout=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "-m", "heimdall"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL),
        ]  # fmt: skip
        try:
            _wait_healthy(f"http://127.0.0.1:{fake_port}/", processes[0])
            _wait_healthy(f"http://127.0.0.1:{port}/health", processes[1])
            yield f"http://127.0.0.1:{port}", processes[1].pid
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)


def _post(url: str, path: str, model: str | None, audio: bytes, filename: str) -> Callable[[], int]:
    data = {"model": model} if model else {}
    return lambda: (
        httpx.post(
            f"{url}{path}", data=data, files={"file": (filename, audio, "application/octet-stream")}, timeout=900
        ).status_code
    )


def hostile_input() -> dict[str, Any]:
    flac_bomb = bombs.flac_silence(10 * 3600, claim=1)
    opus_bomb = bombs.opus_silence(5 * 3600, claim=1)
    largest_wav = wav_bytes(25 * MB - 4096)  # the body limit, less the multipart framing
    silent_wav = largest_wav[:44] + bytes(len(largest_wav) - 44)  # 13 min the engine's VAD skips quickly
    lambda_wav = silent_wav[:44] + bytes(4400 * 1024)  # API Gateway's 6 MB payload, base64-encoded
    longest_flac = bombs.flac_silence(4 * 3600 - 60)  # just under the duration limit, a few KB
    results: dict[str, Any] = {
        "FLAC bomb KB (10 h, header says 1 s)": round(len(flac_bomb) / 1024, 1),
        "Ogg/Opus bomb KB (5 h, header says 1 s)": round(len(opus_bomb) / 1024, 1),
    }
    with _gateway() as (url, pid):
        hello = (AUDIO / "hello.wav").read_bytes()
        for model in ("local/tiny.en", "openai/whisper-1"):  # warm: imports, the model loaded
            assert _post(url, "/v1/audio/transcriptions", model, hello, "hello.wav")() == 200
        results["serving process RSS MB after warm-up"] = round(_status(pid)["VmRSS"] / 1024, 1)
        cases: dict[str, Callable[[], int]] = {
            "FLAC bomb → local/tiny.en": _post(url, "/v1/audio/transcriptions", "local/tiny.en", flac_bomb, "b.flac"),
            "FLAC bomb → openai/whisper-1": _post(url, "/v1/audio/transcriptions", "openai/whisper-1", flac_bomb,
                                                 "b.flac"),
            "Ogg/Opus bomb → local/tiny.en": _post(url, "/v1/audio/transcriptions", "local/tiny.en", opus_bomb,
                                                  "b.ogg"),
            "3 h 59 min FLAC (under the limit) → local/tiny.en": _post(
                url, "/v1/audio/transcriptions", "local/tiny.en", longest_flac, "long.flac"),
            "25 MB WAV (silence) → local/tiny.en": _post(url, "/v1/audio/transcriptions", "local/tiny.en", silent_wav,
                                                        "max.wav"),
        }  # fmt: skip
        for path, model in TRANSCRIPTION_PATHS.items():
            cases[f"25 MB WAV → openai/whisper-1 via {path}"] = _post(url, path, model, largest_wav, "max.wav")
        open_file_part = mp.field("model", "openai/whisper-1") + mp.file_part(b"")[:-2]
        for path, content_type, first in (
            ("/v1/uploads", "application/json", b'{"filename": "'),
            ("/v1/audio/transcriptions", mp.CONTENT_TYPE, open_file_part),
        ):
            cases[f"endless chunked body (up to 2 GB) → {path}"] = lambda p=path, c=content_type, f=first: (
                send_until_answered(url, p, c, f, at_most=2048 * MB)[0]
            )
        for name, send in cases.items():
            for key, value in _measured(pid, send).items():
                results[f"{name}: {key}"] = value
    results.update(_through_lambda(flac_bomb, lambda_wav))
    return results


LAMBDA_SCRIPT = """
import base64, json, sys, time
sys.path.insert(0, ".")
from heimdall.api.app import create_app
from heimdall.api.lambda_adapter import lambda_handler
from heimdall.config import GatewayConfig
from tests.support import multipart as mp
from tests.support.lambda_events import LambdaContext, http_v2_event

def status(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))

handler = lambda_handler(create_app(GatewayConfig()))
results = {}
for name, path in json.loads(sys.argv[1]).items():
    audio = open(path, "rb").read()
    body = mp.body(mp.field("model", "local/tiny.en"), mp.file_part(audio, filename=name))
    event = http_v2_event("POST", "/v1/audio/transcriptions", body=body, content_type=mp.CONTENT_TYPE)
    del audio, body
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    started = time.perf_counter()
    reply = handler(event, LambdaContext())
    results[name] = {"status": reply["statusCode"], "s": round(time.perf_counter() - started, 2),
                     "peak added MB": round((status("VmHWM") - before) / 1024, 1)}
print(json.dumps(results))
"""


def _through_lambda(flac_bomb: bytes, wav: bytes) -> dict[str, Any]:
    """The API function's handler in a fresh process (a Lambda instance), v2 events with base64
    bodies; the event itself is built before the peak is reset."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {"bomb.flac": flac_bomb, "max.wav": wav}
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        arguments = json.dumps({name: str(Path(tmp) / name) for name in files})
        run = subprocess.run([sys.executable, "-c", LAMBDA_SCRIPT, arguments], cwd=ROOT, capture_output=True,
                             text=True, check=True, timeout=1800)  # fmt: skip
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    labels = {"bomb.flac": "Lambda handler: FLAC bomb → local/tiny.en",
              "max.wav": "Lambda handler: 4.4 MB WAV (6 MB event) → local/tiny.en"}  # fmt: skip
    return {f"{labels[name]}: {key}": value for name, result in measured.items() for key, value in result.items()}


SLOW_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from heimdall.server import main
main()
"""


def slow_clients(stalled: int = 1100, probes: int = 20) -> dict[str, Any]:
    """``python -m heimdall`` with at most 1,024 open files and 1,100 connections stalled mid-headers,
    mid-body or before their first byte: how long /health takes meanwhile."""
    import socket

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "HEIMDALL_CONFIG"} | {"PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-c", SLOW_SCRIPT], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    sockets: list[socket.socket] = []
    try:
        _wait_healthy(f"{url}/health", process)
        heads = [b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Ty",
                 b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 60000\r\n\r\n{", b""]  # fmt: skip
        for index in range(stalled):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(heads[index % 3])
            sockets.append(sock)
        timings = []
        for _ in range(probes):
            started = time.perf_counter()
            assert httpx.get(f"{url}/health", timeout=30).status_code == 200
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.wait(timeout=30)
    ordered = sorted(timings)
    return {
        "stalled connections": stalled,
        "/health ms (median)": round(ordered[len(ordered) // 2], 1),
        "/health ms (max)": round(ordered[-1], 1),
        "probes": probes,
    }
