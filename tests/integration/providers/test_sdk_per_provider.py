"""The official openai SDK through Heimdall, configured per provider against its fake upstream:
every format the provider can serve, and the documented 400 (before any upstream call) for the rest."""

from __future__ import annotations

import hashlib
from typing import Any

import openai
import pytest
import srt
import webvtt
from openai import OpenAI

from tests.fakes.base import SPOKEN
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

ALL = ("json", "text", "srt", "verbose_json", "vtt")
TEXT_ONLY = ("json", "text")
TARGETS = {
    "openai/whisper-1": ("openai", ALL),
    "openai/gpt-4o-transcribe": ("openai", TEXT_ONLY),
    "azure/whisper-1": ("azure", ALL),
    "groq/whisper-large-v3": ("groq", ALL),
    "mistral/voxtral-mini-latest": ("mistral", ALL),
    "elevenlabs/scribe_v1": ("elevenlabs", ALL),
    "deepgram/nova-3": ("deepgram", ALL),
    "gemini/gemini-2.5-flash": ("gemini", TEXT_ONLY),
    "openai-compatible/Systran/faster-whisper-small": ("compatible", ALL),
}
AUDIO = FILES["fox"].read_bytes()


def _create(client: OpenAI, model: str, response_format: str) -> Any:
    return client.audio.transcriptions.create(
        model=model,
        file=("fox.flac", AUDIO, "audio/flac"),
        response_format=response_format,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def client(provider_gateway: str) -> OpenAI:
    return OpenAI(base_url=f"{provider_gateway}/openai/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("response_format", ALL)
@pytest.mark.parametrize("target", list(TARGETS))
def test_every_format_a_provider_can_serve(client: OpenAI, fakes: Upstreams, target: str, response_format: str) -> None:
    fake_name, formats = TARGETS[target]
    fake = fakes.fakes[fake_name]
    if response_format not in formats:
        with pytest.raises(openai.BadRequestError) as caught:
            _create(client, target, response_format)
        body = caught.value.response.json()
        assert body["is_bifrost_error"] is True
        assert body["error"]["param"] == "response_format"
        assert response_format in body["error"]["message"]
        assert target.split("/")[0] in body["error"]["message"]
        assert fake.requests == []  # refused before any upstream call
        return

    result = _create(client, target, response_format)
    if response_format in ("text", "srt", "vtt"):
        assert isinstance(result, str)
    if response_format == "srt":
        cues = list(srt.parse(result))
        assert " ".join(c.content for c in cues) == SPOKEN
    elif response_format == "vtt":
        assert " ".join(c.text for c in webvtt.from_string(result)) == SPOKEN
    elif response_format == "text":
        assert result == SPOKEN + "\n"
    else:
        assert result.text == SPOKEN
    if response_format == "verbose_json":
        assert result.language == "english"
        assert len(result.segments) >= 2
        assert result.segments[0].start == 0.0

    (request,) = fake.requests
    assert request.file is not None
    assert request.file["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert request.file["content_type"] == "audio/flac"
    if "filename" in request.file:
        assert request.file["filename"] == "fox.flac"


def test_extra_fields_name_the_serving_provider(client: OpenAI, fakes: Upstreams) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(model="deepgram/nova-3", file=("a.flac", AUDIO))
    extra = raw.http_response.json()["extra_fields"]
    assert extra["provider"] == "deepgram"
    assert extra["model_requested"] == "deepgram/nova-3"
    assert extra["model_deployment"] == "nova-3"
    assert extra["fallback_index"] == 0


def test_unknown_alias_on_a_configured_gateway_is_404(client: OpenAI, fakes: Upstreams) -> None:
    with pytest.raises(openai.NotFoundError):
        _create(client, "whisper-9000", "json")
