"""What goes upstream: the audio with a declared length (no chunked encoding), byte for byte, a
small upload sent from memory — never moved to disk on its way out — over connections kept for the
calls that follow."""

from __future__ import annotations

import hashlib
import io
import tempfile

import httpx
import pytest

from heimdall.core.types import AudioInput, TranscriptionRequest
from heimdall.providers.registry import build_providers
from heimdall.providers.upstream import Call
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

AUDIO = FILES["fox"].read_bytes()
TARGETS = {
    "openai/whisper-1": "openai",
    "azure/whisper-1": "azure",
    "groq/whisper-large-v3": "groq",
    "mistral/voxtral-mini-latest": "mistral",
    "elevenlabs/scribe_v1": "elevenlabs",
    "deepgram/nova-3": "deepgram",
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_the_audio_goes_upstream_with_its_length_declared(provider_gateway: str, fakes: Upstreams, target: str) -> None:
    response = httpx.post(
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": ("fox (take 2).flac", AUDIO, "audio/flac")},
        data={"model": target, "prompt": "Fox\r\n--not-a-boundary"} if target.startswith(("openai", "azure")) else {
            "model": target},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    (request,) = fakes.fakes[TARGETS[target]].requests
    assert "transfer-encoding" not in request.headers
    assert int(request.headers["content-length"]) > len(AUDIO) - 1
    assert request.file is not None
    assert request.file["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    if "filename" in request.file:
        assert request.file["filename"] == "fox (take 2).flac"
    if target.startswith(("openai", "azure")):
        assert request.field("prompt") == "Fox\r\n--not-a-boundary"


def test_a_small_upload_is_sent_from_memory(upstreams: Upstreams, fakes: Upstreams) -> None:
    """The upload sits in a spooled file that moves to disk past 1 MiB or when anything asks for its
    fileno(); sending it upstream must not."""
    providers = build_providers(upstreams.config())
    models = {"openai": "whisper-1", "deepgram": "nova-3", "elevenlabs": "scribe_v1", "mistral": "voxtral-mini"}
    for name, model in models.items():
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spooled:
            spooled.write(AUDIO)
            audio = AudioInput(spooled, "fox.flac", "audio/flac", len(AUDIO))
            transcript = providers[name].transcribe(model, TranscriptionRequest(model=name), audio, Call.lasting(10))
            assert transcript.text
            assert spooled._rolled is False, name


def test_calls_made_at_once_keep_their_connections_for_the_next_ones(upstreams: Upstreams, fakes: Upstreams) -> None:
    """Eight calls in flight together need at most eight connections to the provider, however many
    rounds of them there are: the eight after the first reuse those, rather than each opening (and
    closing) one of its own."""
    from concurrent.futures import ThreadPoolExecutor

    provider = build_providers(upstreams.config())["openai"]
    fake = fakes.fakes["openai"]
    fake.latency = lambda _: 0.2  # long enough for the eight calls of a round to overlap

    def call(_: int) -> str:
        audio = AudioInput(io.BytesIO(AUDIO), "fox.flac", "audio/flac", len(AUDIO))
        return provider.transcribe("whisper-1", TranscriptionRequest(model="whisper-1"), audio, Call.lasting(10)).text

    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            assert all(pool.map(call, range(8)))
    assert len(fake.requests) == 16
    assert len({request.peer for request in fake.requests}) <= 8
