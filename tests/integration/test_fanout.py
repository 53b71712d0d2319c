"""Long audio fanned out across the piece function: the real ingest, piece and piece-failed handlers
on moto's server (S3, DynamoDB, SQS with its redrive policy), driven the way Lambda drives them
(tests/support/fanout.py), against the fake OpenAI upstream — each piece transcribed once, the job
stitched once, nothing lost when a piece fails."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import srt

from heimdall.api.app import create_app
from heimdall.config import load_config
from heimdall.job_table import JobTable, view
from heimdall.jobs import new_job_id
from heimdall.storage import AudioBucket
from tests.fakes.base import Fault, Recorded
from tests.support.fanout import Fanout, fanout_queues, latency_model, sqs_record
from tests.support.jobs import BUCKET, TABLE, job_stack
from tests.support.lambda_events import ROOT
from tests.support.servers import serve, wait_until
from tests.support.speech import long_speech_wav
from tests.support.upstreams import Upstreams


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    with job_stack() as env:
        yield env


@pytest.fixture(scope="module")
def ten_minutes() -> bytes:
    return long_speech_wav(600)


@pytest.fixture
def config(aws: dict[str, str], tmp_path: Path, upstreams: Upstreams, fakes: Upstreams) -> Iterator[Path]:
    path = tmp_path / "config.json"
    network = {"base_url": upstreams.urls["openai"], "max_retries": 1, "retry_backoff_initial": 10,
               "default_request_timeout_in_seconds": 10}  # fmt: skip
    path.write_text(json.dumps({"providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}],
                                                         "network_config": network}}}))  # fmt: skip
    os.environ["HEIMDALL_CONFIG"] = str(path)
    fakes.fakes["openai"].latency = latency_model(0.01, 0.0002)
    yield path
    os.environ.pop("HEIMDALL_CONFIG", None)


def new_job(response_format: str = "srt") -> tuple[str, str]:
    """A job as POST /v1/uploads leaves it (queued, with its parameters); returns (job id, key)."""
    job_id = new_job_id()
    key = f"incoming/{job_id}/all hands.wav"
    fields = [["model", "openai/whisper-1"], ["response_format", response_format]]
    JobTable(TABLE).create(job_id, key=key, fields=fields)
    return job_id, key


def piece_of(recorded: Recorded) -> int:
    """Which piece a provider request carries (the piece function names its file pieceNNNNN.wav)."""
    assert recorded.file is not None
    return int(recorded.file["filename"].removeprefix("piece").removesuffix(".wav"))


def provider_pieces(fakes: Upstreams) -> list[int]:
    return sorted(piece_of(r) for r in fakes.fakes["openai"].requests)


def cues_of(job: dict[str, Any]) -> list[srt.Subtitle]:
    etag = job["etag"]
    text = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"transcripts/{job['job_id']}/{etag}.srt")["Body"].read()
    return list(srt.parse(text.decode()))


def assert_continuous(cues: list[srt.Subtitle], seconds: float, within: float = 30.0) -> None:
    """Numbered from 1, in order, never overlapping, ending ``within`` seconds of the audio's end (the
    fake answers a piece of 30 s or less with its fixed 7-second transcript)."""
    assert [c.index for c in cues] == list(range(1, len(cues) + 1))
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    assert all(c.start < c.end for c in cues)
    assert seconds - within <= cues[-1].end.total_seconds() <= seconds


def test_a_10_minute_recording_fans_out_and_comes_back_as_one_transcript(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    job_id, key = new_job()
    with fanout_queues(above_seconds=60, concurrency=8) as stack, Fanout(stack, workers=8) as run:
        seen: list[dict[str, Any]] = []
        watcher = threading.Thread(target=lambda: seen.extend(_progress(run, job_id)), daemon=True)
        watcher.start()
        (scattered,) = run.deliver_upload(run.upload(key, ten_minutes))["jobs"]
        job = run.wait_for_job(job_id)
        watcher.join(timeout=10)
        wait_until(run.settled, what="the queues to drain")
        with serve(create_app(load_config(str(config)))) as gateway:
            answer = httpx.get(
                f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "verbose_json"}
            ).json()
            subtitles = httpx.get(f"{gateway}/v1/transcriptions/{job_id}", params={"response_format": "srt"}).text
    assert scattered["delivery"] in ("fanned_out", None) and scattered["status"] in ("running", "succeeded")
    total = job["pieces_total"]
    assert 4 <= total <= 8  # at most one piece per worker: 600 s / 8 = 75 s, cut within the next 30 s
    assert answer["status"] == "succeeded"
    assert answer["duration"] == pytest.approx(600, abs=0.01)
    status = view(job)
    assert status["pieces_done"] == status["pieces_total"] == total
    assert status["transcript_key"] == f"transcripts/{job_id}/{job['etag']}.json"
    assert "phase" not in status
    assert provider_pieces(fakes) == list(range(total))  # each piece sent once
    assert all(r.audio_seconds is not None and r.audio_seconds <= 105 for r in fakes.fakes["openai"].requests)
    cues = list(srt.parse(subtitles))
    assert_continuous(cues, 600, within=1.0)
    assert [(s.get("pieces_done"), s.get("pieces_total")) for s in seen if "pieces_done" in s][-1] == (total, total)
    assert any(s.get("phase") == "transcribing" for s in seen) or any(s.get("phase") == "cutting" for s in seen)


def _progress(run: Fanout, job_id: str) -> list[dict[str, Any]]:
    """The job's status as a client polling it sees it, until it ends."""
    seen: list[dict[str, Any]] = []
    for _ in range(3000):
        status = view(run.job(job_id))
        if not seen or status != seen[-1]:
            seen.append(status)
        if status.get("status") in ("succeeded", "failed"):
            break
        threading.Event().wait(0.01)
    return seen


