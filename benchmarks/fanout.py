"""Long audio fanned out (docs/jobs.md): wall time from upload completion to the finished transcript.

The real ingest, piece and piece-failed handlers run in this process, driven as Lambda drives them
(tests/support/fanout.py: the S3 event to the ingest handler, an event source mapping per queue with
the piece function's maximum concurrency W); moto's server (S3, DynamoDB, SQS) and the fake OpenAI
upstream each run in a process of their own. The fake answers a piece in ``OVERHEAD + RTF * its
seconds``: RTF 0.087 is the embedded engine's measured speed (tiny.en, one thread, CPU seconds per
audio second; docs/performance.md), OVERHEAD 0.3 s an assumed per-request cost of a hosted API. So
a run reads as "a provider as fast as the engine image on one vCPU, warm".

``HEIMDALL_BENCH_FANOUT_SECONDS`` (default 7200) is the recording; ``HEIMDALL_BENCH_FANOUT_W1_SECONDS``
(default 1800) the shorter one W = 1 runs (sequentially, 2 h would take 2 h * RTF ≈ 10.5 min).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD = 0.3
RTF = 0.087
FAILING_PIECE = 7


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


@contextmanager
def _process(args: list[str], url: str) -> Any:
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_up(url, process)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run(audio: bytes, seconds: float, workers: int, fault: str | None, aws_env: dict[str, str]) -> dict[str, Any]:
    """One recording through the fanned-out path, with its own fake upstream and queues."""
    import boto3

    from heimdall.job_table import JobTable
    from tests.support.fanout import Fanout, fanout_queues
    from tests.support.jobs import BUCKET, TABLE

    key = "sk-bench-" + uuid.uuid4().hex
    port = _free_port()
    args = ["benchmarks.fake_upstream", str(port), key, str(OVERHEAD), str(RTF), *([fault] if fault else [])]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        stack.enter_context(_process(args, f"http://127.0.0.1:{port}/"))
        config = Path(tmp) / "config.json"
        network = {"base_url": f"http://127.0.0.1:{port}", "max_retries": 1, "retry_backoff_initial": 100,
                   "default_request_timeout_in_seconds": 240}  # fmt: skip
        config.write_text(json.dumps({"providers": {"openai": {"keys": [{"value": key}], "network_config": network}},
                                      "client_config": {"request_budget_seconds": 280}}))  # fmt: skip
        os.environ["HEIMDALL_CONFIG"] = str(config)
        queues = stack.enter_context(fanout_queues(visibility_seconds=1800, above_seconds=60, concurrency=workers))
        os.environ["HEIMDALL_PIECE_RETRY_SECONDS"] = "10"  # the deployed default
        run = Fanout(queues, workers, remaining_ms=300_000)  # the piece function's 300 s
        job_id = uuid.uuid4().hex
        object_key = f"incoming/{job_id}/recording.wav"
        JobTable(TABLE).create(job_id, key=object_key, fields=[["model", "openai/whisper-1"],
                                                                ["response_format", "srt"]])  # fmt: skip
        event = run.upload(object_key, audio)  # the upload is complete when this returns
        uploaded = time.monotonic()
        ended: list[float] = []

        def watch() -> None:
            while time.monotonic() - uploaded < 1800:
                if run.job(job_id).get("status") in ("succeeded", "failed"):
                    ended.append(time.monotonic())
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        with run:
            watcher.start()
            run.deliver_upload(event)
            scattered = time.monotonic()
            watcher.join()
            job = run.job(job_id)
            from tests.support.servers import wait_until

            wait_until(run.settled, timeout=600, interval=0.2, what="the queues to drain")
        os.environ.pop("HEIMDALL_CONFIG", None)
        objects = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"pieces/{job_id}/")["Contents"]
        lengths = [(o["Size"] - 44) / 32000 for o in objects if o["Key"].endswith(".wav")]
    return {
        "audio s": round(seconds),
        "W": workers,
        "pieces": job.get("pieces_total"),
        "piece s (min/mean/max)": f"{min(lengths):.0f}/{sum(lengths) / len(lengths):.0f}/{max(lengths):.0f}",
        "scatter s": round(scattered - uploaded, 1),
        "upload → end s": round(ended[0] - uploaded, 1) if ended else None,
        "status": job.get("status"),
        "pieces done": job.get("pieces_done"),
        "pieces failed": sorted(int(i) for i in job.get("pieces_failed", ())) or None,
        "piece invocations": run.pieces.invocations,
        "failed invocations": run.pieces.failures,
    }


def fanout() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.support.jobs import create_job_resources
    from tests.support.speech import long_speech_wav

    seconds = float(os.environ.get("HEIMDALL_BENCH_FANOUT_SECONDS") or 7200)
    short = float(os.environ.get("HEIMDALL_BENCH_FANOUT_W1_SECONDS") or 1800)
    port = _free_port()
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                   "POWERTOOLS_LOG_LEVEL": "WARNING"}  # fmt: skip
    os.environ.update(credentials)
    results: dict[str, Any] = {"load (uptime) before": os.getloadavg()[0]}
    rows = []
    with _process(["benchmarks.moto_server", str(port)], f"http://127.0.0.1:{port}/moto-api/"):
        os.environ.update(create_job_resources())
        audio = long_speech_wav(seconds)
        for workers, fault in ((100, None), (10, None), (100, f"once:{FAILING_PIECE}"),
                               (100, f"always:{FAILING_PIECE}")):  # fmt: skip
            row = _run(audio, seconds, workers, fault, credentials)
            row["provider fault"] = fault or "none"
            rows.append(row)
            print(f"   ran W={workers} fault={row['provider fault']}: {row['upload → end s']} s", flush=True)
        del audio
        rows.append({**_run(long_speech_wav(short), short, 1, None, credentials), "provider fault": "none"})
    results["load (uptime) after"] = os.getloadavg()[0]
    for row in rows:
        name = f"W={row['W']} {row['audio s']} s fault={row['provider fault']}"
        results[name] = ", ".join(f"{k}: {v}" for k, v in row.items() if k not in ("W", "audio s", "provider fault"))
    results["table"] = _table(rows)
    return results


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ["audio s", "W", "provider fault", "pieces", "piece s (min/mean/max)", "scatter s", "upload → end s",
               "status", "pieces done", "pieces failed", "piece invocations", "failed invocations"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n" + "\n".join(lines)
