"""stream=true end to end: the openai SDK receives deltas whose concatenation is the done event's
text, from the local engine and from every provider (natively or as one delta); a failure after the
first event is one error event; the Lambda handler returns the same bytes the server streams."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from tests.conftest import LogCapture
from tests.fakes.base import SPOKEN, Fault
from tests.support import multipart as mp
from tests.support.lambda_events import http_v2_event, response_body, response_headers
from tests.support.speech import FILES, wer
from tests.support.upstreams import Upstreams

AUDIO = FILES["fox"].read_bytes()


def collect(stream: Any) -> tuple[list[str], Any]:
    deltas, done = [], None
    for event in stream:
        if event.type == "transcript.text.delta":
            assert done is None
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event
    assert done is not None
    return deltas, done


def parse_sse(body: bytes) -> list[Any]:
    events = []
    for block in body.decode().split("\n\n"):
        if block:
            assert block.startswith("data: ")
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.mark.engine
@pytest.mark.parametrize("client_kind", ["azure", "openai"])
def test_local_engine_streams_through_the_sdk(gateway_url: str, client_kind: str) -> None:
    client: Any = (
        AzureOpenAI(azure_endpoint=f"{gateway_url}/openai", api_key="x", api_version="2024-06-01")
        if client_kind == "azure"
        else OpenAI(base_url=f"{gateway_url}/openai/v1", api_key="x")
    )
    with FILES["story"].open("rb") as audio:
        deltas, done = collect(client.audio.transcriptions.create(model="whisper-1", file=audio, stream=True))
    assert len(deltas) >= 2  # one per decoded segment
    assert "".join(deltas) == done.text
    assert wer("story", done.text) <= 0.35
    assert done.usage.type == "duration"
    assert done.usage.seconds == 26


STREAM_TARGETS = {
    "openai/gpt-4o-transcribe": ("openai", True),
    "azure/gpt-4o-transcribe": ("azure", True),
    "mistral/voxtral-mini-latest": ("mistral", True),
    "openai/whisper-1": ("openai", False),
    "groq/whisper-large-v3": ("groq", False),
    "elevenlabs/scribe_v1": ("elevenlabs", False),
    "deepgram/nova-3": ("deepgram", False),
    "gemini/gemini-2.5-flash": ("gemini", False),
    "openai-compatible/whisper": ("compatible", False),
}


@pytest.mark.parametrize("target", list(STREAM_TARGETS))
def test_every_provider_streams(provider_gateway: str, fakes: Upstreams, target: str) -> None:
    fake_name, native = STREAM_TARGETS[target]
    client = OpenAI(base_url=f"{provider_gateway}/openai/v1", api_key="x", max_retries=0)
    deltas, done = collect(client.audio.transcriptions.create(model=target, file=("fox.flac", AUDIO), stream=True))
    assert "".join(deltas) == done.text == SPOKEN
    assert done.usage is not None
    assert len(deltas) > 1 if native else len(deltas) == 1
    (request,) = fakes.fakes[fake_name].requests
    assert (request.field("stream") == "true") is native


def test_a_failure_before_the_first_event_falls_back(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["openai"].always = Fault("status", 503)
    client = OpenAI(base_url=f"{provider_gateway}/openai/v1", api_key="x", max_retries=0)
    stream = client.audio.transcriptions.create(
        model="openai/gpt-4o-transcribe", file=("fox.flac", AUDIO), stream=True,
        extra_body={"fallbacks": ["mistral/voxtral-mini-latest"]},
    )  # fmt: skip
    _, done = collect(stream)
    assert done.text == SPOKEN
    assert fakes.calls("openai") == 2
    assert fakes.calls("mistral") == 1


def test_a_failure_before_the_first_event_is_an_http_error(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["openai"].always = Fault("status", 503)
    response = httpx.post(
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO)},
        data={"model": "openai/gpt-4o-transcribe", "stream": "true"},
        timeout=30,
    )
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"


def test_a_failure_mid_stream_is_one_error_event(provider_gateway: str, fakes: Upstreams, logs: LogCapture) -> None:
    fakes.fakes["openai"].always = Fault("midstream")
    response = httpx.post(
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO)},
        data={"model": "openai/gpt-4o-transcribe", "stream": "true"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_sse(response.content)
    assert "[DONE]" not in events
    assert [e["type"] for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1)
    error = events[-1]
    assert error["error"]["code"] == "provider_unreachable"
    assert error["status_code"] == 502
    assert error["extra_fields"]["provider"] == "openai"
    line = logs.request(response.headers["x-request-id"])
    assert line["stream_error"] == "provider_unreachable"
    assert any(r["message"] == "stream failed after it started" for r in logs.records(line["event_id"]))

    client = OpenAI(base_url=f"{provider_gateway}/openai/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        collect(
            client.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("f.flac", AUDIO), stream=True)
        )


@pytest.mark.parametrize("response_format", ["srt", "vtt", "verbose_json"])
def test_stream_goes_with_json_or_text(gateway_url: str, response_format: str) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO)},
        data={"model": "whisper-1", "stream": "true", "response_format": response_format},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


@pytest.mark.engine
def test_lambda_handler_returns_the_same_event_stream(gateway_url: str, api_handler: Any, lambda_context: Any) -> None:
    body = mp.body(mp.field("model", "whisper-1"), mp.field("stream", "true"),
                   mp.file_part(AUDIO, filename="fox.flac", content_type="audio/flac"))  # fmt: skip
    over_http = httpx.post(
        f"{gateway_url}/openai/v1/audio/transcriptions",
        content=body,
        headers={"content-type": mp.CONTENT_TYPE},
        timeout=60,  # the engine, on a loaded machine, takes longer than httpx's default 5 s
    )
    event = http_v2_event("POST", "/openai/v1/audio/transcriptions", body=body, content_type=mp.CONTENT_TYPE)
    response = api_handler(event, lambda_context)
    assert response["statusCode"] == 200
    assert response_headers(response)["content-type"].startswith("text/event-stream")
    assert response_body(response) == over_http.content
    events = parse_sse(over_http.content)
    assert events[-1] == "[DONE]"
    assert events[-2]["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in events[:-2]) == events[-2]["text"]
    assert [e["extra_fields"]["chunk_index"] for e in events[:-1]] == list(range(len(events) - 1))
