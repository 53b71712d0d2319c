from __future__ import annotations

import json
from pathlib import Path

import pytest

from heimdall.config import ConfigError, GatewayConfig, load_config, parse_config


def test_no_config_is_the_keyless_default() -> None:
    config = load_config(None)
    assert config == GatewayConfig()
    assert config.local.enabled
    assert not config.providers
    assert not config.deployments


def test_env_values_resolve_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_TEST_OPENAI_KEY", "sk-secret-value")
    config = parse_config({"providers": {"openai": {"keys": [{"value": "env.HEIMDALL_TEST_OPENAI_KEY"}]}}})
    key = config.providers["openai"].keys[0]
    assert key.value.get_secret_value() == "sk-secret-value"
    assert "sk-secret-value" not in repr(config)


def test_missing_env_value_names_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEIMDALL_TEST_MISSING", raising=False)
    with pytest.raises(ConfigError, match=r"providers\.openai\.keys\[0\]\.value: environment variable HEIMDALL_TEST"):
        parse_config({"providers": {"openai": {"keys": [{"value": "env.HEIMDALL_TEST_MISSING"}]}}})


def test_validation_errors_name_the_path_and_never_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"openai": {"keys": [{"value": "sk-live-abc", "weight": "heavy"}]}}})
    assert "providers.openai.keys[0].weight" in str(caught.value)
    assert "sk-live-abc" not in str(caught.value)
    assert "heavy" not in str(caught.value)


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"providers\.whisperly \(the key\): Input should be 'local', 'openai'"):
        parse_config({"providers": {"whisperly": {}}})


def test_local_engine_block_sits_with_the_providers() -> None:
    config = parse_config({"providers": {"local": {"enabled": False, "cpu_threads": 1}}})
    assert config.local.enabled is False
    assert config.local.cpu_threads == 1
    assert "local" not in config.providers
    with pytest.raises(ConfigError, match=r"providers\.local\.cpu_threads"):
        parse_config({"providers": {"local": {"cpu_threads": 0}}})


def test_deployment_targets_must_be_provider_model() -> None:
    with pytest.raises(ConfigError, match=r"deployments\.fast\[0\]: expected provider/model"):
        parse_config({"deployments": {"fast": ["whisper"]}})


def test_file_source_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"deployments": {"fast": ["local/tiny.en"]}}))
    assert load_config(str(path)).deployments == {"fast": ["local/tiny.en"]}


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(str(tmp_path / "missing.json"))


def test_the_shipped_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from heimdall.providers.registry import build_providers

    text = (Path(__file__).resolve().parents[2] / "config.example.json").read_text()
    for name in set(re.findall(r'"env\.([A-Z0-9_]+)"', text)):
        monkeypatch.setenv(name, f"https://{name.lower()}.example" if "ENDPOINT" in name else f"key-{name}")
    config = parse_config(json.loads(text))
    providers = build_providers(config)
    assert set(providers) == {"local", "openai", "azure", "groq", "mistral", "elevenlabs", "deepgram", "gemini",
                              "openai-compatible"}  # fmt: skip
    assert config.deployments["whisper"][0] == "azure/whisper-1"


def test_an_alias_naming_an_unconfigured_provider_stops_start_up() -> None:
    from heimdall.providers.registry import build_providers

    with pytest.raises(ConfigError, match=r"deployments\.whisper\[1\]: expected a configured provider"):
        build_providers(parse_config({"deployments": {"whisper": ["local/tiny.en", "azure/whisper-1"]}}))


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_small_example_needs_one_key_and_its_aliases_resolve(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The examples README offers for a first real provider: one environment variable, aliases that
    name configured targets; without the variable, start-up stops with a message naming it."""
    import re

    from heimdall.providers.registry import build_providers
    from heimdall.routing import Router

    text = example.read_text()
    (variable,) = set(re.findall(r'"env\.([A-Z0-9_]+)"', text))
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=f"environment variable {variable} is not set"):
        load_config(str(example))
    monkeypatch.setenv(variable, "sk-example")
    config = load_config(str(example))
    router = Router(config, build_providers(config))
    assert config.deployments
    for alias, targets in config.deployments.items():
        assert [str(t) for t in router.resolve_targets(alias)] == targets
