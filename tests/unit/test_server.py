"""The start-up snippet names a model that exists in the config in force, and a key's variable."""

from __future__ import annotations

from typing import Any

import pytest

from heimdall.config import parse_config
from heimdall.providers.registry import build_providers
from heimdall.server import snippet

OPENAI = {"openai": {"keys": [{"value": "sk-test", "models": ["whisper-1"]}]}}
KEY = "hk-0123456789abcdef"


@pytest.mark.parametrize(
    ("document", "model"),
    [
        ({}, "whisper-1"),  # the keyless default: any name is the local engine
        ({"deployments": {"fast": ["local/tiny.en"]}}, "fast"),
        ({"providers": OPENAI}, "local/tiny.en"),
        ({"providers": {**OPENAI, "local": {"enabled": False}}}, "openai/whisper-1"),
        ({"providers": OPENAI, "client_config": {"default_model": "openai/whisper-1"}}, "openai/whisper-1"),
        (
            {"providers": OPENAI, "deployments": {"fast": ["local/tiny.en"]},
             "governance": {"virtual_keys": [{"id": "a", "value": KEY, "allowed_models": ["openai/*"]}]}},
            "openai/whisper-1",
        ),
    ],
)  # fmt: skip
def test_the_snippet_names_a_model_the_config_serves(document: dict[str, Any], model: str) -> None:
    config = parse_config(document)
    text = snippet(config, build_providers(config), host="127.0.0.1", port=8080)
    assert f"/deployments/{model}/audio/transcriptions" in text
    assert f'model="{model}"' in text


def test_the_snippet_names_the_keys_variable_never_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", KEY)
    config = parse_config({"governance": {"virtual_keys": [{"id": "team", "value": "env.TEAM_KEY"}]}})
    text = snippet(config, build_providers(config), host="127.0.0.1", port=8080)
    assert '-H "api-key: $TEAM_KEY"' in text
    assert 'api_key=os.environ["TEAM_KEY"]' in text
    assert KEY not in text


def test_a_key_written_into_the_config_is_asked_for_by_a_variable() -> None:
    config = parse_config({"governance": {"virtual_keys": [{"id": "team", "value": KEY}]}})
    text = snippet(config, build_providers(config), host="127.0.0.1", port=8080)
    assert '-H "api-key: $HEIMDALL_KEY"' in text
    assert "export HEIMDALL_KEY=<gateway key 'team'>" in text
    assert KEY not in text
