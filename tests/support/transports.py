"""Send one raw HTTP request to the gateway either over HTTP (uvicorn) or through the Lambda handler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.lambda_events import (
    LambdaContext,
    http_v2_event,
    response_body,
    response_headers,
    rest_v1_event,
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def over_http(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Reply:
    response = httpx.request(method, f"{base_url}{path}", params=query, content=body, headers=headers, timeout=60)
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)


def via_lambda(
    handler: Any,
    version: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Reply:
    headers = headers or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    build = rest_v1_event if version == "v1" else http_v2_event
    event = build(method, path, body=body, content_type=content_type, query=query)
    response = handler(event, LambdaContext())
    return Reply(response["statusCode"], response_headers(response), response_body(response))
