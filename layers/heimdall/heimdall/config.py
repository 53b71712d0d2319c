"""The gateway's configuration: Bifrost's ``config.json`` shape (a subset), validated once at start-up.

Found through ``HEIMDALL_CONFIG``: a file path, ``ssm:/param/name`` or ``secretsmanager:secret-id``
(read with Powertools Parameters). Any string value ``env.NAME`` is replaced by that environment
variable. Errors name the JSON path of the bad entry and never echo a value.
"""

# No ``from __future__ import annotations`` here: pydantic compiles and evaluates every string
# annotation of a model when it builds it, at every cold start (docs/performance.md, "Cold start").

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from heimdall.core.names import RULE, name_problem
from heimdall.governance.schema import Budget, Plugin, ProviderLimits, RateLimit, SemanticCache

ProviderName = Literal[
    "local", "openai", "azure", "groq", "elevenlabs", "deepgram", "gemini", "mistral", "openai-compatible"
]
PROVIDER_NAMES: frozenset[str] = frozenset(get_args(ProviderName))


def _model_name(value: str) -> str:
    if name_problem(value) is not None:
        raise ValueError(f"expected a model or deployment name: {RULE}")
    return value


def _target(value: str) -> str:
    provider, _, model = value.partition("/")
    if provider not in PROVIDER_NAMES or name_problem(model) is not None:
        raise ValueError(
            f"expected provider/model, the provider one of {', '.join(sorted(PROVIDER_NAMES))} and the model a "
            "name of ASCII letters, digits and - . _ ~ : @ +"
        )
    return value


_BASE_URL = re.compile(
    r"https?://(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._-]{1,253})(:[0-9]{1,5})?"
    r"(/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?"
)


def _base_url(value: str) -> str:
    if not _BASE_URL.fullmatch(value):
        raise ValueError(
            "expected http(s)://host[:port][/path]: no user:password, query or fragment, and a path of ASCII "
            "characters that need no escaping (or %XX escapes)"
        )
    return value


def _header_value(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if not secret.isascii() or not secret.isprintable() or secret != secret.strip():
        raise ValueError("expected printable ASCII with no spaces around it (a line break pasted with a key?)")
    return value


#: A provider's origin and path prefix, sent byte for byte by either HTTP client.
BaseUrl = Annotated[str, AfterValidator(_base_url)]
#: A provider key: it travels in a header, which takes printable ASCII only.
ProviderKey = Annotated[SecretStr, AfterValidator(_header_value)]
#: A name a client may send (an alias, a default model, an Azure deployment): the rule clients are held to.
ModelName = Annotated[str, AfterValidator(_model_name)]
#: One entry of a ``deployments`` list: ``provider/model``.
Target = Annotated[str, AfterValidator(_target)]


class ConfigError(Exception):
    """The configuration cannot be used; the message names where, never a secret."""


class _Strict(BaseModel):
    # Empty lists and dicts are given as defaults (pydantic copies them for each instance), not as
    # default_factory=list: a builtin factory makes pydantic parse its text signature when the class
    # is built, which loads Python's tokenizer at every cold start.
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    base_url: BaseUrl | None = None
    default_request_timeout_in_seconds: float = Field(default=120, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_initial: int = Field(default=500, ge=0)  # milliseconds
    retry_backoff_max: int = Field(default=5000, ge=0)  # milliseconds


class KeyConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)  # provider-specific blocks (azure_key_config…)
    name: str | None = None
    value: ProviderKey
    models: list[str] = Field(default=[])
    weight: float = Field(default=1.0, ge=0)


class ProviderConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    keys: list[KeyConfig] = Field(default=[])
    network_config: NetworkConfig = NetworkConfig()
    send_back_raw_response: bool = False


class LocalConfig(_Strict):
    """The embedded engine: on unless ``providers.local.enabled`` is false."""

    enabled: bool = True
    cpu_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 4), ge=1, le=64)
    compute_type: str = "int8"
    vad_filter: bool = True
    beam_size: int = Field(default=5, ge=1, le=10)
    #: Where weights that must be prepared (joined) live; the container image sets HEIMDALL_MODEL_DIR.
    model_dir: str = Field(
        default_factory=lambda: (
            os.environ.get("HEIMDALL_MODEL_DIR")
            or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "heimdall", "models")
        )
    )


class ClientConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    enforce_auth_on_inference: bool = False
    max_request_body_size_mb: float = Field(default=25, gt=0)
    #: One request's whole time across retries and fallbacks (in Lambda, also the function's own deadline).
    request_budget_seconds: float = Field(default=300, gt=0)
    #: Longest audio accepted, measured from the container's header (WAV always; others with PyAV).
    max_audio_seconds: float = Field(default=4 * 3600, gt=0)
    #: Largest file a presigned upload (POST /v1/uploads) accepts.
    max_upload_size_mb: float = Field(default=2048, gt=0)
    #: The model for files dropped into incoming/ without a manifest (else the first alias, else local).
    default_model: ModelName | None = None


