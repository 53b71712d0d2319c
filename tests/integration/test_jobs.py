"""Large audio, asynchronously: a presigned upload to a real HTTP S3 endpoint (moto's server),
the S3 event AWS would send (built from events/s3-put-incoming.json), the ingest handler, and the
job's status and transcript through the API — exactly once, nothing lost."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import requests
import srt

from heimdall.api.app import create_app
from heimdall.config import GatewayConfig, load_config, parse_config
from tests.fakes.base import Fault
from tests.support.jobs import BUCKET, job_stack, s3_event
from tests.support.lambda_events import LambdaContext
from tests.support.servers import serve, wait_until
from tests.support.speech import FILES, wer
from tests.support.upstreams import Upstreams

FILENAME = "team sync + notes.wav"


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with job_stack() as env:
        yield env


def upload(gateway: str, audio: bytes, **parameters: Any) -> tuple[str, str]:
    """POST /v1/uploads, then the presigned POST with plain requests; returns (job id, object key)."""
    job = httpx.post(f"{gateway}/v1/uploads", json={"filename": FILENAME, **parameters}).json()
    assert job["status"] == "queued"
    post = job["upload"]
    response = requests.post(post["url"], data=post["fields"], files={"file": (FILENAME, audio)}, timeout=30)
    assert response.status_code in (200, 204), response.text
    return job["job_id"], post["fields"]["key"]


def deliver(handler: Any, key: str) -> dict[str, Any]:
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)
    context = LambdaContext(function_name="heimdall-IngestFunction", remaining_ms=900_000)  # the ingest timeout
    event = s3_event((key, head["ContentLength"], head["ETag"].strip('"'), "0A1B2C3D4E5F678901"))
    result: dict[str, Any] = handler(event, context)
    return result


def ingest_with(config_path: Path | None) -> Any:
    from heimdall.jobs import ingest_handler

    if config_path is None:
        os.environ.pop("HEIMDALL_CONFIG", None)
    else:
        os.environ["HEIMDALL_CONFIG"] = str(config_path)
    try:
        return ingest_handler()
    finally:
        os.environ.pop("HEIMDALL_CONFIG", None)


def poll(gateway: str, job_id: str) -> dict[str, Any]:
    wait_until(
        lambda: httpx.get(f"{gateway}/v1/transcriptions/{job_id}").json()["status"] in ("succeeded", "failed"),
        what="the job to finish",
    )
    body: dict[str, Any] = httpx.get(f"{gateway}/v1/transcriptions/{job_id}").json()
    return body


@pytest.mark.engine
def test_upload_event_transcribe_and_fetch_srt(aws: dict[str, str]) -> None:
    audio = FILES["hello"].read_bytes()
    with serve(create_app(GatewayConfig())) as gateway:
        job_id, key = upload(gateway, audio, model="whisper-1", response_format="srt")
        assert key == f"incoming/{job_id}/{FILENAME}"
        assert httpx.get(f"{gateway}/v1/transcriptions/{job_id}").json()["status"] == "queued"
        result = deliver(ingest_with(None), key)
        assert result["jobs"][0]["status"] == "succeeded"
        status = poll(gateway, job_id)
        assert status["status"] == "succeeded"
        srt_text = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "srt"}).text
        assert srt_text.startswith("1\n00:00:00,000 --> ")
        verbose = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "verbose_json"}).json()
        assert wer("hello", verbose["text"]) <= 0.35
        assert verbose["extra_fields"]["provider"] == "local"
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(audio)  # the upload stays
    etag = head["ETag"].strip('"')
    assert status["object"] == {"etag": etag, "size": len(audio)}  # which upload was transcribed
    assert s3.get_object(Bucket=BUCKET, Key=f"transcripts/{job_id}/{etag}.srt")["Body"].read().decode() == srt_text


@pytest.fixture
def fake_config(tmp_path: Path, upstreams: Upstreams, fakes: Upstreams) -> Path:
    path = tmp_path / "config.json"
    network = {"base_url": upstreams.urls["openai"], "max_retries": 1, "retry_backoff_initial": 10}
    path.write_text(json.dumps({"providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}],
                                                         "network_config": network}}}))  # fmt: skip
    return path


def test_a_duplicated_event_transcribes_once(aws: dict[str, str], fake_config: Path, fakes: Upstreams) -> None:
    handler = ingest_with(fake_config)
    with serve(create_app(load_config(str(fake_config)))) as gateway:
        _, key = upload(gateway, FILES["fox"].read_bytes(), model="openai/whisper-1")
    (first,) = deliver(handler, key)["jobs"]
    transcript = boto3.client("s3").head_object(Bucket=BUCKET, Key=first["transcript_key"])
    (second,) = deliver(handler, key)["jobs"]
    assert second.pop("delivery") == "done"
    assert first == second
    assert fakes.calls("openai") == 1
    again = boto3.client("s3").head_object(Bucket=BUCKET, Key=first["transcript_key"])
    assert again["ETag"] == transcript["ETag"]
    assert again["LastModified"] == transcript["LastModified"]


def test_a_job_that_keeps_failing_is_marked_failed_and_dead_lettered(
    aws: dict[str, str], fake_config: Path, fakes: Upstreams
) -> None:
    fakes.fakes["openai"].always = Fault("status", 503)
    handler = ingest_with(fake_config)
    with serve(create_app(load_config(str(fake_config)))) as gateway:
        job_id, key = upload(gateway, FILES["fox"].read_bytes(), model="openai/whisper-1")
        deliver(handler, key)
        status = poll(gateway, job_id)
    assert status["status"] == "failed"
    assert status["error"]["status_code"] == 502
    assert status["error"]["extra_fields"]["provider"] == "openai"
    assert fakes.calls("openai") == 2  # 1 + max_retries, then given up
    messages = boto3.client("sqs").receive_message(QueueUrl=aws["HEIMDALL_DLQ_URL"], MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert [b["job_id"] for b in bodies] == [job_id]
    assert bodies[0]["error"]["error"]["code"] == "upstream_503"
    assert boto3.client("s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0  # the upload stays


@pytest.mark.engine
def test_a_file_dropped_without_a_manifest_uses_the_defaults(aws: dict[str, str]) -> None:
    key = "incoming/dropbox/standup recording.flac"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=FILES["fox"].read_bytes())
    result = deliver(ingest_with(None), key)
    (job,) = result["jobs"]
    assert job["status"] == "succeeded"
    assert job["provider"] == "local"


def test_uploads_refuse_bad_parameters_and_unknown_jobs_are_404(aws: dict[str, str]) -> None:
    with serve(create_app(GatewayConfig())) as gateway:
        assert httpx.post(f"{gateway}/v1/uploads", json={"model": "whisper-1"}).status_code == 400
        bad = httpx.post(f"{gateway}/v1/uploads", json={"filename": "a.wav", "temperature": 3})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "temperature"
        assert (
            httpx.post(f"{gateway}/v1/uploads", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        )
        missing = httpx.get(f"{gateway}/v1/transcriptions/{'0' * 32}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "job_not_found"


def test_the_presigned_post_is_sigv4_bound_to_its_key_and_the_size_limit(aws: dict[str, str]) -> None:
    """S3 enforces the POST policy (moto's server does not check it, so the policy itself is read)."""
    import base64

    from heimdall.config import parse_config

    config = parse_config({"client_config": {"max_upload_size_mb": 1}})
    with serve(create_app(config)) as gateway:
        job = httpx.post(f"{gateway}/v1/uploads", json={"filename": "../x/big.wav", "model": "whisper-1"}).json()
    fields = job["upload"]["fields"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert fields["key"] == f"incoming/{job['job_id']}/big.wav"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, 1024 * 1024] in policy["conditions"]
    assert {"key": fields["key"]} in policy["conditions"]
    assert job["upload"]["max_bytes"] == 1024 * 1024


def test_a_60_minute_recording_is_cut_transcribed_and_stitched(
    aws: dict[str, str], fake_config: Path, fakes: Upstreams
) -> None:
    """Against a provider that takes 25 MB at most (OpenAI's whisper-1): the 115 MB recording goes
    in pieces cut at silences, and comes back as one continuous transcript."""
    from tests.support.speech import long_speech_wav

    audio = long_speech_wav(3600)
    assert len(audio) > 100 * 1024 * 1024
    handler = ingest_with(fake_config)
    with serve(create_app(load_config(str(fake_config)))) as gateway:
        job_id, key = upload(gateway, audio, model="openai/whisper-1", response_format="srt")
        del audio
        deliver(handler, key)
        status = poll(gateway, job_id)
        assert status["status"] == "succeeded", status
        subtitles = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "srt"}).text
        verbose = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "verbose_json"}).json()
    pieces = fakes.fakes["openai"].requests
    assert len(pieces) >= 5
    assert all(p.file is not None and p.file["size"] <= 25 * 1024 * 1024 for p in pieces)
    cues = list(srt.parse(subtitles))
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    starts = [c.start.total_seconds() for c in cues]
    assert all(b > a for a, b in itertools.pairwise(starts))  # strictly increasing starts
    assert all(c.start < c.end for c in cues)
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    assert abs(cues[-1].end.total_seconds() - 3600) <= 1.0
    assert verbose["duration"] == pytest.approx(3600, abs=0.01)
    assert [s["id"] for s in verbose["segments"]] == list(range(len(verbose["segments"])))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "heimdall"), "transcribe", *args, "--poll", "0.05"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.engine
