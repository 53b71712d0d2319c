"""Uploaded audio is held in memory while the process's budget has room, and in /tmp past it; the
room is given back when the request ends, however it ends — the audio arriving upstream byte for
byte either way."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from heimdall.api.app import create_app
from heimdall.api.multipart import LAMBDA_UPLOAD_MEMORY, SERVER_UPLOAD_MEMORY, UploadMemory
from heimdall.config import GatewayConfig
from tests.support import multipart as mp
from tests.support.raw_http import address, read_reply
from tests.support.servers import serve, wait_until
from tests.support.speech import wav_bytes
from tests.support.upstreams import Upstreams

MiB = 1024 * 1024
BUDGET = 2 * MiB
#: A transcription body up to the first byte of its file part.
HEAD = mp.field("model", "openai/whisper-1") + mp.file_part(b"")[:-2]


@pytest.fixture(scope="module")
def gateway(upstreams: Upstreams) -> Iterator[tuple[str, Any]]:
    app = create_app(upstreams.config(client_config={"max_request_body_size_mb": 4}))
    with serve(app) as url:
        yield url, app


@pytest.fixture
def memory(gateway: tuple[str, Any], fakes: Upstreams) -> Iterator[UploadMemory]:
    """The gateway's budget, made small, and every request's view of it as the provider was called."""
    _, app = gateway
    app.state.upload_memory = UploadMemory(BUDGET)
    yield app.state.upload_memory
    wait_until(lambda: app.state.upload_memory.held == 0, what="every upload's room given back")


def _held_when_called(fakes: Upstreams, memory: UploadMemory) -> list[int]:
    seen: list[int] = []

    def record(_: Any) -> float:
        seen.append(memory.held)
        return 0.0

    fakes.fakes["openai"].latency = record
    return seen


def _transcribe(url: str, audio: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "openai/whisper-1", **fields},
        timeout=30,
    )


def _sent_upstream(fakes: Upstreams) -> str:
    recorded = fakes.fakes["openai"].requests[-1]
    assert recorded.file is not None
    return str(recorded.file["sha256"])


@pytest.mark.parametrize("size", [100_000, MiB + 1, BUDGET])
def test_an_upload_within_the_budget_is_held_in_memory(
    gateway: tuple[str, Any], fakes: Upstreams, memory: UploadMemory, size: int
) -> None:
    url, _ = gateway
    seen = _held_when_called(fakes, memory)
    audio = wav_bytes(size)
    response = _transcribe(url, audio)
    assert response.status_code == 200, response.text
    assert seen == [size]  # in memory as the provider was called
    assert memory.held == 0  # and given back before the answer went out
    assert _sent_upstream(fakes) == hashlib.sha256(audio).hexdigest()


def test_an_upload_past_the_budget_goes_to_tmp_whole(
    gateway: tuple[str, Any], fakes: Upstreams, memory: UploadMemory
) -> None:
    url, _ = gateway
    seen = _held_when_called(fakes, memory)
    audio = wav_bytes(BUDGET + 1)
    response = _transcribe(url, audio)
    assert response.status_code == 200, response.text
    assert seen == [0]  # moved to /tmp, its room given back, before the provider was called
    assert _sent_upstream(fakes) == hashlib.sha256(audio).hexdigest()


def _open_upload(url: str, audio_part: bytes, declared: int) -> socket.socket:
    """A transcription request whose body has arrived up to ``audio_part`` of its file, and no further."""
    host, port = address(url)
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nContent-Type: {mp.CONTENT_TYPE}\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
        + HEAD
        + audio_part
    )
    return sock


def test_the_budget_is_shared_by_the_uploads_in_flight(
    gateway: tuple[str, Any], fakes: Upstreams, memory: UploadMemory
) -> None:
    """An upload arriving while another holds most of the room goes to /tmp; the first keeps
    growing in memory up to the budget; both reach the provider whole."""
    url, _ = gateway
    seen = _held_when_called(fakes, memory)
    first = wav_bytes(int(1.5 * MiB))
    first_head, first_rest = first[: int(1.2 * MiB)], first[int(1.2 * MiB) :]
    tail = b"\r\n" + mp.body()
    declared = len(HEAD) + len(first) + len(tail)
    with _open_upload(url, first_head, declared) as sock:
        wait_until(lambda: memory.held == len(first_head), what="the first upload's bytes held in memory")
        second = wav_bytes(MiB)
        response = _transcribe(url, second)
        assert response.status_code == 200, response.text
        assert seen == [len(first_head)]  # the second went to /tmp: the first's 1.2 MiB alone in memory
        assert _sent_upstream(fakes) == hashlib.sha256(second).hexdigest()
        sock.sendall(first_rest + tail)
        status, envelope = read_reply(sock)
    assert status == 200, envelope
    assert seen[-1] == len(first)  # the first grew in memory to 1.5 MiB once the room was back
    assert _sent_upstream(fakes) == hashlib.sha256(first).hexdigest()


def test_an_upload_cut_off_gives_its_room_back(gateway: tuple[str, Any], memory: UploadMemory) -> None:
    url, _ = gateway
    with _open_upload(url, wav_bytes(MiB), declared=3 * MiB):
        wait_until(lambda: memory.held == MiB, what="the upload's bytes held in memory")
    wait_until(lambda: memory.held == 0, what="the room given back once the client is gone")


def test_an_upload_refused_midway_gives_its_room_back(gateway: tuple[str, Any], memory: UploadMemory) -> None:
    """A malformed body (a part without a name after the audio) and a body over the limit are
    refused after the audio's bytes were taken; neither keeps them."""
    url, _ = gateway
    audio = wav_bytes(MiB)
    malformed = mp.body(mp.field("model", "openai/whisper-1"), mp.file_part(audio), b"--" + mp.BOUNDARY.encode()
                        + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n")  # fmt: skip
    response = httpx.post(
        f"{url}/v1/audio/transcriptions", content=malformed, headers={"content-type": mp.CONTENT_TYPE}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert memory.held == 0
    response = _transcribe(url, wav_bytes(5 * MiB))
    assert response.status_code == 413, response.text
    assert memory.held == 0


def test_a_streamed_transcription_gives_its_room_back_when_the_stream_ends(
    gateway: tuple[str, Any], fakes: Upstreams, memory: UploadMemory
) -> None:
    url, _ = gateway
    seen = _held_when_called(fakes, memory)
    audio = wav_bytes(MiB)
    with httpx.stream(
        "POST",
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "openai/gpt-4o-transcribe", "stream": "true"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:") and "{" in line]
    assert events and seen == [MiB]
    assert memory.held == 0


@pytest.mark.parametrize(
    ("function_name", "limit"), [("heimdall-api", LAMBDA_UPLOAD_MEMORY), (None, SERVER_UPLOAD_MEMORY)]
)
def test_lambda_holds_one_mebibyte_and_a_server_more(
    monkeypatch: pytest.MonkeyPatch, function_name: str | None, limit: int
) -> None:
    """In Lambda an upload past 1 MiB goes to /tmp (the handler's memory stays under the audio's
    size); a server process shares a larger budget among its requests."""
    if function_name is None:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function_name)
    assert create_app(GatewayConfig()).state.upload_memory.limit == limit
