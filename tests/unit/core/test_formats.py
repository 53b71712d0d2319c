from __future__ import annotations

import pytest
import srt
import webvtt

from heimdall.core.errors import InvalidRequest
from heimdall.core.formats import render_json, render_srt, render_text, render_verbose_json, render_vtt
from heimdall.core.types import (
    ResponseFormat,
    Segment,
    TimestampGranularity,
    Transcript,
    TranscriptionRequest,
    Usage,
    Word,
)

TRANSCRIPT = Transcript(
    text="Hello there. General Kenobi.",
    language="english",
    duration=3661.5,
    segments=[
        Segment(id=0, start=0.0, end=1.2347, text=" Hello there."),
        Segment(id=1, start=1.9996, end=3661.4994, text=" General Kenobi. "),
    ],
    words=[Word(word="Hello", start=0.0, end=0.5)],
    usage=Usage(type="duration", seconds=3662),
)


def test_srt_numbers_cues_from_one_and_rounds_milliseconds() -> None:
    assert render_srt(TRANSCRIPT) == (
        "1\n00:00:00,000 --> 00:00:01,235\nHello there.\n\n2\n00:00:02,000 --> 01:01:01,499\nGeneral Kenobi.\n\n"
    )
    assert [c.content for c in srt.parse(render_srt(TRANSCRIPT))] == ["Hello there.", "General Kenobi."]


def test_vtt_starts_with_its_header_and_uses_a_dot() -> None:
    body = render_vtt(TRANSCRIPT)
    assert body.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.235\nHello there.\n")
    assert [c.text for c in webvtt.from_string(body)] == ["Hello there.", "General Kenobi."]


def test_text_is_the_bare_transcript_with_a_newline() -> None:
    assert render_text(TRANSCRIPT) == "Hello there. General Kenobi.\n"


def test_empty_transcript_renders_valid_empty_documents() -> None:
    empty = Transcript(text="", segments=[])
    assert render_srt(empty) == ""
    assert render_vtt(empty) == "WEBVTT\n\n"
    assert render_text(empty) == "\n"


def test_subtitles_without_timestamps_are_a_clear_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render_srt(Transcript(text="no times"), provider="gemini")
    assert caught.value.param == "response_format"
    assert "gemini" in caught.value.message


def test_json_is_text_and_usage_only() -> None:
    request = TranscriptionRequest(model="m")
    assert render_json(TRANSCRIPT, request) == {"text": TRANSCRIPT.text, "usage": {"type": "duration", "seconds": 3662}}


def test_verbose_json_has_words_only_when_asked() -> None:
    plain = render_verbose_json(
        TRANSCRIPT, TranscriptionRequest(model="m", response_format=ResponseFormat.VERBOSE_JSON)
    )
    assert plain["task"] == "transcribe"
    assert "words" not in plain
    assert plain["segments"][0] == {"id": 0, "start": 0.0, "end": 1.2347, "text": " Hello there."}
    with_words = render_verbose_json(
        TRANSCRIPT,
        TranscriptionRequest(
            model="m",
            response_format=ResponseFormat.VERBOSE_JSON,
            timestamp_granularities=frozenset({TimestampGranularity.WORD}),
        ),
    )
    assert with_words["words"] == [{"word": "Hello", "start": 0.0, "end": 0.5}]
