"""The OpenAPI document describes every transcription route's multipart fields and error envelope;
its browser view works without a network."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.transports import over_http, via_lambda


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


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("transport", ["http", "lambda"])
def test_docs_page_and_every_file_it_loads_come_from_the_gateway(
    gateway_url: str, api_handler: Any, transport: str
) -> None:
    """/docs works offline: no CDN; the page, Swagger UI's script and style, and the OpenAPI document
    it renders are all served by the gateway, through uvicorn and through the Lambda handler."""
    fetch = (lambda path: over_http(gateway_url, "GET", path)) if transport == "http" else (
        lambda path: via_lambda(api_handler, "v2", "GET", path))  # fmt: skip
    page = fetch("/docs")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assert "cdn" not in html.lower()
    parser = _Assets()
    parser.feed(html)
    openapi_url = re.search(r"url: '([^']+)'", html)
    assert openapi_url is not None
    urls = [*parser.urls, openapi_url.group(1)]
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls)
    assert any(u.endswith("swagger-ui.css") for u in urls)
    for url in urls:
        assert urlsplit(url).netloc == "" and url.startswith("/"), url  # this gateway, never another host
        asset = fetch(url)
        assert asset.status == 200, url
        assert len(asset.body) > 100, url
    script = fetch("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in script.body
