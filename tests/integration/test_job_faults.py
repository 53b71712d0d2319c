"""Jobs under the faults Lambda and S3 really produce, with the ingest handler in its own process
(as Lambda runs it) against moto's server and a fake OpenAI: a runner killed mid-call, deliveries
that overlap a live run, an adapter that raises what nobody expected, a key uploaded again with
other bytes, and long audio against a provider's 25 MB limit. Each ends in one answer: the
transcript of exactly the uploaded object, or a clear failure."""

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

from heimdall.api.app import create_app
from heimdall.config import load_config
from heimdall.job_table import JobTable
from heimdall.jobs import MAX_ATTEMPTS, job_of
from tests.fakes.base import Fault
from tests.fakes.openai import MAX_FILE_BYTES
from tests.support.jobs import TABLE, failure_event, finish, job_stack, put, s3_event, start_handler
from tests.support.servers import serve, wait_until
from tests.support.speech import FILES, long_speech_wav
from tests.support.upstreams import Upstreams

#: A short lease, so a dead runner's lease lapses within the test (the deployed default is 30 s).
LEASE = 8.0


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with job_stack() as env:
        yield env


@pytest.fixture
def env(aws: dict[str, str], tmp_path: Path, upstreams: Upstreams, fakes: Upstreams) -> dict[str, str]:
    """The ingest function's environment: OpenAI's fake as the provider (no retries, so every
    call is one the test accounts for) and the default model for files dropped without parameters."""
    path = tmp_path / "config.json"
    network = {"base_url": upstreams.urls["openai"], "max_retries": 0, "default_request_timeout_in_seconds": 60}
    path.write_text(json.dumps({
        "providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}], "network_config": network}},
        "client_config": {"default_model": "openai/whisper-1"},
    }))  # fmt: skip
    return {**aws, "HEIMDALL_CONFIG": str(path), "HEIMDALL_JOB_LEASE_SECONDS": str(LEASE)}


def new_key(filename: str = "meeting.flac") -> str:
    return f"incoming/{uuid.uuid4().hex}/{filename}"


def job(key: str) -> dict[str, Any]:
    item = JobTable(TABLE).get(job_of(key)[0])
    assert item is not None
    return item


def dead_letters(aws: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=aws["HEIMDALL_DLQ_URL"], MaxNumberOfMessages=10).get("Messages", [])
    return [body for m in messages if (body := json.loads(m["Body"]))["job_id"] == job_id]


def started_calls(fakes: Upstreams, count: int) -> None:
    wait_until(lambda: fakes.calls("openai") >= count, timeout=60, what=f"{count} provider call(s)")


def test_a_runner_killed_mid_call_is_retried_once_its_lease_lapses(env: dict[str, str], fakes: Upstreams) -> None:
    fakes.fakes["openai"].fail_next(Fault("timeout", seconds=60))  # the first call hangs until the kill
    key = new_key()
    event = s3_event(put(key, FILES["fox"].read_bytes()))
    runner = start_handler(event, env=env)
    started_calls(fakes, 1)
    assert job(key)["status"] == "running"
    runner.kill()
    runner.wait()
    killed = time.time()
    wait_until(lambda: job(key)["lease_until"] < time.time(), timeout=2 * LEASE, what="the dead runner's lease")
    assert time.time() - killed <= LEASE + 0.5  # the dead run blocks its retry for one lease at most
    (retried,) = finish(start_handler(event, env=env))["jobs"]  # Lambda's retry
    assert retried["status"] == "succeeded"
    assert retried["attempt"] == 2
    assert fakes.calls("openai") == 2  # the killed call, then the retry's


