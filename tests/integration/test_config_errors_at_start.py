"""A secret put in the wrong place of the config stops the gateway with an error that names the
place and what belongs there — under ``make run``'s server and at the Lambda handler's cold start —
and never prints the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heimdall.config import ConfigError
from tests.support.lambda_events import load_api_handler

CANARY = "sk-proj-CANARY5e1d7b3a9f0c2e4d"
AZURE_KEY = {"value": "x" * 20, "azure_key_config": {"endpoint": "https://east.example",
                                                      "deployments": {"whisper-1": f"{CANARY} "}}}  # fmt: skip
MISTAKES = {
    "a key as a deployment target": ({"deployments": {"whisper": [CANARY]}}, "deployments.whisper[0]"),
    "a key as a provider's name": ({"providers": {CANARY: {"keys": [{"value": "x" * 20}]}}}, "providers"),
    "a key as a number": (
        {"providers": {"openai": {"keys": [{"value": "x" * 20}], "network_config": {"max_retries": CANARY}}}},
        "providers.openai.network_config.max_retries",
    ),
    "a key as an Azure deployment": (
        {"providers": {"azure": {"keys": [AZURE_KEY]}}},
        "providers.azure.keys[0].azure_key_config.deployments.whisper-1",
    ),
    "a key as the default model": ({"client_config": {"default_model": f"{CANARY}?"}}, "client_config.default_model"),
}


def _write(tmp_path: Path, document: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("case", list(MISTAKES))
def test_the_server_stops_naming_the_place_not_the_secret(tmp_path: Path, case: str) -> None:
    document, where = MISTAKES[case]
    env = {**os.environ, "HEIMDALL_CONFIG": str(_write(tmp_path, document)), "PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "heimdall"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"heimdall: config {where}" in output, output
    assert CANARY not in output


@pytest.mark.parametrize("case", ["a key as a deployment target", "a key as an Azure deployment"])
def test_the_lambda_cold_start_fails_naming_the_place_not_the_secret(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    document, where = MISTAKES[case]
    monkeypatch.setenv("HEIMDALL_CONFIG", str(_write(tmp_path, document)))
    with pytest.raises(ConfigError) as caught:
        load_api_handler()
    assert str(caught.value).startswith(f"config {where}")
    assert CANARY not in str(caught.value)
