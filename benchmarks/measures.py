"""The measurements. Each returns a flat dict of numbers (ms, MB, ratios)."""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "fixtures" / "audio"


def _median_p90(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
        "runs": len(ordered),
    }


def _import_ms(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start(runs: int = 15) -> dict[str, Any]:
    """Importing functions/api/app.py (building the app) in a fresh interpreter, as Lambda's init does,
    against a bare ``import fastapi, mangum`` in the same venv, interleaved run by run.

    Both import byte-compiled code, as in Lambda: the layer's build ships .pyc files for Heimdall
    (layers/heimdall/Makefile) as pip does for the libraries. Heimdall's are compiled here first
    (into the tree's ``__pycache__``, checked against the sources' timestamps as Python does):
    where nothing writes them (PYTHONDONTWRITEBYTECODE, a read-only tree) every run would compile
    Heimdall's sources again, which no deployed cold start does."""
    handler = (
        "import time, importlib.util as u; t = time.perf_counter(); "
        "s = u.spec_from_file_location('app', 'functions/api/app.py'); m = u.module_from_spec(s); "
        "s.loader.exec_module(m); print((time.perf_counter() - t) * 1000)"
    )
    bare = "import time; t = time.perf_counter(); import fastapi, mangum; print((time.perf_counter() - t) * 1000)"
    subprocess.run([sys.executable, "-m", "compileall", "-q", "layers/heimdall/heimdall", "functions/api"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    samples, baseline = [], []
    for _ in range(runs):
        samples.append(_import_ms(handler))
        baseline.append(_import_ms(bare))
    stats, base = _median_p90(samples), _median_p90(baseline)
    return {
        "handler import ms (median)": stats["median"],
        "handler import ms (p90)": stats["p90"],
        "bare import fastapi, mangum ms (median)": base["median"],
        "handler / bare (bar <= 1.15)": round(stats["median"] / base["median"], 2),
        "runs": runs,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_200(path: str, method: str = "GET", **request: Any) -> float:
    port = _free_port()
    started = time.perf_counter()
    env = {**os.environ, "PORT": str(port)}
    env.pop("HEIMDALL_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "heimdall"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = started + 120
        while time.perf_counter() < deadline:
            try:
                if httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=60, **request).status_code == 200:
                    return (time.perf_counter() - started) * 1000
            except httpx.TransportError:
                time.sleep(0.01)
        raise TimeoutError("gateway did not answer")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _first_and_warm_transcription() -> tuple[float, float, float]:
    """One fresh `python -m heimdall`: start → the first transcription's answer, that request's own
    time (it loads the model), and the next identical request's (warm), in ms."""
    port = _free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("HEIMDALL_CONFIG", None)
    audio = (AUDIO / "hello.wav").read_bytes()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "heimdall"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process)

        def transcribe() -> float:
            sent = time.perf_counter()
            response = httpx.post(f"http://127.0.0.1:{port}/v1/audio/transcriptions", data={"model": "whisper-1"},
                                  files={"file": ("hello.wav", audio, "audio/wav")}, timeout=120)  # fmt: skip
            response.raise_for_status()
            return (time.perf_counter() - sent) * 1000

        first = transcribe()
        to_first = (time.perf_counter() - started) * 1000
        return to_first, first, transcribe()
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_run(runs: int = 5) -> dict[str, Any]:
    """`make run` (python -m heimdall) to the first 200 on /health; to the first transcription, whose
    own time includes loading the model, against the next (warm) one. The load average says how busy
    the machine was: on a shared 2-core machine it moves these numbers more than anything else."""
    health = [_first_200("/health") for _ in range(runs)]
    to_first, first, warm = zip(*[_first_and_warm_transcription() for _ in range(3)], strict=True)
    return {
        "start to first 200 /health ms (median)": _median_p90(health)["median"],
        "start to first transcription ms (median, incl. model load)": _median_p90(list(to_first))["median"],
        "first transcription request ms (median, loads the model)": _median_p90(list(first))["median"],
        "next transcription request ms (median, warm)": _median_p90(list(warm))["median"],
        "load average (1 min) after": round(os.getloadavg()[0], 2),
    }


def local_engine(runs: int = 3) -> dict[str, Any]:
    """Real-time factor of the embedded engine on each fixture, warm, through the app in-process."""
    from fastapi.testclient import TestClient

    from heimdall.api.app import create_app
    from heimdall.config import GatewayConfig

    client = TestClient(create_app(GatewayConfig()))
    results: dict[str, Any] = {}
    for name in ("hello.wav", "fox.flac", "story.ogg"):
        data = (AUDIO / name).read_bytes()
        timings = []
        duration = 0.0
        for _ in range(runs + 1):  # the first run also loads the model: not counted
            started = time.perf_counter()
            response = client.post(
                "/v1/audio/transcriptions",
                files={"file": (name, data)},
                data={"model": "whisper-1", "response_format": "verbose_json"},
            )
            timings.append(time.perf_counter() - started)
            duration = response.json()["duration"]
        wall = statistics.median(timings[1:])
        results[f"{name} ({duration:.1f} s audio) wall s"] = round(wall, 3)
        results[f"{name} real-time factor"] = round(wall / duration, 3)
    return results


class _NullProvider:
    """Reads the audio in 64 KiB chunks, as a streaming provider adapter does, and returns nothing."""

    name = "local"

    def models(self) -> frozenset[str]:
        return frozenset({"tiny.en"})

    def capabilities(self, model: str) -> Any:
        from heimdall.providers.base import Capabilities

        return Capabilities()

    def transcribe(self, model: str, request: Any, audio: Any, call: Any) -> Any:
        from heimdall.core.types import Transcript

        source = audio.rewind()
        while source.read(64 * 1024):
            pass
        return Transcript(text="", segments=[])


def _wav(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(os.urandom(int(seconds * rate) * 2))
    return buffer.getvalue()


def _peak_added(call: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def memory() -> dict[str, Any]:
    """Peak Python memory one 4 MB upload adds through the Lambda handler (v2 event, base64 body) and
    through the ASGI app as a ``make run`` server builds it (the upload held in memory within its
    budget), with a provider that streams the audio out (the engine excluded)."""
    from unittest import mock

    sys.path.insert(0, str(ROOT))
    from heimdall.api.app import create_app
    from heimdall.config import GatewayConfig
    from heimdall.routing import Router
    from tests.support import multipart
    from tests.support.lambda_events import LambdaContext, http_v2_event

    audio = _wav(131)  # 4.19 MB
    body = multipart.body(multipart.field("model", "whisper-1"), multipart.file_part(audio))

    def gateway(function_name: str | None) -> Any:
        """The app as a Lambda instance (``function_name``) or a ``make run`` server builds it."""
        with mock.patch.dict(os.environ):  # the environment as it was, afterwards
            os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
            if function_name:
                os.environ["AWS_LAMBDA_FUNCTION_NAME"] = function_name
            app = create_app(GatewayConfig())
        app.state.router = Router(GatewayConfig(), {"local": _NullProvider()})  # type: ignore[dict-item]
        return app

    from heimdall.api.lambda_adapter import lambda_handler

    handler = lambda_handler(gateway("heimdall-api"))
    event = http_v2_event("POST", "/v1/audio/transcriptions", body=body, content_type=multipart.CONTENT_TYPE)
    handler(event, LambdaContext())  # warm: imports, route compilation
    lambda_peak = _peak_added(lambda: handler(event, LambdaContext()))

    from fastapi.testclient import TestClient

    client = TestClient(gateway(None))
    headers = {"content-type": multipart.CONTENT_TYPE}
    client.post("/v1/audio/transcriptions", content=body, headers=headers)
    asgi_peak = _peak_added(lambda: client.post("/v1/audio/transcriptions", content=body, headers=headers))
    size = len(audio)
    return {
        "audio MB": round(size / 1e6, 2),
        "Lambda handler: peak added MB (event excluded)": round(lambda_peak / 1e6, 2),
        "Lambda handler: peak / audio size": round(lambda_peak / size, 2),
        "ASGI app: peak added MB (body excluded)": round(asgi_peak / 1e6, 2),
        "ASGI app: peak / audio size": round(asgi_peak / size, 2),
        "encoded event MB": round(len(base64.b64encode(body)) / 1e6, 2),
    }


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.02)
    raise TimeoutError(url)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc: Linux only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post(client: httpx.Client, url: str, model: str, audio: bytes, key: str) -> float:
    started = time.perf_counter()
    response = client.post(
        url,
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": model},
        headers={"authorization": f"Bearer {key}"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


def _concurrent(url: str, model: str, audio: bytes, key: str, clients: int, each: int) -> list[float]:
    """Latencies of ``clients`` clients sending ``each`` requests at once, each on its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    def one_client() -> list[float]:
        with httpx.Client(timeout=120) as client:
            _post(client, url, model, audio, key)  # its connection, warm
            return [_post(client, url, model, audio, key) for _ in range(each)]

    with ThreadPoolExecutor(clients) as pool:
        return [ms for latencies in pool.map(lambda _: one_client(), range(clients)) for ms in latencies]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _serve_as_installed(tree: Path) -> str:
    """``python -m heimdall`` as that tree would be installed: uvicorn picks uvloop and httptools when
    they are importable, so a tree whose dependencies lack them runs without them."""
    missing = [name for name in ("uvloop", "httptools") if name not in (tree / "pyproject.toml").read_text()]
    block = "".join(f"sys.modules[{name!r}] = None; " for name in missing)
    return f"import runpy, sys; {block}runpy.run_module('heimdall', run_name='__main__')"


def overhead(rounds: int = 3) -> dict[str, Any]:
    """Time and CPU Heimdall adds over calling the provider directly: same client, same fake upstream
    (the test suite's OpenAI fake), gateway and upstream each in their own process, requests to each
    interleaved one by one, ``rounds`` times; then 8 concurrent clients at 100 KB against each. With
    HEIMDALL_BENCH_BEFORE=<another checkout>, that tree's gateway runs alongside as a third column, so
    a change is measured before and after in one run. Prints the table; p50s are medians over every
    request of every round."""
    import tempfile

    key = "sk-bench-0123456789"
    fake_port = _free_port()
    trees = {"Heimdall": ROOT}
    if os.environ.get("HEIMDALL_BENCH_BEFORE"):
        trees["before"] = Path(os.environ["HEIMDALL_BENCH_BEFORE"]).resolve()
    processes = []
    results: dict[str, Any] = {}
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"providers": {"openai": {
            "keys": [{"value": key}],
            "network_config": {"base_url": f"http://127.0.0.1:{fake_port}", "max_retries": 0}}}}))  # fmt: skip
        try:
            processes.append(subprocess.Popen([sys.executable, "-m", "benchmarks.fake_upstream", str(fake_port), key],
                                              cwd=ROOT, stdout=subprocess.DEVNULL))  # fmt: skip
            _wait_healthy(f"http://127.0.0.1:{fake_port}/", processes[0])
            targets = {"direct": (f"http://127.0.0.1:{fake_port}/v1/audio/transcriptions", "whisper-1", 0)}
            for name, tree in trees.items():
                port = _free_port()
                env = {**os.environ, "PORT": str(port), "HEIMDALL_CONFIG": str(config),
                       "POWERTOOLS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree / "layers" / "heimdall")}  # fmt: skip
                process = subprocess.Popen([sys.executable, "-c", _serve_as_installed(tree)], cwd=tree, env=env,
                                           stdout=subprocess.DEVNULL)  # fmt: skip
                processes.append(process)
                _wait_healthy(f"http://127.0.0.1:{port}/health", process)
                targets[name] = (f"http://127.0.0.1:{port}/v1/audio/transcriptions", "openai/whisper-1", process.pid)
            header = f"   {'':<18} {'p50 ms':>8} {'overhead':>9} {'ratio':>6} {'CPU/req':>8}"
            with httpx.Client(timeout=120) as client:
                for label, size, runs in (("100 KB", 100_000, 200), ("10 MB", 10_000_000, 30)):
                    audio = _wav(size / 32000)
                    latencies: dict[str, list[float]] = {name: [] for name in targets}
                    cpu = dict.fromkeys(targets, 0.0)
                    for url, model, _ in targets.values():  # warm-up, not counted
                        for _ in range(3):
                            _post(client, url, model, audio, key)
                    for _ in range(rounds * runs):
                        for name, (url, model, pid) in targets.items():
                            before = _cpu_seconds(pid) if pid else 0.0
                            latencies[name].append(_post(client, url, model, audio, key))
                            cpu[name] += (_cpu_seconds(pid) - before) if pid else 0.0
                    direct = statistics.median(latencies["direct"])
                    lines += [f"   {label}, 1 client", header]
                    for name, samples in latencies.items():
                        p50 = statistics.median(samples)
                        cpu_ms = cpu[name] * 1000 / len(samples)
                        prefix = f"{label}: {name}"
                        results[f"{prefix} p50 ms"] = round(p50, 2)
                        if name == "direct":
                            lines.append(f"   {name:<18} {p50:>8.2f}")
                            continue
                        results[f"{prefix} overhead p50 ms"] = round(p50 - direct, 2)
                        results[f"{prefix} / direct"] = round(p50 / direct, 2)
                        results[f"{prefix} CPU ms per request"] = round(cpu_ms, 2)
                        lines.append(
                            f"   {name:<18} {p50:>8.2f} {p50 - direct:>9.2f} {p50 / direct:>5.2f}x {cpu_ms:>8.2f}"
                        )
            audio = _wav(100_000 / 32000)
            concurrent: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, (url, model, _) in targets.items():
                    concurrent[name] += _concurrent(url, model, audio, key, clients=8, each=25)
            lines += ["   100 KB, 8 clients", f"   {'':<18} {'p50 ms':>8} {'p99 ms':>9}"]
            for name, samples in concurrent.items():
                p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
                results[f"100 KB, 8 clients: {name} p50 ms"] = round(p50, 2)
                results[f"100 KB, 8 clients: {name} p99 ms"] = round(p99, 2)
                lines.append(f"   {name:<18} {p50:>8.2f} {p99:>9.2f}")
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
    print("\n".join(lines))
    return results


def first_delta(runs: int = 3) -> dict[str, Any]:
    """stream=true on a 60-second speech file through the local engine under uvicorn (python -m
    heimdall): time to the first transcript.text.delta against the time to the whole stream."""
    sys.path.insert(0, str(ROOT))
    from tests.support.speech import long_speech_wav

    audio = long_speech_wav(60)
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "POWERTOOLS_LOG_LEVEL": "WARNING"}
    env.pop("HEIMDALL_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "heimdall"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    firsts, totals = [], []
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process)
        with httpx.Client(timeout=300) as client:
            for index in range(runs + 1):  # the first run also loads the model: not counted
                started = time.perf_counter()
                first = None
                with client.stream(
                    "POST",
                    f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                    files={"file": ("speech.wav", audio, "audio/wav")},
                    data={"model": "whisper-1", "stream": "true"},
                ) as response:
                    for line in response.iter_lines():
                        if first is None and "transcript.text.delta" in line:
                            first = time.perf_counter() - started
                total = time.perf_counter() - started
                if index and first is not None:
                    firsts.append(first)
                    totals.append(total)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return {
        "audio seconds": round(len(audio) / 32000, 1),
        "time to first delta s (median)": round(statistics.median(firsts), 2),
        "time to done s (median)": round(statistics.median(totals), 2),
        "first delta / total": round(statistics.median(firsts) / statistics.median(totals), 2),
    }


INGEST_SCRIPT = """
import json, sys, time
sys.path.insert(0, ".")
from heimdall.jobs import ingest_handler
from tests.support.lambda_events import LambdaContext


def peak_rss_kb():  # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's high-water mark across fork
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))


event = json.loads(sys.stdin.read())
handler = ingest_handler()
started = time.perf_counter()
result = handler(event, LambdaContext(function_name="bench-ingest", remaining_ms=900_000))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_kb": peak_rss_kb(),
                  "status": result["jobs"][0]["status"]}))
"""


def ingest_memory(megabytes: int = 200) -> dict[str, Any]:
    """Peak RSS of the ingest handler (a fresh process, as a Lambda instance) transcribing a 200 MB
    WAV from S3 (moto's server, its own process) through a provider that takes 25 MB at most."""
    import tempfile

    import boto3

    sys.path.insert(0, str(ROOT))
    from tests.support.speech import long_speech_wav

    key, moto_port, fake_port = "sk-bench-0123456789", _free_port(), _free_port()
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"providers": {"openai": {"keys": [{"value": key}], "network_config": {
            "base_url": f"http://127.0.0.1:{fake_port}", "max_retries": 0}}},
            "client_config": {"default_model": "openai/whisper-1"}}))  # fmt: skip
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "HEIMDALL_CONFIG": str(config), "HEIMDALL_AUDIO_BUCKET": "bench-audio",
               "HEIMDALL_JOB_TABLE": "bench-jobs", "POWERTOOLS_LOG_LEVEL": "WARNING"}  # fmt: skip
        try:
            moto_server = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)]
            processes.append(subprocess.Popen(moto_server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            processes.append(subprocess.Popen([sys.executable, "-m", "benchmarks.fake_upstream", str(fake_port), key],
                                              cwd=ROOT, stdout=subprocess.DEVNULL))  # fmt: skip
            _wait_healthy(f"http://127.0.0.1:{moto_port}/", processes[0])
            _wait_healthy(f"http://127.0.0.1:{fake_port}/", processes[1])
            session = boto3.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
            )
            s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
            s3.create_bucket(Bucket="bench-audio")
            session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"]).create_table(
                TableName="bench-jobs",
                KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            audio_key = "incoming/bench/recording.wav"
            audio = long_speech_wav(megabytes * 1_000_000 / 32000)
            s3.put_object(Bucket="bench-audio", Key=audio_key, Body=audio)
            size = len(audio)
            del audio
            head = s3.head_object(Bucket="bench-audio", Key=audio_key)
            event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {
                "bucket": {"name": "bench-audio", "arn": "arn:aws:s3:::bench-audio"},
                "object": {"key": audio_key, "size": size, "eTag": head["ETag"].strip('"'),
                           "sequencer": "0A1B2C3D4E5F678901"}}}]}  # fmt: skip
            run = subprocess.run([sys.executable, "-c", INGEST_SCRIPT], cwd=ROOT, env=env, input=json.dumps(event),
                                 capture_output=True, text=True, check=True, timeout=1200)  # fmt: skip
            result = json.loads(run.stdout.strip().splitlines()[-1])
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=10)
    return {
        "object MB": round(size / 1e6, 1),
        "job status": result["status"],
        "ingest wall s": round(result["seconds"], 1),
        "ingest peak RSS MB (whole process)": round(result["peak_rss_kb"] / 1024, 1),
    }


