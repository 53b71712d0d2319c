"""Provider answers of the wrong shape: valid JSON that is not what the provider documents, JSON that
is not an object, absurd numbers, huge or endlessly nested bodies, error bodies and stream events of
the wrong shape. Each is the provider's failure — a 502 ``invalid_provider_response`` that is retried
and falls back like a 5xx — never a 500; and what the references allow (``usage.seconds`` of 2.5,
fields Heimdall does not know) is accepted."""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import srt
import webvtt

from heimdall.api.app import create_app
from heimdall.config import parse_config
from heimdall.providers.upstream import MAX_EVENT_BYTES
from tests.fakes.base import DURATION, SPOKEN, Fault
from tests.support.servers import serve
from tests.support.speech import FILES
from tests.support.upstreams import NETWORK, Upstreams

AUDIO = FILES["fox"].read_bytes()
CALLS = 1 + NETWORK["max_retries"]
#: One target per adapter, with the fake that answers for it.
TARGETS = {
    "openai/whisper-1": "openai",
    "azure/whisper-1": "azure",
    "groq/whisper-large-v3": "groq",
    "openai-compatible/whisper": "compatible",
    "mistral/voxtral-mini-latest": "mistral",
    "elevenlabs/scribe_v1": "elevenlabs",
    "deepgram/nova-3": "deepgram",
    "gemini/gemini-2.5-flash": "gemini",
}
SEGMENT = {"id": 0, "seek": 0, "start": 0.0, "end": 3.46, "text": " The quick brown fox jumps over the lazy dog."}


def transcribe(gateway: str, model: str, **fields: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO, "audio/flac")},
        data={"model": model, **fields},
        timeout=30,
    )


def assert_invalid_answer(response: httpx.Response, provider: str) -> dict[str, Any]:
    assert response.status_code == 502, response.text
    envelope: dict[str, Any] = response.json()
    assert envelope["error"]["code"] == "invalid_provider_response"
    assert envelope["is_bifrost_error"] is False
    assert envelope["extra_fields"]["provider"] == provider
    return envelope


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_wrong_shape_from_any_provider_is_a_502_after_its_retries(
    provider_gateway: str, fakes: Upstreams, target: str
) -> None:
    fake = TARGETS[target]
    fakes.fakes[fake].always = Fault("shape")
    response = transcribe(provider_gateway, target)
    envelope = assert_invalid_answer(response, target.split("/")[0])
    assert fakes.calls(fake) == CALLS
    assert [a["status"] for a in envelope["extra_fields"]["attempts"]] == [502] * CALLS


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_wrong_shape_falls_back_to_the_next_target(provider_gateway: str, fakes: Upstreams, target: str) -> None:
    fakes.fakes[TARGETS[target]].always = Fault("shape")
    fallback = "mistral/voxtral-mini-latest" if target != "mistral/voxtral-mini-latest" else "openai/whisper-1"
    response = transcribe(provider_gateway, target, **{"fallbacks[]": fallback})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == SPOKEN
    assert response.json()["extra_fields"]["provider"] == fallback.split("/")[0]


