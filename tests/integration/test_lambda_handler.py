"""functions/api/app.py:handler behind API Gateway: the committed events, and the same requests
as over HTTP, through REST (v1) and HTTP API (v2) proxy events with base64 multipart bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support import multipart
from tests.support.lambda_events import (
    EVENTS,
    LambdaContext,
    http_v2_event,
    load_event,
    response_body,
    response_headers,
    rest_v1_event,
)
from tests.support.speech import FILES, wer

pytestmark = pytest.mark.engine

EVENT_BUILDERS = {"v1": rest_v1_event, "v2": http_v2_event}
AZURE_PATH = "/openai/openai/deployments/whisper-1/audio/transcriptions"


def _without_latency(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "extra_fields": {k: v for k, v in body["extra_fields"].items() if k != "latency"}}


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("api-*.json")))
def test_committed_events_transcribe(name: str, api_handler: Any, lambda_context: LambdaContext) -> None:
    response = api_handler(load_event(EVENTS / name), lambda_context)
    assert response["statusCode"] == 200
    assert response_headers(response)["content-type"] == "application/json"
    body = json.loads(response_body(response))
    assert wer("hello", body["text"]) <= 0.35
    assert body["extra_fields"]["provider"] == "local"
    assert body["extra_fields"]["model_requested"] == "whisper-1"


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("response_format", ["json", "text", "srt", "verbose_json", "vtt"])
def test_handler_answers_as_the_server_does(
    version: str, response_format: str, api_handler: Any, lambda_context: LambdaContext, gateway_url: str
) -> None:
    audio = FILES["fox"].read_bytes()
    fields = [multipart.field("response_format", response_format)]
    if response_format == "verbose_json":
        fields.append(multipart.field("timestamp_granularities[]", "word"))
    body = multipart.body(*fields, multipart.file_part(audio, filename="fox.flac", content_type="audio/flac"))
    query = {"api-version": "2024-06-01"}

    over_http = httpx.post(
        f"{gateway_url}{AZURE_PATH}",
        params=query,
        content=body,
        headers={"content-type": multipart.CONTENT_TYPE},
        timeout=60,
    )
    event = EVENT_BUILDERS[version]("POST", AZURE_PATH, body=body, content_type=multipart.CONTENT_TYPE, query=query)
    via_lambda = api_handler(event, lambda_context)

    assert over_http.status_code == via_lambda["statusCode"] == 200
    lambda_headers = response_headers(via_lambda)
    assert lambda_headers["content-type"] == over_http.headers["content-type"]
    if response_format in ("json", "verbose_json"):
        assert _without_latency(json.loads(response_body(via_lambda))) == _without_latency(over_http.json())
    else:
        assert lambda_headers["content-type"].startswith("text/plain")
        assert response_body(via_lambda).decode() == over_http.text
    assert lambda_headers["x-request-id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_handler_errors_carry_the_envelope_and_the_api_gateway_request_id(
    version: str, api_handler: Any, lambda_context: LambdaContext
) -> None:
    body = multipart.body(multipart.field("temperature", "warm"), multipart.file_part(FILES["hello"].read_bytes()))
    event = EVENT_BUILDERS[version](
        "POST", "/openai/v1/audio/transcriptions", body=body, content_type=multipart.CONTENT_TYPE
    )
    response = api_handler(event, lambda_context)
    assert response["statusCode"] == 400
    envelope = json.loads(response_body(response))
    assert envelope["event_id"] == event["requestContext"]["requestId"]
    assert envelope["error"]["param"] == "temperature"
    assert envelope["is_bifrost_error"] is True


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_handler_serves_health(version: str, api_handler: Any, lambda_context: LambdaContext) -> None:
    response = api_handler(EVENT_BUILDERS[version]("GET", "/health"), lambda_context)
    assert response["statusCode"] == 200
    assert json.loads(response_body(response))["status"] == "ok"