def test_cli_sends_small_files_straight_to_the_route(tmp_path: Path) -> None:
    with serve(create_app(GatewayConfig())) as gateway:
        process = _cli(str(FILES["fox"]), "--url", gateway, "--format", "vtt")
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out.startswith(b"WEBVTT")


@pytest.mark.engine
def test_cli_sends_large_files_through_an_upload_and_waits_for_the_job(aws: dict[str, str], tmp_path: Path) -> None:
    from tests.support.speech import long_speech_wav

    audio_path = tmp_path / "long meeting.wav"
    audio_path.write_bytes(long_speech_wav(150))  # 4.8 MB: over what one API Gateway request carries
    output = tmp_path / "meeting.srt"
    handler = ingest_with(None)
    one_request = {"client_config": {"max_request_body_size_mb": 4}}  # what one request through API Gateway holds
    with serve(create_app(parse_config(one_request))) as gateway:
        process = _cli(str(audio_path), "--url", gateway, "--format", "srt", "-o", str(output))
        s3 = boto3.client("s3")

        def uploaded() -> list[str]:
            listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="incoming/").get("Contents", [])
            return [o["Key"] for o in listing if o["Key"].endswith("/long meeting.wav")]

        wait_until(lambda: bool(uploaded()) or process.poll() is not None, timeout=60, what="the CLI's upload")
        deliver(handler, uploaded()[0])
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    cues = list(srt.parse(output.read_text()))
    assert cues
    assert cues[-1].end.total_seconds() <= 150.5
    assert b"upload: done (4.8 MB)" in err


