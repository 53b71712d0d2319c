"""Without a config, only names without a ``provider/`` prefix mean the local engine: a misspelt
provider (``opnai/whisper-1``) is a 404 ``model_not_found`` naming the providers, never a
transcript from an engine the client did not ask for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import multipart as mp
from tests.support.bombs import flac_silence
from tests.support.speech import FILES
from tests.support.transports import Reply, over_http, via_lambda

AUDIO = FILES["hello"].read_bytes()


def _send(transport: str, model: str, gateway_url: str, api_handler: Any) -> Reply:
    body = mp.body(mp.field("model", model), mp.file_part(AUDIO))
    headers = {"content-type": mp.CONTENT_TYPE}
    if transport == "http":
        return over_http(gateway_url, "POST", "/v1/audio/transcriptions", body=body, headers=headers)
    return via_lambda(api_handler, transport, "POST", "/v1/audio/transcriptions", body=body, headers=headers)


@pytest.mark.parametrize("transport", ["http", "v1", "v2"])
@pytest.mark.parametrize("model", ["opnai/whisper-1", "x/y", "Local/tiny.en", "whisper/whisper-1", "local-engine/tiny"])
def test_an_unknown_provider_prefix_is_404_listing_the_providers(
    model: str, transport: str, gateway_url: str, api_handler: Any
) -> None:
    reply = _send(transport, model, gateway_url, api_handler)
    assert reply.status == 404, reply.body[:300]
    error = reply.json()["error"]
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert f"Unknown provider '{model.partition('/')[0]}'" in error["message"]
    for provider in ("azure", "deepgram", "elevenlabs", "gemini", "groq", "local", "mistral", "openai"):
        assert provider in error["message"]
    assert "configured here: local" in error["message"]
    assert "x-heimdall-provider" not in reply.headers


@pytest.mark.parametrize("transport", ["http", "v2"])
def test_a_known_but_unconfigured_provider_is_404_too(transport: str, gateway_url: str, api_handler: Any) -> None:
    reply = _send(transport, "openai/whisper-1", gateway_url, api_handler)
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "provider_not_configured"


@pytest.mark.parametrize("transport", ["http", "v2"])
@pytest.mark.parametrize(
    ("audio", "what"),
    [(b"<html>not audio</html>", "a file that is not audio (else 415)"),
     (flac_silence(10 * 3600, claim=1.0), "ten hours of FLAC whose header says one second (else 413)")],
)  # fmt: skip
def test_an_unknown_model_is_404_before_the_audio_is_checked(
    transport: str, audio: bytes, what: str, gateway_url: str, api_handler: Any
) -> None:
    """The model decides whether there is anything to do: the audio is not inspected for a request no
    provider can serve, and the client learns of the misspelt name first."""
    body = mp.body(mp.field("model", "opnai/whisper-1"), mp.file_part(audio))
    headers = {"content-type": mp.CONTENT_TYPE}
    if transport == "http":
        reply = over_http(gateway_url, "POST", "/v1/audio/transcriptions", body=body, headers=headers)
    else:
        reply = via_lambda(api_handler, transport, "POST", "/v1/audio/transcriptions", body=body, headers=headers)
    assert reply.status == 404, (what, reply.body[:300])
    assert reply.json()["error"]["code"] == "model_not_found"
