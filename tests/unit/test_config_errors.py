"""A config error names the JSON path and what was expected, never the value: a secret pasted into
the wrong place (a deployment target, an alias, a number, a provider's name) must not be printed by
the start-up error that reports the mistake. A canary secret is put in every place of a full config,
as a value and as a key, and every resulting error is read."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from heimdall.config import ConfigError, parse_config
from heimdall.providers.registry import build_providers

CANARY = "sk-proj-CANARY7f3a9c0d2e4b6a8c"
FULL: dict[str, Any] = {
    "providers": {
        "azure": {
            "keys": [{"name": "east", "value": "azure-key-0123456789", "models": ["whisper-1"], "weight": 1,
                      "azure_key_config": {"endpoint": "https://east.example", "api_version": "2024-10-21",
                                           "deployments": {"whisper-1": "whisper-prod"}}}],
            "network_config": {"base_url": None, "default_request_timeout_in_seconds": 120, "max_retries": 2,
                               "retry_backoff_initial": 500, "retry_backoff_max": 5000},
            "send_back_raw_response": False,
        },
        "openai": {"keys": [{"value": "openai-key-0123456789", "models": [], "weight": 1}]},
        "openai-compatible": {"network_config": {"base_url": "http://127.0.0.1:9"}},
        "local": {"enabled": True, "cpu_threads": 2, "compute_type": "int8", "vad_filter": True, "beam_size": 5},
    },
    "deployments": {"whisper": ["azure/whisper-1", "openai/whisper-1", "local/tiny.en"]},
    "governance": {"virtual_keys": [{"id": "team-a", "value": "hk-team-a-0123456789abcdef",
                                     "allowed_models": ["whisper", "openai/*"]}]},
    "client_config": {"enforce_auth_on_inference": True, "max_request_body_size_mb": 25,
                      "request_budget_seconds": 300, "max_audio_seconds": 14400,
                      "max_upload_size_mb": 2048, "default_model": "whisper"},
}  # fmt: skip


def _places(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], bool]]:
    """Every value's path (False) and every object key's path (True) in the document."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield (*path, key), False
        if isinstance(node, dict):
            yield (*path, key), True
        yield from _places(child, (*path, key))


def _planted(path: tuple[Any, ...], as_key: bool, secret: str) -> dict[str, Any]:
    document = copy.deepcopy(FULL)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if as_key:
        parent[secret] = parent.pop(path[-1])
    else:
        parent[path[-1]] = secret
    return document


def _load(document: dict[str, Any]) -> None:
    build_providers(parse_config(document))


PLACES = list(_places(FULL))
#: The same secret, bare and dressed as the values people paste by mistake.
SECRETS = [CANARY, f"azure/{CANARY}", f"{CANARY}/x", f"{CANARY} ", f"openai/{CANARY}?x=1"]


def test_the_full_config_is_valid() -> None:
    _load(FULL)


@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_in_any_place_is_never_printed(secret: str) -> None:
    refused = 0
    for path, as_key in PLACES:
        document = _planted(path, as_key, secret)
        try:
            _load(document)
        except ConfigError as exc:
            refused += 1
            message = str(exc)
            assert CANARY not in message, (path, as_key, message)
            assert message.startswith("config "), message
            where = ".".join(str(p) for p in path[:-1]) if as_key else ""
            assert where.split(".")[0] in message, message  # names where, down to the object at least
    assert refused >= 25  # most places cannot hold a secret-shaped value: each such error was read


def test_the_reported_mistake_names_the_path_and_what_was_expected() -> None:
    """The example a probe found: a key pasted as a deployment target."""
    document = copy.deepcopy(FULL)
    document["deployments"]["whisper"][1] = CANARY
    with pytest.raises(ConfigError) as caught:
        _load(document)
    message = str(caught.value)
    assert message.startswith("config deployments.whisper[1]: expected provider/model")
    assert CANARY not in message


def test_an_unknown_provider_is_named_by_its_place_not_its_text() -> None:
    """A name-shaped key (a typo) is named; anything else may be a pasted secret and is not."""
    for name, where in (("opnai", "providers.opnai (the key)"), (CANARY, "providers (one of its keys)")):
        document = copy.deepcopy(FULL)
        document["providers"][name] = {}
        with pytest.raises(ConfigError) as caught:
            _load(document)
        assert str(caught.value).startswith(f"config {where}: Input should be 'local', 'openai'")
        assert CANARY not in str(caught.value)


def test_counts() -> None:
    """Keeps the numbers docs/security.md reports honest."""
    assert len(PLACES) == 103
    assert len(SECRETS) * len(PLACES) == 515
