"""How long audio is cut for the piece function, and the message a piece travels in."""

from __future__ import annotations

import json

import pytest

from heimdall.fanout import FanoutSettings, NotAPieceMessage, PieceMessage, piece_seconds

GOOD = {"job_id": "0" * 32, "etag": "4ef357e40cc46faa3da793f97f8e5848", "index": 7, "offset": 553.2, "seconds": 79.1}
OPENAI_LIMIT = (int(25 * 1024 * 1024 * 0.95) - 44) / 32000  # seconds of 16 kHz mono WAV under 25 MB


@pytest.mark.parametrize(
    ("duration", "concurrency", "longest"),
    [
        (7200, 100, 102.0),  # 72 s a piece at least, cut within the next 30 s: at most 100 pieces
        (7200, 10, 750.0),
        (7200, 1, OPENAI_LIMIT),  # never over the provider's file limit
        (900, 100, 60.0),  # never under the floor (30 s) + the cut's window
    ],
)
def test_pieces_are_sized_for_one_wave_of_the_piece_function(duration: float, concurrency: int, longest: float) -> None:
    assert piece_seconds(duration, concurrency, OPENAI_LIMIT, 30.0) == pytest.approx(longest)


def test_without_a_file_limit_only_the_concurrency_sizes_pieces() -> None:
    assert piece_seconds(7200, 10, None, 30.0) == 750.0


def test_a_piece_message_round_trips_and_names_its_objects() -> None:
    message = PieceMessage("0" * 32, "4ef357e40cc46faa3da793f97f8e5848", 7, 553.2, 79.1)
    assert PieceMessage.parse(message.body()) == message
    assert message.key("wav") == f"pieces/{'0' * 32}/4ef357e40cc46faa3da793f97f8e5848/00007.wav"


def test_fan_out_is_off_without_the_piece_queue_and_read_once_from_the_environment() -> None:
    assert FanoutSettings.from_environment({}) is None
    settings = FanoutSettings.from_environment({"HEIMDALL_PIECE_QUEUE_URL": "https://sqs/q",
                                                "HEIMDALL_FANOUT_ABOVE_SECONDS": "900",
                                                "HEIMDALL_PIECE_CONCURRENCY": "50"})  # fmt: skip
    assert settings is not None
    assert (settings.above_seconds, settings.concurrency, settings.min_piece_seconds) == (900.0, 50, 30.0)


@pytest.mark.parametrize(
    "body",
    [
        "", "not json", "[]", "null", '"text"', "{}",
        '{"job_id": "' + "0" * 32 + '", "etag": "e", "index": 1, "offset": 0}',  # a field missing
        json.dumps({**GOOD, "index": -1}), json.dumps({**GOOD, "index": 10**9}), json.dumps({**GOOD, "index": 1.5}),
        json.dumps({**GOOD, "index": True}), json.dumps({**GOOD, "index": "3"}),
        json.dumps({**GOOD, "job_id": "../../etc"}), json.dumps({**GOOD, "job_id": 7}),
        json.dumps({**GOOD, "etag": "x/../../transcripts"}), json.dumps({**GOOD, "etag": ""}),
        json.dumps({**GOOD, "offset": "1e309"}), json.dumps({**GOOD, "seconds": -1}),
        json.dumps({**GOOD, "offset": "nan"}), json.dumps({**GOOD, "seconds": [1]}),
    ],
)  # fmt: skip
def test_a_body_the_scatter_did_not_send_is_not_a_piece_message(body: str) -> None:
    with pytest.raises(NotAPieceMessage):
        PieceMessage.parse(body)


def test_a_piece_beyond_the_jobs_count_is_not_one_of_its_pieces() -> None:
    message = PieceMessage.parse(json.dumps({**GOOD, "index": 5}))
    assert message.beyond({"pieces_total": 5}) and not message.beyond({"pieces_total": 6})
    assert not message.beyond({})  # the scatter is still cutting: the count is not known yet
