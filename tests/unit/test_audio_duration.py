"""The duration a limit counts is read from the container, for every format, not only WAV."""

from __future__ import annotations

import pytest

from heimdall.audio import check_audio
from heimdall.core.types import AudioInput
from tests.support.speech import FILES


@pytest.mark.parametrize(("fixture", "seconds"), [("hello", 4.205), ("fox", 7.099), ("story", 25.566)])
def test_duration_is_read_from_every_container(fixture: str, seconds: float) -> None:
    path = FILES[fixture]
    with path.open("rb") as file:
        audio = AudioInput(file, path.name, "application/octet-stream", path.stat().st_size)
        assert check_audio(audio, max_seconds=3600) == pytest.approx(seconds, abs=0.01)
        assert file.tell() == 0  # handed on rewound