def test_a_runner_killed_on_its_last_attempt_is_marked_failed_within_one_lease(
    env: dict[str, str], aws: dict[str, str], fakes: Upstreams
) -> None:
    fakes.fakes["openai"].fail_next(Fault("timeout", seconds=60))
    key = new_key()
    event = s3_event(put(key, FILES["fox"].read_bytes()))
    runner = start_handler(event, env=env)
    started_calls(fakes, 1)
    runner.kill()
    runner.wait()
    killed = time.monotonic()
    # Lambda gives up on the event and invokes the on-failure destination with it
    (marked,) = finish(start_handler(failure_event(event), handler="failure", env=env))["jobs"]
    running_after_death = time.monotonic() - killed
    assert marked["status"] == "failed"
    assert marked["error"]["status_code"] == 500
    assert marked["error"]["error"]["code"] == "job_interrupted"
    assert running_after_death <= LEASE + 10  # one lease, plus starting the destination's process
    job_id = job_of(key)[0]
    assert [m["etag"] for m in dead_letters(aws, job_id)] == [event["Records"][0]["s3"]["object"]["eTag"]]
    (late,) = finish(start_handler(event, env=env))["jobs"]  # a straggling redelivery changes nothing
    assert (late["status"], late["delivery"]) == ("failed", "done")
    assert fakes.calls("openai") == 1


def test_a_redelivery_while_a_run_is_alive_leaves_it_alone(env: dict[str, str], fakes: Upstreams) -> None:
    fakes.fakes["openai"].fail_next(Fault("slow", seconds=2 * LEASE))  # a call that outlasts the first lease
    key = new_key()
    event = s3_event(put(key, FILES["fox"].read_bytes()))
    runner = start_handler(event, env=env)
    started_calls(fakes, 1)
    first_lease = job(key)["lease_until"]
    wait_until(lambda: time.time() > first_lease + 0.5, timeout=2 * LEASE, what="the first lease to pass")
    assert job(key)["lease_until"] > time.time()  # heartbeats keep it
    (again,) = finish(start_handler(event, env=env))["jobs"]
    assert (again["status"], again["delivery"]) == ("running", "busy")
    (done,) = finish(runner)["jobs"]
    assert (done["status"], done["attempt"]) == ("succeeded", 1)
    assert fakes.calls("openai") == 1


def test_five_concurrent_deliveries_of_one_event_call_the_provider_once(env: dict[str, str], fakes: Upstreams) -> None:
    fakes.fakes["openai"].fail_next(Fault("slow", seconds=2))
    key = new_key()
    event = s3_event(put(key, FILES["fox"].read_bytes()))
    deployed = {**env, "HEIMDALL_JOB_LEASE_SECONDS": "30"}  # no lease lapses here, however loaded the machine
    runs = [start_handler(event, env=deployed) for _ in range(5)]
    results = [finish(run)["jobs"][0] for run in runs]
    assert sorted(r.get("delivery", "ran") for r in results).count("ran") == 1
    assert {r.get("delivery") for r in results} <= {None, "busy", "done"}
    assert fakes.calls("openai") == 1
    assert job(key)["status"] == "succeeded"


def test_an_unexpected_exception_in_an_adapter_fails_the_job_on_its_last_attempt(
    env: dict[str, str], aws: dict[str, str], fakes: Upstreams
) -> None:
    broken = {**env, "HEIMDALL_TEST_ADAPTER_RAISES": "adapter bug near sk-not-for-users"}
    key = new_key()
    event = s3_event(put(key, FILES["fox"].read_bytes()))
    for attempt in range(1, MAX_ATTEMPTS):
        run = start_handler(event, env=broken)
        _, err = run.communicate(timeout=60)
        assert run.returncode == 1, err[-2000:]  # the invocation fails: Lambda retries it
        assert "RuntimeError" in err
        item = job(key)
        assert (item["status"], item["attempt"], item["lease_until"]) == ("running", attempt, 0)  # retry at once
    (last,) = finish(start_handler(event, env=broken))["jobs"]
    assert last["status"] == "failed"
    assert last["attempt"] == MAX_ATTEMPTS
    assert last["error"]["status_code"] == 500
    assert last["error"]["error"]["code"] == "job_crashed"
    assert "sk-not-for-users" not in json.dumps(last)
    job_id = job_of(key)[0]
    assert len(dead_letters(aws, job_id)) == 1
    assert fakes.calls("openai") == 0
    with serve(create_app(load_config(env["HEIMDALL_CONFIG"]))) as gateway:
        seen = httpx.get(f"{gateway}/v1/transcriptions/{job_id}")
    assert seen.status_code == 200
    assert seen.json()["status"] == "failed"
    assert seen.json()["error"]["error"]["code"] == "job_crashed"


