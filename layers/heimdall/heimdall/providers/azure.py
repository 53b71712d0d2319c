"""Azure OpenAI: ``POST {endpoint}/openai/deployments/{deployment}/audio/transcriptions?api-version=…``
with the ``api-key`` header.

Follows Azure OpenAI's data-plane inference reference ("Transcriptions - Create", api-version
2024-10-21 GA and later). The body is OpenAI's. Each key carries ``azure_key_config``: the
resource ``endpoint``, the ``api_version``, and ``deployments`` mapping a model name to the Azure
deployment that serves it. Throttling answers carry ``retry-after-ms``, which the router honours.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from heimdall.config import BaseUrl, KeyConfig, ModelName
from heimdall.providers.base import Capabilities
from heimdall.providers.openai import openai_capabilities
from heimdall.providers.openai_compatible import OpenAICompatibleProvider
from heimdall.providers.upstream import path_segment

DEFAULT_API_VERSION = "2024-10-21"


class AzureKeyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoint: BaseUrl
    api_version: str = DEFAULT_API_VERSION
    deployments: dict[ModelName, ModelName] = Field(default_factory=dict)  # model → Azure deployment


def azure_settings(key: KeyConfig) -> AzureKeyConfig:
    raw: Any = (key.model_extra or {}).get("azure_key_config")
    return AzureKeyConfig.model_validate(raw)


class AzureProvider(OpenAICompatibleProvider):
    name = "azure"

    def capabilities(self, model: str) -> Capabilities:
        return openai_capabilities(model)

    def url(self, key: KeyConfig | None, model: str) -> str:
        assert key is not None  # Azure always has keys (checked at start-up)
        settings = azure_settings(key)
        base = (self.config.network_config.base_url or settings.endpoint).rstrip("/")
        deployment = settings.deployments.get(model, model)
        return f"{base}/openai/deployments/{path_segment(deployment)}/audio/transcriptions"

    def auth_headers(self, key: KeyConfig) -> dict[str, str]:
        return {"api-key": key.value.get_secret_value()}

    def params(self, key: KeyConfig) -> dict[str, str]:
        return {"api-version": azure_settings(key).api_version}
