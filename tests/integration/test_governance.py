"""Governance through the running gateway: rate limits and budgets per key (and per provider within a
key), usage records and GET /v1/usage, and the transcript cache — on the embedded store (SQLite, a
local cache directory) and on AWS's (DynamoDB and S3 under moto's server)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
import pytest
import srt
import webvtt

from heimdall.api.app import create_app
from heimdall.governance.store import SCALE
from heimdall.governance.windows import window_at
from tests.fakes.base import SPOKEN, Fault
from tests.support.aws import create_governance_table, moto_endpoint
from tests.support.servers import serve, wait_until
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

TEAM = "hk-team-0123456789abcdef"
OTHER = "hk-other-0123456789abcdef"
ADMIN = "hk-admin-0123456789abcdef"
HELLO = FILES["hello"].read_bytes()
HELLO_SECONDS = 4.205125
WHISPER_PER_MINUTE = 0.006  # openai/whisper-1's default list price
BUCKET = "heimdall-governance-test"


class Clock:
    """The wall clock the gateway's limit windows and cache expiry read, moved by the test."""

    def __init__(self) -> None:
        import time

        self.now = window_at("1h", time.time()).start + 15.0  # 15 s into a fresh hour

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_endpoint() as endpoint:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(params=["embedded", "aws"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment the gateway starts with: nothing (SQLite and a cache directory under
    HEIMDALL_STATE_DIR), or a DynamoDB table and the audio bucket."""
    if request.param == "embedded":
        return {}
    request.getfixturevalue("aws")
    table = f"governance-{uuid.uuid4().hex}"
    create_governance_table(table)
    return {"HEIMDALL_GOVERNANCE_TABLE": table, "HEIMDALL_AUDIO_BUCKET": BUCKET}


def make_app(upstreams: Upstreams, env: dict[str, str], clock: Clock, tmp_path: Any, **config: Any) -> Any:
    """The gateway with keys team, other and admin, started with ``env`` as it would be in Lambda."""
    keys = [
        {"id": "team", "value": TEAM, "rate_limit_id": config.pop("rate_limit_id", None),
         "provider_configs": config.pop("provider_configs", [])},
        {"id": "other", "value": OTHER},
        {"id": "admin", "value": ADMIN, "admin": True},
    ]  # fmt: skip
    governance = {"virtual_keys": keys, **config.pop("governance", {})}
    settings = upstreams.config(governance=governance, **config)
    saved = {k: os.environ.get(k) for k in [*env, "HEIMDALL_STATE_DIR"]}
    os.environ.update({**env, "HEIMDALL_STATE_DIR": str(tmp_path)})
    try:
        return create_app(settings, clock=clock)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@contextmanager
def gateway(
    upstreams: Upstreams, env: dict[str, str], clock: Clock, tmp_path: Any, **config: Any
) -> Iterator[tuple[str, Any]]:
    app = make_app(upstreams, env, clock, tmp_path, **config)
    with serve(app) as url:
        yield url, app.state.governor


def post(url: str, key: str = TEAM, model: str = "openai/whisper-1", headers: dict[str, str] | None = None,
         **fields: str) -> httpx.Response:  # fmt: skip
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        headers={"api-key": key, **(headers or {})},
        files={"file": ("hello.wav", HELLO, "audio/wav")},
        data={"model": model, **fields},
        timeout=30,
    )


def usage(url: str, expect_requests: int, **query: str) -> dict[str, Any]:
    """GET /v1/usage once the expected records are in (each is written just after its response)."""
    body: dict[str, Any] = {}

    def arrived() -> bool:
        nonlocal body
        body = httpx.get(f"{url}/v1/usage", params=query, headers={"api-key": ADMIN}).json()
        return bool(body.get("totals", {}).get("requests") == expect_requests)

    wait_until(arrived, timeout=10, what=f"{expect_requests} usage records")
    return body


def rate_limit(**fields: Any) -> dict[str, Any]:
    return {"governance": {"rate_limits": [{"id": "rl-team", **fields}]}, "rate_limit_id": "rl-team"}


# -- rate limits ------------------------------------------------------------------------------------
def test_50_concurrent_requests_racing_a_limit_of_10_admit_exactly_10(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    clock = Clock()
    limits = rate_limit(request_max_limit=10, request_reset_duration="1h")
    with gateway(upstreams, backend, clock, tmp_path, **limits) as (url, _):
        start = threading.Barrier(50)

        def one(_: int) -> httpx.Response:
            start.wait()
            return post(url)

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 40
    assert fakes.calls("openai") == 10  # refused before any provider call
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) == 3600 - 15  # until the hour's window resets
    envelope = refused.json()
    assert envelope["error"]["code"] == "requests_limit_exceeded"
    assert "rate limit 'rl-team' (10 requests per 1h)" in envelope["error"]["message"]
    assert envelope["extra_fields"]["limit"] == {
        "type": "rate_limit", "id": "rl-team", "metric": "requests", "max_limit": 10.0, "reset_duration": "1h",
        "resets_at": envelope["extra_fields"]["limit"]["resets_at"],
    }  # fmt: skip


def test_a_window_resets_when_its_period_ends(upstreams: Upstreams, fakes: Upstreams, tmp_path: Any) -> None:
    clock = Clock()
    with gateway(upstreams, {}, clock, tmp_path, **rate_limit(request_max_limit=2, request_reset_duration="1m")) as (
        url,
        _,
    ):
        assert [post(url).status_code for _ in range(3)] == [200, 200, 429]
        clock.now += 44  # 59 s into the minute: still the same window
        refused = post(url)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        clock.now += 1  # the next minute
        assert post(url).status_code == 200
        assert post(url, key=OTHER).status_code == 200  # another key is not limited by this one's limit


def test_audio_seconds_limit_counts_the_decoded_duration(upstreams: Upstreams, fakes: Upstreams, tmp_path: Any) -> None:
    limits = rate_limit(token_max_limit=10, token_reset_duration="1d")
    with gateway(upstreams, {}, Clock(), tmp_path, **limits) as (url, _):
        assert [post(url).status_code for _ in range(2)] == [200, 200]  # 8.4 s of 10
        refused = post(url)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "audio_seconds_limit_exceeded"
    assert fakes.calls("openai") == 2


# -- budgets ----------------------------------------------------------------------------------------
def budget(max_limit: float) -> dict[str, Any]:
    return {"governance": {"budgets": [{"id": "b-team", "max_limit": max_limit, "reset_duration": "1M",
                                        "virtual_key_id": "team"}]}}  # fmt: skip


def test_budget_is_priced_from_the_table_and_refuses_once_spent(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    cost = HELLO_SECONDS / 60 * WHISPER_PER_MINUTE  # $0.00042
    clock = Clock()
    with gateway(upstreams, backend, clock, tmp_path, **budget(cost * 2.5)) as (url, governor):
        assert [post(url).status_code for _ in range(2)] == [200, 200]
        refused = post(url)
        spent = governor.store.used("budget:b-team:dollars", window_at("1M", clock.now)) / SCALE["dollars"]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert "budget 'b-team'" in refused.json()["error"]["message"]
    assert spent == pytest.approx(2 * cost, rel=1e-3)


def test_a_failed_upstream_call_is_not_charged(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    clock = Clock()
    config = rate_limit(request_max_limit=1, request_reset_duration="1h")
    config["governance"].update(budget(1.0)["governance"])
    with gateway(upstreams, backend, clock, tmp_path, **config) as (url, governor):
        fakes.fakes["openai"].always = Fault("status", 500)
        failed = post(url)
        window = window_at("1h", clock.now)
        after_failure = (
            governor.store.used("rate_limit:rl-team:requests", window),
            governor.store.used("budget:b-team:dollars", window_at("1M", clock.now)),
            governor.store.used("rate_limit:rl-team:audio_seconds", window),
        )
        fakes.fakes["openai"].always = None
        served = post(url)  # the one request the limit allows: the failure did not use it up
        charged = governor.store.used("budget:b-team:dollars", window_at("1M", clock.now)) / SCALE["dollars"]
        summary = usage(url, 2)
    assert failed.status_code == 502
    assert after_failure == (0, 0, 0)
    assert served.status_code == 200
    assert charged == pytest.approx(HELLO_SECONDS / 60 * WHISPER_PER_MINUTE, rel=1e-3)
    assert summary["totals"]["errors"] == 1
    assert summary["totals"]["cost"] == pytest.approx(charged, rel=1e-3)


# -- provider-level limits --------------------------------------------------------------------------
AZURE_LIMITS = {
    "rate limit": {
        "governance": {"rate_limits": [{"id": "rl-azure", "request_max_limit": 1, "request_reset_duration": "1h"}]},
        "provider_configs": [{"id": 7, "provider": "azure", "rate_limit_id": "rl-azure"}],
    },
    "budget": {  # room for one 4.2 s request at azure's $0.006 a minute
        "governance": {"budgets": [{"id": "b-azure", "max_limit": 0.0005, "reset_duration": "1d",
                                    "provider_config_id": 7}]},
        "provider_configs": [{"id": 7, "provider": "azure"}],
    },
}  # fmt: skip


@pytest.mark.parametrize("limit", list(AZURE_LIMITS))
def test_a_provider_whose_own_limit_is_spent_is_skipped_for_the_next_target(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any, limit: str
) -> None:
    with gateway(upstreams, {}, Clock(), tmp_path, **AZURE_LIMITS[limit]) as (url, _):
        first = post(url, model="whisper")  # azure/whisper-1, then groq/whisper-large-v3
        second = post(url, model="whisper")
        direct = post(url, model="azure/whisper-1")  # no other target to go to
    assert first.json()["extra_fields"]["provider"] == "azure"
    assert second.status_code == 200
    assert (second.json()["extra_fields"]["provider"], second.json()["extra_fields"]["fallback_index"]) == ("groq", 1)
    assert direct.status_code == 429
    assert direct.json()["extra_fields"]["limit"]["id"] in ("rl-azure", "b-azure")
    assert direct.json()["extra_fields"]["provider"] == "azure"
    assert (fakes.calls("azure"), fakes.calls("groq")) == (1, 1)


def test_a_provider_that_failed_is_not_charged_to_its_own_limit(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any
) -> None:
    with gateway(upstreams, {}, Clock(), tmp_path, **AZURE_LIMITS["rate limit"]) as (url, _):
        fakes.fakes["azure"].always = Fault("status", 500)
        fell_back = post(url, model="whisper")
        fakes.fakes["azure"].always = None
        again = post(url, model="whisper")
    assert fell_back.json()["extra_fields"]["provider"] == "groq"
    assert again.json()["extra_fields"]["provider"] == "azure"  # its one request was given back


# -- usage ------------------------------------------------------------------------------------------
def test_usage_totals_grouped_by_key_provider_and_model_for_admin_keys_only(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    with gateway(upstreams, backend, Clock(), tmp_path) as (url, _):
        assert post(url).status_code == 200
        assert post(url, model="groq/whisper-large-v3").status_code == 200
        assert post(url, key=OTHER).status_code == 200
        assert post(url, response_format="bogus").status_code == 400
        by_key = usage(url, 4, group_by="key")
        by_provider = usage(url, 4, group_by="provider")
        by_model = usage(url, 4, group_by="model")
        not_admin = httpx.get(f"{url}/v1/usage", headers={"api-key": TEAM})
        no_key = httpx.get(f"{url}/v1/usage")
        bad_group = httpx.get(f"{url}/v1/usage", params={"group_by": "colour"}, headers={"api-key": ADMIN})
        bad_time = httpx.get(f"{url}/v1/usage", params={"from": "yesterday"}, headers={"api-key": ADMIN})
        future = httpx.get(f"{url}/v1/usage", params={"from": "2999-01-01"}, headers={"api-key": ADMIN})
    groq_cost = HELLO_SECONDS / 60 * 0.111 / 60
    openai_cost = HELLO_SECONDS / 60 * WHISPER_PER_MINUTE
    assert by_key["totals"]["requests"] == 4 and by_key["totals"]["errors"] == 1
    assert by_key["totals"]["audio_seconds"] == pytest.approx(3 * HELLO_SECONDS, abs=0.01)
    assert by_key["totals"]["cost"] == pytest.approx(2 * openai_cost + groq_cost, rel=1e-3)
    keys = {row["key_id"]: row for row in by_key["data"]}
    assert (keys["team"]["requests"], keys["team"]["errors"], keys["other"]["requests"]) == (3, 1, 1)
    assert "admin" not in keys  # reading usage is not a transcription
    providers = {row["provider"]: row["requests"] for row in by_provider["data"]}
    assert providers == {"openai": 2, "groq": 1, None: 1}  # the bad request reached no provider
    models = {row["model"]: row for row in by_model["data"]}
    assert models["openai/whisper-1"]["requests"] == 2 and models["openai/whisper-1"]["errors"] == 0
    assert models["groq/whisper-large-v3"]["cost"] == pytest.approx(groq_cost, rel=1e-3)
    assert not_admin.status_code == 403 and not_admin.json()["error"]["code"] == "not_admin"
    assert no_key.status_code == 401
    assert bad_group.status_code == 400 and bad_group.json()["error"]["param"] == "group_by"
    assert bad_time.status_code == 400 and bad_time.json()["error"]["param"] == "from"
    assert future.status_code == 400


# -- the transcript cache ---------------------------------------------------------------------------
CACHE = {"plugins": [{"name": "semantic_cache", "enabled": True, "config": {"dimension": 1, "ttl": "1h"}}]}


def cached(url: str, key: str = TEAM, partition: str = "session-1", **fields: str) -> httpx.Response:
    return post(url, key=key, headers={"x-bf-cache-key": partition}, **fields)


def test_one_transcription_serves_every_format_from_the_cache(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    with gateway(upstreams, backend, Clock(), tmp_path, **CACHE) as (url, _):
        first = cached(url, response_format="verbose_json", **{"timestamp_granularities[]": "word"})
        replies = {fmt: cached(url, response_format=fmt) for fmt in ("json", "text", "srt", "vtt", "verbose_json")}
    assert fakes.calls("openai") == 1
    miss = first.json()["extra_fields"]["cache_debug"]
    assert miss == {"cache_hit": False, "cache_id": miss["cache_id"]}
    assert replies["json"].json()["text"] == SPOKEN
    assert replies["json"].json()["extra_fields"]["cache_debug"] == {
        "cache_hit": True, "hit_type": "direct", "cache_id": miss["cache_id"],
    }  # fmt: skip
    assert replies["verbose_json"].json()["segments"] == first.json()["segments"]
    assert "words" not in replies["verbose_json"].json()  # not asked for this time
    assert replies["text"].text.strip() == SPOKEN
    cues = list(srt.parse(replies["srt"].text))
    assert [c.content for c in cues] == [s["text"].strip() for s in first.json()["segments"]]
    assert len(webvtt.from_string(replies["vtt"].text).captions) == len(cues)
    if backend:
        listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="cache/")["Contents"]
        assert f"cache/{miss['cache_id']}.json" in {o["Key"] for o in listed}


def test_a_stored_transcript_without_segments_does_not_serve_subtitles(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any
) -> None:
    with gateway(upstreams, {}, Clock(), tmp_path, **CACHE) as (url, _):
        assert cached(url, response_format="json").status_code == 200  # json: upstream sends text only
        assert cached(url, response_format="srt").status_code == 200  # a miss: fetched with segments
        assert cached(url, response_format="vtt").status_code == 200  # now a hit
    assert fakes.calls("openai") == 2


def test_cache_headers_no_store_ttl_partition_and_key_scoping(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any
) -> None:
    clock = Clock()
    with gateway(upstreams, {}, clock, tmp_path, **CACHE) as (url, _):
        no_store = post(url, headers={"x-bf-cache-key": "s", "x-bf-cache-no-store": "true"})
        assert no_store.json()["extra_fields"]["cache_debug"]["cache_hit"] is False
        calls = [cached(url, partition="s")]  # no-store kept nothing: a miss, stored now
        calls.append(post(url, headers={"x-bf-cache-key": "s", "x-bf-cache-no-store": "true"}))  # still served a hit
        calls.append(post(url))  # no cache key: the cache is not asked at all
        calls.append(cached(url, partition="t"))  # another partition
        calls.append(cached(url, key=OTHER, partition="s"))  # another gateway key never sees this one's entries
        calls.append(post(url, headers={"x-bf-cache-key": "s", "x-bf-cache-ttl": "30s"}, language="en"))
        clock.now += 31
        calls.append(post(url, headers={"x-bf-cache-key": "s"}, language="en"))  # expired after its own 30 s
        calls.append(post(url, headers={"x-bf-cache-key": "s", "x-bf-cache-ttl": "soon"}, language="en"))
        hits = [c.json()["extra_fields"].get("cache_debug", {}).get("cache_hit") for c in calls]
    assert hits == [False, True, None, False, False, False, False, True]
    assert fakes.calls("openai") == 7


def test_a_cache_hit_is_counted_in_usage_but_not_charged(upstreams: Upstreams, fakes: Upstreams, tmp_path: Any) -> None:
    clock = Clock()
    config = {**CACHE, **budget(1.0)}
    with gateway(upstreams, {}, clock, tmp_path, **config) as (url, governor):
        assert cached(url).status_code == 200
        window = window_at("1M", clock.now)
        spent: Callable[[], float] = lambda: governor.store.used("budget:b-team:dollars", window)  # noqa: E731
        after_miss = spent()
        assert cached(url).json()["extra_fields"]["cache_debug"]["cache_hit"] is True
        after_hit = spent()
        summary = usage(url, 2)
    assert after_miss > 0 and after_hit == after_miss
    assert summary["totals"]["cache_hits"] == 1
    assert summary["totals"]["cost"] == pytest.approx(after_miss / SCALE["dollars"], rel=1e-3)


def test_a_stream_is_limited_and_charged_like_any_request(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any
) -> None:
    limits = rate_limit(request_max_limit=1, request_reset_duration="1h")
    with gateway(upstreams, {}, Clock(), tmp_path, **limits) as (url, _):
        fakes.fakes["openai"].always = Fault("status", 503)
        failed = post(url, model="openai/gpt-4o-transcribe", stream="true")
        fakes.fakes["openai"].always = None
        streamed = post(url, model="openai/gpt-4o-transcribe", stream="true")
        refused = post(url, model="openai/gpt-4o-transcribe", stream="true")
    assert failed.status_code == 502  # failed before its first event: not counted
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert refused.status_code == 429


def test_a_stream_is_charged_its_seconds_at_the_serving_price_and_recorded(
    upstreams: Upstreams, fakes: Upstreams, backend: dict[str, str], tmp_path: Any
) -> None:
    clock = Clock()
    with gateway(upstreams, backend, clock, tmp_path, **budget(1.0)) as (url, governor):
        streamed = post(url, model="openai/gpt-4o-transcribe", stream="true")
        spent = governor.store.used("budget:b-team:dollars", window_at("1M", clock.now)) / SCALE["dollars"]
        summary = usage(url, 1, group_by="model")
    cost = HELLO_SECONDS / 60 * 0.006  # openai/gpt-4o-transcribe's default price
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert spent == pytest.approx(cost, rel=1e-3)
    (row,) = summary["data"]
    assert row["model"] == "openai/gpt-4o-transcribe"
    assert row["audio_seconds"] == round(HELLO_SECONDS, 3)
    assert row["cost"] == pytest.approx(cost, rel=1e-3)


def test_streams_bypass_the_cache_and_are_never_served_from_it(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any
) -> None:
    with gateway(upstreams, {}, Clock(), tmp_path, **CACHE) as (url, _):
        streams = [cached(url, model="openai/gpt-4o-transcribe", stream="true") for _ in range(2)]
        after_streams = cached(url, model="openai/gpt-4o-transcribe")  # nothing was stored by the streams
        stored = cached(url, model="openai/gpt-4o-transcribe")  # now it is
        streamed_again = cached(url, model="openai/gpt-4o-transcribe", stream="true")
    assert [s.status_code for s in streams] == [200, 200]
    assert all("cache_debug" not in s.text for s in streams)
    assert after_streams.json()["extra_fields"]["cache_debug"]["cache_hit"] is False
    assert stored.json()["extra_fields"]["cache_debug"]["cache_hit"] is True
    assert streamed_again.status_code == 200 and streamed_again.text.rstrip().endswith("data: [DONE]")
    assert fakes.calls("openai") == 4  # both streams, the first non-stream, the last stream: never the cache


def test_limits_that_cannot_be_checked_refuse_with_503_and_a_lost_release_keeps_the_real_error(
    upstreams: Upstreams, fakes: Upstreams, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    def unavailable(*args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    limits = rate_limit(request_max_limit=5, request_reset_duration="1h")
    with gateway(upstreams, {}, Clock(), tmp_path, **limits) as (url, governor):
        monkeypatch.setattr(governor.store, "adjust", unavailable)
        fakes.fakes["openai"].always = Fault("status", 500)
        failed = post(url)  # giving the reservation back fails: logged; the client still hears the 502
        fakes.fakes["openai"].always = None
        monkeypatch.setattr(governor.store, "reserve", unavailable)
        refused = post(url)
    assert failed.status_code == 502
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["code"] == "limits_unavailable"
    assert "locked" not in refused.text
    assert fakes.calls("openai") == 2  # the failed request's call and its one retry; none for the refused one


def test_through_the_lambda_handler_limits_hold_and_usage_is_written_before_the_invocation_returns(
    upstreams: Upstreams, fakes: Upstreams, aws: str, tmp_path: Any
) -> None:
    from heimdall.api.lambda_adapter import lambda_handler
    from tests.support import multipart as mp
    from tests.support.lambda_events import LambdaContext, http_v2_event, response_headers

    table = f"governance-{uuid.uuid4().hex}"
    create_governance_table(table)
    clock = Clock()
    env = {"HEIMDALL_GOVERNANCE_TABLE": table, "AWS_LAMBDA_FUNCTION_NAME": "heimdall-ApiFunction"}
    limits = rate_limit(request_max_limit=1, request_reset_duration="1h")
    app = make_app(upstreams, env, clock, tmp_path, **limits)
    governor = app.state.governor
    handler = lambda_handler(app)
    body = mp.body(mp.field("model", "openai/whisper-1"), mp.file_part(HELLO, filename="hello.wav"))
    replies = []
    for _ in range(2):
        event = http_v2_event("POST", "/v1/audio/transcriptions", body=body, content_type=mp.CONTENT_TYPE)
        event["headers"]["api-key"] = TEAM
        event["requestContext"]["requestId"] = str(uuid.uuid4())  # one per invocation, as API Gateway gives
        replies.append(handler(event, LambdaContext()))
    records = list(governor.store.records(clock.now - 60, clock.now + 60))
    assert [r["statusCode"] for r in replies] == [200, 429]
    assert int(response_headers(replies[1])["retry-after"]) == 3600 - 15
    assert sorted(r.status for r in records) == [200, 429]  # written before each invocation returned
    assert {r.key_id for r in records} == {"team"}


def test_a_damaged_cache_entry_is_a_miss(upstreams: Upstreams, fakes: Upstreams, tmp_path: Any) -> None:
    with gateway(upstreams, {}, Clock(), tmp_path, **CACHE) as (url, _):
        cache_id = cached(url).json()["extra_fields"]["cache_debug"]["cache_id"]
        (tmp_path / "cache" / f"{cache_id}.json").write_text('{"expires_at": 9e99, "transcript": {"text": 7}}')
        again = cached(url)
    assert again.status_code == 200
    assert again.json()["extra_fields"]["cache_debug"]["cache_hit"] is False
    assert fakes.calls("openai") == 2
