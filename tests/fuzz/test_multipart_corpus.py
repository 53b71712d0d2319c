"""The malformed-multipart corpus, over HTTP and through the Lambda handler (v1 and v2): every case
gets one of its expected statuses with the envelope; none is a 5xx, none hangs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fixtures.multipart_corpus import CORPUS
from tests.support.transports import Reply, over_http, via_lambda

ROUTE = "/openai/v1/audio/transcriptions"


def _send(transport: str, name: str, gateway_url: str, api_handler: Any) -> Reply:
    case = CORPUS[name]
    headers = {"content-type": case.content_type} if case.content_type else {}
    if transport == "http":
        return over_http(gateway_url, "POST", ROUTE, body=case.body, headers=headers)
    return via_lambda(api_handler, transport, "POST", ROUTE, body=case.body, headers=headers)


@pytest.mark.parametrize("transport", ["http", "v1", "v2"])
@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_case(name: str, transport: str, gateway_url: str, api_handler: Any) -> None:
    started = time.monotonic()
    reply = _send(transport, name, gateway_url, api_handler)
    assert time.monotonic() - started < 30
    assert reply.status in CORPUS[name].statuses, reply.body[:300]
    body = json.loads(reply.body)
    if reply.status >= 400:
        assert body["status_code"] == reply.status
        assert body["error"]["message"]
        assert "Traceback" not in reply.body.decode("utf-8", "replace")
