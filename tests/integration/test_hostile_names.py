"""Client text in model and deployment names never reaches an upstream URL or a response header
raw: every hostile name is a 400 ``invalid_model`` before authorization, routing or any upstream
call, on every route and through the Lambda handler; unusual but well-formed names reach their
provider as exactly one path segment or field value, and come back in ``x-heimdall-model`` intact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from heimdall.api.app import create_app
from tests.fixtures.hostile_names import HOSTILE_NAMES, UNUSUAL_VALID_NAMES
from tests.support import multipart as mp
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.transports import Reply, over_http, via_lambda
from tests.support.upstreams import Upstreams

AUDIO = FILES["hello"].read_bytes()
KEY = "hk-azure-team-0123456789abcdef"
DEPLOYMENT_ROUTE = "/openai/openai/deployments/{}/audio/transcriptions"


@pytest.fixture(scope="module")
def guarded(upstreams: Upstreams) -> Iterator[str]:
    """Every provider's fake behind a gateway key that may use anything under azure/, openai/, …"""
    patterns = ["azure/*", "openai/*", "gemini/*", "deepgram/*", "elevenlabs/*", "openai-compatible/*", "whisper"]
    config = upstreams.config(governance={"virtual_keys": [{"id": "team", "value": KEY, "allowed_models": patterns}]})
    with serve(create_app(config)) as url:
        yield url


def _form(model_field: str | None = None, **fields: str) -> bytes:
    parts = [mp.field(name, value) for name, value in fields.items()]
    if model_field is not None:
        parts.insert(0, mp.field("model", model_field))
    return mp.body(*parts, mp.file_part(AUDIO))


def _assert_refused(reply: Reply, param: str) -> None:
    assert reply.status == 400, reply.body[:300]
    body = reply.json()
    assert body["error"]["code"] == "invalid_model"
    assert body["error"]["param"] == param
    assert body["is_bifrost_error"] is True
    for name, value in reply.headers.items():  # nothing of the name is echoed into a header
        assert value.isascii() and value.isprintable(), (name, value)


def _nothing_sent(fakes: Upstreams) -> None:
    sent = {name: len(fake.requests) for name, fake in fakes.fakes.items() if fake.requests}
    assert sent == {}, sent


def test_the_probe_path_walk_is_refused_before_any_upstream_call(guarded: str, fakes: Upstreams) -> None:
    """A key allowed azure/* once sent Azure's api-key to /management/keys?x=1."""
    reply = over_http(
        guarded,
        "POST",
        "/v1/audio/transcriptions",
        body=_form("azure/../../../management/keys?x=1#"),
        headers={"content-type": mp.CONTENT_TYPE, "api-key": KEY},
    )
    _assert_refused(reply, "model")
    _nothing_sent(fakes)


def test_the_probe_deployment_path_is_refused_before_any_upstream_call(guarded: str, fakes: Upstreams) -> None:
    reply = over_http(
        guarded,
        "POST",
        DEPLOYMENT_ROUTE.format("azure%2F..%2F..%2Fescaped%3Fx%3D1%23"),
        body=_form(),
        headers={"content-type": mp.CONTENT_TYPE, "api-key": KEY},
        query={"api-version": "2024-06-01"},
    )
    _assert_refused(reply, "deployment-id")
    _nothing_sent(fakes)


@pytest.mark.parametrize("form", ["model", "fallback", "deployment path"])
@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_every_hostile_name_is_refused_on_every_route(guarded: str, fakes: Upstreams, case: str, form: str) -> None:
    name = HOSTILE_NAMES[case]
    headers = {"content-type": mp.CONTENT_TYPE, "api-key": KEY}
    if form == "model":
        reply = over_http(guarded, "POST", "/openai/v1/audio/transcriptions", body=_form(name), headers=headers)
    elif form == "fallback":
        body = _form("openai/whisper-1", **{"fallbacks[]": name})
        reply = over_http(guarded, "POST", "/v1/audio/transcriptions", body=body, headers=headers)
    else:
        path = DEPLOYMENT_ROUTE.format(quote(name, safe=""))
        reply = over_http(guarded, "POST", path, body=_form(), headers=headers, query={"api-version": "2024-06-01"})
    _assert_refused(reply, {"model": "model", "fallback": "fallbacks[]", "deployment path": "deployment-id"}[form])
    _nothing_sent(fakes)


@pytest.mark.parametrize("transport", ["v1", "v2"])
@pytest.mark.parametrize(
    "case", ["dot-dot path walk with query and fragment", "percent-escaped slash and dots", "snowman (not Latin-1)"]
)
def test_hostile_names_are_refused_through_the_lambda_handler(api_handler: Any, case: str, transport: str) -> None:
    name = HOSTILE_NAMES[case]
    headers = {"content-type": mp.CONTENT_TYPE}
    path = DEPLOYMENT_ROUTE.format(quote(name, safe=""))
    reply = via_lambda(api_handler, transport, "POST", path, body=_form(), headers=headers)
    _assert_refused(reply, "deployment-id")
    reply = via_lambda(api_handler, transport, "POST", "/v1/audio/transcriptions", body=_form(name), headers=headers)
    _assert_refused(reply, "model")


