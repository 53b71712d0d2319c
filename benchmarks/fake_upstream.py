"""Serve the fake OpenAI upstream from the test suite on a port:
``python -m benchmarks.fake_upstream PORT KEY [OVERHEAD RTF [FAULT]]``.

With OVERHEAD and RTF, each answer takes ``OVERHEAD + RTF * the piece's seconds`` (a provider's speed,
modelled). FAULT ``once:K`` answers 503 to the first two requests for piece K (one invocation of the
piece function with one retry), ``always:K`` to every one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from tests.fakes.base import Fault, Recorded
from tests.fakes.openai import OpenAIFake
from tests.support.fanout import latency_model


def piece_fault(spec: str) -> Any:
    kind, _, index = spec.partition(":")
    name = f"piece{int(index):05d}.wav"
    seen = [0]

    def fault(recorded: Recorded) -> Fault | None:
        if recorded.file is None or recorded.file.get("filename") != name:
            return None
        seen[0] += 1
        return Fault("status", 503) if kind == "always" or seen[0] <= 2 else None

    return fault


if __name__ == "__main__":
    port, key = int(sys.argv[1]), sys.argv[2]
    fake = OpenAIFake(key)
    if len(sys.argv) > 4:
        fake.latency = latency_model(float(sys.argv[3]), float(sys.argv[4]))
    if len(sys.argv) > 5:
        fake.fault_for = piece_fault(sys.argv[5])
    uvicorn.run(fake, host="127.0.0.1", port=port, log_level="warning", access_log=False)
