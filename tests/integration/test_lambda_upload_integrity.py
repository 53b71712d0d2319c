"""Uploads through the Lambda handler reach the provider byte for byte, whatever their size: the
base64 body is decoded in slices as it is read, across any number of slice boundaries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from heimdall.api.app import create_app
from heimdall.api.lambda_adapter import CHUNK_CHARS, lambda_handler
from heimdall.config import GatewayConfig
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest
from heimdall.providers.base import Capabilities
from heimdall.routing import Router
from tests.support import multipart as mp
from tests.support.lambda_events import LambdaContext, http_v2_event, response_body, rest_v1_event
from tests.support.speech import wav_bytes


@dataclass
class RecordingProvider:
    """Stands in for the engine: records what arrived, as a provider adapter would read it."""

    name: str = "local"
    received: list[dict[str, Any]] = field(default_factory=list)

    def models(self) -> frozenset[str]:
        return frozenset({"tiny.en"})

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities()

    def transcribe(self, model: str, request: TranscriptionRequest, audio: AudioInput, call: Any) -> Transcript:
        digest = hashlib.sha256()
        source = audio.rewind()
        while chunk := source.read(65536):
            digest.update(chunk)
        self.received.append(
            {"sha256": digest.hexdigest(), "size": audio.size, "filename": audio.filename, "type": audio.content_type}
        )
        return Transcript(text="ok", segments=[])


@pytest.fixture
def recording() -> tuple[Any, RecordingProvider]:
    provider = RecordingProvider()
    app = create_app(GatewayConfig())
    app.state.router = Router(GatewayConfig(), {"local": provider})
    return lambda_handler(app), provider


@pytest.mark.parametrize("build", [rest_v1_event, http_v2_event], ids=["v1", "v2"])
@pytest.mark.parametrize("size", [0, 45, 3 * CHUNK_CHARS // 4 - 200, 3 * CHUNK_CHARS + 17, 4_400_000])
def test_audio_arrives_byte_for_byte(recording: tuple[Any, RecordingProvider], build: Any, size: int) -> None:
    handler, provider = recording
    audio = wav_bytes(size)
    body = mp.body(
        mp.field("model", "whisper-1"), mp.file_part(audio, filename="meeting 1.ogg", content_type="audio/ogg")
    )
    response = handler(
        build("POST", "/v1/audio/transcriptions", body=body, content_type=mp.CONTENT_TYPE), LambdaContext()
    )
    if size == 0:
        assert response["statusCode"] == 400
        assert json.loads(response_body(response))["error"]["code"] == "empty_file"
        return
    assert response["statusCode"] == 200, response_body(response)[:300]
    assert provider.received == [
        {"sha256": hashlib.sha256(audio).hexdigest(), "size": size, "filename": "meeting 1.ogg", "type": "audio/ogg"}
    ]


def test_a_truncated_body_spanning_slices_is_refused(recording: tuple[Any, RecordingProvider]) -> None:
    handler, provider = recording
    body = mp.body(mp.field("model", "whisper-1"), mp.file_part(wav_bytes(2 * CHUNK_CHARS)))[:-100]
    response = handler(
        http_v2_event("POST", "/v1/audio/transcriptions", body=body, content_type=mp.CONTENT_TYPE), LambdaContext()
    )
    assert response["statusCode"] == 400
    assert json.loads(response_body(response))["error"]["code"] == "invalid_multipart"
    assert provider.received == []
