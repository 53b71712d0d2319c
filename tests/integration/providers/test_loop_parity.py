"""The two ways a gateway calls a provider answer alike: on the event loop with aiohttp (``make run``,
providers/loop_client.py) and in a worker thread with urllib3 (Lambda, and everything the loop does
not take). Each case runs against both, with a provider on a bare socket answering byte for byte
(tests/support/raw_upstream.py); the fault and wrong-shape suites run against both through the
``provider_gateway`` fixture. Where the two HTTP parsers differ by design is written in
providers/loop_client.py."""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from heimdall.api.app import create_app
from tests.support.bombs import wav_silence
from tests.support.raw_upstream import (
    OK_BODY,
    RawUpstream,
    Script,
    TlsUpstream,
    config_for,
    ok,
    once,
    raw_upstream,
    self_signed,
    sleep_then,
)
from tests.support.servers import free_port, serve, wait_until
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
    return transcribe_bytes(url, WAV, **fields)


def transcribe_bytes(url: str, audio: bytes, **fields: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
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


@paths
def test_a_provider_whose_ca_ssl_cert_file_names_is_trusted_either_way(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust store is read when the server starts (SSL_CERT_FILE honoured), as urllib3 reads it for
    each new connection — not when aiohttp was first imported in the process."""
    import aiohttp  # noqa: F401 - imported before, as in any process that served a call on the loop

    certificate = self_signed(tmp_path)
    upstream = TlsUpstream(once(ok(), keep=True), certificate)
    try:
        with serve(create_app(config_for(upstream.url)), lifespan=PATHS[path]) as url:
            assert transcribe(url).status_code == 502  # nobody trusts it yet: provider_unreachable
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
        with serve(create_app(config_for(upstream.url)), lifespan=PATHS[path]) as url:
            response = transcribe(url)
    finally:
        upstream.close()
    assert response.status_code == 200, response.text


@paths
def test_the_audio_is_not_copied_while_the_provider_works(path: str) -> None:
    """A 990 KB upload held in memory (counted in the upload budget) is sent from its own buffer: while
    the provider works on it, no second copy of it is held that the budget does not count."""
    audio = wav_silence(990_000 / 8_000)  # 990 KB: under the 1 MiB the loop takes
    release, arrived = threading.Event(), threading.Event()

    def slow(conn: Any, number: int) -> bool:
        arrived.set()  # the whole request has been read by now
        release.wait(20)
        conn.sendall(ok())
        return False

    with gateway(slow, path, default_request_timeout_in_seconds=30) as (url, _):
        release.set()
        assert transcribe_bytes(url, audio).status_code == 200  # warm: imports, pools, sessions
        release.clear()
        arrived.clear()
        gc.collect()
        tracemalloc.start(30)
        done: dict[str, httpx.Response] = {}
        caller = threading.Thread(target=lambda: done.setdefault("response", transcribe_bytes(url, audio)))
        try:
            before = tracemalloc.take_snapshot()
            caller.start()
            assert arrived.wait(10)
            during = tracemalloc.take_snapshot()
        finally:
            release.set()
            caller.join()
            tracemalloc.stop()
    assert done["response"].status_code == 200
    added = sum(
        stat.size_diff
        for stat in during.compare_to(before, "traceback")
        if not any("/httpx/" in frame.filename for frame in stat.traceback)  # the client's own copies
    )
    assert added < 1.5 * len(audio), f"{added} bytes held for a {len(audio)}-byte upload"  # the upload, once


@paths
def test_a_request_cancelled_at_shutdown_gives_its_upload_memory_back(path: str) -> None:
    """The server stops (its graceful timeout ends) while a call is with the provider: the request is
    cancelled, and still closes its upload and gives its room in the upload budget back."""
    import uvicorn

    with raw_upstream(sleep_then((2.0, ok()))) as upstream:
        app = create_app(config_for(upstream.url, default_request_timeout_in_seconds=5))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical",
                                               lifespan=PATHS[path], timeout_graceful_shutdown=0.5))  # fmt: skip
        runner = threading.Thread(target=server.run, daemon=True)
        runner.start()
        wait_until(lambda: server.started, what="uvicorn to start")
        caller = threading.Thread(target=cut_off_call, args=(f"http://127.0.0.1:{port}",))
        caller.start()
        wait_until(lambda: upstream.requests == 1, what="the call to reach the provider")
        server.should_exit = True
        runner.join(10)
        caller.join(10)
    assert app.state.upload_memory.held == 0


def cut_off_call(url: str) -> None:
    with suppress(httpx.HTTPError):  # the server goes away mid-request: what it gave back is checked
        transcribe(url)
