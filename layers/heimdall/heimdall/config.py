"""The gateway's configuration: Bifrost's ``config.json`` shape (a subset), validated once at start-up.

Found through ``HEIMDALL_CONFIG``: a file path, ``ssm:/param/name`` or ``secretsmanager:secret-id``
(read with Powertools Parameters). Any string value ``env.NAME`` is replaced by that environment
variable. Errors name the JSON path of the bad entry and never echo a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

PROVIDER_NAMES = frozenset(
    {"local", "openai", "azure", "groq", "elevenlabs", "deepgram", "gemini", "mistral", "openai-compatible"}
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names where, never a secret."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    base_url: str | None = None
    default_request_timeout_in_seconds: float = Field(default=120, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_initial: int = Field(default=500, ge=0)  # milliseconds
    retry_backoff_max: int = Field(default=5000, ge=0)  # milliseconds


class KeyConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)  # provider-specific blocks (azure_key_config…)
    name: str | None = None
    value: SecretStr
    models: list[str] = Field(default_factory=list)
    weight: float = Field(default=1.0, ge=0)


class ProviderConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    keys: list[KeyConfig] = Field(default_factory=list)
    network_config: NetworkConfig = NetworkConfig()
    send_back_raw_response: bool = False


class LocalConfig(_Strict):
    """The embedded engine: on unless ``providers.local.enabled`` is false."""

    enabled: bool = True
    cpu_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 4), ge=1, le=64)
    compute_type: str = "int8"
    vad_filter: bool = True
    beam_size: int = Field(default=5, ge=1, le=10)


class ClientConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    enforce_auth_on_inference: bool = False
    max_request_body_size_mb: float = Field(default=25, gt=0)
    #: One request's whole time across retries and fallbacks (in Lambda, also the function's own deadline).
    request_budget_seconds: float = Field(default=300, gt=0)
    #: Longest audio accepted, measured from the container's header (WAV always; others with PyAV).
    max_audio_seconds: float = Field(default=4 * 3600, gt=0)
    #: Synchronous uploads larger than this are staged in the audio bucket (when there is one).
    stage_above_mb: float = Field(default=8, gt=0)
    #: Largest file a presigned upload (POST /v1/uploads) accepts.
    max_upload_size_mb: float = Field(default=2048, gt=0)
    #: The model for files dropped into incoming/ without a manifest (else the first alias, else local).
    default_model: str | None = None


class VirtualKey(_Strict):
    """A gateway key: ``value`` is the secret (``env.NAME``), ``allowed_models`` are aliases or
    ``provider/model`` patterns (``openai/*``) the key may use."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: str = Field(min_length=1)
    value: SecretStr
    allowed_models: list[str] = Field(default_factory=lambda: ["*"])
    #: The environment variable ``value`` was read from (``env.NAME``), so messages can name it.
    value_env: str | None = None

    @field_validator("value")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("a gateway key must be at least 16 characters")
        return value


class Governance(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    virtual_keys: list[VirtualKey] = Field(default_factory=list)


class GatewayConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)  # other Bifrost sections are ignored
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    local: LocalConfig = LocalConfig()
    deployments: dict[str, list[str]] = Field(default_factory=dict)
    client_config: ClientConfig = ClientConfig()
    governance: Governance = Governance()

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        unknown = sorted(set(providers) - PROVIDER_NAMES)
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r}; known: {', '.join(sorted(PROVIDER_NAMES))}")
        return providers

    @model_validator(mode="after")
    def _auth_has_keys(self) -> GatewayConfig:
        if self.client_config.enforce_auth_on_inference and not self.governance.virtual_keys:
            raise ValueError("client_config.enforce_auth_on_inference needs governance.virtual_keys")
        ids = [k.id for k in self.governance.virtual_keys]
        if len(ids) != len(set(ids)):
            raise ValueError("governance.virtual_keys ids must be unique")
        return self

    @field_validator("deployments")
    @classmethod
    def _targets_are_provider_model(cls, deployments: dict[str, list[str]]) -> dict[str, list[str]]:
        for alias, targets in deployments.items():
            if not targets:
                raise ValueError(f"deployment {alias!r} lists no targets")
            for target in targets:
                provider, _, model = target.partition("/")
                if provider not in PROVIDER_NAMES or not model:
                    raise ValueError(f"deployment {alias!r}: target {target!r} is not provider/model")
        return deployments


def _resolve_env(node: Any, path: str) -> Any:
    if isinstance(node, str) and node.startswith("env."):
        name = node[4:]
        if name not in os.environ:
            raise ConfigError(f"config {path or '$'}: environment variable {name} is not set")
        return os.environ[name]
    if isinstance(node, Mapping):
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def _note_key_variables(document: Mapping[str, Any], resolved: dict[str, Any]) -> None:
    """Record which environment variable each gateway key came from (its name, not its value)."""
    raw = document.get("governance")
    raw_keys = raw.get("virtual_keys") if isinstance(raw, Mapping) else None
    keys = (resolved.get("governance") or {}).get("virtual_keys") if isinstance(raw_keys, list) else None
    for raw_key, key in zip(raw_keys or [], keys or [], strict=False):
        value = raw_key.get("value") if isinstance(raw_key, Mapping) else None
        if isinstance(key, dict) and isinstance(value, str) and value.startswith("env."):
            key["value_env"] = value[4:]


def parse_config(document: Mapping[str, Any]) -> GatewayConfig:
    if not isinstance(document, Mapping):
        raise ConfigError("config: the document must be a JSON object")
    data = dict(_resolve_env(document, ""))
    _note_key_variables(document, data)
    providers = dict(data.get("providers") or {})
    local = providers.pop("local", None)  # the engine's block sits with the providers, as Bifrost's do
    data["providers"] = providers
    if local is not None:
        data["local"] = local
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        if loc and loc[0] == "local":
            loc = ("providers", *loc)
        # pydantic's message, never its input: the input may be a secret.
        raise ConfigError(f"config {_json_path(loc)}: {first['msg']}") from None


def _read_source(source: str) -> str:
    if source.startswith(("ssm:", "secretsmanager:")):
        from aws_lambda_powertools.utilities import parameters

        try:
            if source.startswith("ssm:"):
                return str(parameters.get_parameter(source[4:], decrypt=True, max_age=300))
            return str(parameters.get_secret(source[len("secretsmanager:") :], max_age=300))
        except parameters.exceptions.GetParameterError as exc:
            raise ConfigError(f"config {source!r} cannot be read: {exc}") from None
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {source!r} cannot be read: {exc.strerror}") from None


def load_config(source: str | None) -> GatewayConfig:
    """The configuration named by ``source`` (``HEIMDALL_CONFIG``), or the keyless default."""
    if not source:
        return GatewayConfig()
    try:
        document = json.loads(_read_source(source))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {source!r} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    return parse_config(document)
