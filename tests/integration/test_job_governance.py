"""Governance of transcription jobs, end to end on moto's server (S3, the job table, the governance
table): ``POST /v1/uploads`` through the running gateway, the presigned POST, the S3 event the ingest
handler gets (twice, as S3 may deliver it), and the counters and usage records the job leaves."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import requests

from heimdall.api.app import create_app
from heimdall.config import load_config
from heimdall.governance.store import SCALE
from heimdall.governance.windows import window_at
from tests.fakes.base import Fault
from tests.support.aws import create_governance_table
from tests.support.jobs import BUCKET, failure_event, job_stack, put, s3_event
from tests.support.lambda_events import LambdaContext
from tests.support.servers import serve, wait_until
from tests.support.speech import FILES
from tests.support.upstreams import Upstreams

TEAM = "hk-team-0123456789abcdef"
ADMIN = "hk-admin-0123456789abcdef"
HELLO = FILES["hello"].read_bytes()
HELLO_SECONDS = 4.205125  # the WAV's frames over its rate
WHISPER_PER_MINUTE = 0.006  # openai/whisper-1's default price


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with job_stack() as env:
        yield env


@pytest.fixture
def governance_table(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh governance table, named to the gateway and the ingest handler as the template does."""
    table = f"governance-{uuid.uuid4().hex}"
    create_governance_table(table)
    monkeypatch.setenv("HEIMDALL_GOVERNANCE_TABLE", table)
    return table


@pytest.fixture
def configure(tmp_path: Path, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Writes the config (the fake OpenAI, keys team and admin, ``rate_limits``/``budgets`` for team)
    where HEIMDALL_CONFIG points, so the gateway and the ingest handler read the same one."""

    def write(
        rate_limit: dict[str, Any] | None = None,
        budget: float | None = None,
        openai_limit: dict[str, Any] | None = None,
    ) -> Path:
        team: dict[str, Any] = {"id": "team", "value": TEAM}
        governance: dict[str, Any] = {"virtual_keys": [team, {"id": "admin", "value": ADMIN, "admin": True}],
                                      "rate_limits": []}  # fmt: skip
        if rate_limit is not None:
            team["rate_limit_id"] = "rl-team"
            governance["rate_limits"].append({"id": "rl-team", **rate_limit})
        if openai_limit is not None:  # the team's own limit on OpenAI (provider_configs)
            team["provider_configs"] = [{"id": 1, "provider": "openai", "rate_limit_id": "rl-openai"}]
            governance["rate_limits"].append({"id": "rl-openai", **openai_limit})
        if budget is not None:
            governance["budgets"] = [{"id": "b-team", "virtual_key_id": "team", "max_limit": budget,
                                      "reset_duration": "1M"}]  # fmt: skip
        network = {"base_url": upstreams.urls["openai"], "max_retries": 1, "retry_backoff_initial": 10}
        document = {
            "providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}], "network_config": network}},
            "client_config": {"default_model": "openai/whisper-1"},
            "governance": governance,
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(document))
        monkeypatch.setenv("HEIMDALL_CONFIG", str(path))
        return path

    return write


def upload(gateway: str, key: str = TEAM) -> httpx.Response:
    return httpx.post(f"{gateway}/v1/uploads", json={"filename": "hello.wav", "model": "openai/whisper-1"},
                      headers={"api-key": key}, timeout=30)  # fmt: skip


def upload_file(created: httpx.Response) -> str:
    """The presigned POST, as a client makes it; the object's key."""
    post = created.json()["upload"]
    response = requests.post(post["url"], data=post["fields"], files={"file": ("hello.wav", HELLO)}, timeout=30)
    assert response.status_code in (200, 204), response.text
    key: str = post["fields"]["key"]
    return key


def event_for(key: str) -> dict[str, Any]:
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)
    return s3_event((key, head["ContentLength"], head["ETag"].strip('"'), "0A1B2C3D4E5F678901"))


def ingest() -> Any:
    from heimdall.jobs import ingest_handler

    return ingest_handler()  # reads HEIMDALL_CONFIG and HEIMDALL_GOVERNANCE_TABLE as in Lambda