def test_a_job_whose_upload_never_came_reads_failed_once_it_no_longer_could(aws: dict[str, str]) -> None:
    from heimdall.job_table import JobTable
    from heimdall.jobs import new_job_id

    stale, fresh = new_job_id(), new_job_id()
    table = JobTable(aws["HEIMDALL_JOB_TABLE"])
    table.create(stale, key=f"incoming/{stale}/a.wav", created_at="2026-01-01T00:00:00+00:00")
    table.create(fresh, key=f"incoming/{fresh}/a.wav")
    with serve(create_app(GatewayConfig())) as gateway:
        assert httpx.get(f"{gateway}/v1/transcriptions/{fresh}").json()["status"] == "queued"
        body = httpx.get(f"{gateway}/v1/transcriptions/{stale}").json()
    assert body["status"] == "failed"
    assert body["error"]["error"]["code"] == "upload_missing"


def test_an_upload_deleted_before_its_job_ran_fails_the_job(
    aws: dict[str, str], fake_config: Path, fakes: Upstreams
) -> None:
    handler = ingest_with(fake_config)
    with serve(create_app(load_config(str(fake_config)))) as gateway:
        job_id, key = upload(gateway, FILES["fox"].read_bytes(), model="openai/whisper-1")
        head = boto3.client("s3").head_object(Bucket=BUCKET, Key=key)
        boto3.client("s3").delete_object(Bucket=BUCKET, Key=key)
        event = s3_event((key, head["ContentLength"], head["ETag"].strip('"'), "0A1B2C3D4E5F678901"))
        handler(event, LambdaContext(function_name="heimdall-IngestFunction", remaining_ms=900_000))
        status = httpx.get(f"{gateway}/v1/transcriptions/{job_id}").json()
    assert status["status"] == "failed"
    assert status["error"]["error"]["code"] == "upload_replaced"
    assert fakes.calls("openai") == 0


def test_a_running_jobs_status_estimates_the_time_left_from_its_pieces(aws: dict[str, str]) -> None:
    from datetime import UTC, datetime, timedelta

    from heimdall.job_table import JobTable
    from heimdall.jobs import new_job_id

    table = JobTable(aws["HEIMDALL_JOB_TABLE"])
    minute_ago = (datetime.now(UTC) - timedelta(seconds=60)).isoformat(timespec="seconds")
    jobs = {
        "two of six done in a minute": {"pieces_done": 2, "pieces_total": 6},
        "none done yet": {"pieces_done": 0, "pieces_total": 6},
        "the last piece not cut yet": {"pieces_done": 2},
    }
    ids = {name: new_job_id() for name in jobs}
    for name, pieces in jobs.items():
        table.create(ids[name], key=f"incoming/{ids[name]}/a.wav", status="running", started_at=minute_ago, **pieces)
    with serve(create_app(GatewayConfig())) as gateway:
        statuses = {name: httpx.get(f"{gateway}/v1/transcriptions/{ids[name]}").json() for name in jobs}
    estimated = statuses["two of six done in a minute"]
    assert estimated["started_at"] == minute_ago
    assert 118 <= estimated["eta_seconds"] <= 125  # four pieces left at a piece every 30 s
    assert "eta_seconds" not in statuses["none done yet"]
    assert "eta_seconds" not in statuses["the last piece not cut yet"]
