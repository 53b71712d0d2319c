"""Builds the configured providers: one adapter per provider named in the config."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pydantic import ValidationError

from heimdall.config import ConfigError, GatewayConfig, ProviderConfig, config_error
from heimdall.providers.base import Provider
from heimdall.providers.local import LocalEngineOptions, LocalProvider

# Adapters are imported only when configured: a gateway with two providers loads two modules.
_ADAPTERS = {
    "openai": "heimdall.providers.openai:OpenAIProvider",
    "azure": "heimdall.providers.azure:AzureProvider",
    "groq": "heimdall.providers.groq:GroqProvider",
    "mistral": "heimdall.providers.mistral:MistralProvider",
    "elevenlabs": "heimdall.providers.elevenlabs:ElevenLabsProvider",
    "deepgram": "heimdall.providers.deepgram:DeepgramProvider",
    "gemini": "heimdall.providers.gemini:GeminiProvider",
    "openai-compatible": "heimdall.providers.openai_compatible:OpenAICompatibleProvider",
}


def _adapter(name: str) -> Callable[[ProviderConfig], Provider]:
    module, _, cls = _ADAPTERS[name].partition(":")
    factory: Callable[[ProviderConfig], Provider] = getattr(importlib.import_module(module), cls)
    return factory


def _check(name: str, config: ProviderConfig) -> None:
    if name == "openai-compatible":
        if not config.network_config.base_url:
            raise ConfigError("config providers.openai-compatible.network_config.base_url: required")
        return
    if not config.keys:
        raise ConfigError(f"config providers.{name}.keys: at least one key is required")
    if name == "azure":
        from heimdall.providers.azure import azure_settings

        for index, key in enumerate(config.keys):
            try:
                azure_settings(key)
            except ValidationError as exc:
                raise config_error(exc, ("providers", "azure", "keys", index, "azure_key_config")) from None


def build_providers(config: GatewayConfig) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, provider_config in config.providers.items():
        _check(name, provider_config)
        providers[name] = _adapter(name)(provider_config)
    if config.local.enabled:
        local = config.local
        providers["local"] = LocalProvider(
            LocalEngineOptions(
                cpu_threads=local.cpu_threads,
                compute_type=local.compute_type,
                vad_filter=local.vad_filter,
                beam_size=local.beam_size,
                model_dir=local.model_dir,
            ),
            max_audio_seconds=config.client_config.max_audio_seconds,
        )
    for alias, targets in config.deployments.items():
        for index, target in enumerate(targets):
            provider = target.partition("/")[0]  # a known provider's name: checked with the config
            if provider not in providers:
                raise ConfigError(
                    f"config deployments.{alias}[{index}]: expected a configured provider; "
                    f"'{provider}' has no entry under providers"
                )
    return providers
