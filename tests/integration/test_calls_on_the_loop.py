"""A served gateway (``make run``) makes its provider calls on its event loop, so a WAV upload with an
answer of ordinary size needs no worker thread: it is answered while every worker thread is taken (by
slow blocking work elsewhere), and what it answers and logs is what the worker-thread path answers and
logs. (Other formats are counted, and answers over 256 KiB parsed, in a worker thread.) The faults
and wrong shapes of every provider run against both paths (the ``provider_gateway`` fixture)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx
import pytest

from heimdall.api.app import create_app
from tests.conftest import LogCapture
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

OCCUPY = "/test/occupy-every-worker-thread"


@pytest.fixture
def busy_gateway(fakes: Upstreams) -> Iterator[str]:
    """The gateway as ``make run`` serves it, with a path that takes its one worker thread until the
    test ends (the thread limiter cut to one token, and that token held by a blocked call)."""
    app = create_app(fakes.config())
    release = threading.Event()
    held: list[asyncio.Task[Any]] = []  # the task holding the thread, referenced until it ends

    async def occupying(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == OCCUPY:
            limiter = anyio.to_thread.current_default_thread_limiter()
            limiter.total_tokens = 1

            held.append(asyncio.get_running_loop().create_task(anyio.to_thread.run_sync(release.wait)))
            for _ in range(10_000):  # bounded: the task takes the token within a few loop turns
                if limiter.borrowed_tokens == 1:
                    break
                await anyio.lowlevel.checkpoint()
            await send({"type": "http.response.start", "status": 204 if limiter.borrowed_tokens == 1 else 500})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    with serve(occupying) as url:
        try:
            yield url
        finally:
            release.set()


#: Every provider whose call goes on the loop (Gemini's body is built as it is sent: its calls block).
ON_THE_LOOP = [
    "openai/whisper-1",
    "azure/whisper-1",
    "groq/whisper-large-v3",
    "openai-compatible/whisper",
    "mistral/voxtral-mini-latest",
    "elevenlabs/scribe_v1",
    "deepgram/nova-3",
]


@pytest.mark.parametrize("target", ON_THE_LOOP)
def test_calls_are_answered_while_every_worker_thread_is_taken(
    busy_gateway: str, logs: LogCapture, target: str
) -> None:
    assert httpx.post(f"{busy_gateway}{OCCUPY}").status_code == 204
    response = httpx.post(
        f"{busy_gateway}/v1/audio/transcriptions",
        files={"file": ("hello.wav", FILES["hello"].read_bytes(), "audio/wav")},
        data={"model": target, "response_format": "verbose_json"},
        timeout=10,  # a call waiting for a worker thread would wait until the test ends
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"].strip()
    provider = target.partition("/")[0]
    assert response.json()["extra_fields"]["provider"] == provider
    line = logs.request(response.headers["x-request-id"])
    assert (line["provider"], line["status"]) == (provider, 200)
    assert line["audio_seconds"] == pytest.approx(4.2, abs=0.1)  # counted on the loop from the WAV's bytes
