"""The two ways a gateway calls a provider answer alike: on the event loop with aiohttp (``make run``,
providers/loop_client.py) and in a worker thread with urllib3 (Lambda, and everything the loop does
not take). Each case runs against both, with a provider on a bare socket answering byte for byte
(tests/support/raw_upstream.py); the fault and wrong-shape suites run against both through the
``provider_gateway`` fixture. Where the two HTTP parsers differ by design is written in
providers/loop_client.py."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from heimdall.api.app import create_app
from tests.support.raw_upstream import OK_BODY, RawUpstream, Script, config_for, ok, once, raw_upstream, sleep_then
from tests.support.servers import free_port, serve
from tests.support.speech import FILES

WAV = FILES["hello"].read_bytes()
#: uvicorn's lifespan: "auto" opens the loop's client as `make run` does; "off" serves as Lambda runs.
PATHS = {"on the loop": "auto", "in a worker thread": "off"}
paths = pytest.mark.parametrize("path", list(PATHS))


@contextmanager
def gateway(script: Script, path: str, **network: Any) -> Iterator[tuple[str, RawUpstream]]:
    with raw_upstream(script) as upstream, serve(create_app(config_for(upstream.url, **network)),
                                                 lifespan=PATHS[path]) as url:  # fmt: skip
        yield url, upstream


def transcribe(url: str, **fields: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", WAV, "audio/wav")},
        data={"model": "openai-compatible/whisper-1", **fields},
        timeout=60,
    )


def outcome(response: httpx.Response) -> tuple[int, str | None, str | None, str | None]:
    body = response.json()
    error = body.get("error") or {}
    return (
        response.status_code,
        error.get("code"),
        error.get("message") or body.get("text"),
        response.headers.get("retry-after"),
    )


def both(script: Script, **network: Any) -> dict[str, tuple[int, str | None, str | None, str | None]]:
    results = {}
    for path in PATHS:
        with gateway(script, path, **network) as (url, _):
            results[path] = outcome(transcribe(url))
    return results


@paths
def test_many_calls_at_once_each_get_their_whole_timeout(path: str) -> None:
    """150 calls at once to a provider that takes 1.5 s (timeout 2.6 s): none waits for a pooled connection
    inside its timeout (150 calls past a pool of 100 would wait 1.5 s for one, then time out), so none
    times out — or, with retries, is sent and billed twice."""

    def slow(conn: Any, number: int) -> bool:
        time.sleep(1.5)
        conn.sendall(ok(b"Connection: close\r\n"))
        return False

    async def burst(url: str, n: int) -> collections.Counter[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n + 10)) as client:

            async def one() -> int:
                response = await client.post(
                    f"{url}/v1/audio/transcriptions",
                    files={"file": ("a.wav", WAV, "audio/wav")},
                    data={"model": "openai-compatible/whisper-1"},
                )
                return response.status_code

            return collections.Counter(await asyncio.gather(*[one() for _ in range(n)]))

    with gateway(slow, path, default_request_timeout_in_seconds=2.6) as (url, upstream):
        statuses = asyncio.run(burst(url, 150))
    assert statuses == {200: 150}
    assert upstream.requests == 150


def test_one_app_served_by_two_servers_answers_on_both() -> None:
    """A loop's client belongs to that loop: each server has its own, and one stopping leaves the other's."""
    with raw_upstream(once(ok(), keep=True)) as upstream:
        app = create_app(config_for(upstream.url))
        with serve(app) as first:
            with serve(app) as second:
                assert transcribe(second).status_code == 200
                assert transcribe(first).status_code == 200
            response = transcribe(first)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "hello there"


@paths
def test_a_header_line_of_9000_bytes_is_read(path: str) -> None:
    with gateway(once(ok(b"X-Trace: " + b"a" * 9000 + b"\r\n")), path) as (url, _):
        response = transcribe(url)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "hello there"


@paths
def test_a_call_is_timed_as_a_whole(path: str) -> None:
    """Headers after 1.2 s, then the body over 1.2 s (timeout 2 s): each read is within the timeout, the
    call is not — a 504 either way, so no attempt outlives its share of the request's budget."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY)
    script = sleep_then((1.2, head), *[(1.2 / len(OK_BODY), bytes([b])) for b in OK_BODY])
    started = time.monotonic()
    with gateway(script, path, default_request_timeout_in_seconds=2.0) as (url, _):
        response = transcribe(url)
    assert (response.status_code, response.json()["error"]["code"]) == (504, "provider_timeout"), response.text
    assert time.monotonic() - started < 2.0 + 1.5


@paths
def test_an_answer_that_trickles_in_is_cut_off_when_the_call_ends(path: str) -> None:
    """72 bytes, one every 0.1 s (timeout 1 s): read as they arrive, cut off at the call's end — not
    once a 256 KiB block or the whole body has come in."""
    body = b'{"text": "' + b"a" * 60 + b'"}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    script = sleep_then((0.0, head), *[(0.1, bytes([b])) for b in body])
    started = time.monotonic()
    with gateway(script, path) as (url, _):
        response = transcribe(url)
        elapsed = time.monotonic() - started
    assert (response.status_code, response.json()["error"]["code"]) == (504, "provider_timeout"), response.text
    assert elapsed < 1.0 + 1.5  # the whole trickle would take 7.2 s


CUT = {
    "mid-answer": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" + OK_BODY,
    "before answering": b"",
}


@pytest.mark.parametrize("where", list(CUT))
def test_a_connection_cut_gets_the_same_answer_either_way(where: str) -> None:
    results = both(once(CUT[where]))
    assert results["on the loop"] == results["in a worker thread"]
    status, code, message, _ = results["on the loop"]
    assert (status, code) == (502, "provider_unreachable")
    assert message is not None and "Error" not in message  # what happened, not the HTTP client's exception


def test_a_connection_cut_inside_the_headers_is_a_502_either_way() -> None:
    """aiohttp says the provider dropped the connection; http.client takes the headers it got as the whole
    answer, with an empty body, which is no transcript. Both are the provider's 502."""
    results = both(once(b"HTTP/1.1 200 OK\r\nContent-Type: appl"))
    assert results["on the loop"][:2] == (502, "provider_unreachable")
    assert results["in a worker thread"][:2] == (502, "invalid_provider_response")


@paths
def test_a_refused_connection_is_a_502_at_once(path: str) -> None:
    """Nobody listens: the provider cannot be reached (502), which is not the timeout's 504."""
    nobody = f"http://127.0.0.1:{free_port()}"
    with serve(create_app(config_for(nobody)), lifespan=PATHS[path]) as url:
        response = transcribe(url)
    assert (response.status_code, response.json()["error"]["code"]) == (502, "provider_unreachable"), response.text


def test_a_retry_after_sent_twice_is_honoured_alike() -> None:
    """``Retry-After: 1`` twice on a 429 (a proxy adding its own): the first value counts on either path."""
    answer = ok(b"Retry-After: 1\r\nRetry-After: 1\r\n", body=b'{"error": {"message": "slow down"}}',
                status=b"429 Too Many Requests")  # fmt: skip
    results = both(once(answer), max_retries=1)
    assert results["on the loop"] == results["in a worker thread"]
    assert results["on the loop"][0] == 429
    assert results["on the loop"][3] == "1"
