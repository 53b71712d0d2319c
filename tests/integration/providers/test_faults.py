"""Provider failures: every fault ends in a success through retry or fallback, or in the right
envelope — after a bounded number of upstream calls and within a bounded time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakes.base import SPOKEN, Fault
from tests.support.speech import FILES
from tests.support.upstreams import NETWORK, Upstreams

AUDIO = FILES["fox"].read_bytes()
RETRIES = NETWORK["max_retries"]
TIMEOUT = NETWORK["default_request_timeout_in_seconds"]


def transcribe(gateway: str, model: str = "azure/whisper-1", **fields: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO, "audio/flac")},
        data={"model": model, **fields},
        timeout=30,
    )
    return response, time.monotonic() - started


@dataclass(frozen=True)
class Expect:
    fault: Fault
    status: int  # without a fallback
    calls: int  # upstream calls to the failing provider
    code: str
    max_seconds: float
    answered: bool = True  # the provider answered (is_bifrost_error false) rather than timing out or hanging up


FAULTS = {
    "500": Expect(Fault("status", 500), 502, 1 + RETRIES, "upstream_500", 3),
    "502": Expect(Fault("status", 502), 502, 1 + RETRIES, "upstream_502", 3),
    "503": Expect(Fault("status", 503), 502, 1 + RETRIES, "upstream_503", 3),
    "429 Retry-After 7 (past the cap)": Expect(
        Fault("status", 429, headers={"Retry-After": "7"}), 429, 1, "rate_limit_exceeded", 2
    ),
    "timeout": Expect(
        Fault("timeout", seconds=5), 504, 1 + RETRIES, "provider_timeout", (1 + RETRIES) * TIMEOUT + 2, answered=False
    ),
    "connection reset": Expect(Fault("reset"), 502, 1 + RETRIES, "provider_unreachable", 3, answered=False),
    "truncated JSON": Expect(Fault("truncated"), 502, 1 + RETRIES, "invalid_provider_response", 3),
    "valid JSON, wrong shape": Expect(Fault("shape"), 502, 1 + RETRIES, "invalid_provider_response", 3),
    "HTML error page": Expect(Fault("html"), 502, 1 + RETRIES, "upstream_502", 3),
}


@pytest.mark.parametrize("with_fallback", [False, True], ids=["no-fallback", "fallback-to-groq"])
@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_matrix(provider_gateway: str, fakes: Upstreams, name: str, with_fallback: bool) -> None:
    expect = FAULTS[name]
    fakes.fakes["azure"].always = expect.fault
    fields = {"fallbacks[]": "groq/whisper-large-v3"} if with_fallback else {}

    response, elapsed = transcribe(provider_gateway, **fields)

    assert fakes.calls("azure") == expect.calls
    assert elapsed < expect.max_seconds
    if with_fallback:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["text"] == SPOKEN
        assert body["extra_fields"]["provider"] == "groq"
        assert body["extra_fields"]["fallback_index"] == 1
        assert fakes.calls("groq") == 1
        return
    assert response.status_code == expect.status, response.text
    envelope = response.json()
    assert envelope["status_code"] == expect.status
    assert envelope["is_bifrost_error"] is not expect.answered
    assert envelope["error"]["code"] == expect.code
    assert envelope["extra_fields"]["provider"] == "azure"
    assert [a["provider"] for a in envelope["extra_fields"]["attempts"]] == ["azure"] * expect.calls
    assert "<html" not in response.text.lower()
    assert fakes.calls("groq") == 0


def test_azure_503_recovers_through_a_groq_fallback(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].always = Fault("status", 503)
    response, _ = transcribe(provider_gateway, **{"fallbacks[]": "groq/whisper-large-v3"})
    assert response.status_code == 200
    assert response.json()["extra_fields"]["provider"] == "groq"


def test_429_relays_retry_after_without_fallback(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].always = Fault("status", 429, headers={"Retry-After": "7"})
    response, elapsed = transcribe(provider_gateway)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert 1 <= fakes.calls("azure") <= 1 + RETRIES
    assert elapsed < 2


def test_429_within_the_cap_is_retried_after_the_wait_it_asked_for(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].fail_next(Fault("status", 429, headers={"Retry-After": "1"}))
    response, elapsed = transcribe(provider_gateway)
    assert response.status_code == 200
    assert fakes.calls("azure") == 2
    assert elapsed >= 1.0


def test_azure_retry_after_ms_is_honoured(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].fail_next(Fault("status", 429, headers={"retry-after-ms": "300"}))
    response, elapsed = transcribe(provider_gateway)
    assert response.status_code == 200
    assert elapsed >= 0.3


def test_alias_falls_back_to_its_next_target(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].always = Fault("status", 500)
    response, _ = transcribe(provider_gateway, model="whisper")
    assert response.status_code == 200
    assert response.json()["extra_fields"]["provider"] == "groq"
    assert response.json()["extra_fields"]["model_requested"] == "whisper"


def test_a_client_mistake_upstream_is_relayed_without_fallback(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["azure"].always = Fault(
        "status", 400, body={"error": {"code": "InvalidFile", "message": "The audio file could not be decoded."}}
    )
    response, _ = transcribe(provider_gateway, **{"fallbacks[]": "groq/whisper-large-v3"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The audio file could not be decoded."
    assert response.json()["is_bifrost_error"] is False
    assert fakes.calls("azure") == 1
    assert fakes.calls("groq") == 0


def test_a_field_the_provider_cannot_take_is_refused_or_served_by_a_fallback(
    provider_gateway: str, fakes: Upstreams
) -> None:
    refused, _ = transcribe(provider_gateway, model="deepgram/nova-3", prompt="Heimdall")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "prompt"
    assert "deepgram" in refused.json()["error"]["message"]
    assert fakes.calls("deepgram") == 0
    served, _ = transcribe(provider_gateway, model="deepgram/nova-3", prompt="Heimdall",
                           **{"fallbacks[]": "openai/whisper-1"})  # fmt: skip
    assert served.status_code == 200
    assert served.json()["extra_fields"]["provider"] == "openai"
    assert fakes.fakes["openai"].requests[0].field("prompt") == "Heimdall"


def test_the_request_budget_bounds_retries_and_fallbacks(upstreams: Upstreams, fakes: Upstreams) -> None:
    from heimdall.api.app import create_app
    from tests.support.servers import serve

    config = upstreams.config(client_config={"request_budget_seconds": 1.5})
    fakes.fakes["azure"].always = Fault("timeout", seconds=5)
    with serve(create_app(config)) as gateway:
        response, elapsed = transcribe(gateway, **{"fallbacks[]": "groq/whisper-large-v3"})
    assert response.status_code == 504
    assert elapsed < 2.5
    assert fakes.calls("azure") == 2  # the second call only had the half second left
    assert fakes.calls("groq") == 0  # nothing left for the fallback