def test_the_same_key_uploaded_again_serves_the_newest_upload(env: dict[str, str], fakes: Upstreams) -> None:
    import hashlib

    key = new_key("meeting.wav")
    first_bytes, second_bytes = FILES["hello"].read_bytes(), long_speech_wav(3)
    first = put(key, first_bytes)
    assert finish(start_handler(s3_event(first), env=env))["jobs"][0]["object"]["etag"] == first[2]
    second = put(key, second_bytes)
    (newest,) = finish(start_handler(s3_event(second), env=env))["jobs"]
    assert newest["status"] == "succeeded"
    assert newest["object"] == {"etag": second[2], "size": len(second_bytes)}
    (late,) = finish(start_handler(s3_event(first), env=env))["jobs"]  # the first upload's event, late
    assert late["delivery"] == "superseded"
    assert late["object"]["etag"] == second[2]
    sent = [r.file["sha256"] for r in fakes.fakes["openai"].requests if r.file]
    assert sent == [hashlib.sha256(first_bytes).hexdigest(), hashlib.sha256(second_bytes).hexdigest()]
    job_id = job_of(key)[0]
    with serve(create_app(load_config(env["HEIMDALL_CONFIG"]))) as gateway:
        served = httpx.get(f"{gateway}/v1/transcriptions/{job_id}").json()
    assert served["status"] == "succeeded"
    assert served["object"] == {"etag": second[2], "size": len(second_bytes)}
    document = boto3.client("s3").get_object(Bucket=env["HEIMDALL_AUDIO_BUCKET"], Key=newest["transcript_key"])
    assert json.loads(document["Body"].read())["object"]["etag"] == second[2]


def test_a_run_overtaken_by_a_newer_upload_records_nothing(env: dict[str, str], fakes: Upstreams) -> None:
    fakes.fakes["openai"].fail_next(Fault("slow", seconds=LEASE + 4))
    key = new_key("meeting.wav")
    older = start_handler(s3_event(put(key, FILES["hello"].read_bytes())), env=env)
    started_calls(fakes, 1)
    newer_bytes = long_speech_wav(3)
    newer = put(key, newer_bytes)
    (taken_over,) = finish(start_handler(s3_event(newer), env=env))["jobs"]
    assert taken_over["status"] == "succeeded"
    (overtaken,) = finish(older)["jobs"]
    assert overtaken["delivery"] == "superseded"
    assert job(key)["etag"] == newer[2]
    assert job(key)["transcript_key"] == taken_over["transcript_key"]


def test_long_wavs_are_cut_so_no_body_over_the_providers_limit_is_sent(env: dict[str, str], fakes: Upstreams) -> None:
    """30, 35 and 40 MB recordings against OpenAI's 25 MB limit (which the fake enforces with a 413)."""
    objects = [put(new_key(f"meeting {mb} MB.wav"), long_speech_wav(mb * 1024 * 1024 / 32000)) for mb in (30, 35, 40)]
    jobs = finish(start_handler(s3_event(*objects), env=env), timeout=600)["jobs"]
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    assert [j["object"]["size"] for j in jobs] == [size for _, size, _, _ in objects]
    assert all(j["pieces_done"] == j["pieces_total"] >= 2 for j in jobs)
    sizes = [r.file["size"] for r in fakes.fakes["openai"].requests if r.file]
    assert len(sizes) == sum(j["pieces_total"] for j in jobs)  # every piece sent once, none refused
    assert max(sizes) <= MAX_FILE_BYTES
