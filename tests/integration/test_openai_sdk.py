"""The official openai SDK, pointed at the running gateway, transcribes the speech fixtures."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import srt
import webvtt
from openai import AzureOpenAI, OpenAI

from tests.support.speech import FILES, wer

pytestmark = pytest.mark.engine

MAX_WER = 0.35


@pytest.fixture(scope="module", params=["azure", "openai"])
def client(request: pytest.FixtureRequest, gateway_url: str) -> Any:
    if request.param == "azure":
        return AzureOpenAI(
            azure_endpoint=f"{gateway_url}/openai", api_version="2024-06-01", api_key="unused", max_retries=0
        )
    return OpenAI(base_url=f"{gateway_url}/openai/v1", api_key="unused", max_retries=0)


def transcribe(client: Any, fixture: str, **options: Any) -> Any:
    with FILES[fixture].open("rb") as audio:
        return client.audio.transcriptions.create(model="whisper-1", file=audio, **options)


def test_json_recognises_the_speech(client: Any) -> None:
    result = transcribe(client, "fox")
    assert wer("fox", result.text) <= MAX_WER, result.text
    assert result.usage.type == "duration"
    assert result.usage.seconds == 8  # 7.1 s of audio, billed in whole seconds as OpenAI does


def test_text_is_a_plain_string(client: Any) -> None:
    result = transcribe(client, "hello", response_format="text")
    assert isinstance(result, str)
    assert not result.lstrip().startswith("{")
    assert wer("hello", result) <= MAX_WER, result


def test_srt_parses_as_subtitles(client: Any) -> None:
    result = transcribe(client, "story", response_format="srt")
    cues = list(srt.parse(result, ignore_errors=False))
    assert [cue.index for cue in cues] == list(range(1, len(cues) + 1))
    assert all(cue.start < cue.end for cue in cues)
    assert all(a.end <= b.start for a, b in pairwise(cues))
    assert wer("story", " ".join(cue.content for cue in cues)) <= MAX_WER


def test_vtt_parses_as_webvtt(client: Any) -> None:
    result = transcribe(client, "fox", response_format="vtt")
    assert result.startswith("WEBVTT\n")
    captions = webvtt.from_string(result)
    assert len(captions) >= 1
    assert all(c.start_in_seconds < c.end_in_seconds for c in captions)
    assert wer("fox", " ".join(c.text for c in captions)) <= MAX_WER


def test_verbose_json_carries_segments(client: Any) -> None:
    result = transcribe(client, "story", response_format="verbose_json")
    assert result.language == "english"
    assert result.duration == pytest.approx(25.57, abs=0.05)
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    for segment in result.segments:
        assert 0 <= segment.start < segment.end <= result.duration + 0.01
        assert segment.tokens and isinstance(segment.avg_logprob, float)
    assert not result.words  # words only when asked for
    assert wer("story", result.text) <= MAX_WER


def test_verbose_json_carries_words_when_asked(client: Any) -> None:
    result = transcribe(client, "fox", response_format="verbose_json", timestamp_granularities=["word", "segment"])
    words = result.words
    assert len(words) >= 12
    assert all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in pairwise(words))
    assert wer("fox", " ".join(w.word for w in words)) <= MAX_WER
    assert result.segments


def test_extra_fields_name_the_local_engine(client: Any) -> None:
    with FILES["hello"].open("rb") as audio:
        raw = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=audio)
    body = raw.http_response.json()
    assert body["extra_fields"] == {
        "request_type": "transcription",
        "provider": "local",
        "model_requested": "whisper-1",
        "model_deployment": "tiny.en",
        "latency": body["extra_fields"]["latency"],
        "chunk_index": 0,
        "fallback_index": 0,
    }
    assert isinstance(body["extra_fields"]["latency"], int) and body["extra_fields"]["latency"] > 0
    assert raw.headers["x-request-id"]


def test_errors_reach_the_sdk_as_its_own_exception_types(client: Any) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, "hello", temperature=1.5)
    error = caught.value
    assert error.status_code == 400
    assert error.param == "temperature"
    assert error.code == "invalid_value"
    assert "temperature" in error.message