class VirtualKey(_Strict):
    """A gateway key: ``value`` is the secret (``env.NAME``), ``allowed_models`` are aliases or
    ``provider/model`` patterns (``openai/*``) the key may use."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: str = Field(min_length=1)
    value: SecretStr
    allowed_models: list[str] = Field(default_factory=lambda: ["*"])
    #: The environment variable ``value`` was read from (``env.NAME``), so messages can name it.
    value_env: str | None = None
    rate_limit_id: str | None = None
    budget_id: str | None = None  # Bifrost before 1.5; now budgets name their key (virtual_key_id)
    provider_configs: list[ProviderLimits] = Field(default=[])
    #: May read GET /v1/usage (Heimdall's own field).
    admin: bool = False

    @field_validator("value")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("a gateway key must be at least 16 characters")
        return value


class Governance(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    virtual_keys: list[VirtualKey] = Field(default=[])
    rate_limits: list[RateLimit] = Field(default=[])
    budgets: list[Budget] = Field(default=[])
    #: US dollars per minute of audio by "provider/model" or "provider/*", over the list-price defaults.
    pricing: dict[str, float] = Field(default={})
    usage_retention_days: int = Field(default=90, ge=1, le=3660)

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        limits = {r.id for r in self.rate_limits}
        keys = {k.id for k in self.virtual_keys}
        budgets = {b.id for b in self.budgets}
        provider_configs = {str(p.id) for k in self.virtual_keys for p in k.provider_configs if p.id is not None}
        for key in self.virtual_keys:
            named = [key.rate_limit_id, *(p.rate_limit_id for p in key.provider_configs)]
            for rate_limit_id in named:
                if rate_limit_id is not None and rate_limit_id not in limits:
                    raise ValueError(f"virtual key {key.id!r} names unknown rate limit {rate_limit_id!r}")
            if key.budget_id is not None and key.budget_id not in budgets:
                raise ValueError(f"virtual key {key.id!r} names unknown budget {key.budget_id!r}")
        for budget in self.budgets:
            if budget.virtual_key_id is not None and budget.virtual_key_id not in keys:
                raise ValueError(f"budget {budget.id!r} names unknown virtual key {budget.virtual_key_id!r}")
            if budget.provider_config_id is not None and str(budget.provider_config_id) not in provider_configs:
                raise ValueError(f"budget {budget.id!r} names unknown provider config {budget.provider_config_id!r}")
        for name, ids in (("rate_limits", [r.id for r in self.rate_limits]), ("budgets", [b.id for b in self.budgets])):
            if len(ids) != len(set(ids)):
                raise ValueError(f"governance.{name} ids must be unique")
        for target, price in self.pricing.items():
            if "/" not in target or not 0 <= price < 1000:
                raise ValueError(f"pricing {target[:60]!r}: a provider/model (or provider/*) and dollars per minute")
        return self


class GatewayConfig(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)  # other Bifrost sections are ignored
    providers: dict[ProviderName, ProviderConfig] = Field(default={})
    local: LocalConfig = LocalConfig()
    deployments: dict[ModelName, Annotated[list[Target], Field(min_length=1)]] = Field(default={})
    client_config: ClientConfig = ClientConfig()
    governance: Governance = Governance()
    plugins: list[Plugin] = Field(default=[])

    @property
    def semantic_cache(self) -> SemanticCache | None:
        """The transcript cache's settings when the ``semantic_cache`` plugin is enabled (off by default)."""
        for plugin in self.plugins:
            if plugin.name == "semantic_cache" and plugin.enabled:
                return SemanticCache.model_validate(plugin.config)
        return None

    @field_validator("plugins")
    @classmethod
    def _cache_config_valid(cls, plugins: list[Plugin]) -> list[Plugin]:
        for plugin in plugins:
            if plugin.name == "semantic_cache" and plugin.enabled:
                SemanticCache.model_validate(plugin.config)
        return plugins

    @model_validator(mode="after")
    def _auth_has_keys(self) -> Self:
        if self.client_config.enforce_auth_on_inference and not self.governance.virtual_keys:
            raise ValueError("client_config.enforce_auth_on_inference needs governance.virtual_keys")
        ids = [k.id for k in self.governance.virtual_keys]
        if len(ids) != len(set(ids)):
            raise ValueError("governance.virtual_keys ids must be unique")
        return self


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


_WORD = re.compile(r"[a-z][a-z_-]{0,31}")  # a field name's shape: secrets have digits, or are longer


def _json_path(loc: tuple[int | str, ...], *, wrong_key: bool) -> str:
    """``providers.azure.keys[0].weight``. When the last key is itself the mistake (an unknown field,
    a key of the wrong shape), it is named only if it looks like a field name (``max_retires``,
    ``opnai``): otherwise it is text out of place, maybe a secret, and the path stops above it."""
    loc = loc[:-1] if loc and loc[-1] == "[key]" else loc
    shown = loc[:-1] if wrong_key and loc and not _WORD.fullmatch(str(loc[-1])) else loc
    out = ""
    for part in shown:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if not wrong_key:
        return out or "$"
    return (out or "$") + (" (one of its keys)" if shown != loc else " (the key)")


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
    providers = data.get("providers")
    if providers is None:
        data.pop("providers", None)
    elif isinstance(providers, Mapping) and "local" in providers:
        # the engine's block sits with the providers, as Bifrost's do
        data["providers"] = {name: block for name, block in providers.items() if name != "local"}
        data["local"] = providers["local"]
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        loc = tuple(exc.errors()[0]["loc"])
        raise config_error(exc, ("providers",) if loc and loc[0] == "local" else ()) from None


def config_error(exc: ValidationError, where: tuple[int | str, ...] = ()) -> ConfigError:
    """The first problem pydantic found, at its JSON path below ``where``: pydantic's message (what
    was expected), never its input, which may be a secret put in the wrong place."""
    first = exc.errors()[0]
    loc = (*where, *first["loc"])
    wrong_key = first["type"] == "extra_forbidden" or (bool(loc) and loc[-1] == "[key]")
    return ConfigError(f"config {_json_path(loc, wrong_key=wrong_key)}: {first['msg'].removeprefix('Value error, ')}")


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
