"""Governance config in Bifrost's shape: references checked at start-up, messages naming the entry."""

from __future__ import annotations

from typing import Any

import pytest

from heimdall.config import ConfigError, parse_config

KEY = "hk-team-0123456789abcdef"


def governance(**sections: Any) -> dict[str, Any]:
    keys = sections.pop("virtual_keys", [{"id": "team", "value": KEY}])
    return {"governance": {"virtual_keys": keys, **sections}}


def test_limits_budgets_and_the_cache_parse() -> None:
    config = parse_config({
        **governance(
            virtual_keys=[{"id": "team", "value": KEY, "rate_limit_id": "rl", "budget_id": "old-style",
                           "provider_configs": [{"id": 3, "provider": "openai", "rate_limit_id": "rl"}]}],
            rate_limits=[{"id": "rl", "request_max_limit": 5, "request_reset_duration": "1m"}],
            budgets=[{"id": "old-style", "max_limit": 1, "reset_duration": "1d"},
                     {"id": "pc", "max_limit": 2, "reset_duration": "1w", "provider_config_id": 3}],
        ),
        "plugins": [{"name": "semantic_cache", "enabled": True, "config": {"dimension": 1, "ttl": 600}},
                    {"name": "logging", "enabled": True}],
    })  # fmt: skip
    assert config.governance.virtual_keys[0].rate_limit_id == "rl"
    assert config.semantic_cache is not None and config.semantic_cache.ttl_seconds == 600


def test_the_cache_is_off_unless_the_plugin_is_enabled() -> None:
    assert parse_config({}).semantic_cache is None
    disabled = {"plugins": [{"name": "semantic_cache", "enabled": False, "config": {"dimension": 1}}]}
    assert parse_config(disabled).semantic_cache is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (governance(virtual_keys=[{"id": "team", "value": KEY, "rate_limit_id": "nope"}]),
         "names unknown rate limit 'nope'"),
        (governance(budgets=[{"id": "b", "max_limit": 1, "reset_duration": "1d", "virtual_key_id": "ghost"}]),
         "names unknown virtual key 'ghost'"),
        (governance(budgets=[{"id": "b", "max_limit": 1, "reset_duration": "1d", "provider_config_id": 9}]),
         "names unknown provider config 9"),
        (governance(budgets=[{"id": "b", "max_limit": 1, "reset_duration": "1d", "virtual_key_id": "team",
                              "provider_config_id": 9}]), "one owner"),
        (governance(budgets=[{"id": "b", "max_limit": 1, "reset_duration": "monthly"}]), "reset duration"),
        (governance(rate_limits=[{"id": "r", "request_max_limit": 5}]), "go together"),
        (governance(rate_limits=[{"id": "r"}]), "needs request_max_limit or token_max_limit"),
        (governance(rate_limits=[{"id": "r", "request_max_limit": 5, "request_reset_duration": "1Q"}]), "quarterly"),
        (governance(rate_limits=[{"id": "r", "request_max_limit": 5, "request_reset_duration": "999999Y"}]),
         "longer than 100 years"),
        (governance(budgets=[{"id": "b", "max_limit": 1, "reset_duration": "99999Q"}]), "longer than 100 years"),
        (governance(rate_limits=[{"id": "r", "request_max_limit": 10**29, "request_reset_duration": "1h"}]),
         "less than or equal to 1000000000000"),
        (governance(rate_limits=[{"id": "r", "token_max_limit": 10**13, "token_reset_duration": "1h"}]),
         "less than or equal to 1000000000000"),
        (governance(budgets=[{"id": "b", "max_limit": 1e300, "reset_duration": "1M"}]),
         "less than or equal to 1000000000"),
        (governance(pricing={"whisper-1": 0.006}), "provider/model"),
        ({"plugins": [{"name": "semantic_cache", "config": {"dimension": 1536, "provider": "openai"}}]},
         "only direct mode"),
        ({"plugins": [{"name": "semantic_cache", "config": {"dimension": 1, "ttl": "forever"}}]}, "reset duration"),
    ],
    ids=["rate-limit-ref", "budget-key-ref", "budget-provider-ref", "two-owners", "duration", "pair", "empty",
         "quarter", "a million years", "quarters past the year 9999",
         "requests past an integer", "seconds past an integer", "dollars past an integer", "pricing",
         "semantic-mode", "ttl"],
)  # fmt: skip
def test_a_bad_governance_entry_stops_start_up(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(document)


def test_keys_in_lambda_without_the_table_stop_start_up(tmp_path: Any) -> None:
    from heimdall.governance.governor import build_governor

    config = parse_config(governance())
    common = {"state_dir": str(tmp_path), "usage_routes": frozenset()}
    with pytest.raises(ConfigError, match="HEIMDALL_GOVERNANCE_TABLE"):
        build_governor(config, None, table=None, in_lambda=True, **common)
    assert build_governor(config, None, table=None, in_lambda=False, **common).store is not None
    assert build_governor(parse_config({}), None, table=None, in_lambda=True, **common).store is None
