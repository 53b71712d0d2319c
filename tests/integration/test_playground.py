"""The playground page in a real headless browser (Debian's Chromium driven by Playwright): it loads
from the gateway alone, transcribes a fixture with the local engine, shows streamed deltas as they
arrive, seeks the player from a segment, downloads the API's own SRT, and shows a 401's message."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import Response, StreamingResponse

from heimdall.api.app import create_app
from heimdall.config import parse_config
from tests.fakes.base import Recorded
from tests.fakes.openai import OpenAIFake
from tests.support.browser import Browser, browser_page
from tests.support.servers import serve, wait_until
from tests.support.speech import FILES, wer

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with browser_page() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Any]:
    with browser.page() as opened:
        yield opened


def open_playground(page: Any, gateway: str) -> None:
    page.goto(f"{gateway}/playground")
    page.wait_for_function("() => document.querySelectorAll('#model option').length > 0")


def transcribe(page: Any, audio: Path, *, format: str | None = None, stream: bool = False) -> None:
    page.set_input_files("#file", str(audio))
    if format:
        page.select_option("#format", format)
    if stream:
        page.check("#stream")
    page.click("#go")


def finished(page: Any) -> str:
    page.wait_for_selector("#status[data-state=done], #status[data-state=failed]", timeout=TIMEOUT_MS)
    state: str = page.get_attribute("#status", "data-state")
    return state


def test_the_page_loads_from_the_gateway_alone(page: Any, gateway_url: str, browser: Browser) -> None:
    page.goto(gateway_url + "/")
    page.click("text=Playground")
    page.wait_for_function("() => document.querySelectorAll('#model option').length > 0")
    assert page.url == f"{gateway_url}/playground"
    assert page.input_value("#model") == "local/tiny.en"
    assert page.is_hidden("#key-row")  # no keys configured: no key asked for
    assert browser.requests, "the recorder saw the page's requests"
    assert all(url.startswith(gateway_url + "/") for url in browser.requests), browser.requests
    assert {u.removeprefix(gateway_url) for u in browser.requests} >= {
        "/", "/playground", "/playground/playground.css", "/playground/playground.js", "/health"
    }  # fmt: skip
    assert browser.console_errors == []  # a Content-Security-Policy violation would be reported here
    unlabelled = page.evaluate(
        "() => Array.from(document.querySelectorAll('input, select, button, progress'))"
        ".filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())"
        ".map((e) => e.id)"
    )
    assert unlabelled == []  # every control has a name a screen reader can say
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider than the screen
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360


@pytest.mark.engine
def test_a_wav_is_transcribed_and_its_text_appears(page: Any, gateway_url: str, browser: Browser) -> None:
    page.set_viewport_size({"width": 360, "height": 740})  # at a phone's width
    open_playground(page, gateway_url)
    transcribe(page, FILES["hello"])
    assert finished(page) == "done", page.text_content("#error")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    assert wer("hello", page.text_content("#text") or "") <= 0.35
    assert page.locator("#segments li").count() >= 1
    assert page.locator("#downloads a").all_text_contents() == ["Text", "SRT", "VTT", "JSON"]
    cues = page.evaluate("() => document.querySelector('#player track').track.cues.length")
    assert cues == page.locator("#segments li").count()  # the captions track holds the gateway's VTT cues
    assert all(url.startswith((gateway_url + "/", "blob:")) for url in browser.requests), browser.requests
    assert browser.console_errors == []


@pytest.mark.engine
def test_a_segment_click_seeks_the_player_and_highlights_it(page: Any, gateway_url: str) -> None:
    open_playground(page, gateway_url)
    transcribe(page, FILES["story"])
    assert finished(page) == "done", page.text_content("#error")
    segments = page.locator("#segments li")
    assert segments.count() >= 2
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    last = segments.last
    start = float(last.get_attribute("data-start"))
    last.locator("button").focus()
    page.keyboard.press("Enter")  # keyboard works as a click does
    page.wait_for_function("() => document.querySelector('#player').seeking === false")
    position = page.evaluate("() => document.querySelector('#player').currentTime")
    assert start <= position < start + 2
    page.wait_for_selector("#segments li[aria-current=true]")
    assert last.get_attribute("aria-current") == "true"
    assert segments.first.get_attribute("aria-current") is None
    # The caption line shows the cue the browser parsed from the gateway's VTT at that time.
    page.wait_for_function("() => document.querySelector('#caption').textContent !== ''")
    caption = page.text_content("#caption") or ""
    assert len(caption) > 10
    assert (last.locator("button").text_content() or "").endswith(caption)


@pytest.mark.engine
def test_the_srt_download_is_the_apis_srt_byte_for_byte(page: Any, gateway_url: str) -> None:
    open_playground(page, gateway_url)
    transcribe(page, FILES["fox"])
    assert finished(page) == "done", page.text_content("#error")
    with page.expect_download() as download:
        page.click("#download-srt")
    downloaded = Path(download.value.path()).read_bytes()
    api = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        data={"model": "local/tiny.en", "response_format": "srt"},
        files={"file": ("fox.flac", FILES["fox"].read_bytes(), "audio/flac")},
        timeout=120,
    )
    assert api.status_code == 200
    assert downloaded == api.content
    assert download.value.suggested_filename == "fox.srt"


class HeldStreamFake(OpenAIFake):
    """OpenAI's streaming answer, held after its first two deltas until the test lets it go on."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.release = threading.Event()

    def answer(self, recorded: Recorded) -> Response:
        if recorded.field("stream") != "true":
            return super().answer(recorded)
        events = self.stream_events(dict(recorded.fields))

        async def body() -> Any:
            for index, event in enumerate(events):
                if index == 2:
                    await asyncio.to_thread(self.release.wait, 30)
                yield event

        return StreamingResponse(body(), media_type="text/event-stream")


