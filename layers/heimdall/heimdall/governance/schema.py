"""The governance sections of the config, in Bifrost's ``config.json`` shape.

``governance.rate_limits`` and ``governance.budgets`` are top-level arrays referenced by id: a virtual
key names its rate limit with ``rate_limit_id``; a budget names its owner with ``virtual_key_id`` or
``provider_config_id`` (Bifrost's current shape), or a key names its budget with ``budget_id`` (the
pre-1.5 shape). Per-provider limits sit on ``virtual_keys[].provider_configs[]``. The transcript cache
is Bifrost's ``semantic_cache`` plugin entry under ``plugins``, in direct mode.

For audio, a rate limit's ``token_*`` fields count seconds of audio: Bifrost counts a transcription's
tokens, and the unit a transcription is metered in is the second (OpenAI's ``usage.seconds``).
"""

# No ``from __future__ import annotations`` here: pydantic compiles and evaluates every string
# annotation of a model when it builds it, at every cold start (docs/performance.md, "Cold start").

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from heimdall.governance.windows import duration_seconds, parse_duration


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)  # Bifrost fields Heimdall does not use are accepted


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


#: The largest count a limit may set, and the largest budget in dollars: counters are kept in
#: milliseconds of audio and nanodollars, which must stay exact integers in SQLite and DynamoDB.
MAX_COUNT = 10**12
MAX_DOLLARS = 10**9


class RateLimit(_Model):
    id: str = Field(min_length=1, max_length=128)
    request_max_limit: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    request_reset_duration: str | None = None
    #: Audio seconds (Bifrost's tokens; see the module docstring).
    token_max_limit: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    token_reset_duration: str | None = None

    _check_durations = field_validator("request_reset_duration", "token_reset_duration")(_duration)

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        for metric in ("request", "token"):
            limit, reset = getattr(self, f"{metric}_max_limit"), getattr(self, f"{metric}_reset_duration")
            if (limit is None) != (reset is None):
                raise ValueError(f"{metric}_max_limit and {metric}_reset_duration go together")
            if reset is not None and reset.endswith("Q"):
                raise ValueError("a rate limit cannot reset quarterly (1Q is for budgets)")
        if self.request_max_limit is None and self.token_max_limit is None:
            raise ValueError("a rate limit needs request_max_limit or token_max_limit")
        return self


class Budget(_Model):
    id: str = Field(min_length=1, max_length=128)
    max_limit: float = Field(ge=0, le=MAX_DOLLARS, allow_inf_nan=False)  # US dollars
    reset_duration: str
    virtual_key_id: str | None = None
    provider_config_id: int | str | None = None

    _check_duration = field_validator("reset_duration")(_duration)

    @model_validator(mode="after")
    def _one_owner(self) -> Self:
        if self.virtual_key_id is not None and self.provider_config_id is not None:
            raise ValueError("a budget has one owner: virtual_key_id or provider_config_id")
        return self


class ProviderLimits(_Model):
    """``virtual_keys[].provider_configs[]``: limits that apply while a key uses one provider."""

    id: int | str | None = None
    provider: str
    rate_limit_id: str | None = None


class SemanticCache(_Model):
    """The ``semantic_cache`` plugin's config, direct (exact-hash) mode only: audio has no embedding."""

    dimension: int = 1
    provider: str | None = None
    ttl: str | float = "5m"
    default_cache_key: str = ""
    cache_by_model: bool = True
    disable_identity_scoping: bool = False

    @model_validator(mode="after")
    def _direct_only(self) -> Self:
        if self.provider or self.dimension != 1:
            raise ValueError("only direct mode is supported for audio: dimension 1 and no embedding provider")
        ttl_seconds(self.ttl)
        return self

    @property
    def ttl_seconds(self) -> float:
        return ttl_seconds(self.ttl)


def ttl_seconds(value: str | float) -> float:
    """A TTL as Bifrost takes it: a duration string (``30s``, ``5m``, ``1h``, ``24h``) or seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        seconds = float(text) if text.replace(".", "", 1).isdigit() else duration_seconds(text)
    if not 0 < seconds <= 366 * 86400:
        raise ValueError("a cache ttl must be between 1 second and a year")
    return seconds


class Plugin(_Model):
    name: str
    enabled: bool = True
    config: dict[str, Any] = Field(default={})
