"""The AWS side of transcription jobs on moto's server (bucket, job table, dead-letter queue), the
S3 events AWS sends for an upload, and the ingest function run in its own process as Lambda runs it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any
from urllib.parse import quote_plus

from tests.support.aws import moto_endpoint
from tests.support.lambda_events import EVENTS, ROOT

BUCKET = "heimdall-audio-test"
TABLE = "heimdall-jobs-test"
_SEQUENCERS = count(0x0A1B2C3D4E5F6789)


@contextmanager
def job_stack() -> Iterator[dict[str, str]]:
    """moto's server with the template's bucket, job table and queue; their names in os.environ."""
    with moto_endpoint():
        env = create_job_resources()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def create_job_resources() -> dict[str, str]:
    """The bucket, job table and dead-letter queue on the AWS endpoint boto3 reaches; their names."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = boto3.client("sqs").create_queue(QueueName="heimdall-dlq-test")["QueueUrl"]
    return {"HEIMDALL_AUDIO_BUCKET": BUCKET, "HEIMDALL_JOB_TABLE": TABLE, "HEIMDALL_DLQ_URL": queue}


def s3_event(*objects: tuple[str, int, str, str]) -> dict[str, Any]:
    """An ObjectCreated event with one record per (key, size, etag, sequencer)."""
    template = json.loads((EVENTS / "s3-put-incoming.json").read_text())["Records"][0]
    records = []
    for key, size, etag, sequencer in objects:
        record = copy.deepcopy(template)
        record["s3"]["bucket"].update(name=BUCKET, arn=f"arn:aws:s3:::{BUCKET}")
        record["s3"]["object"].update(key=quote_plus(key, safe="/"), size=size, eTag=etag, sequencer=sequencer)
        records.append(record)
    return {"Records": records}


def put(key: str, body: bytes) -> tuple[str, int, str, str]:
    """Upload ``body`` to ``key`` as a client would; returns the object as its event names it
    (sequencers grow with each upload, as S3's do for one key)."""
    import boto3

    etag = boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    return key, len(body), etag, f"{next(_SEQUENCERS):018X}"


def failure_event(event: dict[str, Any], error_type: str = "Runtime.ExitError") -> dict[str, Any]:
    """What Lambda sends the on-failure destination once an asynchronous event's retries are spent."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-24T08:00:00.000Z",
        "requestContext": {"requestId": "7c4e1b2a", "functionArn": "arn:aws:lambda:us-east-1:123456789012:"
                           "function:heimdall-IngestFunction:$LATEST", "condition": "RetriesExhausted",
                           "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": error_type, "errorMessage": "the runtime exited"},
    }  # fmt: skip


def start_handler(
    event: dict[str, Any], *, handler: str = "ingest", env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """The handler (``ingest`` or ``failure``) invoked once in a fresh process, as Lambda would:
    the result on stdout, or exit status 1 when the handler raised."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.lambda_process", handler, json.dumps(event)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    """The result of a handler run that returned (fails the test if it raised)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().rsplit("\n", 1)[-1])
    return result
