from __future__ import annotations

import json
import logging
import os
import tempfile
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
# Usage records and cache entries of `make run` go to HEIMDALL_STATE_DIR: a throwaway one for tests.
os.environ["HEIMDALL_STATE_DIR"] = tempfile.mkdtemp(prefix="heimdall-test-state-")


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
    """Collects the JSON lines Heimdall's logger writes, formatted exactly as Powertools emits them.

    The servers are shared by many tests and a request's line is written after its response has gone,
    so a line from an earlier test may still arrive while this one runs: read lines by the request's
    id (``x-request-id``, the envelope's ``event_id``), waiting for them by polling — never by position
    or count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self, event_id: str | None = None) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.lines]
        return [r for r in records if event_id is None or r.get("event_id") == event_id]

    def request(self, event_id: str) -> dict[str, Any]:
        """The one request log line of request ``event_id``, once it has been written."""
        wait_until(lambda: self._request_lines(event_id), timeout=10, what=f"the request log line of {event_id}")
        (line,) = self._request_lines(event_id)
        return line

    def _request_lines(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records(event_id) if r.get("message") == "request"]


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


@pytest.fixture(scope="session", params=["calls on the event loop", "calls in a worker thread"])
def provider_gateway(upstreams: Upstreams, request: pytest.FixtureRequest) -> Iterator[str]:
    """A gateway configured with every provider, each pointed at its fake upstream; served as ``make
    run`` serves it (provider calls of small uploads on the event loop, providers/loop_client.py),
    and without its lifespan, as in Lambda (every call in a worker thread)."""
    lifespan = "auto" if request.param == "calls on the event loop" else "off"
    with serve(create_app(upstreams.config()), lifespan=lifespan) as url:
        yield url


@pytest.fixture
def fakes(upstreams: Upstreams) -> Iterator[Upstreams]:
    upstreams.reset()
    yield upstreams
    upstreams.reset()
