from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from heimdall.api.app import create_app
from heimdall.config import GatewayConfig
from heimdall.observability import logger as heimdall_logger
from tests.support.lambda_events import LambdaContext, load_api_handler
from tests.support.servers import serve, wait_until
from tests.support.upstreams import Upstreams, running_upstreams

# Tests never read a developer's own config, and never reach AWS.
os.environ.pop("HEIMDALL_CONFIG", None)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def gateway_url() -> Iterator[str]:
    """The keyless gateway (local engine only) under uvicorn on a free loopback port."""
    with serve(create_app(GatewayConfig())) as url:
        yield url


@pytest.fixture(scope="session")
def api_handler() -> Any:
    return load_api_handler()


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


class LogCapture(logging.Handler):
    """Collects the JSON lines Heimdall's logger writes, formatted exactly as Powertools emits them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def requests(self, count: int = 1) -> list[dict[str, Any]]:
        """The request log lines, once ``count`` have been written (the line follows the response)."""
        wait_until(lambda: len(self._request_lines()) >= count, timeout=10, what=f"{count} request log line(s)")
        return self._request_lines()

    def _request_lines(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("message") == "request"]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    capture.setFormatter(heimdall_logger.registered_formatter)
    target = logging.getLogger(heimdall_logger.name)
    target.addHandler(capture)
    try:
        yield capture
    finally:
        target.removeHandler(capture)


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams() as running:
        yield running


@pytest.fixture(scope="session")
def provider_gateway(upstreams: Upstreams) -> Iterator[str]:
    """A gateway configured with every provider, each pointed at its fake upstream."""
    with serve(create_app(upstreams.config())) as url:
        yield url


@pytest.fixture
def fakes(upstreams: Upstreams) -> Iterator[Upstreams]:
    upstreams.reset()
    yield upstreams
    upstreams.reset()