def test_streamed_deltas_appear_before_the_done_event(page: Any) -> None:
    fake = HeldStreamFake("sk-held")
    with serve(fake) as upstream:
        config = parse_config({
            "providers": {"openai": {"keys": [{"value": "sk-held", "models": [], "weight": 1}],
                                     "network_config": {"base_url": upstream}}},
            "deployments": {"live": ["openai/gpt-4o-transcribe"]},
        })  # fmt: skip
        with serve(create_app(config)) as gateway:
            open_playground(page, gateway)
            page.select_option("#model", "live")
            transcribe(page, FILES["hello"], format="json", stream=True)
            # Two deltas are on the page while the provider still holds the rest of the stream back.
            page.wait_for_function("() => document.querySelectorAll('#text .delta').length === 2", timeout=TIMEOUT_MS)
            assert page.get_attribute("#status", "data-state") == "working"
            fake.release.set()
            assert finished(page) == "done", page.text_content("#error")
    deltas = page.locator("#text .delta").all_text_contents()
    assert len(deltas) > 2
    assert "".join(deltas) == "".join(page.locator("#text").all_text_contents())
    assert page.locator("#downloads a").all_text_contents() == ["Text", "JSON"]  # no timings, no subtitles


def test_a_wrong_key_shows_the_401_message(page: Any) -> None:
    config = parse_config(
        {"governance": {"virtual_keys": [{"id": "team", "value": "hk-right-key-0123456789", "allowed_models": ["*"]}]}}
    )
    with serve(create_app(config)) as gateway:
        open_playground(page, gateway)
        assert page.is_visible("#key-row")
        page.fill("#key", "hk-wrong-key")
        transcribe(page, FILES["hello"])
        assert finished(page) == "failed"
    message = page.text_content("#error") or ""
    assert "The gateway key is not valid." in message
    assert "invalid_api_key" in message and "401" in message
    assert page.evaluate("() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage)") == "{}{}"


@pytest.mark.engine
def test_a_file_over_the_direct_limit_goes_through_an_upload_and_the_job(page: Any, browser: Browser) -> None:
    import boto3

    from heimdall.job_table import ObjectVersion
    from heimdall.jobs import JobRunner
    from tests.support.jobs import BUCKET as bucket_name
    from tests.support.jobs import job_stack

    with job_stack():
        s3_origin = os.environ["AWS_ENDPOINT_URL"]
        s3 = boto3.client("s3")
        app = create_app(parse_config({"client_config": {"max_request_body_size_mb": 0.05}}))
        with serve(app) as gateway:
            assert (
                f"connect-src 'self' {s3_origin};"
                in httpx.get(f"{gateway}/playground").headers["content-security-policy"]
            )
            open_playground(page, gateway)
            transcribe(page, FILES["hello"], format="srt")  # 134 KB, over the 52 KB this gateway takes directly
            uploaded: list[str] = []

            def object_uploaded() -> bool:
                listing = s3.list_objects_v2(Bucket=bucket_name, Prefix="incoming/")
                uploaded[:] = [item["Key"] for item in listing.get("Contents", [])]
                return bool(uploaded)

            wait_until(object_uploaded, timeout=30, what="the browser's upload to reach S3")
            key = uploaded[0]
            assert key.endswith("/hello.wav")
            job_id = key.split("/")[1]
            # A job cut into pieces reports them; the page draws pieces done of total.
            boto3.client("dynamodb").update_item(
                TableName=app.state.job_table.name,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :running, pieces_done = :done, pieces_total = :total",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":running": {"S": "running"}, ":done": {"N": "1"}, ":total": {"N": "3"}},
            )
            page.wait_for_selector("#status:has-text('1 of 3 pieces')", timeout=TIMEOUT_MS)
            bar = page.locator("#progress")
            assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("1", "3")
            runner = JobRunner(app.state.config, app.state.router, app.state.bucket, app.state.job_table, print)
            head = s3.head_object(Bucket=bucket_name, Key=key)
            version = ObjectVersion(key, head["ETag"].strip('"'), head["ContentLength"], "0A1B2C3D4E5F678901")
            assert runner.run(version, time.monotonic() + 120)["status"] == "succeeded"
            assert finished(page) == "done", page.text_content("#error")
            srt_body = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "srt"}).text
    assert wer("hello", page.text_content("#text") or "") <= 0.35
    assert page.text_content("#raw") == srt_body  # the chosen format, as the job route serves it
    assert page.locator("#segments li").count() >= 1
    assert {u.split("/")[2] for u in browser.requests if not u.startswith("blob:")} == {
        gateway.split("/")[2], s3_origin.split("/")[2]
    }  # fmt: skip


@pytest.mark.engine
def test_a_microphone_recording_is_sent_and_played(page: Any, gateway_url: str) -> None:
    open_playground(page, gateway_url)  # Chromium's fake microphone: a steady beep, granted without a prompt
    page.click("#record")
    page.wait_for_selector("#stop:not([disabled])")
    page.wait_for_function("() => document.querySelector('#record-state').textContent === 'Recording…'")
    page.wait_for_timeout(1500)  # the recording's length, not a wait for something to happen
    page.click("#stop")
    page.wait_for_selector("#record-state:has-text('Recorded')")
    page.click("#go")
    assert finished(page) == "done", page.text_content("#error")
    assert page.evaluate("() => document.querySelector('#player').src").startswith("blob:")
    assert page.locator("#downloads a").first.get_attribute("download") == "recording.txt"
