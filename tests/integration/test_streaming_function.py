"""The streaming function's entry (functions/streaming/run.sh, what Lambda Web Adapter starts)
serves the same app, and streams events as they are produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_until
from tests.support.speech import FILES

ROOT = Path(__file__).resolve().parents[2]


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.engine
def test_run_sh_serves_the_app_with_streaming() -> None:
    port = free_port()
    env = {**os.environ, "AWS_LWA_PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("HEIMDALL_CONFIG", None)
    process = subprocess.Popen(["sh", str(ROOT / "functions/streaming/run.sh")], env=env)
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}/health") or process.poll() is not None, what="run.sh")
        assert process.poll() is None
        chunks = []
        with httpx.stream(
            "POST",
            f"http://127.0.0.1:{port}/openai/v1/audio/transcriptions",
            files={"file": ("story.ogg", FILES["story"].read_bytes(), "audio/ogg")},
            data={"model": "whisper-1", "stream": "true"},
            timeout=120,
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_raw():
                chunks.append(chunk)
        body = b"".join(chunks)
        assert body.endswith(b"data: [DONE]\n\n")
        assert body.count(b'"transcript.text.delta"') >= 2
    finally:
        process.terminate()
        process.wait(timeout=10)
