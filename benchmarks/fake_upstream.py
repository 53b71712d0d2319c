"""Serve the fake OpenAI upstream from the test suite on a port: ``python -m benchmarks.fake_upstream PORT KEY``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from tests.fakes.openai import OpenAIFake

if __name__ == "__main__":
    port, key = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(OpenAIFake(key), host="127.0.0.1", port=port, log_level="warning", access_log=False)