# Valid JSON (or what Python's parser takes for it) that no OpenAI-style reference allows.
WRONG_BODIES: dict[str, bytes | Any] = {
    "a list": [{"text": SPOKEN}],
    "a string": "The quick brown fox",
    "null": None,
    "a number": 42,
    "no text": {"segments": [SEGMENT]},
    "text not a string": {"text": {"value": SPOKEN}},
    "segments not a list": {"text": SPOKEN, "segments": {"0": SEGMENT}},
    "a segment not an object": {"text": SPOKEN, "segments": ["The quick brown fox"]},
    "a segment without times": {"text": SPOKEN, "segments": [{"id": 0, "text": "The"}]},
    "a time that is a word": {"text": SPOKEN, "segments": [{**SEGMENT, "start": "soon"}]},
    "a NaN time": b'{"text": "x", "segments": [{"start": NaN, "end": 1.0, "text": "x"}]}',
    "an infinite time": b'{"text": "x", "segments": [{"start": 0, "end": 1e400, "text": "x"}]}',
    "an Infinity literal": b'{"text": "x", "duration": Infinity}',
    "a negative time": {"text": SPOKEN, "segments": [{**SEGMENT, "start": -3.0}]},
    "an absurd time": {"text": SPOKEN, "duration": 1e300},
    "a word without its text": {"text": SPOKEN, "words": [{"start": 0.0, "end": 0.3}]},
    "a lone leading surrogate in the text": b'{"text": "The quick \\ud800 fox"}',
    "a lone trailing surrogate in a segment": b'{"text": "x", "segments": [{"start": 0, "end": 1, "text": "\\udc00"}]}',
    "a word list of strings": {"text": SPOKEN, "words": ["The", "quick"]},
    "usage seconds not a number": {"text": SPOKEN, "usage": {"type": "duration", "seconds": "eight"}},
    "negative token counts": {"text": SPOKEN, "usage": {"type": "tokens", "input_tokens": -5}},
    "logprobs of the wrong shape": {"text": SPOKEN, "logprobs": [{"token": "The"}]},
    "an integer too long to read": b'{"text": "x", "duration": ' + b"9" * 5000 + b"}",
    "nesting 100,000 deep": b'{"text": "x", "segments": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("name", list(WRONG_BODIES))
def test_every_kind_of_wrong_answer_is_a_502(provider_gateway: str, fakes: Upstreams, name: str) -> None:
    fakes.fakes["openai"].always = Fault("body", body=WRONG_BODIES[name])
    response = transcribe(provider_gateway, "openai/whisper-1", response_format="verbose_json")
    assert_invalid_answer(response, "openai")
    assert fakes.calls("openai") == CALLS


#: One word over the bound on timed items, for every adapter whose answer carries a timed list.
_WORD = {"start": 0.0, "end": 0.0}
OVERLONG_TIMELINES = {
    "openai words": ("openai/whisper-1", "openai", {"text": "a", "words": [{**_WORD, "word": "a"}] * 100_001}),
    "openai segments": ("openai/whisper-1", "openai", {"text": "a", "segments": [SEGMENT] * 100_001}),
    "openai logprobs": ("openai/whisper-1", "openai",
                        {"text": "a", "logprobs": [{"token": "a", "logprob": 0}] * 100_001}),
    "mistral segments": ("mistral/voxtral-mini-latest", "mistral",
                         {"text": "a", "segments": [{**_WORD, "text": "a"}] * 100_001}),
    "elevenlabs words": ("elevenlabs/scribe_v1", "elevenlabs",
                         {"text": "a", "words": [{**_WORD, "text": "a", "type": "word"}] * 100_001}),
    "deepgram words": ("deepgram/nova-3", "deepgram", {"metadata": {"duration": 1.0}, "results": {"channels": [
        {"alternatives": [{"transcript": "a", "words": [{**_WORD, "word": "a"}] * 100_001}]}]}}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OVERLONG_TIMELINES))
def test_an_answer_with_more_timed_items_than_any_audio_has_is_refused(
    provider_gateway: str, fakes: Upstreams, name: str
) -> None:
    """Under the size cap, a list of 100,001 words or segments would still cost seconds of parsing and
    rendering after the call's timeout stopped counting: it is refused as the broken answer it is."""
    target, fake, body = OVERLONG_TIMELINES[name]
    fakes.fakes[fake].always = Fault("body", body=body)
    response = transcribe(provider_gateway, target, response_format="verbose_json")
    envelope = assert_invalid_answer(response, target.split("/")[0])
    assert "100000" in envelope["error"]["message"] or "100,000" in envelope["error"]["message"], envelope


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_answer_is_refused_while_it_is_read(provider_gateway: str, fakes: Upstreams, declared: bool) -> None:
    """33 MB of valid JSON: refused by its declared length, or by counting as it arrives."""
    head, tail = b'{"text": "', b'"}'
    chunks = [head, *[b"a" * (1024 * 1024)] * 33, tail]
    fakes.fakes["openai"].always = Fault("body", body=b"".join(chunks) if declared else chunks)
    response = transcribe(provider_gateway, "openai/whisper-1")
    envelope = assert_invalid_answer(response, "openai")
    assert "sent an answer over 32768 KiB" in envelope["error"]["message"]


def test_a_compressed_answer_is_read(provider_gateway: str, fakes: Upstreams) -> None:
    """Heimdall asks for gzip and deflate (``Accept-Encoding``): an answer so sent is unpacked."""
    body = gzip.compress(json.dumps({"text": SPOKEN, "language": "english", "duration": DURATION}).encode())
    fakes.fakes["openai"].fail_next(Fault("body", body=body, headers={"content-encoding": "gzip"}))
    response = transcribe(provider_gateway, "openai/whisper-1")
    assert response.status_code == 200, response.text
    assert response.json()["text"] == SPOKEN


def test_a_compressed_answer_is_refused_once_it_unpacks_past_the_bound(provider_gateway: str, fakes: Upstreams) -> None:
    """65 KB of gzip that unpacks to 64 MB: its declared length is small, so the bound is counted on the
    unpacked bytes as they come out, and the answer refused before it is all held."""
    bomb = gzip.compress(b'{"text": "' + b"a" * (64 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < 100_000
    fakes.fakes["openai"].always = Fault("body", body=bomb, headers={"content-encoding": "gzip"})
    response = transcribe(provider_gateway, "openai/whisper-1")
    envelope = assert_invalid_answer(response, "openai")
    assert "sent an answer over 32768 KiB" in envelope["error"]["message"]
    assert fakes.calls("openai") == CALLS


def test_an_answer_that_trickles_in_is_cut_off_at_the_timeout(provider_gateway: str, fakes: Upstreams) -> None:
    """A byte every 0.1 s never trips the read timeout (1 s); the whole answer (2.2 s) must still arrive within it."""
    fakes.fakes["openai"].always = Fault("drip", body=b'{"text": "' + b"a" * 10 + b'"}', seconds=0.1)
    started = time.monotonic()
    response = transcribe(provider_gateway, "openai/whisper-1")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "provider_timeout"
    assert time.monotonic() - started < CALLS * NETWORK["default_request_timeout_in_seconds"] + 2
    assert fakes.calls("openai") == CALLS


@pytest.mark.parametrize(
    ("fake", "target", "body"),
    [
        ("openai", "openai/whisper-1", {"error": {"message": {"nested": "object"}}}),
        ("openai", "openai/whisper-1", [{"error": {"message": "a list around the error"}}]),
        ("openai", "openai/whisper-1", "a bare string"),
        ("elevenlabs", "elevenlabs/scribe_v1", {"detail": [1, 2, 3]}),
        ("mistral", "mistral/voxtral-mini-latest", {"detail": [{"loc": ["body"]}]}),
        ("deepgram", "deepgram/nova-3", {"err_msg": ["not", "a", "string"]}),
        ("gemini", "gemini/gemini-2.5-flash", {"error": 503}),
    ],
    ids=["message-object", "list", "string", "elevenlabs-detail-ints", "mistral-detail-no-msg", "deepgram", "gemini"],
)
def test_an_error_body_of_the_wrong_shape_is_the_providers_502(
    provider_gateway: str, fakes: Upstreams, fake: str, target: str, body: Any
) -> None:
    fakes.fakes[fake].always = Fault("status", 503, body=body)
    response = transcribe(provider_gateway, target)
    assert response.status_code == 502, response.text
    envelope = response.json()
    assert envelope["error"]["code"] == "upstream_503"
    assert envelope["is_bifrost_error"] is False
    assert envelope["error"]["message"] == f"{target.split('/')[0]} answered HTTP 503 without a readable error message."


def test_a_huge_error_body_is_not_relayed(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["openai"].always = Fault("status", 500, body={"error": {"message": "x" * (1024 * 1024)}})
    response = transcribe(provider_gateway, "openai/whisper-1")
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "openai answered HTTP 500 without a readable error message."


@pytest.mark.parametrize("retry_after", ["inf", "nan", "1e400", "-30", "Infinity"])
def test_an_absurd_retry_after_is_not_a_500(provider_gateway: str, fakes: Upstreams, retry_after: str) -> None:
    fakes.fakes["azure"].always = Fault("status", 429, headers={"Retry-After": retry_after})
    response = transcribe(provider_gateway, "azure/whisper-1")
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers.get("retry-after", "1")) <= 3600


def test_usage_seconds_may_be_a_fraction(provider_gateway: str, fakes: Upstreams) -> None:
    """OpenAI's reference types usage.seconds as a number: 2.5 is as valid as 8."""
    fakes.fakes["compatible"].fail_next(
        Fault("body", body={"text": SPOKEN, "usage": {"type": "duration", "seconds": 2.5}})
    )
    response = transcribe(provider_gateway, "openai-compatible/whisper")
    assert response.status_code == 200, response.text
    assert response.json()["usage"] == {"type": "duration", "seconds": 2.5}


def test_fields_a_provider_adds_are_ignored(provider_gateway: str, fakes: Upstreams) -> None:
    body = {"text": SPOKEN, "task": "transcribe", "language": "english", "duration": DURATION, "x_groq": {"id": "r"},
            "segments": [{**SEGMENT, "speaker": "A", "words": []}],
            "usage": {"type": "audio_minutes", "minutes": 1}}  # fmt: skip
    fakes.fakes["openai"].fail_next(Fault("body", body=body))
    response = transcribe(provider_gateway, "openai/whisper-1", response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["segments"][0]["end"] == 3.46
    assert "usage" not in response.json()  # a usage type Heimdall does not know is left out, not invented


STREAM = "openai/gpt-4o-transcribe"
DELTA = b'{"type": "transcript.text.delta", "delta": "The"}'
DONE = b'{"type": "transcript.text.done", "text": "The", "usage": {"type": "tokens", "input_tokens": 3}}'


@pytest.mark.parametrize(
    "first",
    [
        b'{"type": "transcript.text.delta", "delta": 5}',
        b"[1, 2]",
        b'"delta"',
        b'{"type": "transcript.text.done"}',
        b'{"type": "transcript.text.delta", "delta": "\\ud83d"}',
    ],
    ids=["delta-not-text", "list", "string", "done-without-text", "lone-surrogate"],
)
def test_a_wrong_first_stream_event_is_retried_and_falls_back(
    provider_gateway: str, fakes: Upstreams, first: bytes
) -> None:
    fakes.fakes["openai"].always = Fault("events", body=[first, DONE])
    with httpx.stream(
        "POST",
        f"{provider_gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO, "audio/flac")},
        data={"model": STREAM, "stream": "true", "fallbacks[]": "mistral/voxtral-mini-latest"},
        timeout=30,
    ) as response:
        text = response.read().decode()
    assert response.status_code == 200, text
    assert fakes.calls("openai") == CALLS
    assert '"provider":"mistral"' in text
    assert text.rstrip().endswith("data: [DONE]")


def streamed(gateway: str) -> tuple[int, str]:
    """The status and the whole event stream of a ``stream=true`` transcription of the fox."""
    with httpx.stream(
        "POST",
        f"{gateway}/v1/audio/transcriptions",
        files={"file": ("fox.flac", AUDIO, "audio/flac")},
        data={"model": STREAM, "stream": "true"},
        timeout=30,
    ) as response:
        return response.status_code, response.read().decode()


def test_a_stream_line_one_byte_over_the_bound_ends_the_stream_with_an_error_event(
    provider_gateway: str, fakes: Upstreams
) -> None:
    """A line is bounded whole (MAX_EVENT_BYTES), also when it ends in the read that takes it over."""
    prefix = b'{"type": "transcript.text.delta", "delta": "'
    over = prefix + b"a" * (MAX_EVENT_BYTES - len(b"data: ") - len(prefix) - 2 + 1) + b'"}'
    assert len(b"data: " + over) == MAX_EVENT_BYTES + 1
    fakes.fakes["openai"].always = Fault("events", body=[DELTA, over, DONE])
    status, text = streamed(provider_gateway)
    assert status == 200
    assert f"over {MAX_EVENT_BYTES} bytes" in text
    assert "[DONE]" not in text


def test_a_wrong_stream_event_after_the_first_ends_the_stream_with_an_error_event(
    provider_gateway: str, fakes: Upstreams
) -> None:
    fakes.fakes["openai"].always = Fault("events", body=[DELTA, b'{"type": "transcript.text.delta"}', DONE])
    status, text = streamed(provider_gateway)
    assert status == 200
    assert '"code":"invalid_provider_response"' in text
    assert "[DONE]" not in text


def test_an_endless_stream_line_is_cut_off(provider_gateway: str, fakes: Upstreams) -> None:
    fakes.fakes["openai"].always = Fault(
        "events", body=[b'{"type": "transcript.text.delta", "delta": "' + b"a" * (2 << 20)]
    )
    response = transcribe(provider_gateway, STREAM, stream="true")
    assert_invalid_answer(response, "openai")


def test_elevenlabs_reports_the_audio_duration_not_the_last_words_end(provider_gateway: str, fakes: Upstreams) -> None:
    response = transcribe(provider_gateway, "elevenlabs/scribe_v1", response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["duration"] == DURATION  # audio_duration_secs; the last word ends at 7.0
    assert response.json()["usage"] == {"type": "duration", "seconds": 8}


@pytest.mark.parametrize("target", ["deepgram/nova-3", "openai-compatible/whisper"])
def test_the_requested_language_is_reported_when_the_provider_does_not_echo_it(
    provider_gateway: str, fakes: Upstreams, target: str
) -> None:
    """Deepgram sends no detected_language for a language it was told; some OpenAI-compatible servers
    leave ``language`` out. OpenAI always reports one, so Heimdall does too."""
    fakes.fakes["compatible"].fail_next(Fault("body", body={"text": SPOKEN, "segments": [SEGMENT], "duration": 7.1}))
    response = transcribe(provider_gateway, target, language="de", response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "german"


def test_the_detected_language_is_reported_when_none_was_requested(provider_gateway: str, fakes: Upstreams) -> None:
    response = transcribe(provider_gateway, "deepgram/nova-3", response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "english"
    assert fakes.fakes["deepgram"].requests[0].query["detect_language"] == "true"


@pytest.mark.parametrize("response_format", ["srt", "vtt"])
def test_segment_text_cannot_forge_subtitle_cues(provider_gateway: str, fakes: Upstreams, response_format: str) -> None:
    forged = " Hello.\n\n2\n00:00:05,000 --> 00:00:09,000\nForged cue.\n\n"
    body = {"text": SPOKEN, "segments": [{**SEGMENT, "text": forged}, {**SEGMENT, "start": 4.3, "end": 7.0}]}
    fakes.fakes["openai"].fail_next(Fault("body", body=body))
    response = transcribe(provider_gateway, "openai/whisper-1", response_format=response_format)
    assert response.status_code == 200, response.text
    if response_format == "srt":
        cues = list(srt.parse(response.text))
        contents = [cue.content for cue in cues]
    else:
        cues = list(webvtt.from_string(response.text))
        contents = [cue.text for cue in cues]
    assert len(cues) == 2
    assert contents[0] == "Hello. 2 00:00:05,000 -> 00:00:09,000 Forged cue."


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_key_in_the_answers_content_type_is_not_relayed(provider_gateway: str, fakes: Upstreams, target: str) -> None:
    """A body that is not JSON is named by its media type; the header's parameters are the provider's
    text (a careless one echoes its key there) and never reach the client or the log."""
    fake = TARGETS[target]
    secret = fakes.keys.get(fake, "sk-local-server-secret-0123456789")
    fakes.fakes[fake].always = Fault("body", body=b"<html>", headers={"content-type": f"text/html; key={secret}"})
    response = transcribe(provider_gateway, target)
    envelope = assert_invalid_answer(response, target.split("/")[0])
    assert "(text/html, 6 bytes)" in envelope["error"]["message"]
    assert secret not in response.text
    assert all(secret not in value for value in response.headers.values())


@contextmanager
def raw_upstream(answer: bytes) -> Iterator[str]:
    """A loopback server that reads one request and answers ``answer`` byte for byte: for headers no
    HTTP library would send (the fakes' uvicorn refuses them)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve_each() -> None:
        for _ in range(2 * CALLS):  # bounded: every call a test makes, with room to spare
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += conn.recv(65536)
                head, _, body = received.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=serve_each, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("declared", ["\u00b2", "\u00b9\u00b2", "1\u00b3"])
def test_a_content_length_of_other_digits_is_the_providers_502(declared: str) -> None:
    """str.isdigit() says yes to '²', which int() refuses: such a length is no length, never a 500."""
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + declared.encode("latin-1")
        + b'\r\nConnection: close\r\n\r\n{"text": "hello"}'
    )
    with raw_upstream(answer) as origin:
        config = parse_config({"providers": {"openai-compatible": {"network_config": {**NETWORK, "base_url": origin}}}})
        with serve(create_app(config)) as gateway:
            response = transcribe(gateway, "openai-compatible/whisper")
    assert response.status_code in (200, 502), response.text
    assert response.json().get("text") == "hello" or response.json()["error"]["code"] != "server_error"


@pytest.mark.parametrize("where", ["finishReason", "blockReason"])
def test_a_geminis_reason_is_relayed_only_as_the_reference_spells_one(
    provider_gateway: str, fakes: Upstreams, where: str
) -> None:
    """Gemini says why there is no transcript with an enum value; any other text in its place is the
    upstream's own (here its key) and stays out of the message."""
    secret = fakes.keys["gemini"]
    for reason, relayed in (("SAFETY", True), (f"see {secret}", False)):
        answer = (
            {"candidates": [{"finishReason": reason, "index": 0}]}
            if where == "finishReason"
            else {"candidates": [], "promptFeedback": {"blockReason": reason}}
        )
        fakes.fakes["gemini"].always = Fault("body", body=answer)
        response = transcribe(provider_gateway, "gemini/gemini-2.5-flash")
        envelope = assert_invalid_answer(response, "gemini")
        assert ("SAFETY" in envelope["error"]["message"]) is relayed
        assert secret not in response.text
