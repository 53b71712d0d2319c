"""One structured log line per request: correlation id, route, provider, model, status, latency,
audio bytes; never the audio, never a key."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import LogCapture
from tests.support import multipart as mp
from tests.support.speech import FILES
from tests.support.transports import via_lambda

SECRET = "sk-heimdall-test-secret-0123456789"


@pytest.mark.engine
def test_a_transcription_logs_one_line_with_its_facts(gateway_url: str, logs: LogCapture) -> None:
    audio = FILES["hello"].read_bytes()
    response = httpx.post(
        f"{gateway_url}/openai/openai/deployments/whisper-1/audio/transcriptions",
        params={"api-version": "2024-06-01"},
        headers={"api-key": SECRET, "authorization": f"Bearer {SECRET}"},
        files={"file": ("hello.wav", audio, "audio/wav")},
        data={"response_format": "text"},
        timeout=60,
    )
    assert response.status_code == 200
    line = logs.request(response.headers["x-request-id"])
    assert line["route"].startswith("/openai/openai/deployments/")
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["provider"] == "local"
    assert line["model"] == "whisper-1"
    assert line["model_deployment"] == "tiny.en"
    assert line["audio_bytes"] == len(audio)
    assert line["latency_ms"] > 0
    assert line["service"] == "heimdall"
    assert SECRET not in "\n".join(logs.lines)


def test_an_error_logs_its_status_and_code(gateway_url: str, logs: LogCapture) -> None:
    response = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        headers={"x-api-key": SECRET},
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
        data={"model": "whisper-1", "temperature": "9"},
        timeout=10,
    )
    assert response.status_code == 400
    line = logs.request(response.json()["event_id"])
    assert line["event_id"] == response.headers["x-request-id"]
    assert line["status"] == 400
    assert line["error_code"] == "invalid_value"
    assert SECRET not in "\n".join(logs.lines)


def test_lambda_log_line_carries_the_api_gateway_request_id_and_lambda_context(
    api_handler: Any, logs: LogCapture
) -> None:
    body = mp.body(mp.field("model", "whisper-1"))
    reply = via_lambda(
        api_handler,
        "v2",
        "POST",
        "/v1/audio/transcriptions",
        body=body,
        headers={"content-type": mp.CONTENT_TYPE},
    )
    assert reply.status == 400
    line = logs.request("JKJaXmPLvHcESHA=")  # API Gateway's request id from the event
    assert json.loads(reply.body)["event_id"] == "JKJaXmPLvHcESHA="
    assert line["function_name"] == "heimdall-ApiFunction"
    assert line["cold_start"] in (True, False)


def test_lambda_invocations_emit_cloudwatch_metrics(
    api_handler: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    body = mp.body(mp.field("model", "whisper-1"), mp.field("temperature", "9"), mp.file_part(b"RIFF"))
    reply = via_lambda(api_handler, "v1", "POST", "/v1/audio/transcriptions", body=body,
                       headers={"content-type": mp.CONTENT_TYPE})  # fmt: skip
    assert reply.status == 400
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    request_metrics = [m for m in emitted if "Requests" in m]
    assert len(request_metrics) == 1
    (metric,) = request_metrics
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Heimdall"
    names = {d["Name"] for d in metric["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Requests", "Latency", "ClientErrors"} <= names
    assert metric["Requests"] in (1.0, [1.0])
