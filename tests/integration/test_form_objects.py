"""Object-valued parameters and the audio's format, as clients really send them, and as attackers do.

- ``chunking_strategy`` arrives as a JSON string, or as the bracketed fields the openai SDKs send
  (``chunking_strategy[type]``, ``chunking_strategy[threshold]``…); the provider gets one canonical
  JSON value either way.
- JSON from a client (that field, the ``/v1/uploads`` body) is bounded in size and depth: 60 000
  ``[`` is a 400, never a RecursionError and a 500.
- Bifrost's ``file_format`` names the audio's format when the filename does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from heimdall.api.app import create_app
from heimdall.config import GatewayConfig
from tests.support import multipart as mp
from tests.support.jobs import job_stack
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.transports import Reply, over_http, via_lambda
from tests.support.upstreams import Upstreams

AUDIO = FILES["hello"].read_bytes()
DEEP = "[" * 60_000
#: JSON an attacker sends where an object is expected: deep, wide, long, and not JSON at all.
HOSTILE_JSON = {
    "60 000 [": DEEP,
    "60 000 {": '{"a":' * 12_000,
    "deep but short": '{"type": "server_vad", "x": [[[[[[[[1]]]]]]]]}',
    "an object inside the object": '{"type": "server_vad", "threshold": {"value": 0.5}}',
    "longer than 1 KiB": json.dumps({"type": "server_vad", "pad": "x" * 2000}),
    "NaN": '{"type": "server_vad", "threshold": NaN}',
    "lone surrogate": '{"type": "server_vad\\ud800"}',
    "unknown member": '{"type": "server_vad", "callback": "https://evil.example"}',
    "threshold out of range": '{"type": "server_vad", "threshold": 7}',
    "a list": '[{"type": "server_vad"}]',
    "not JSON": "{type: server_vad}",
}


def _form(*fields: tuple[str, str], model: str = "whisper-1") -> bytes:
    return mp.body(mp.field("model", model), *(mp.field(k, v) for k, v in fields), mp.file_part(AUDIO))


def _post(
    transport: str, body: bytes, gateway_url: str, api_handler: Any, path: str = "/openai/v1/audio/transcriptions"
) -> Reply:
    headers = {"content-type": mp.CONTENT_TYPE}
    if transport == "http":
        return over_http(gateway_url, "POST", path, body=body, headers=headers)
    return via_lambda(api_handler, transport, "POST", path, body=body, headers=headers)


@pytest.mark.parametrize("transport", ["http", "v1", "v2"])
@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_hostile_chunking_strategy_json_is_a_400(case: str, transport: str, gateway_url: str, api_handler: Any) -> None:
    reply = _post(transport, _form(("chunking_strategy", HOSTILE_JSON[case])), gateway_url, api_handler)
    assert reply.status == 400, reply.body[:300]
    error = reply.json()["error"]
    assert error["param"] == "chunking_strategy"
    assert error["code"] == "invalid_value"
    assert "Traceback" not in reply.body.decode()


@pytest.mark.parametrize(
    "fields",
    [
        [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[callback]", "https://evil.example")],
        [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "nan")],
        [("chunking_strategy[type]", "auto")],
        [("chunking_strategy[threshold]", "0.5")],
        [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[type]", "server_vad")],
        [("chunking_strategy", "auto"), ("chunking_strategy[type]", "server_vad")],
        [("chunking_strategy[type][x]", "server_vad")],
    ],
    ids=["unknown member", "nan", "auto as a member", "no type", "member twice", "both forms", "nested brackets"],
)
def test_bad_bracketed_chunking_strategy_is_a_400(fields: list[tuple[str, str]], gateway_url: str) -> None:
    reply = _post("http", _form(*fields), gateway_url, None)
    assert reply.status == 400, reply.body[:300]
    assert reply.json()["error"]["param"].startswith("chunking_strategy")


def test_the_openai_sdks_bracketed_chunking_strategy_reaches_openai_as_one_json_value(
    provider_gateway: str, fakes: Upstreams
) -> None:
    client = openai.OpenAI(base_url=f"{provider_gateway}/openai/v1", api_key="unused", max_retries=0)
    strategy = {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 250, "silence_duration_ms": 600}
    result = client.audio.transcriptions.create(
        model="openai/gpt-4o-transcribe", file=("hello.wav", AUDIO, "audio/wav"), chunking_strategy=strategy
    )
    assert result.text
    (sent,) = fakes.fakes["openai"].requests
    assert json.loads(sent.field("chunking_strategy") or "") == strategy
    assert not [name for name, _ in sent.fields if name.startswith("chunking_strategy[")]


def test_bracketed_and_json_forms_are_the_same_request(provider_gateway: str, fakes: Upstreams) -> None:
    bracketed = [("chunking_strategy[type]", "server_vad"), ("chunking_strategy[threshold]", "0.5")]
    as_json = [("chunking_strategy", '{"threshold": 0.5, "type": "server_vad"}')]
    sent = []
    for fields in (bracketed, as_json):
        fakes.reset()
        reply = _post("http", _form(*fields, model="openai/whisper-1"), provider_gateway, None)
        assert reply.status == 200, reply.body[:300]
        (request,) = fakes.fakes["openai"].requests
        sent.append(request.field("chunking_strategy"))
    assert sent[0] == sent[1] == '{"type":"server_vad","threshold":0.5}'


@pytest.mark.parametrize(
    ("filename", "content_type", "file_format", "sent_name", "sent_type"),
    [
        ("blob", "application/octet-stream", "wav", "blob.wav", "audio/wav"),
        ("recording", "audio/wav", "mp3", "recording.mp3", "audio/wav"),  # the client's type stands
        ("hello.wav", "application/octet-stream", "flac", "hello.wav", "audio/flac"),  # its name says it
        ("voice.note", "application/octet-stream", ".OGG", "voice.note.ogg", "audio/ogg"),
    ],
)
def test_file_format_names_the_audio_when_the_filename_does_not(
    provider_gateway: str,
    fakes: Upstreams,
    filename: str,
    content_type: str,
    file_format: str,
    sent_name: str,
    sent_type: str,
) -> None:
    for model, fake in (("openai/whisper-1", "openai"), ("deepgram/nova-3", "deepgram")):
        response = httpx.post(
            f"{provider_gateway}/v1/audio/transcriptions",
            files={"file": (filename, AUDIO, content_type)},
            data={"model": model, "file_format": file_format},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        (sent,) = fakes.fakes[fake].requests
        assert sent.file is not None
        # Deepgram's body is the raw audio: it is sent the type of the container the bytes are (a WAV)
        assert sent.file["content_type"] == (sent_type if fake == "openai" else "audio/wav")
        if fake == "openai":
            assert sent.file["filename"] == sent_name
            assert sent.field("file_format") is None  # Heimdall's to use, not OpenAI's
        fakes.reset()


def test_an_unknown_file_format_is_a_400(gateway_url: str) -> None:
    reply = _post("http", _form(("file_format", "exe")), gateway_url, None)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "file_format"


@pytest.fixture(scope="module")
def uploads_gateway() -> Iterator[str]:
    """A keyless gateway with an audio bucket and job table on moto's server."""
    with job_stack(), serve(create_app(GatewayConfig())) as url:
        yield url


