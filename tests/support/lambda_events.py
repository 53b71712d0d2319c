"""API Gateway events for the Lambda handler, built from the committed events/ (the shapes
`sam local generate-event` produces), with a new multipart body and path."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
V1_TEMPLATE = EVENTS / "api-v1-azure-transcription.json"
V2_TEMPLATE = EVENTS / "api-v2-openai-transcription.json"


def load_event(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def rest_v1_event(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    content_type: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(load_event(V1_TEMPLATE))
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    if content_type:
        headers["Content-Type"] = content_type
    event.update(
        httpMethod=method,
        path=path,
        body=base64.b64encode(body).decode() if body else None,
        isBase64Encoded=bool(body),
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
    return event


def http_v2_event(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    content_type: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(load_event(V2_TEMPLATE))
    headers = {k: v for k, v in event["headers"].items() if k not in ("content-type", "content-length")}
    if content_type:
        headers["content-type"] = content_type
    headers["content-length"] = str(len(body))
    event.update(
        rawPath=path,
        rawQueryString=urlencode(query or {}),
        queryStringParameters=query or None,
        headers=headers,
        body=base64.b64encode(body).decode() if body else None,
        isBase64Encoded=bool(body),
    )
    event["requestContext"]["http"].update(method=method, path=path)
    return event


@dataclass
class LambdaContext:
    """The attributes of the context object Lambda passes (what Powertools reads)."""

    function_name: str = "heimdall-ApiFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:heimdall-ApiFunction"
    aws_request_id: str = "5bd8bc5f-bd4f-4c61-8b68-5b5d3f3e0b8a"
    log_group_name: str = "/aws/lambda/heimdall-ApiFunction"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_api_handler() -> Any:
    """functions/api/app.py:handler, imported the way Lambda does (by file, not as a package)."""
    spec = importlib.util.spec_from_file_location("heimdall_api_function", ROOT / "functions/api/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = values[-1]
    return headers
