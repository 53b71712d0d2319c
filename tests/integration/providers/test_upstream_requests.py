"""No client text can reshape the request an adapter sends: called directly, past every check the
routes make, with hostile model names, languages, prompts, filenames and content types, each
adapter's recording fake sees the same path (the model as exactly one segment where it is one),
the same query keys, the same headers and the same form fields as for an ordinary request."""

from __future__ import annotations

import contextlib
import io
from urllib.parse import parse_qsl, quote

import pytest

from heimdall.core.errors import HeimdallError
from heimdall.core.types import AudioInput, ResponseFormat, TranscriptionRequest
from heimdall.providers.base import Provider
from heimdall.providers.registry import build_providers
from heimdall.providers.upstream import Call
from tests.fakes.base import Recorded
from tests.fixtures.hostile_names import HOSTILE_NAMES
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

AUDIO = FILES["hello"].read_bytes()
ADAPTERS = {  # provider → (an ordinary model, its fake, the path for a model)
    "openai": ("whisper-1", "openai", lambda m: "/v1/audio/transcriptions"),
    "azure": ("whisper-prod", "azure", lambda m: f"/openai/deployments/{quote(m, safe='')}/audio/transcriptions"),
    "groq": ("whisper-large-v3", "groq", lambda m: "/openai/v1/audio/transcriptions"),
    "mistral": ("voxtral-mini-latest", "mistral", lambda m: "/v1/audio/transcriptions"),
    "elevenlabs": ("scribe_v1", "elevenlabs", lambda m: "/v1/speech-to-text"),
    "deepgram": ("nova-3", "deepgram", lambda m: "/v1/listen"),
    "gemini": ("gemini-2.5-flash", "gemini", lambda m: f"/v1beta/models/{quote(m, safe='')}:generateContent"),
    "openai-compatible": ("whisper-1", "compatible", lambda m: "/v1/audio/transcriptions"),
}
HOSTILE_TEXT = [
    "x\r\nX-Injected: 1",
    "x?api-version=evil&model=evil#",
    "../../../management/keys",
    "%2e%2e%2f%3F",
    "en&detect_language=true&callback=https://evil.example",
    '"; name="model"\r\n\r\nevil',
    "\u2603\x00\u202e",
]
#: Dot segments cannot be one path segment at all: adapters that put the model in the path refuse them.
NOT_A_SEGMENT = ("", ".", "..")


@pytest.fixture(scope="module")
def adapters(upstreams: Upstreams) -> dict[str, Provider]:
    return build_providers(upstreams.config())


@pytest.fixture
def audio() -> AudioInput:
    return AudioInput(io.BytesIO(AUDIO), "hello.wav", "audio/wav", len(AUDIO))


def _send(
    provider: Provider, fake: list[Recorded], model: str, request: TranscriptionRequest, audio: AudioInput
) -> Recorded | None:
    fake.clear()
    with contextlib.suppress(HeimdallError):  # the fake may refuse what it does not know: what was sent counts
        provider.transcribe(model, request._replace(model=model), audio, Call.lasting(10))
    assert len(fake) <= 1
    return fake[0] if fake else None


def _shape(recorded: Recorded) -> tuple[list[str], set[str], list[str]]:
    query_keys = sorted(k for k, _ in parse_qsl(recorded.raw_query, keep_blank_values=True))
    return query_keys, set(recorded.headers), sorted(name for name, _ in recorded.fields)


def _plain(provider: str) -> TranscriptionRequest:
    """An ordinary request with every text field the provider takes."""
    takes_prompt = provider not in ("deepgram", "elevenlabs", "mistral")
    return TranscriptionRequest(
        model="", response_format=ResponseFormat.VERBOSE_JSON, language="en", prompt="Asgard." if takes_prompt else None
    )


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_no_model_name_changes_the_path_query_or_headers(
    name: str, adapters: dict[str, Provider], fakes: Upstreams, audio: AudioInput
) -> None:
    model, fake_name, path_for = ADAPTERS[name]
    provider, recorded = adapters[name], fakes.fakes[fake_name].requests
    request = _plain(name)
    baseline = _send(provider, recorded, model, request, audio)
    assert baseline is not None and baseline.raw_path == path_for(model)
    tried = 0
    for hostile in [*HOSTILE_NAMES.values(), *HOSTILE_TEXT, *NOT_A_SEGMENT]:
        sent = _send(provider, recorded, hostile, request, audio)
        if sent is None:  # refused before sending: only where the name would be a path segment
            assert hostile in NOT_A_SEGMENT and name in ("azure", "gemini"), repr(hostile)
            continue
        tried += 1
        assert sent.raw_path == path_for(hostile), repr(hostile)
        assert _shape(sent) == _shape(baseline), repr(hostile)
        if name == "deepgram":
            assert sent.query["model"] == hostile
        elif name == "elevenlabs":
            assert sent.field("model_id") == hostile
        elif name not in ("azure", "gemini"):
            assert sent.field("model") == hostile
    assert tried >= len(HOSTILE_NAMES)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_no_language_prompt_filename_or_content_type_changes_the_request(
    name: str, adapters: dict[str, Provider], fakes: Upstreams, audio: AudioInput
) -> None:
    model, fake_name, path_for = ADAPTERS[name]
    provider, recorded = adapters[name], fakes.fakes[fake_name].requests
    request = _plain(name)
    baseline = _send(provider, recorded, model, request, audio)
    assert baseline is not None
    for text in HOSTILE_TEXT:
        variants = [
            (request._replace(language=text), audio),
            (request._replace(prompt=text) if request.prompt else request, audio),
            (request, AudioInput(io.BytesIO(AUDIO), text, "audio/wav", len(AUDIO))),
            (request, AudioInput(io.BytesIO(AUDIO), "hello.wav", "audio/wav" + text, len(AUDIO))),
        ]
        for variant, upload in variants:
            sent = _send(provider, recorded, model, variant, upload)
            assert sent is not None
            assert sent.raw_path == path_for(model), repr(text)
            assert _shape(sent) == _shape(baseline), repr(text)
            assert "x-injected" not in sent.headers
            assert sent.file is not None  # the audio's type is the client's, or none: never more than one value
            assert sent.file["content_type"] in ("audio/wav", "audio/x-wav", "application/octet-stream"), repr(text)


@pytest.mark.parametrize("claimed", ["text/html", "application/octet-stream", "audio/mpeg", "video/webm"])
def test_deepgram_is_sent_the_type_of_the_container_the_bytes_are(
    claimed: str, adapters: dict[str, Provider], fakes: Upstreams
) -> None:
    """Deepgram takes the media type from Content-Type, and refuses a type that is not audio: a client's
    well-formed but wrong type must not decide it (the audio checks already know what the bytes are)."""
    recorded = fakes.fakes["deepgram"].requests
    upload = AudioInput(io.BytesIO(AUDIO), "hello.bin", claimed, len(AUDIO))
    transcript = adapters["deepgram"].transcribe("nova-3", _plain("deepgram"), upload, Call.lasting(10))
    assert transcript.text
    assert recorded[-1].headers["content-type"] == "audio/wav"