def governance(runs: int = 300) -> dict[str, Any]:
    """Latency one request adds for governance, per store: the limit check (reserve a request, its
    audio seconds and its cost on the key's limits), the settle after the provider answered (the cost
    corrected to the serving target's price), and the usage record written after the response.
    DynamoDB is moto's server on loopback: its numbers are Heimdall's client path plus moto, not AWS
    (in-region, each DynamoDB write is a few ms; the reservation is one conditional write per limit)."""
    import tempfile
    import uuid

    from moto.server import ThreadedMotoServer

    from heimdall.config import parse_config
    from heimdall.governance.dynamodb_store import DynamoDBStore
    from heimdall.governance.limits import Limits
    from heimdall.governance.sqlite_store import SqliteStore
    from heimdall.governance.store import GovernanceStore, UsageRecord
    from tests.support.aws import FAKE_CREDENTIALS, create_governance_table

    config = parse_config({"governance": {
        "virtual_keys": [{"id": "team", "value": "hk-bench-0123456789abcdef", "rate_limit_id": "rl"}],
        "rate_limits": [{"id": "rl", "request_max_limit": 10**9, "request_reset_duration": "1h",
                         "token_max_limit": 10**9, "token_reset_duration": "1d"}],
        "budgets": [{"id": "b", "virtual_key_id": "team", "max_limit": 10**6, "reset_duration": "1M"}],
    }})  # fmt: skip

    def measure(store: GovernanceStore) -> dict[str, Any]:
        limits = Limits(config.governance, store, time.time)
        scope = limits.key_scope("team")
        reserve, settle, record = [], [], []
        for i in range(runs):
            claims = scope.claims(time.time(), seconds=4.2, dollars=0.00042)
            started = time.perf_counter()
            assert limits.reserve(claims) is None
            reserve.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            limits.adjust([claims[-1].by(-0.00001)])
            settle.append((time.perf_counter() - started) * 1e6)
            usage = UsageRecord(time.time(), f"bench-{i}", "team", "/v1/audio/transcriptions", "whisper",
                                "openai", "whisper-1", 4.2, 200, 812.0, 0, 0.00042, False)  # fmt: skip
            started = time.perf_counter()
            store.record(usage, time.time() + 86400)
            record.append((time.perf_counter() - started) * 1e6)
        return {  # microseconds
            "limit_check_us": _median_p90(reserve),
            "settle_us": _median_p90(settle),
            "usage_write_us": _median_p90(record),
        }

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as state:
        for key, value in measure(SqliteStore(Path(state) / "governance.sqlite3")).items():
            results[f"sqlite_{key}"] = value
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in [*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    try:
        table = f"governance-{uuid.uuid4().hex}"
        create_governance_table(table)
        for key, value in measure(DynamoDBStore(table)).items():
            results[f"dynamodb_moto_{key}"] = value
    finally:
        server.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return results


MODEL_LOAD_SCRIPT = """
import json, time
from heimdall.providers.local import MODEL, LocalProvider
from heimdall.providers.local_models import MODELS
provider = LocalProvider(max_audio_seconds=4 * 3600)
wall, cpu = time.perf_counter(), time.process_time()
provider._whisper(MODELS[MODEL])  # what the first transcription does first: import faster-whisper, read tiny.en
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def model_load(runs: int = 3) -> dict[str, Any]:
    """The embedded engine's first load, each in a fresh process (nothing imported or cached yet in
    it): wall clock, and CPU time, which a busy shared machine inflates far less."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", MODEL_LOAD_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=300)  # fmt: skip
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "first model load wall s (median)": round(statistics.median(s["wall"] for s in samples), 2),
        "first model load CPU s (median)": round(statistics.median(s["cpu"] for s in samples), 2),
        "load average (1 min) after": round(os.getloadavg()[0], 2),
    }