@pytest.mark.parametrize(
    "case", ["snowman (not Latin-1)", "CR LF header injection", "LF alone", "NUL byte", "Latin-1 letter"]
)
def test_a_name_that_cannot_be_a_header_value_is_a_400_not_a_500_or_a_dropped_connection(
    guarded: str, fakes: Upstreams, case: str
) -> None:
    """x-heimdall-model once carried the client's text: a 500 for '☃', no response at all for CR/LF."""
    reply = over_http(
        guarded,
        "POST",
        "/v1/audio/transcriptions",
        body=_form(HOSTILE_NAMES[case], response_format="text"),
        headers={"content-type": mp.CONTENT_TYPE, "api-key": KEY},
    )
    _assert_refused(reply, "model")
    _nothing_sent(fakes)


EXPECTED_PATH = {
    "gemini": lambda model: f"/v1beta/models/{quote(model, safe='')}:generateContent",
    "azure": lambda model: f"/openai/deployments/{quote(model, safe='')}/audio/transcriptions",
    "deepgram": lambda model: "/v1/listen",
    "elevenlabs": lambda model: "/v1/speech-to-text",
    "openai-compatible": lambda model: "/v1/audio/transcriptions",
}


@pytest.mark.parametrize("deployment_in_path", [False, True], ids=["form", "path"])
@pytest.mark.parametrize("case", list(UNUSUAL_VALID_NAMES))
def test_unusual_valid_names_reach_the_provider_as_one_segment_and_come_back_intact(
    guarded: str, fakes: Upstreams, case: str, deployment_in_path: bool
) -> None:
    name = UNUSUAL_VALID_NAMES[case]
    provider, _, model = name.partition("/")
    headers = {"content-type": mp.CONTENT_TYPE, "api-key": KEY}
    if deployment_in_path:
        path, body = DEPLOYMENT_ROUTE.format(quote(name, safe="")), _form(response_format="text")
    else:
        path, body = "/v1/audio/transcriptions", _form(name, response_format="text")
    reply = over_http(guarded, "POST", path, body=body, headers=headers, query={"api-version": "2024-06-01"})
    fake = fakes.fakes["compatible" if provider == "openai-compatible" else provider]
    assert len(fake.requests) == 1, reply.body[:300]
    (sent,) = fake.requests
    assert sent.raw_path == EXPECTED_PATH[provider](model)
    assert unquote(sent.raw_path) == sent.path
    if provider == "deepgram":
        assert sent.query["model"] == model
    elif provider == "elevenlabs":
        assert sent.field("model_id") == model
    elif provider == "openai-compatible":
        assert sent.field("model") == model
    if reply.status == 200:  # (the fakes refuse models they do not know; the path is what counts)
        assert reply.headers["x-heimdall-model"] == model
        assert reply.headers["x-heimdall-provider"] == provider


def test_response_headers_never_carry_raw_client_text(guarded: str, fakes: Upstreams) -> None:
    """Every header of a success, over a request whose every text field is hostile but valid."""
    response = httpx.post(
        f"{guarded}/v1/audio/transcriptions",
        headers={"api-key": KEY, "x-request-id": "evil\u2603".encode(), "x-amzn-requestid": "evil"},
        files={"file": ("\u2603 name\r\n.wav", AUDIO, "audio/wav")},
        data={"model": "openai/whisper-1", "prompt": "\u2603\r\nX-Injected: 1", "response_format": "text"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert "x-injected" not in response.headers
    assert set(response.headers) >= {"x-heimdall-model", "x-heimdall-provider", "x-request-id"}
    for name, value in response.headers.items():
        assert value.isascii() and value.isprintable(), (name, value)
    assert response.headers["x-heimdall-model"] == "whisper-1"
    assert "evil" not in response.headers["x-request-id"]


def test_a_filename_reaches_the_provider_without_unicode_controls(guarded: str, fakes: Upstreams) -> None:
    """C1 controls (NEL), line and paragraph separators, bidi overrides and zero-width characters are
    control characters too: the filename the provider sees has none of them."""
    hostile = "r\u00e9union\x85\u2028\u2029\u202e\u200b\ufeff.wav"
    body = mp.body(mp.field("model", "openai/whisper-1"), mp.file_part(AUDIO, filename=hostile))
    headers = {"content-type": mp.CONTENT_TYPE, "api-key": KEY}
    reply = over_http(guarded, "POST", "/v1/audio/transcriptions", body=body, headers=headers)
    assert reply.status == 200, reply.body[:300]
    (sent,) = fakes.fakes["openai"].requests
    assert sent.file is not None
    assert sent.file["filename"] == "r\u00e9union.wav"


@pytest.mark.parametrize("path", ["/health/", "/playground/", "/v1/usage/", "/v1/audio/transcriptions/"])
def test_a_trailing_slash_is_not_redirected_to_the_clients_host(guarded: str, path: str) -> None:
    """Starlette's trailing-slash redirect builds its Location from the Host header, which is the
    client's text: no response carries it."""
    reply = over_http(guarded, "GET", path, headers={"host": "evil.example", "api-key": KEY})
    assert reply.status == 404, reply.body[:300]
    assert reply.json()["error"]["code"] == "not_found"
    assert not any("evil.example" in value for value in reply.headers.values())