def deliver(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = handler(event, LambdaContext(function_name="heimdall-IngestFunction",
                                                          remaining_ms=900_000))  # fmt: skip
    return result


def spent(app: Any, counter: str, duration: str, since: float) -> float:
    """A counter's total in the windows from ``since`` to now (a test may cross a window's end)."""
    store = app.state.governor.store
    windows = {window_at(duration, since), window_at(duration, time.time())}
    metric = counter.rsplit(":", 1)[-1]
    return sum(store.used(counter, window) for window in windows) / SCALE[metric]


def usage(gateway: str, expect_requests: int, **query: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    def arrived() -> bool:
        nonlocal body
        body = httpx.get(f"{gateway}/v1/usage", params=query, headers={"api-key": ADMIN}).json()
        return bool(body.get("totals", {}).get("requests") == expect_requests)

    wait_until(arrived, timeout=10, what=f"{expect_requests} usage records")
    return body


def records(app: Any) -> list[Any]:
    now = time.time()
    return list(app.state.governor.store.records(now - 3600, now + 60))


def test_a_key_with_a_request_limit_of_n_gets_n_uploads_then_a_429(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    app = create_app(load_config(str(configure(rate_limit={"request_max_limit": 2, "request_reset_duration": "1h"}))))
    with serve(app) as gateway:
        created = [upload(gateway) for _ in range(2)]
        refused = upload(gateway)
        body = usage(gateway, 1)  # the refusal; an admitted upload's record is its job's, when it ends
    assert [r.status_code for r in created] == [201, 201]
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert refused.json()["error"]["code"] == "requests_limit_exceeded"
    assert refused.json()["extra_fields"]["limit"]["id"] == "rl-team"
    assert body["totals"]["errors"] == 1
    assert fakes.calls("openai") == 0


def test_a_job_is_charged_its_decoded_seconds_and_cost_once_when_its_event_comes_twice(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    since = time.time()
    limits = {"request_max_limit": 10, "request_reset_duration": "1d",
              "token_max_limit": 3600, "token_reset_duration": "1d"}  # fmt: skip
    app = create_app(load_config(str(configure(rate_limit=limits, budget=1.0))))
    handler = ingest()
    with serve(app) as gateway:
        created = upload(gateway)
        event = event_for(upload_file(created))
        first = deliver(handler, event)["jobs"][0]
        second = deliver(handler, event)["jobs"][0]
        body = usage(gateway, 1, group_by="key")
    cost = round(WHISPER_PER_MINUTE * HELLO_SECONDS / 60, 8)
    assert first["status"] == "succeeded" and second["delivery"] == "done"
    assert fakes.calls("openai") == 1
    assert first["audio_seconds"] == pytest.approx(HELLO_SECONDS, abs=0.001)
    assert spent(app, "rate_limit:rl-team:requests", "1d", since) == 1
    assert spent(app, "rate_limit:rl-team:audio_seconds", "1d", since) == pytest.approx(HELLO_SECONDS, abs=0.001)
    assert spent(app, "budget:b-team:dollars", "1M", since) == pytest.approx(cost, rel=1e-6)
    (record,) = records(app)
    assert (record.route, record.key_id, record.provider, record.model, record.status) == (
        "/v1/uploads", "team", "openai", "whisper-1", 200
    )  # fmt: skip
    assert record.model_requested == "openai/whisper-1"
    assert record.fallback_index == 0
    assert record.audio_seconds == pytest.approx(HELLO_SECONDS, abs=0.001)
    assert record.cost == pytest.approx(cost, rel=1e-6)
    assert record.latency_ms > 0
    (row,) = body["data"]
    assert row["key_id"] == "team" and row["requests"] == 1 and row["errors"] == 0
    assert row["audio_seconds"] == round(HELLO_SECONDS, 3) and row["cost"] == pytest.approx(cost, rel=1e-6)


def test_a_job_that_fails_for_good_is_not_charged(governance_table: str, configure: Any, fakes: Upstreams) -> None:
    since = time.time()
    limits = {"request_max_limit": 1, "request_reset_duration": "1d"}
    app = create_app(load_config(str(configure(rate_limit=limits, budget=1.0))))
    handler = ingest()
    fakes.fakes["openai"].always = Fault("status", 503)
    with serve(app) as gateway:
        created = upload(gateway)
        event = event_for(upload_file(created))
        (job,) = deliver(handler, event)["jobs"]
        (again,) = deliver(handler, event)["jobs"]
        fakes.fakes["openai"].always = None
        after = upload(gateway)  # the failed job's request was given back: the limit of 1 admits another
        body = usage(gateway, 1)
    assert job["status"] == "failed" and again["delivery"] == "done"
    assert after.status_code == 201
    assert spent(app, "rate_limit:rl-team:requests", "1d", since) == 1  # the second upload's
    assert spent(app, "budget:b-team:dollars", "1M", since) == 0
    (record,) = records(app)
    assert (record.route, record.key_id, record.status, record.cost, record.audio_seconds) == (
        "/v1/uploads", "team", 502, 0.0, 0.0
    )  # fmt: skip
    assert body["totals"] == {"requests": 1, "errors": 1, "cache_hits": 0, "audio_seconds": 0.0, "cost": 0.0}


def test_a_key_past_its_audio_limit_is_refused_at_its_next_upload(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    limits = {"token_max_limit": 3, "token_reset_duration": "1d"}  # fewer seconds than one hello.wav
    app = create_app(load_config(str(configure(rate_limit=limits))))
    with serve(app) as gateway:
        created = upload(gateway)
        (job,) = deliver(ingest(), event_for(upload_file(created)))["jobs"]
        refused = upload(gateway)
    assert job["status"] == "succeeded"  # admitted before its length was known, then charged in full
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "audio_seconds_limit_exceeded"


def test_uploads_admitted_together_stop_transcribing_once_the_jobs_before_them_spent_the_budget(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    """Three uploads admitted while the key's budget had room: the first job uses the budget up, and
    the two after it are refused when they run (429, nothing sent upstream, not charged)."""
    since = time.time()
    one_job = HELLO_SECONDS * WHISPER_PER_MINUTE / 60
    app = create_app(load_config(str(configure(budget=one_job / 2))))
    handler = ingest()
    with serve(app) as gateway:
        keys = [upload_file(upload(gateway)) for _ in range(3)]
        jobs = [deliver(handler, event_for(key))["jobs"][0] for key in keys]
        body = usage(gateway, 3)
    assert [job["status"] for job in jobs] == ["succeeded", "failed", "failed"]
    assert {job["error"]["error"]["code"] for job in jobs[1:]} == {"budget_exceeded"}
    assert {job["error"]["status_code"] for job in jobs[1:]} == {429}
    assert len(fakes.fakes["openai"].requests) == 1  # only the first reached the provider
    assert spent(app, "budget:b-team:dollars", "1M", since) == pytest.approx(one_job, abs=1e-8)
    assert body["totals"]["errors"] == 2 and body["totals"]["cost"] == pytest.approx(one_job, abs=1e-8)


def test_a_job_runs_when_its_limits_cannot_be_read_as_it_starts(
    governance_table: str, configure: Any, fakes: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admitted at its upload, a job is not failed for a governance store that cannot be read when
    it runs (a table that is not there): it is transcribed, and the lost charge is logged."""
    app = create_app(load_config(str(configure(budget=1.0))))
    with serve(app) as gateway:
        key = upload_file(upload(gateway))
    monkeypatch.setenv("HEIMDALL_GOVERNANCE_TABLE", f"gone-{uuid.uuid4().hex}")
    (job,) = deliver(ingest(), event_for(key))["jobs"]
    assert job["status"] == "succeeded"
    assert len(fakes.fakes["openai"].requests) == 1


def test_a_job_runs_when_its_provider_limits_cannot_be_read_as_it_starts(
    governance_table: str, configure: Any, fakes: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key's own limit on the provider is asked before each call of the job: a store that cannot be
    read then does not fail the job either (it was admitted at its upload)."""
    app = create_app(
        load_config(str(configure(openai_limit={"request_max_limit": 10, "request_reset_duration": "1h"})))
    )
    with serve(app) as gateway:
        key = upload_file(upload(gateway))
    monkeypatch.setenv("HEIMDALL_GOVERNANCE_TABLE", f"gone-{uuid.uuid4().hex}")
    (job,) = deliver(ingest(), event_for(key))["jobs"]
    assert job["status"] == "succeeded", job
    assert len(fakes.fakes["openai"].requests) == 1


def test_a_job_whose_runner_died_on_its_last_attempt_gives_its_reservation_back(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    from heimdall.jobs import failure_handler

    app = create_app(load_config(str(configure(rate_limit={"request_max_limit": 1, "request_reset_duration": "1d"}))))
    with serve(app) as gateway:
        created = upload(gateway)
        event = event_for(upload_file(created))
        (job,) = failure_handler()(failure_event(event), LambdaContext())["jobs"]
        after = upload(gateway)
        usage(gateway, 1)
    assert job["status"] == "failed" and job["error"]["error"]["code"] == "job_interrupted"
    assert after.status_code == 201
    (record,) = records(app)
    assert (record.key_id, record.status, record.cost) == ("team", 500, 0.0)


def test_a_file_an_operator_dropped_is_recorded_without_a_key(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    app = create_app(load_config(str(configure(rate_limit={"request_max_limit": 1, "request_reset_duration": "1d"}))))
    event = s3_event(put(f"incoming/dropbox/{uuid.uuid4().hex}.wav", HELLO))
    (job,) = deliver(ingest(), event)["jobs"]
    with serve(app) as gateway:
        body = usage(gateway, 1, group_by="key")
        admitted = upload(gateway)  # the drop counted against no key's limit
    assert job["status"] == "succeeded"
    assert body["data"][0]["key_id"] is None
    assert body["data"][0]["audio_seconds"] == round(HELLO_SECONDS, 3)
    assert body["data"][0]["cost"] == round(WHISPER_PER_MINUTE * HELLO_SECONDS / 60, 8)
    assert admitted.status_code == 201


def test_a_dropped_file_s_job_is_seen_by_admin_keys_only(governance_table: str, configure: Any) -> None:
    """Its job id derives from the file's name (anyone can compute it for a guessed name): a tenant's
    key gets the same 404 as for a job that does not exist, an admin key gets the transcript."""
    from heimdall.jobs import job_of

    app = create_app(load_config(str(configure())))
    name = f"incoming/board-meeting-{uuid.uuid4().hex[:6]}.wav"
    (job,) = deliver(ingest(), s3_event(put(name, HELLO)))["jobs"]
    job_id, _ = job_of(name)
    with serve(app) as gateway:
        tenant = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", headers={"api-key": TEAM})
        admin = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", headers={"api-key": ADMIN})
    assert job["status"] == "succeeded"
    assert tenant.status_code == 404 and tenant.json()["error"]["code"] == "job_not_found"
    assert admin.status_code == 200 and admin.json()["text"]


def test_a_second_upload_through_the_same_url_is_charged_as_a_request_of_its_own(
    governance_table: str, configure: Any, fakes: Upstreams
) -> None:
    """The presigned POST stays valid for 15 minutes: each upload through it is a transcription."""
    since = time.time()
    limits = {"request_max_limit": 10, "request_reset_duration": "1d",
              "token_max_limit": 3600, "token_reset_duration": "1d"}  # fmt: skip
    app = create_app(load_config(str(configure(rate_limit=limits))))
    handler = ingest()
    with serve(app) as gateway:
        created = upload(gateway)
        post = created.json()["upload"]
        jobs = []
        for audio in (HELLO, FILES["fox"].read_bytes()):
            response = requests.post(post["url"], data=post["fields"], files={"file": ("hello.wav", audio)}, timeout=30)
            assert response.status_code in (200, 204)
            key = post["fields"]["key"]
            head = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)
            version = (key, head["ContentLength"], head["ETag"].strip('"'), f"0A1B2C3D4E5F6789{len(jobs):02X}")
            jobs.append(deliver(handler, s3_event(version))["jobs"][0])
            deliver(handler, s3_event(version))  # and each event twice
        usage(gateway, 2)
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert fakes.calls("openai") == 2
    seconds = sum(job["audio_seconds"] for job in jobs)
    assert spent(app, "rate_limit:rl-team:requests", "1d", since) == 2
    assert spent(app, "rate_limit:rl-team:audio_seconds", "1d", since) == pytest.approx(seconds, abs=0.002)
    assert sorted(r.audio_seconds for r in records(app)) == sorted(round(j["audio_seconds"], 3) for j in jobs)


def test_a_job_skips_a_provider_whose_own_limit_within_the_key_is_spent(
    governance_table: str, tmp_path: Path, upstreams: Upstreams, fakes: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for a request (Bifrost excludes such a provider from routing): the key's OpenAI allowance is
    one request an hour, so the second job is served by its fallback, and OpenAI is called once."""
    network = {"max_retries": 0, "retry_backoff_initial": 10}
    team = {"id": "team", "value": TEAM,
            "provider_configs": [{"id": 1, "provider": "openai", "rate_limit_id": "rl-openai"}]}  # fmt: skip
    document = {
        "providers": {
            "openai": {"keys": [{"value": upstreams.keys["openai"]}],
                       "network_config": {**network, "base_url": upstreams.urls["openai"]}},
            "groq": {"keys": [{"value": upstreams.keys["groq"]}],
                     "network_config": {**network, "base_url": upstreams.urls["groq"] + "/openai"}},
        },
        "governance": {"virtual_keys": [team],
                       "rate_limits": [{"id": "rl-openai", "request_max_limit": 1, "request_reset_duration": "1h"}]},
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("HEIMDALL_CONFIG", str(path))
    handler = ingest()
    jobs = []
    with serve(create_app(load_config(str(path)))) as gateway:
        for _ in range(2):
            created = httpx.post(f"{gateway}/v1/uploads", headers={"api-key": TEAM}, timeout=30,
                                 json={"filename": "hello.wav", "model": "openai/whisper-1",
                                       "fallbacks": ["groq/whisper-large-v3"]})  # fmt: skip
            assert created.status_code == 201, created.text
            jobs.append(deliver(handler, event_for(upload_file(created)))["jobs"][0])
    assert [(job["status"], job["provider"], job["fallback_index"]) for job in jobs] == [
        ("succeeded", "openai", 0), ("succeeded", "groq", 1)
    ]  # fmt: skip
    assert fakes.calls("openai") == 1 and fakes.calls("groq") == 1
