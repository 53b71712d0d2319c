"""The OpenAPI document describes every transcription route's multipart fields and error envelope."""

from __future__ import annotations

import httpx


def test_openapi_describes_fields_and_errors(gateway_url: str) -> None:
    document = httpx.get(f"{gateway_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    form = schemas["TranscriptionForm"]
    assert form["required"] == ["file"]
    assert {"file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities",
            "stream", "fallbacks", "include", "chunking_strategy"} <= set(form["properties"])  # fmt: skip
    assert set(schemas["ErrorEnvelope"]["properties"]) == {
        "event_id", "type", "is_bifrost_error", "status_code", "error", "extra_fields",
    }  # fmt: skip
    transcription_paths = [p for p in document["paths"] if p.endswith("/audio/transcriptions")]
    assert len(transcription_paths) == 4
    for path in transcription_paths:
        operation = document["paths"][path]["post"]
        assert operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].endswith(
            "/TranscriptionForm"
        )
        for status in ("400", "404", "413", "415", "502", "504"):
            assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorEnvelope"
            )
    azure = document["paths"]["/openai/openai/deployments/{deployment_id}/audio/transcriptions"]["post"]
    assert azure["operationId"] == "azureCreateTranscription"
    assert [p["name"] for p in azure["parameters"]] == ["deployment_id", "api-version"]
