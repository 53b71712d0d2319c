"""Every route reads at most its limit plus one chunk, then answers 413: a body is never buffered
whole before its size is checked — under uvicorn, and through the Lambda handler."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from heimdall.api.app import create_app
from heimdall.config import GatewayConfig
from heimdall.job_table import JobTable
from heimdall.storage import AudioBucket
from tests.support import multipart as mp
from tests.support.lambda_events import LambdaContext, http_v2_event, rest_v1_event
from tests.support.raw_http import address, read_reply, send_until_answered
from tests.support.servers import serve

#: What a route may have read when it answers: its limit, one chunk, and what the loopback sockets
#: buffer on both sides (a few MB at most) — far below what the client is ready to send.
READ_BOUND = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    """A gateway with an audio bucket and job table that are never reached: every body here is refused first."""
    app = create_app(GatewayConfig())
    app.state.bucket, app.state.job_table = AudioBucket("never-reached"), JobTable("never-reached")
    with serve(app) as url:
        yield url


def test_upload_request_over_its_limit_is_refused_while_reading(gateway: str) -> None:
    """POST /v1/uploads carries parameters (64 KB at most): an endless JSON body gets its 413 after
    a bounded read, not after the client gave up."""
    status, envelope, sent = send_until_answered(gateway, "/v1/uploads", "application/json", b'{"filename": "')
    assert status == 413, envelope
    assert envelope["error"]["code"] == "request_too_large"
    assert sent < READ_BOUND


def test_transcription_body_over_its_limit_is_refused_while_reading(gateway: str) -> None:
    head = mp.field("model", "whisper-1") + mp.file_part(b"")[:-2]  # the file part, open
    status, envelope, sent = send_until_answered(gateway, "/v1/audio/transcriptions", mp.CONTENT_TYPE, head)
    assert status == 413, envelope
    assert envelope["error"]["code"] == "request_too_large"
    assert 25 * 1024 * 1024 < sent < 25 * 1024 * 1024 + READ_BOUND


@pytest.mark.parametrize("path", ["/v1/uploads", "/v1/audio/transcriptions"])
def test_declared_length_over_the_limit_is_refused_before_the_body(gateway: str, path: str) -> None:
    """A client announcing 2 GB gets its 413 having sent only the headers."""
    host, port = address(gateway)
    content_type = "application/json" if path == "/v1/uploads" else mp.CONTENT_TYPE
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {2 * 1024**3}\r\n\r\n".encode()
        )
        status, envelope = read_reply(sock)
    assert status == 413
    assert envelope["error"]["code"] == "request_too_large"


def _lambda_reply(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler(event, LambdaContext())
    body = response["body"]
    return response["statusCode"], json.loads(base64.b64decode(body) if response.get("isBase64Encoded") else body)


@pytest.fixture(scope="module")
def lambda_gateway() -> Any:
    from heimdall.api.lambda_adapter import lambda_handler

    app = create_app(GatewayConfig())
    app.state.bucket, app.state.job_table = AudioBucket("never-reached"), JobTable("never-reached")
    return lambda_handler(app)


@pytest.mark.parametrize("encoded", [True, False], ids=["base64 body", "text body"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_upload_request_over_its_limit_through_lambda(lambda_gateway: Any, version: str, encoded: bool) -> None:
    """API Gateway hands the body over inside the event, base64-encoded or as text; either way the
    route pulls it a chunk at a time and stops at its limit with a 413."""
    body = b'{"filename": "a.wav", "prompt": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    build = rest_v1_event if version == "v1" else http_v2_event
    event = build("POST", "/v1/uploads", body=body, content_type="application/json")
    if not encoded:
        event.update(body=body.decode(), isBase64Encoded=False)
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "content-length"}
    status, envelope = _lambda_reply(lambda_gateway, event)
    assert status == 413
    assert envelope["error"]["code"] == "request_too_large"
