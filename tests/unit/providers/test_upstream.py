from __future__ import annotations

import random
from collections import Counter

import pytest

from heimdall.config import KeyConfig
from heimdall.core.errors import NotFound
from heimdall.providers.upstream import Redactor, _retry_after, choose_key


def key(name: str, weight: float = 1.0, models: list[str] | None = None) -> KeyConfig:
    return KeyConfig.model_validate({"name": name, "value": f"secret-{name}", "weight": weight, "models": models or []})


def test_keys_are_chosen_by_weight_among_those_allowing_the_model() -> None:
    random.seed(7)
    keys = [key("a", 3), key("b", 1), key("off", 0), key("other-model", 5, ["whisper-large-v3"])]
    counts = Counter(choose_key("groq", keys, "whisper-1").name for _ in range(4000))
    assert set(counts) == {"a", "b"}
    assert 2.5 < counts["a"] / counts["b"] < 3.6


def test_no_key_for_the_model_is_a_provider_side_404() -> None:
    with pytest.raises(NotFound) as caught:
        choose_key("openai", [key("a", models=["gpt-4o-transcribe"])], "whisper-1")
    assert caught.value.client_fault is False  # another target may serve it


def test_redactor_removes_every_secret_longest_first() -> None:
    redact = Redactor(["sk-abc", "sk-abcdef", "xy"])
    assert redact("keys sk-abcdef and sk-abc; xy stays (too short to be a key)") == (
        "keys [redacted] and [redacted]; xy stays (too short to be a key)"
    )


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_azures_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    assert _retry_after(headers) == seconds
