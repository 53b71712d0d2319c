"""Long recordings through the running gateway and the embedded engine come back whole and accurate.

A recording made of one phrase repeated with pauses (as IVR prompts, chants and repeated answers
are) used to come back with minutes missing, or looping on one word: its faithful transcript is
repetitive, so Whisper's compression-ratio test took it for a hallucination and resampled it at
higher temperatures, whose guesses skipped ahead. docs/performance.md has the settings and the
measurements behind them.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from openai import OpenAI

from tests.support import recordings
from tests.support.recordings import Recording, longest_gap, word_error_rate
from tests.support.speech import FILES

pytestmark = pytest.mark.engine

MAX_GAP_SECONDS = 5.0


@pytest.fixture(scope="module")
def client(gateway_url: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway_url}/openai/v1", api_key="unused", max_retries=0, timeout=300)


def transcribe(client: OpenAI, recording: Recording) -> Any:
    return client.audio.transcriptions.create(
        model="local/tiny.en", file=("recording.wav", io.BytesIO(recording.wav())), response_format="verbose_json"
    )


def test_a_phrase_repeated_for_minutes_comes_back_once_per_repetition(client: OpenAI) -> None:
    # 26 repetitions of a 4.2 s phrase, 2 s apart: with the previous settings the transcript skipped
    # from 28 s to 148 s (or looped on one word); every repetition must be there, and no more.
    recording = recordings.fixture_repeated("hello", 160, pause=2.0)
    result = transcribe(client, recording)
    covered = [(s.start, s.end) for s in result.segments]
    assert longest_gap(recording.spans, covered) <= MAX_GAP_SECONDS, covered
    said = recordings.normalise(result.text).count("gateway")
    assert said == len(recording.spans), result.text


def test_minutes_of_real_speech_keep_their_accuracy(client: OpenAI) -> None:
    recording = corpus_or_skip(lambda: recordings.continuous(120))
    result = transcribe(client, recording)
    assert word_error_rate(recording.reference, result.text) <= 0.06, result.text
    assert longest_gap(recording.spans, [(s.start, s.end) for s in result.segments]) <= MAX_GAP_SECONDS


def corpus_or_skip(build: Any) -> Recording:
    try:
        recording: Recording = build()
    except recordings.CorpusUnavailable as exc:
        pytest.skip(f"real-speech corpus unavailable: {exc}")
    return recording


def test_the_multilingual_model_detects_the_language_and_names_it_as_openai_does(client: OpenAI) -> None:
    with FILES["guten_tag"].open("rb") as audio:
        result = client.audio.transcriptions.create(model="local/base", file=audio, response_format="verbose_json")
    assert result.language == "german"
    assert "guten tag" in recordings.normalise(result.text), result.text
