"""A job's estimate of the time left (heimdall.job_table.time_left) and how the CLI draws it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from heimdall.cli import time_left as drawn
from heimdall.job_table import time_left

START = "2026-11-24T10:00:00+00:00"
AT = datetime.fromisoformat(START).timestamp() + 100


def running(**fields: Any) -> dict[str, Any]:
    return {"status": "running", "started_at": START, **fields}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (running(pieces_done=1, pieces_total=5), 400),  # one piece per 100 s, four left
        (running(pieces_done=4, pieces_total=5), 25),
        (running(pieces_done=3, pieces_total=3), 0),
        (running(pieces_done=7, pieces_total=5), 0),  # never negative
        (running(pieces_done=0, pieces_total=5), None),  # no rate yet
        (running(pieces_done=2), None),  # the last piece not cut: the total is unknown
        ({**running(pieces_done=1, pieces_total=5), "status": "succeeded"}, None),
        ({"status": "running", "pieces_done": 1, "pieces_total": 5}, None),  # no start recorded
        (running(pieces_done=1, pieces_total=5, started_at="not a time"), None),
    ],
)
def test_time_left_is_the_rate_so_far_times_the_pieces_left(item: dict[str, Any], expected: int | None) -> None:
    assert time_left(item, now=AT) == expected


@pytest.mark.parametrize(
    ("eta", "expected"),
    [(80, ["~1m20s left"]), (59, ["~59s left"]), (0, ["~0s left"]), (3605, ["~60m05s left"]),
     (None, []), (-1, []), ("80", []), (True, []), (1.5, [])],
)  # fmt: skip
def test_the_cli_draws_the_estimate_only_when_the_status_gives_a_sane_one(eta: Any, expected: list[str]) -> None:
    assert drawn({} if eta is None else {"eta_seconds": eta}) == expected
