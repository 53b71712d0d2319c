from __future__ import annotations

import pytest

from heimdall.core.errors import InvalidRequest
from heimdall.core.parameters import build_request, safe_filename
from heimdall.core.types import ResponseFormat, TimestampGranularity


def test_defaults_follow_openai() -> None:
    request = build_request([("model", "whisper-1")], path_model=None)
    assert request.response_format is ResponseFormat.JSON
    assert request.temperature is None
    assert request.timestamp_granularities == frozenset()
    assert request.stream is False


def test_path_deployment_is_authoritative_over_the_model_field() -> None:
    assert build_request([("model", "other")], path_model="whisper-prod").model == "whisper-prod"
    assert build_request([], path_model="whisper-prod").model == "whisper-prod"


@pytest.mark.parametrize("name", ["timestamp_granularities[]", "timestamp_granularities"])
def test_granularities_come_with_or_without_brackets(name: str) -> None:
    request = build_request(
        [("model", "m"), ("response_format", "verbose_json"), (name, "word"), (name, "segment")], path_model=None
    )
    assert request.timestamp_granularities == {TimestampGranularity.WORD, TimestampGranularity.SEGMENT}


def test_fallbacks_keep_their_order() -> None:
    fields = [("model", "m"), ("fallbacks[]", "groq/whisper-large-v3"), ("fallbacks", "local/tiny.en")]
    assert build_request(fields, path_model=None).fallbacks == ("groq/whisper-large-v3", "local/tiny.en")


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("false", False), ("0", False)])
def test_stream_parses_booleans(raw: str, expected: bool) -> None:
    assert build_request([("model", "m"), ("stream", raw)], path_model=None).stream is expected


def test_language_is_normalised_iso_639_1() -> None:
    assert build_request([("model", "m"), ("language", "EN")], path_model=None).language == "en"


def test_empty_optional_fields_are_absent() -> None:
    request = build_request([("model", "m"), ("language", ""), ("prompt", " ")], path_model=None)
    assert request.language is None
    assert request.prompt is None


def test_temperature_bounds_are_inclusive() -> None:
    assert build_request([("model", "m"), ("temperature", "0")], path_model=None).temperature == 0
    assert build_request([("model", "m"), ("temperature", "1")], path_model=None).temperature == 1


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ([("chunking_strategy", "auto")], "auto"),
        ([("chunking_strategy", '{"threshold": 0.5, "type": "server_vad"}')], '{"type":"server_vad","threshold":0.5}'),
        ([("chunking_strategy[type]", "server_vad"), ("chunking_strategy[silence_duration_ms]", "400")],
         '{"type":"server_vad","silence_duration_ms":400}'),
    ],
    ids=["auto", "JSON string", "bracketed"],
)  # fmt: skip
def test_chunking_strategy_accepts_openai_forms_as_one_canonical_value(
    fields: list[tuple[str, str]], sent: str
) -> None:
    assert build_request([("model", "m"), *fields], path_model=None).chunking_strategy == sent


def test_chunking_strategy_rejects_other_values() -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_request([("model", "m"), ("chunking_strategy", "sometimes")], path_model=None)
    assert caught.value.param == "chunking_strategy"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("meeting.wav", "meeting.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\talk.mp3", "talk.mp3"),
        ("bad\x00name\r\n.ogg", "badname.ogg"),
        ("nel\x85line\u2028para\u2029.wav", "nellinepara.wav"),
        ("\u202egnp.wav\u200b\ufeff", "gnp.wav"),
        ("réunion \u4f1a\u8b70.m4a", "réunion \u4f1a\u8b70.m4a"),
        ("..", "audio"),
        ("", "audio"),
    ],
)
def test_filenames_lose_directories_and_control_characters(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe
