"""Gateway keys: every header form, 401 for a missing or unknown key, 403 for a model (or fallback)
the key may not use; no configured secret in /health, errors or logs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI

from heimdall.api.app import create_app
from heimdall.config import parse_config
from tests.conftest import LogCapture
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

TEAM_A = "hk-team-a-0123456789abcdef"
TEAM_B = "hk-team-b-fedcba9876543210"
AUDIO = FILES["fox"].read_bytes()


@pytest.fixture(scope="module")
def guarded(upstreams: Upstreams) -> Iterator[str]:
    config = upstreams.config(
        governance={"virtual_keys": [
            {"id": "team-a", "value": TEAM_A, "allowed_models": ["whisper", "openai/*"]},
            {"id": "team-b", "value": TEAM_B, "allowed_models": ["groq/whisper-large-v3"]},
        ]}
    )  # fmt: skip
    with serve(create_app(config)) as url:
        yield url


def post(url: str, headers: dict[str, str], model: str = "openai/whisper-1", **fields: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        headers=headers,
        files={"file": ("fox.flac", AUDIO, "audio/flac")},
        data={"model": model, **fields},
        timeout=30,
    )


@pytest.mark.parametrize(
    "headers",
    [{"api-key": TEAM_A}, {"authorization": f"Bearer {TEAM_A}"}, {"x-api-key": TEAM_A}, {"x-bf-vk": TEAM_A}],
    ids=["api-key", "bearer", "x-api-key", "x-bf-vk"],
)
def test_every_header_form_is_accepted(
    guarded: str, fakes: Upstreams, headers: dict[str, str], logs: LogCapture
) -> None:
    response = post(guarded, headers)
    assert response.status_code == 200, response.text
    line = logs.request(response.headers["x-request-id"])
    assert line["key_id"] == "team-a"
    assert TEAM_A not in "\n".join(logs.lines)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"api-key": "hk-not-a-key-0000000000"}, "invalid_api_key"),
        ({"authorization": "Basic dGVhbS1hOnNlY3JldA=="}, "missing_api_key"),
        ({"authorization": "Bearer"}, "missing_api_key"),
    ],
    ids=["none", "unknown", "basic-auth", "empty-bearer"],
)
def test_missing_or_unknown_key_is_401(guarded: str, fakes: Upstreams, headers: dict[str, str], code: str) -> None:
    response = post(guarded, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.json()["type"] == "authentication_error"
    assert fakes.calls("openai") == 0


def test_401_comes_before_the_body_is_read(guarded: str) -> None:
    response = httpx.post(f"{guarded}/v1/audio/transcriptions", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("groq/whisper-large-v3", {}, "model"),
        ("openai/whisper-1", {"fallbacks[]": "groq/whisper-large-v3"}, "fallbacks"),
    ],
)
def test_a_model_the_key_may_not_use_is_403(
    guarded: str, fakes: Upstreams, model: str, fields: dict[str, str], param: str
) -> None:
    response = post(guarded, {"api-key": TEAM_A}, model, **fields)
    assert response.status_code == 403
    assert response.json()["error"]["param"] == param
    assert "team-a" in response.json()["error"]["message"]
    assert fakes.calls("groq") == 0
    assert fakes.calls("openai") == 0


def test_an_alias_allows_its_targets(guarded: str, fakes: Upstreams) -> None:
    assert post(guarded, {"api-key": TEAM_A}, "whisper").status_code == 200
    assert post(guarded, {"api-key": TEAM_B}, "whisper").status_code == 403


def test_the_azure_sdk_sends_its_key_as_api_key(guarded: str, fakes: Upstreams) -> None:
    client = AzureOpenAI(azure_endpoint=f"{guarded}/openai", api_key=TEAM_A, api_version="2024-06-01", max_retries=0)
    assert client.audio.transcriptions.create(model="whisper", file=("a.flac", AUDIO)).text
    with pytest.raises(openai.PermissionDeniedError):
        client.audio.transcriptions.create(model="groq/whisper-large-v3", file=("a.flac", AUDIO))
    stranger = OpenAI(base_url=f"{guarded}/openai/v1", api_key="hk-stranger-000000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.audio.transcriptions.create(model="whisper", file=("a.flac", AUDIO))


def test_health_and_errors_reveal_no_secret(guarded: str, fakes: Upstreams, upstreams: Upstreams) -> None:
    texts = [
        httpx.get(f"{guarded}/health").text,
        httpx.get(f"{guarded}/openapi.json").text,
        post(guarded, {}).text,
        post(guarded, {"api-key": TEAM_B}).text,
        post(guarded, {"api-key": TEAM_A}, "openai/whisper-1", temperature="7").text,
    ]
    for secret in (TEAM_A, TEAM_B, *upstreams.keys.values()):
        assert all(secret not in text for text in texts)


def test_config_refuses_short_or_duplicate_keys() -> None:
    from heimdall.config import ConfigError

    with pytest.raises(ConfigError, match="at least 16 characters"):
        parse_config({"governance": {"virtual_keys": [{"id": "a", "value": "short"}]}})
    with pytest.raises(ConfigError, match="unique"):
        parse_config({"governance": {"virtual_keys": [{"id": "a", "value": TEAM_A}, {"id": "a", "value": TEAM_B}]}})
    with pytest.raises(ConfigError, match="enforce_auth_on_inference needs"):
        parse_config({"client_config": {"enforce_auth_on_inference": True}})