def scattered(run: Fanout, job_id: str, key: str, audio: bytes) -> dict[str, Any]:
    """The upload delivered and cut, before any piece function runs; the job's item."""
    run.deliver_upload(run.upload(key, audio))
    job = run.job(job_id)
    assert job["status"] == "running" and job["phase"] == "transcribing", job
    return job


def test_duplicated_and_concurrent_deliveries_transcribe_each_piece_once_and_stitch_once(
    config: Path, fakes: Upstreams, ten_minutes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, key = new_job()
    with fanout_queues(concurrency=6) as stack:
        run = Fanout(stack, workers=6)
        event = run.upload(key, ten_minutes)
        run.deliver_upload(event)
        job = run.job(job_id)
        (again,) = run.deliver_upload(event)["jobs"]  # S3 delivers the upload's event again
        assert again["delivery"] == "busy" and again["phase"] == "transcribing"  # handed to its pieces: not cut again
        assert run.job(job_id)["attempt"] == 1
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=stack.piece_queue, MaxNumberOfMessages=10, AttributeNames=["All"])
        received = messages["Messages"]
        assert len(received) == job["pieces_total"]
        for message in received:  # every piece queued twice more, as a retried scatter would
            for _ in range(2):
                sqs.send_message(QueueUrl=stack.piece_queue, MessageBody=message["Body"])
        # the same delivery handed to two invocations at once (SQS delivers at least once)
        record = sqs_record(received[0], run.pieces.queue_arn)
        twice = [threading.Thread(target=run.pieces.deliver, args=(record,)) for _ in range(2)]
        for thread in twice:
            thread.start()
        for thread in twice:
            thread.join()
        for message in received[1:]:
            sqs.change_message_visibility(QueueUrl=stack.piece_queue, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)  # fmt: skip
        with run:
            job = run.wait_for_job(job_id)
            wait_until(run.settled, timeout=60, what="the queues to drain")
    total = job["pieces_total"]
    assert job["status"] == "succeeded"
    assert provider_pieces(fakes) == list(range(total))  # three messages per piece, one provider call each
    assert job["pieces_done"] == total
    assert sum(r.getMessage() == "job succeeded" for r in caplog.records) == 1  # stitched once
    assert_continuous(cues_of(job), 600)


