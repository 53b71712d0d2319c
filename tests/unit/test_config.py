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


#: Base URLs both HTTP clients would send differently, or not at all: refused at start-up.
BAD_BASE_URLS = {
    "user and password": "https://user:pw-s3cret@api.example.com",
    "a query": "https://api.example.com/v1?key=s3cret",
    "a fragment": "https://api.example.com/v1#s3cret",
    "a space in the path": "https://api.example.com/my proxy/v1",
    "non-ASCII in the path": "https://api.example.com/pröxy",
    "a bad escape": "https://api.example.com/%zz",
    "another scheme": "ftp://api.example.com",
    "a line break": "https://api.example.com/v1\r\nX-Injected: 1",
}


@pytest.mark.parametrize("name", list(BAD_BASE_URLS))
def test_a_base_url_clients_cannot_send_alike_is_refused_without_echoing_it(name: str) -> None:
    from heimdall.providers.registry import build_providers

    url = BAD_BASE_URLS[name]
    for provider, block in (
        ("openai-compatible", {"network_config": {"base_url": url}}),
        ("azure", {"keys": [{"value": "k" * 32, "azure_key_config": {"endpoint": url}}]}),
    ):
        config = {"providers": {provider: block}}
        with pytest.raises(ConfigError) as caught:
            build_providers(parse_config(config))
        assert "http(s)://host[:port][/path]" in str(caught.value), caught.value
        assert "s3cret" not in str(caught.value) and url not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "https://api.groq.com/openai", "http://[::1]:9000/v1", "https://my_res.openai.azure.com/",
     "https://gw.example.com/a%2Fb/v1"],
)  # fmt: skip
def test_an_ordinary_base_url_is_taken(url: str) -> None:
    config = parse_config({"providers": {"openai-compatible": {"network_config": {"base_url": url}}}})
    assert config.providers["openai-compatible"].network_config.base_url == url


@pytest.mark.parametrize(
    "key",
    ["sk-live-0123456789abcdef\n", " sk-live-0123456789abcdef", "sk-live-0123\t456789", "sk-live-0123\u0251bcdef"],
)
def test_a_provider_key_that_cannot_travel_in_a_header_is_refused_without_echoing_it(key: str) -> None:
    """A line break pasted with a key made http.client refuse the header with the key in its message,
    which reached the log; a key outside Latin-1 was a 500 on every call."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"openai": {"keys": [{"value": key}]}}})
    assert "providers.openai.keys[0].value" in str(caught.value)
    assert "0123" not in str(caught.value)
