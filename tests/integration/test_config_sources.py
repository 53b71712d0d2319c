"""HEIMDALL_CONFIG from SSM Parameter Store and Secrets Manager, through a real HTTP AWS endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from heimdall.config import ConfigError, load_config
from tests.support.aws import moto_endpoint

DOCUMENT = {
    "providers": {"openai": {"keys": [{"value": "env.HEIMDALL_TEST_OPENAI", "models": ["whisper-1"]}]}},
    "deployments": {"fast": ["openai/whisper-1", "local/tiny.en"]},
}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        yield endpoint


def test_config_from_an_ssm_secure_string(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_TEST_OPENAI", "sk-from-env")
    boto3.client("ssm").put_parameter(
        Name="/heimdall/config", Value=json.dumps(DOCUMENT), Type="SecureString", Overwrite=True
    )
    config = load_config("ssm:/heimdall/config")
    assert config.deployments == {"fast": ["openai/whisper-1", "local/tiny.en"]}
    assert config.providers["openai"].keys[0].value.get_secret_value() == "sk-from-env"


def test_config_from_secrets_manager(aws: str) -> None:
    document = {"providers": {"groq": {"keys": [{"value": "gsk-in-the-secret"}]}}}
    boto3.client("secretsmanager").create_secret(Name="heimdall/config", SecretString=json.dumps(document))
    config = load_config("secretsmanager:heimdall/config")
    assert config.providers["groq"].keys[0].value.get_secret_value() == "gsk-in-the-secret"


def test_a_missing_parameter_is_a_config_error(aws: str) -> None:
    with pytest.raises(ConfigError, match="ssm:/heimdall/missing"):
        load_config("ssm:/heimdall/missing")