@pytest.mark.parametrize(
    "body",
    [
        DEEP.encode(),
        b'{"filename": "a.wav", "model": "whisper-1", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        b'{"filename": "a.wav", "model": "whisper-1", "chunking_strategy": {"type": {"a": [[1]]}}}',
        b'{"filename": "a.wav", "temperature": NaN}',
    ],
    ids=["60 000 [", "deep inside the object", "an object too deep", "NaN"],
)
def test_a_hostile_uploads_body_is_a_400(uploads_gateway: str, body: bytes) -> None:
    response = httpx.post(
        f"{uploads_gateway}/v1/uploads", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_value")


def test_uploads_take_file_format_and_the_chunking_strategy_object(uploads_gateway: str) -> None:
    response = httpx.post(
        f"{uploads_gateway}/v1/uploads",
        json={"filename": "memo", "model": "whisper-1", "file_format": "m4a",
              "chunking_strategy": {"type": "server_vad", "threshold": 0.5}},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["upload"]["fields"]["key"] == f"incoming/{job['job_id']}/memo.m4a"


def test_job_ids_that_are_not_heimdalls_are_404_without_a_lookup(uploads_gateway: str) -> None:
    for job_id in ("..", ".", "%2E%2E", "0" * 31 + "g", "A" * 32, "x" * 64):
        response = httpx.get(f"{uploads_gateway}/v1/transcriptions/{job_id}", timeout=30)
        assert response.status_code == 404, (job_id, response.text)
        assert response.json()["error"]["code"] in ("job_not_found", "not_found")