def test_a_piece_handler_killed_mid_call_is_redelivered_and_transcribed_once(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    job_id, key = new_job()
    fake = fakes.fakes["openai"]
    # The killed handler's in-progress record expires with its remaining time (3 s after it starts, as
    # 300 s do on AWS); until then a redelivery finds it in progress and is left for the next one, so
    # the message may be received a few times before it goes through (on AWS the visibility timeout,
    # 6 x the function's timeout, outlasts the record at once).
    with fanout_queues(concurrency=4, visibility_seconds=5, max_receives=6) as stack:
        run = Fanout(stack, workers=4)
        job = scattered(run, job_id, key, ten_minutes)
        sqs = boto3.client("sqs")
        (message,) = sqs.receive_message(QueueUrl=stack.piece_queue, AttributeNames=["All"])["Messages"]
        index = json.loads(message["Body"])["index"]
        first = [True]

        def hang_first(recorded: Recorded) -> Fault | None:
            if piece_of(recorded) == index and first[0]:
                first[0] = False
                return Fault("slow", seconds=30)
            return None

        fake.fault_for = hang_first
        event = {"Records": [sqs_record(message, run.pieces.queue_arn)]}
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.lambda_process", "piece", json.dumps(event)],
            cwd=ROOT, env={**os.environ, "HEIMDALL_TEST_REMAINING_MS": "3000"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(lambda: index in provider_pieces(fakes), what="the piece's provider call")
        finally:
            process.send_signal(signal.SIGKILL)  # the execution environment dies mid-call
            process.wait(timeout=10)
        assert run.job(job_id)["pieces_done"] == 0
        with run:
            job = run.wait_for_job(job_id, timeout=60)
            wait_until(run.settled, timeout=30, what="the queues to drain")
    total = job["pieces_total"]
    assert job["status"] == "succeeded"
    assert job["pieces_done"] == total
    calls = provider_pieces(fakes)
    assert calls.count(index) == 2  # the killed call, then the redelivery's: one transcript, counted once
    assert sorted(set(calls)) == list(range(total)) and len(calls) == total + 1
    assert_continuous(cues_of(job), 600)


def test_a_piece_failing_for_good_fails_the_job_naming_it(
    aws: dict[str, str], config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    job_id, key = new_job()
    fakes.fakes["openai"].fault_for = lambda recorded: Fault("status", 503) if piece_of(recorded) == 2 else None
    with fanout_queues(concurrency=6, max_receives=3) as stack:
        run = Fanout(stack, workers=6)
        scattered(run, job_id, key, ten_minutes)
        with run:
            run.wait_for_job(job_id, timeout=60)
            wait_until(run.settled, timeout=30, what="the queues to drain")
        job = run.job(job_id)
    status = view(job)
    total = job["pieces_total"]
    assert status["status"] == "failed"
    assert status["pieces_failed"] == [2]
    error = status["error"]
    assert error["status_code"] == 502 and error["error"]["code"] == "upstream_503"
    assert error["error"]["message"].startswith(f"Piece 3 of {total} (00:0")
    assert error["extra_fields"]["pieces_failed"] == [2] and error["extra_fields"]["pieces_total"] == total
    calls = provider_pieces(fakes)
    assert calls.count(2) == 3 * 2  # three receives, each the provider's call and its one retry
    assert all(calls.count(i) <= 1 for i in range(total) if i != 2)  # the rest once at most, none lost
    messages = boto3.client("sqs").receive_message(QueueUrl=aws["HEIMDALL_DLQ_URL"], MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert [b["job_id"] for b in bodies] == [job_id]
    assert bodies[0]["error"]["extra_fields"]["pieces_failed"] == [2]
    assert boto3.client("s3").head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(ten_minutes)


def test_a_piece_the_provider_refuses_as_the_clients_fault_fails_the_job_at_once(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    job_id, key = new_job()
    fakes.fakes["openai"].fault_for = lambda recorded: Fault("status", 400) if piece_of(recorded) == 1 else None
    with fanout_queues(concurrency=6) as stack, Fanout(stack, workers=6) as run:
        run.deliver_upload(run.upload(key, ten_minutes))
        job = run.wait_for_job(job_id, timeout=60)
        wait_until(run.settled, timeout=30, what="the queues to drain")
    assert job["status"] == "failed"
    assert job["error"]["status_code"] == 400
    assert job["error"]["error"]["message"].startswith("Piece 2 ")  # the job may still be being cut
    assert provider_pieces(fakes).count(1) == 1  # not retried: the same request fails the same way


def test_pieces_completing_out_of_order_are_stitched_in_the_order_of_the_audio(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    job_id, key = new_job()
    # the first piece answers last
    fakes.fakes["openai"].latency = lambda recorded: 1.0 if piece_of(recorded) == 0 else 0.01
    with fanout_queues(concurrency=8) as stack:
        run = Fanout(stack, workers=8)
        scattered(run, job_id, key, ten_minutes)
        items: list[dict[str, Any]] = []
        watcher = threading.Thread(target=lambda: items.extend(_items(run, job_id)), daemon=True)
        with run:
            watcher.start()
            job = run.wait_for_job(job_id)
            watcher.join(timeout=10)
    total = job["pieces_total"]
    assert job["status"] == "succeeded"
    before_last = [item for item in items if item.get("pieces_done") == total - 1]
    assert before_last and all(0 not in {int(i) for i in item["pieces_finished"]} for item in before_last)
    cues = cues_of(job)
    assert_continuous(cues, 600)
    assert cues[0].start.total_seconds() == 0


def _items(run: Fanout, job_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for _ in range(3000):
        item = run.job(job_id)
        seen.append(item)
        if item.get("status") in ("succeeded", "failed"):
            break
        threading.Event().wait(0.01)
    return seen


def test_a_scatter_that_died_midway_is_redone_by_the_retry_without_transcribing_twice(
    config: Path, fakes: Upstreams, ten_minutes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, key = new_job()
    put_bytes = AudioBucket.put_bytes
    written = [0]

    def dies_after_three(self: AudioBucket, *args: Any, **kwargs: Any) -> None:
        written[0] += 1
        if written[0] == 4:
            raise RuntimeError("the scatter's runner died")
        put_bytes(self, *args, **kwargs)

    monkeypatch.setattr(AudioBucket, "put_bytes", dies_after_three)
    with fanout_queues(concurrency=8) as stack, Fanout(stack, workers=8) as run:
        run.deliver_upload(run.upload(key, ten_minutes))
        job = run.wait_for_job(job_id)
        wait_until(run.settled, timeout=30, what="the queues to drain")
    total = job["pieces_total"]
    assert run.ingest_attempts == 2
    assert job["status"] == "succeeded" and job["attempt"] == 2
    assert job["pieces_done"] == total
    assert provider_pieces(fakes) == list(range(total))  # the three pieces queued twice went once
    assert_continuous(cues_of(job), 600)


def test_a_fanned_out_job_is_charged_its_whole_seconds_once(
    aws: dict[str, str], upstreams: Upstreams, fakes: Upstreams, ten_minutes: bytes, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Through POST /v1/uploads with a gateway key: the job's usage record and the key's budget see
    the recording's seconds once, at the serving target's price, however the pieces were delivered."""
    import time

    import requests

    from heimdall.governance.store import SCALE
    from heimdall.governance.windows import window_at
    from tests.support.aws import create_governance_table

    governance = f"governance-{new_job_id()}"
    create_governance_table(governance)
    monkeypatch.setenv("HEIMDALL_GOVERNANCE_TABLE", governance)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "providers": {"openai": {"keys": [{"value": upstreams.keys["openai"]}],
                                 "network_config": {"base_url": upstreams.urls["openai"], "max_retries": 1}}},
        "governance": {"virtual_keys": [{"id": "team", "value": "hk-team-0123456789abcdef"}],
                       "budgets": [{"id": "b-team", "virtual_key_id": "team", "max_limit": 5.0,
                                    "reset_duration": "1M"}]},
    }))  # fmt: skip
    monkeypatch.setenv("HEIMDALL_CONFIG", str(path))
    since = time.time()
    app = create_app(load_config(str(path)))
    with serve(app) as gateway, fanout_queues(concurrency=6) as stack, Fanout(stack, workers=6) as run:
        created = httpx.post(f"{gateway}/v1/uploads", json={"filename": "all hands.wav", "model": "openai/whisper-1"},
                             headers={"api-key": "hk-team-0123456789abcdef"}).json()  # fmt: skip
        post = created["upload"]
        answer = requests.post(post["url"], data=post["fields"], files={"file": ("all hands.wav", ten_minutes)},
                               timeout=60)  # fmt: skip
        assert answer.status_code in (200, 204)
        head = boto3.client("s3").head_object(Bucket=BUCKET, Key=post["fields"]["key"])
        from tests.support.jobs import s3_event

        event = s3_event((post["fields"]["key"], head["ContentLength"], head["ETag"].strip('"'), "0A1B2C3D4E5F6789"))
        run.deliver_upload(event)
        run.deliver_upload(event)  # S3 delivers at least once
        job = run.wait_for_job(created["job_id"])
        wait_until(run.settled, timeout=30, what="the queues to drain")
        store = app.state.governor.store
        now = time.time()
        usage = list(store.records(now - 3600, now + 60))
        windows = {window_at("1M", since), window_at("1M", now)}
        dollars = sum(store.used("budget:b-team:dollars", w) for w in windows) / SCALE["dollars"]
    assert job["status"] == "succeeded" and job["pieces_done"] == job["pieces_total"] > 1
    assert job["audio_seconds"] == pytest.approx(600, abs=0.01)
    (record,) = usage
    assert (record.route, record.key_id, record.status, record.provider) == ("/v1/uploads", "team", 200, "openai")
    assert record.audio_seconds == pytest.approx(600, abs=0.01)
    assert dollars == pytest.approx(0.006 * 600 / 60, rel=1e-6) == record.cost


def test_bodies_the_scatter_did_not_send_are_dropped_and_fail_no_job(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    """A body of another shape, or a piece the job does not have, on either queue: deleted at its first
    delivery, so it is never redriven into the dead-letter queue, where it would fail the job."""
    job_id, key = new_job()
    with fanout_queues(concurrency=4) as stack:
        run = Fanout(stack, workers=4)
        job = scattered(run, job_id, key, ten_minutes)
        total, etag = job["pieces_total"], job["etag"]
        piece = {"job_id": job_id, "etag": etag, "offset": 0.0, "seconds": 30.0}
        forged = ["not json", json.dumps({"job_id": job_id}), json.dumps({**piece, "index": total + 3}),
                  json.dumps({**piece, "index": -1}),
                  json.dumps({**piece, "index": 0, "etag": "../transcripts"})]  # fmt: skip
        sqs = boto3.client("sqs")
        for body in forged:
            sqs.send_message(QueueUrl=stack.piece_queue, MessageBody=body)
            sqs.send_message(QueueUrl=stack.piece_dead_letters, MessageBody=body)
        with run:
            job = run.wait_for_job(job_id)
            wait_until(run.settled, timeout=60, what="the queues to drain")
    assert job["status"] == "succeeded" and job["pieces_done"] == total
    assert run.pieces.failures == 0 and run.piece_failed.failures == 0  # none left for redelivery
    assert provider_pieces(fakes) == list(range(total))


def test_pieces_all_done_before_the_scatter_counts_them_are_stitched_by_the_piece_function(
    config: Path, fakes: Upstreams, ten_minutes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No piece saw the set complete (the count was not recorded yet). The stitch must not run inside the
    ingest run, where nothing retries it if the run dies: a second delivery of the last piece takes it
    to the piece function, which SQS redelivers and dead-letters."""
    cut = JobTable.pieces_cut

    def after_every_piece_is_done(self: JobTable, job_id: str, owner: str, total: int, *rest: Any) -> Any:
        wait_until(lambda: int((self.get(job_id) or {}).get("pieces_done", 0)) >= total, timeout=60,
                   what="every piece transcribed before the scatter counts them")  # fmt: skip
        return cut(self, job_id, owner, total, *rest)

    monkeypatch.setattr(JobTable, "pieces_cut", after_every_piece_is_done)
    job_id, key = new_job()
    with fanout_queues(concurrency=6) as stack, Fanout(stack, workers=6) as run:
        (scattered,) = run.deliver_upload(run.upload(key, ten_minutes))["jobs"]
        assert scattered["status"] == "running" and scattered["phase"] == "transcribing"  # not stitched here
        job = run.wait_for_job(job_id)
        wait_until(run.settled, timeout=60, what="the queues to drain")
    total = job["pieces_total"]
    assert job["status"] == "succeeded" and job["pieces_done"] == total
    assert run.pieces.invocations == total + 1  # every piece, and the last one again to stitch
    assert provider_pieces(fakes) == list(range(total))  # that second delivery transcribed nothing
    assert_continuous(cues_of(job), 600)


def test_a_newer_upload_while_the_old_pieces_are_queued_is_transcribed_alone(
    config: Path, fakes: Upstreams, ten_minutes: bytes
) -> None:
    """The newer upload takes the job over: the old upload's queued pieces are dropped (their ETag is
    not the job's), never counted toward or stitched into the new one, and never sent to the provider."""
    job_id, key = new_job()
    newer_audio = long_speech_wav(300)
    with fanout_queues(concurrency=6) as stack:
        run = Fanout(stack, workers=6)
        old = scattered(run, job_id, key, ten_minutes)
        (taken,) = run.deliver_upload(run.upload(key, newer_audio))["jobs"]
        assert taken["object"]["etag"] != old["etag"] and taken["phase"] == "transcribing"
        with run:
            job = run.wait_for_job(job_id)
            wait_until(run.settled, timeout=60, what="the queues to drain")
    total = job["pieces_total"]
    assert job["status"] == "succeeded" and job["etag"] == taken["object"]["etag"]
    assert job["pieces_done"] == total and total < old["pieces_total"]
    assert run.pieces.invocations == old["pieces_total"] + total  # every message delivered once
    assert provider_pieces(fakes) == list(range(total))  # only the newer upload's pieces were sent
    assert_continuous(cues_of(job), 300)
    s3 = boto3.client("s3")
    old_transcripts = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"transcripts/{job_id}/{old['etag']}")
    assert old_transcripts.get("KeyCount", 0) == 0
