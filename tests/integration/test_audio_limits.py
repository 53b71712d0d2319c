"""The duration limit holds for every container whatever its header says, and a decompression bomb
(hours of silence in a few kilobytes, behind a header that claims a second) is refused with a 413
within seconds — over HTTP against the served app, through the Lambda handler, for the local
engine and for HTTP providers alike."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from heimdall.api.app import create_app
from heimdall.api.lambda_adapter import lambda_handler
from heimdall.config import GatewayConfig
from tests.support import bombs
from tests.support import multipart as mp
from tests.support.servers import serve
from tests.support.transports import via_lambda
from tests.support.upstreams import Upstreams

LIMIT = 600  # the test gateway's max_audio_seconds: ten minutes
TOO_LONG = 1200
UNDER = 300

#: container → maker(seconds, claim): the same audio with an honest or a lying header
MAKERS: dict[str, Callable[[float, float | None], tuple[bytes, str]]] = {
    "flac": lambda s, c: (bombs.flac_silence(s, claim=c), "a.flac"),
    "ogg-opus": lambda s, c: (bombs.opus_silence(s, claim=c), "a.ogg"),
    "webm-opus": lambda s, c: (bombs.opus_silence(s, container="webm", claim=c), "a.webm"),
    "mp3": lambda s, c: (bombs.mp3_silence(s, claim=c), "a.mp3"),
    "m4a": lambda s, c: (bombs.aac_silence(s), "a.m4a"),
    "mka-flac, every timestamp 0": lambda s, c: (bombs.flac_in_matroska(s), "a.mka"),
    # the first data chunk claims 1 s, a second holds the rest
    "wav": lambda s, c: (bombs.wav_silence(s, claim=c), "a.wav"),
    "wav, its data chunk's length 0": lambda s, c: (bombs.wav_silence(s, claim=0), "a.wav"),
    # a second, stereo audio stream: what FFmpeg picks by default
    "mka, a 1 s stream before the long one": lambda s, c: (bombs.two_audio_streams(1, s), "a.mka"),
}


@pytest.fixture(scope="module")
def limited(upstreams: Upstreams) -> Iterator[str]:
    """Every provider behind fakes, and a ten-minute duration limit."""
    config = upstreams.config(client_config={"max_audio_seconds": LIMIT})
    with serve(create_app(config)) as url:
        yield url


def _post(url: str, audio: bytes, filename: str, model: str, path: str = "/v1/audio/transcriptions") -> httpx.Response:
    return httpx.post(
        f"{url}{path}", data={"model": model}, files={"file": (filename, audio, "application/octet-stream")}, timeout=60
    )


def _assert_too_long(status: int, envelope: dict[str, Any]) -> None:
    assert status == 413, envelope
    assert envelope["error"]["code"] == "audio_too_long"
    assert envelope["error"]["param"] == "file"


@pytest.mark.parametrize("claim", [None, 1.0], ids=["honest header", "header claims 1 s"])
@pytest.mark.parametrize("container", list(MAKERS))
def test_audio_over_the_limit_is_refused_in_every_container(
    limited: str, fakes: Upstreams, container: str, claim: float | None
) -> None:
    audio, filename = MAKERS[container](TOO_LONG, claim)
    reply = _post(limited, audio, filename, "openai/whisper-1")
    _assert_too_long(reply.status_code, reply.json())
    assert not fakes.fakes["openai"].requests  # refused before any upstream call


@pytest.mark.parametrize("container", list(MAKERS))
def test_audio_under_the_limit_reaches_the_provider(limited: str, fakes: Upstreams, container: str) -> None:
    """The count is of the audio, not a guess from the size: files under the limit pass untouched."""
    audio, filename = MAKERS[container](UNDER, None)
    reply = _post(limited, audio, filename, "openai/whisper-1")
    assert reply.status_code == 200, reply.text
    (request,) = fakes.fakes["openai"].requests
    assert request.file is not None
    assert request.file["sha256"] == hashlib.sha256(audio).hexdigest()


def test_a_sample_rate_that_turns_seconds_into_hours_is_refused(limited: str) -> None:
    """A FLAC at 1 Hz: a few thousand samples that would resample into hours at 16 kHz."""
    reply = _post(limited, bombs.flac_silence(3000, rate=1), "a.flac", "openai/whisper-1")
    assert reply.status_code in (400, 413)
    assert reply.json()["error"]["code"] in ("invalid_audio", "audio_too_long")


TEN_HOURS = 10 * 3600


@pytest.fixture(scope="module")
def flac_bomb() -> bytes:
    """Ten hours of silence in about 60 KB of FLAC whose STREAMINFO says one second."""
    bomb = bombs.flac_silence(TEN_HOURS, claim=1)
    assert len(bomb) < 100_000
    return bomb


@pytest.mark.parametrize("model", ["local/tiny.en", "whisper-1"])
def test_a_bomb_is_refused_within_seconds(gateway_url: str, flac_bomb: bytes, model: str) -> None:
    """The keyless gateway (default limit: four hours), straight to the local engine."""
    started = time.monotonic()
    reply = _post(gateway_url, flac_bomb, "bomb.flac", model)
    assert time.monotonic() - started < 10
    _assert_too_long(reply.status_code, reply.json())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_bomb_is_refused_through_the_lambda_handler(flac_bomb: bytes, version: str) -> None:
    handler = lambda_handler(create_app(GatewayConfig()))
    body = mp.body(mp.field("model", "local/tiny.en"), mp.file_part(flac_bomb, filename="bomb.flac"))
    started = time.monotonic()
    reply = via_lambda(handler, version, "POST", "/v1/audio/transcriptions", body=body, headers={
        "content-type": mp.CONTENT_TYPE})  # fmt: skip
    assert time.monotonic() - started < 10
    _assert_too_long(reply.status, reply.json())


def test_an_opus_bomb_to_a_provider_is_refused(upstreams: Upstreams, fakes: Upstreams) -> None:
    """Five hours of Opus silence in Ogg (about 1 MB) whose last granule claims a second."""
    bomb = bombs.opus_silence(5 * 3600, claim=1)
    with serve(create_app(upstreams.config())) as url:
        started = time.monotonic()
        reply = _post(url, bomb, "bomb.ogg", "openai/whisper-1")
        assert time.monotonic() - started < 10
    _assert_too_long(reply.status_code, reply.json())
    assert not fakes.fakes["openai"].requests


@pytest.mark.engine
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_engine_decodes_a_small_long_file_a_piece_at_a_time(gateway_url: str, stream: bool) -> None:
    """Five minutes in 2 KB: three of the engine's pieces, transcribed one after the other and
    stitched; the whole file's duration is reported."""
    audio = bombs.flac_silence(300)
    reply = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        data={"model": "local/tiny.en", **({"stream": "true"} if stream else {"response_format": "verbose_json"})},
        files={"file": ("long.flac", audio, "audio/flac")},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    if stream:
        done = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")][-1]
        assert done["type"] == "transcript.text.done"
        assert done["usage"]["seconds"] == 300
    else:
        assert reply.json()["duration"] == pytest.approx(300, abs=0.01)
