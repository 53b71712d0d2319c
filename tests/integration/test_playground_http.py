"""The playground over HTTP and through the Lambda handler (its browser tests are in test_playground.py):
the page's headers and size, /health's auth flag, and POST /playground/render — the downloads, rendered by
the code the API renders with; hostile bodies get the error envelope (never a 500); a keyed gateway wants
its key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from heimdall.api.app import create_app
from heimdall.config import GatewayConfig, parse_config
from tests.support.lambda_events import LambdaContext, http_v2_event, response_body, response_headers, rest_v1_event
from tests.support.servers import serve

SEGMENTS = [
    {"id": 0, "start": 0.0, "end": 1.2345, "text": " Hello there."},
    {"id": 1, "start": 1.5, "end": 3.0005, "text": "   "},  # blank cues are dropped, as the API drops them
    {"id": 7, "start": 3.25, "end": 3661.5, "text": " Second line. "},
]


def render(url: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/playground/render", json=body, headers=headers, timeout=30)


def test_text_srt_and_vtt_of_the_segments(gateway_url: str) -> None:
    rendered = render(gateway_url, {"text": " Hello there. Second line.", "segments": SEGMENTS}).json()
    assert rendered["text"] == "Hello there. Second line.\n"
    assert rendered["srt"] == (
        "1\n00:00:00,000 --> 00:00:01,234\nHello there.\n\n2\n00:00:03,250 --> 01:01:01,500\nSecond line.\n\n"
    )  # 1.2345 s is 1234.4999… ms in binary floating point: rounded, as the API rounds it
    assert rendered["vtt"] == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nHello there.\n\n00:00:03.250 --> 01:01:01.500\nSecond line.\n\n"
    )


def test_without_segments_there_are_no_subtitles(gateway_url: str) -> None:
    rendered = render(gateway_url, {"text": "Only text."}).json()
    assert rendered == {"text": "Only text.\n", "srt": None, "vtt": None}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"segments": []}, "text"),
        ({"text": 3}, "text"),
        ({"text": "", "segments": [{"start": -1, "end": 1, "text": "x"}]}, "segments.0.start"),
        ({"text": "", "segments": [{"start": 0, "end": 1e300, "text": "x"}]}, "segments.0.end"),
        ({"text": "", "segments": [{"start": 0, "text": "x"}]}, "segments.0.end"),
        ({"text": "", "segments": {"start": 0}}, "segments"),
        ([1, 2], ""),
    ],
)
def test_a_bad_transcript_is_a_400_naming_the_field(gateway_url: str, body: object, param: str) -> None:
    response = render(gateway_url, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == (param or "body")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"text": "", "segments": [{"start": NaN, "end": 1, "text": "x"}]}',
        b'{"text": "", "segments": [{"start": Infinity, "end": 1, "text": "x"}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": "\xff\xfe"}',
        b"",
    ],
    ids=["nan", "infinity", "deep", "not-utf8", "empty"],
)
def test_hostile_json_is_refused_with_a_400(gateway_url: str, raw: bytes) -> None:
    response = httpx.post(
        f"{gateway_url}/playground/render", content=raw, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["is_bifrost_error"] is True


def test_not_json_is_a_415(gateway_url: str) -> None:
    response = httpx.post(f"{gateway_url}/playground/render", content=b"text=x", timeout=30)
    assert response.status_code == 415


def test_a_body_over_the_limit_is_refused_while_reading(gateway_url: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds as the body streams in
        yield b'{"text": "'
        for _ in range(5 * 1024):
            yield b"x" * 1024

    response = httpx.post(
        f"{gateway_url}/playground/render", content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 413


def test_a_keyed_gateway_wants_the_key() -> None:
    key = "hk-render-key-0123456789"
    config = parse_config({"governance": {"virtual_keys": [{"id": "team", "value": key, "allowed_models": ["*"]}]}})
    body = {"text": "Hi.", "segments": [{"start": 0, "end": 1, "text": "Hi."}]}
    with serve(create_app(config)) as url:
        assert render(url, body).status_code == 401
        assert render(url, body, authorization="Bearer hk-wrong").json()["error"]["code"] == "invalid_api_key"
        answer = render(url, body, authorization=f"Bearer {key}")
    assert answer.status_code == 200
    assert json.loads(answer.text)["srt"] == "1\n00:00:00,000 --> 00:00:01,000\nHi.\n\n"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_lambda_handler_serves_the_page_as_the_server_does(
    version: str, api_handler: Any, lambda_context: LambdaContext, gateway_url: str
) -> None:
    build = rest_v1_event if version == "v1" else http_v2_event
    for path in ("/", "/playground", "/playground/playground.css", "/playground/playground.js"):
        response = api_handler(build("GET", path), lambda_context)
        served = httpx.get(gateway_url + path)
        assert response["statusCode"] == 200
        assert response_body(response) == served.content
        headers = response_headers(response)
        assert headers["content-type"] == served.headers["content-type"]
        assert headers.get("content-security-policy") == served.headers.get("content-security-policy")
    health = json.loads(response_body(api_handler(build("GET", "/health"), lambda_context)))
    assert health["max_direct_bytes"] == 4 * 1024 * 1024  # API Gateway's payload cap, not the config's 25 MB


def test_the_page_and_its_assets_are_small(gateway_url: str) -> None:
    sizes = {
        path: len(httpx.get(gateway_url + path).content)
        for path in ("/playground", "/playground/playground.css", "/playground/playground.js")
    }
    assert sum(sizes.values()) < 100 * 1024, sizes


def test_the_page_allows_only_its_own_origin(gateway_url: str) -> None:
    page_response = httpx.get(f"{gateway_url}/playground")
    assert page_response.headers["content-type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in page_response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["media-src"] == "'self' blob: data:"
    assert httpx.get(f"{gateway_url}/playground/../health").status_code == 200  # normalised by the client
    assert httpx.get(f"{gateway_url}/playground/playground.py").status_code == 404
    assert httpx.get(f"{gateway_url}/playground/%2e%2e%2fapp.py").status_code == 404


def test_health_says_whether_a_key_is_needed_without_any_secret() -> None:
    secret = "hk-secret-value-0123456789"
    keyed = parse_config({"governance": {"virtual_keys": [{"id": "team", "value": secret, "allowed_models": ["*"]}]}})
    with serve(create_app(keyed)) as gateway:
        response = httpx.get(f"{gateway}/health")
    assert response.json()["auth_required"] is True
    assert secret not in response.text and "team" not in response.text
    with serve(create_app(GatewayConfig())) as gateway:
        health = httpx.get(f"{gateway}/health").json()
    assert health["auth_required"] is False
    assert health["uploads"] is False
    assert health["max_direct_bytes"] == 25 * 1024 * 1024
