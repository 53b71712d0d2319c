"""What the client sent reaches the provider exactly: temperature, language, prompt, both
timestamp granularities and the original filename — and no configured secret leaks back."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.conftest import LogCapture
from tests.fakes.base import Fault
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

AUDIO = FILES["hello"].read_bytes()
FILENAME = "board meeting (final).wav"


@pytest.mark.parametrize("target", ["openai/whisper-1", "azure/whisper-1", "groq/whisper-large-v3"])
def test_fields_arrive_as_sent(provider_gateway: str, fakes: Upstreams, target: str) -> None:
    response = httpx.post(
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": (FILENAME, AUDIO, "audio/wav")},
        data={
            "model": target,
            "temperature": "0.2",
            "language": "en",
            "prompt": "Heimdall, Bifrost, Asgard.",
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["words"]
    (request,) = fakes.fakes[target.split("/")[0]].requests
    assert request.field("temperature") == "0.2"
    assert request.field("language") == "en"
    assert request.field("prompt") == "Heimdall, Bifrost, Asgard."
    assert sorted(request.all("timestamp_granularities[]")) == ["segment", "word"]
    assert request.field("response_format") == "verbose_json"
    assert request.file == {
        "field": "file",
        "filename": FILENAME,
        "content_type": "audio/wav",
        "sha256": hashlib.sha256(AUDIO).hexdigest(),
        "size": len(AUDIO),
    }


def test_azure_gets_its_deployment_api_version_and_api_key(provider_gateway: str, fakes: Upstreams) -> None:
    response = httpx.post(
        f"{provider_gateway}/openai/openai/deployments/azure%2Fwhisper-1/audio/transcriptions",
        params={"api-version": "2024-06-01"},
        files={"file": ("a.wav", AUDIO, "audio/wav")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (request,) = fakes.fakes["azure"].requests
    assert request.path == "/openai/deployments/whisper-prod/audio/transcriptions"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == fakes.keys["azure"]
    assert "authorization" not in request.headers


def test_provider_specific_field_names(provider_gateway: str, fakes: Upstreams) -> None:
    def send(model: str) -> httpx.Response:
        return httpx.post(
            f"{provider_gateway}/v1/audio/transcriptions",
            files={"file": ("a.wav", AUDIO, "audio/wav")},
            data={"model": model, "language": "en", "response_format": "srt"},
            timeout=30,
        )

    assert send("elevenlabs/scribe_v1").status_code == 200
    (eleven,) = fakes.fakes["elevenlabs"].requests
    assert eleven.field("model_id") == "scribe_v1"
    assert eleven.field("language_code") == "en"
    assert eleven.field("timestamps_granularity") == "word"
    assert send("deepgram/nova-3").status_code == 200
    (deepgram,) = fakes.fakes["deepgram"].requests
    assert deepgram.query["model"] == "nova-3"
    assert deepgram.query["language"] == "en"
    assert deepgram.headers["content-type"] == "audio/wav"
    assert deepgram.file is not None
    assert deepgram.file["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert send("mistral/voxtral-mini-latest").status_code == 200
    (mistral,) = fakes.fakes["mistral"].requests
    assert mistral.field("language") == "en"
    assert mistral.all("timestamp_granularities") == ["segment"]


def test_gemini_gets_inline_audio_with_the_clients_mime_type(provider_gateway: str, fakes: Upstreams) -> None:
    response = httpx.post(
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": ("a.ogg", FILES["story"].read_bytes(), "audio/ogg")},
        data={
            "model": "gemini/gemini-2.5-flash",
            "language": "en",
            "prompt": "A lighthouse story.",
            "temperature": "0",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {
        "type": "tokens", "input_tokens": 240, "input_token_details": {"text_tokens": 40, "audio_tokens": 200},
        "output_tokens": 22, "total_tokens": 262,
    }  # fmt: skip
    (request,) = fakes.fakes["gemini"].requests
    assert request.file == {
        "content_type": "audio/ogg",
        "sha256": hashlib.sha256(FILES["story"].read_bytes()).hexdigest(),
        "size": len(FILES["story"].read_bytes()),
    }
    instruction = request.json["contents"][0]["parts"][0]["text"]
    assert "English" in instruction
    assert "A lighthouse story." in instruction
    assert request.json["generationConfig"] == {"temperature": 0.0}


PROVIDERS = ["openai/whisper-1", "azure/whisper-1", "groq/whisper-large-v3", "mistral/voxtral-mini-latest",
             "elevenlabs/scribe_v1", "deepgram/nova-3", "gemini/gemini-2.5-flash"]  # fmt: skip


def test_no_secret_in_any_response_or_log_line(provider_gateway: str, fakes: Upstreams, logs: LogCapture) -> None:
    """Every provider echoes its key in error bodies; wrong keys and failures are provoked; the key
    never reaches a response or a log line."""
    responses: list[httpx.Response] = []
    for name, fake in fakes.fakes.items():
        fake.echo_key_in_errors = True
        fake.key = fake.key + "-rotated"  # the gateway's key is now wrong: every call is a 401 echoing it
    try:
        for target in PROVIDERS:
            response = httpx.post(
                f"{provider_gateway}/v1/audio/transcriptions",
                files={"file": ("a.wav", AUDIO, "audio/wav")},
                data={"model": target},
                headers={"authorization": "Bearer client-secret-should-not-leak"},
                timeout=30,
            )
            assert response.status_code == 502, (target, response.text)
            assert response.json()["error"]["code"] == "provider_auth_failed"
            responses.append(response)
        fakes.fakes["openai"].key = fakes.keys["openai"]
        fakes.fakes["openai"].always = Fault("status", 500, body={"error": {"message": f"boom {fakes.keys['openai']}"}})
        responses.append(httpx.post(f"{provider_gateway}/v1/audio/transcriptions", files={"file": ("a.wav", AUDIO)},
                                    data={"model": "openai/whisper-1"}, timeout=30))  # fmt: skip
        responses.append(httpx.get(f"{provider_gateway}/health"))
    finally:
        for name, fake in fakes.fakes.items():
            fake.key = fakes.keys.get(name, "")
    for response in responses:
        logs.request(response.headers["x-request-id"])  # every line of these requests has been written
    bodies = [part for r in responses for part in (r.text, json.dumps(dict(r.headers)))]
    everything = "\n".join(bodies + logs.lines)
    assert "[redacted]" in everything  # the echoes were there, and were removed
    for secret in [*fakes.keys.values(), "client-secret-should-not-leak"]:
        assert secret not in everything