def hostile_input() -> dict[str, Any]:
    """Peak RSS the serving process gains, and the time to answer, for bombs, the largest bodies each
    route allows and bodies past the limit (benchmarks/hostile.py)."""
    from benchmarks.hostile import hostile_input as measure

    return measure()


def slow_clients() -> dict[str, Any]:
    """/health latency while 1,100 connections stall, with 1,024 open files (benchmarks/hostile.py)."""
    from benchmarks.hostile import slow_clients as measure

    return measure()


def job_after_death() -> dict[str, Any]:
    """How long a job stays ``running`` once its runner dies, with the deployed lease (30 s): the
    ingest handler (its own process, moto's server, a fake OpenAI whose answer never comes) is
    SIGKILLed just after a heartbeat, on its last attempt, and Lambda's on-failure destination (its
    own process too) is invoked at once; measured until the job reads ``failed``, and until a
    redelivery could have taken the job over (its lease lapsed)."""
    import json
    import tempfile
    import uuid

    sys.path.insert(0, str(ROOT))
    from heimdall.job_table import JobTable
    from heimdall.jobs import LEASE_SECONDS, job_of
    from tests.fakes.base import Fault
    from tests.support.jobs import TABLE, failure_event, finish, job_stack, put, s3_event, start_handler
    from tests.support.servers import wait_until
    from tests.support.upstreams import running_upstreams

    with job_stack() as aws, running_upstreams() as upstreams, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}],
            "network_config": {"base_url": upstreams.urls["openai"], "max_retries": 0,
                               "default_request_timeout_in_seconds": 600}}},
            "client_config": {"default_model": "openai/whisper-1"}}))  # fmt: skip
        env = {**aws, "HEIMDALL_CONFIG": str(config), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        upstreams.fakes["openai"].fail_next(Fault("timeout", seconds=600))
        key = f"incoming/{uuid.uuid4().hex}/meeting.flac"
        event = s3_event(put(key, (AUDIO / "fox.flac").read_bytes()))
        table, job_id = JobTable(TABLE), job_of(key)[0]
        runner = start_handler(event, env=env)
        wait_until(lambda: len(upstreams.fakes["openai"].requests) == 1, timeout=120, what="the provider call")
        beat = (table.get(job_id) or {})["lease_until"]
        wait_until(lambda: (table.get(job_id) or {})["lease_until"] > beat, timeout=60, what="a heartbeat")
        runner.kill()
        runner.wait()
        killed = time.monotonic()
        (marked,) = finish(start_handler(failure_event(event), handler="failure", env=env), timeout=300)["jobs"]
        failed_after = time.monotonic() - killed
    return {
        "lease s": LEASE_SECONDS,
        "job status": marked["status"],
        "running after SIGKILL, to failed s": round(failed_after, 1),
    }


from benchmarks.engine import engine_cold_start, engine_cost, engine_quality  # noqa: E402 - named below
from benchmarks.fanout import fanout  # noqa: E402 - named below

ALL: dict[str, Callable[[], dict[str, Any]]] = {
    "job_after_death": job_after_death,
    "model_load": model_load,
    "hostile_input": hostile_input,
    "slow_clients": slow_clients,
    "engine_cold_start": engine_cold_start,
    "engine_cost": engine_cost,
    "engine_quality": engine_quality,
    "ingest_memory": ingest_memory,
    "first_delta": first_delta,
    "overhead": overhead,
    "cold_start": cold_start,
    "make_run": make_run,
    "local_engine": local_engine,
    "memory": memory,
    "governance": governance,
    "fanout": fanout,
}
