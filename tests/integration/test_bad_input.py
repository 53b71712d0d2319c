"""Every malformed request gets the reference's error envelope with an honest 4xx status,
over HTTP and through the Lambda handler alike: never a 422, a 500 or a stack trace."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import bombs
from tests.support import multipart as mp
from tests.support.speech import FILES
from tests.support.transports import Reply, over_http, via_lambda

WAV = FILES["hello"].read_bytes()
ROUTE = "/openai/v1/audio/transcriptions"
AZURE_ROUTE = "/openai/openai/deployments/whisper-1/audio/transcriptions"


@dataclass(frozen=True)
class Case:
    status: int
    body: bytes = b""
    content_type: str | None = mp.CONTENT_TYPE
    method: str = "POST"
    path: str = ROUTE
    query: dict[str, str] = field(default_factory=dict)
    param: str | None = None
    code: str | None = None
    engine: bool = False  # needs the audio decoded to fail
    message: str | None = None  # a phrase the message must contain


def _with(*fields: bytes, audio: bytes = WAV) -> bytes:
    return mp.body(mp.field("model", "whisper-1"), *fields, mp.file_part(audio))


TRUNCATED = _with(mp.field("response_format", "json"))[:-200]

CASES: dict[str, Case] = {
    "no file": Case(400, mp.body(mp.field("model", "whisper-1")), param="file", code="missing_required_parameter"),
    "empty file": Case(400, _with(audio=b""), param="file", code="empty_file"),
    "non-audio bytes": Case(
        415, _with(audio=b"%PDF-1.7\n" + bytes(range(256)) * 40), param="file", code="unsupported_audio_format"
    ),
    "a text file named .wav": Case(
        415, _with(audio=b"hello, this is not audio\n" * 40), param="file", code="unsupported_audio_format"
    ),
    "corrupt audio behind a valid header": Case(
        400,
        _with(audio=b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 40),
        param="file",
        code="invalid_audio",
        engine=True,
    ),
    "json body": Case(415, b'{"model": "whisper-1", "file": "aGVsbG8="}', content_type="application/json"),
    "form-urlencoded body": Case(415, b"model=whisper-1&file=hello", content_type="application/x-www-form-urlencoded"),
    "no content type": Case(415, b"hello", content_type=None),
    "bad response_format": Case(400, _with(mp.field("response_format", "mp3")), param="response_format"),
    "temperature above 1": Case(400, _with(mp.field("temperature", "1.5")), param="temperature"),
    "temperature not a number": Case(400, _with(mp.field("temperature", "warm")), param="temperature"),
    "temperature nan": Case(400, _with(mp.field("temperature", "nan")), param="temperature"),
    "word granularity with json": Case(
        400, _with(mp.field("timestamp_granularities[]", "word")), param="timestamp_granularities[]"
    ),
    "unknown granularity": Case(
        400,
        _with(mp.field("timestamp_granularities", "sentence"), mp.field("response_format", "verbose_json")),
        param="timestamp_granularities[]",
    ),
    "language not iso 639-1": Case(400, _with(mp.field("language", "english")), param="language"),
    "language the english-only engine lacks": Case(
        400, _with(mp.field("language", "fr")), param="language", code="unsupported_language", message="English-only"
    ),
    "stream not a boolean": Case(400, _with(mp.field("stream", "maybe")), param="stream"),
    "stream=true with subtitles": Case(
        400, _with(mp.field("stream", "true"), mp.field("response_format", "srt")), param="stream"
    ),
    "fallback not provider/model": Case(
        400, _with(mp.field("fallbacks[]", "whisper")), param="fallbacks", code="invalid_fallback"
    ),
    "unknown field": Case(400, _with(mp.field("temprature", "0.2")), param="temprature", code="unknown_parameter"),
    "field given twice": Case(400, _with(mp.field("language", "en"), mp.field("language", "en")), param="language"),
    "no model on the model route": Case(
        400, mp.body(mp.file_part(WAV)), param="model", code="missing_required_parameter"
    ),
    "unconfigured provider": Case(
        404,
        mp.body(mp.field("model", "openai/whisper-1"), mp.file_part(WAV)),
        param="model",
        code="provider_not_configured",
    ),
    "unknown local model": Case(
        404,
        mp.body(mp.field("model", "local/large-v3"), mp.file_part(WAV)),
        param="model",
        code="model_not_found",
    ),
    "two files": Case(
        400,
        mp.body(mp.field("model", "whisper-1"), mp.file_part(WAV), mp.file_part(WAV)),
        param="file",
        code="too_many_files",
    ),
    "file in another field": Case(
        400, mp.body(mp.field("model", "whisper-1"), mp.file_part(WAV, name="audio")), param="audio"
    ),
    "field that is not utf-8": Case(400, _with(mp.field("prompt", b"\xff\xfe\xfa")), param="prompt"),
    "truncated multipart": Case(400, TRUNCATED, code="invalid_multipart"),
    "multipart without boundary": Case(400, _with(), content_type="multipart/form-data", code="invalid_multipart"),
    "multipart with the wrong boundary": Case(
        400, _with(), content_type="multipart/form-data; boundary=other", code="invalid_multipart"
    ),
    "garbage multipart": Case(400, b"this is not multipart at all", code="invalid_multipart"),
    "bad api-version": Case(400, _with(), path=AZURE_ROUTE, query={"api-version": "yesterday"}, param="api-version"),
    "audio longer than the gateway takes": Case(
        413, _with(audio=bombs.flac_silence(5 * 3600)), param="file", code="audio_too_long"
    ),
    "decompression bomb: 10 h of silence, the header claims 1 s": Case(
        413, _with(audio=bombs.flac_silence(10 * 3600, claim=1)), param="file", code="audio_too_long"
    ),
    "unknown path": Case(404, _with(), path="/openai/v1/audio/translations-typo"),
    "wrong method": Case(405, method="GET", content_type=None),
    "wrong method on health": Case(405, method="POST", path="/health", content_type=None),
}


def _check_envelope(reply: Reply, case: Case) -> None:
    assert reply.status == case.status, reply.body[:500]
    assert reply.headers["content-type"] == "application/json"
    envelope = reply.json()
    assert set(envelope) == {"event_id", "type", "is_bifrost_error", "status_code", "error", "extra_fields"}
    assert envelope["status_code"] == case.status
    assert envelope["is_bifrost_error"] is True
    assert envelope["error"]["event_id"] == envelope["event_id"] == reply.headers["x-request-id"]
    assert envelope["error"]["type"] == envelope["type"]
    assert envelope["extra_fields"]["request_type"] == "transcription"
    assert envelope["error"]["message"] and "Traceback" not in envelope["error"]["message"]
    if case.param is not None:
        assert envelope["error"]["param"] == case.param
    if case.code is not None:
        assert envelope["error"]["code"] == case.code
    if case.message is not None:
        assert case.message in envelope["error"]["message"]
    if case.status == 405:
        assert reply.headers["allow"]


def _send(transport: str, case: Case, gateway_url: str, api_handler: Any) -> Reply:
    headers = {"content-type": case.content_type} if case.content_type else {}
    if transport == "http":
        return over_http(gateway_url, case.method, case.path, body=case.body, headers=headers, query=case.query)
    return via_lambda(api_handler, transport, case.method, case.path, body=case.body, headers=headers, query=case.query)


@pytest.mark.parametrize("transport", ["http", "v1", "v2"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_the_envelope(name: str, transport: str, gateway_url: str, api_handler: Any) -> None:
    _check_envelope(_send(transport, CASES[name], gateway_url, api_handler), CASES[name])


def test_oversized_body_is_refused_before_it_is_read(gateway_url: str) -> None:
    """A client announcing 26 MB gets its 413 after sending only the headers and a few bytes."""
    host, port = gateway_url.removeprefix("http://").split(":")
    head = (
        f"POST {ROUTE} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {mp.CONTENT_TYPE}\r\n"
        f"Content-Length: {26 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b"--" + mp.BOUNDARY.encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    envelope = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert envelope["error"]["code"] == "request_too_large"
