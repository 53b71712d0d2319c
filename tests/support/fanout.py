"""Long audio fanned out, run the way AWS runs it, on moto's server: the upload's S3 event goes to
the real ingest handler (Lambda's asynchronous retries included), and each SQS queue is drained by an
event source mapping like Lambda's — pollers receiving one message per invocation up to a maximum
concurrency, an SQS event with the real record shape, the message deleted when the invocation
succeeded (no ``batchItemFailures`` naming it) and left for redelivery otherwise; the piece queue's
redrive policy moves a message that keeps failing to the piece dead-letter queue, whose consumer is
driven the same way. Used by tests/integration/test_fanout.py and ``python -m benchmarks fanout``."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.jobs import BUCKET, TABLE, put, s3_event
from tests.support.lambda_events import EVENTS, LambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


class Killed(BaseException):
    """Raised inside a handler to stand for its execution environment dying mid-invocation: nothing
    after it runs (not even Powertools' clean-up, which catches Exception only)."""


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of the SQS event Lambda sends (events/sqs-piece.json, the shape `sam local
    generate-event sqs receive-message` produces), from a ReceiveMessage answer."""
    record: dict[str, Any] = json.loads((EVENTS / "sqs-piece.json").read_text())["Records"][0]
    attributes = message.get("Attributes", {})
    now = str(int(time.time() * 1000))
    record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"],
                  md5OfBody=message["MD5OfBody"], eventSourceARN=queue_arn)  # fmt: skip
    record["attributes"] = {
        "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
        "SentTimestamp": attributes.get("SentTimestamp", now),
        "SenderId": attributes.get("SenderId", record["attributes"]["SenderId"]),
        "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", now),
    }
    return record


@dataclass
class EventSourceMapping:
    """Lambda's SQS event source mapping with batch size 1 and ``MaximumConcurrency`` = ``workers``."""

    queue_url: str
    handler: Handler
    workers: int
    function_name: str
    remaining_ms: int
    invocations: int = 0
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        import boto3

        self.sqs = boto3.client("sqs")
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        self.slots = threading.Semaphore(self.workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.function_name)
        self.busy = 0

    def start(self) -> EventSourceMapping:
        for number in range(min(self.workers, 5)):  # Lambda starts with five pollers
            thread = threading.Thread(target=self._poll, name=f"{self.function_name}-poller-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.pool.shutdown(wait=True)

    def idle(self) -> bool:
        with self._lock:
            return self.busy == 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            if not self.slots.acquire(timeout=0.1):
                continue
            taken = 1
            while taken < 10 and self.slots.acquire(blocking=False):
                taken += 1
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=taken, AttributeNames=["All"], WaitTimeSeconds=0
                ).get("Messages", [])
            except Exception:
                messages = []
            for _ in range(taken - len(messages)):
                self.slots.release()
            if not messages:
                self._stop.wait(0.05)
            for message in messages:
                with self._lock:
                    self.busy += 1
                self.pool.submit(self._invoke, message)

    def _invoke(self, message: dict[str, Any]) -> None:
        record = sqs_record(message, self.queue_arn)
        try:
            self.deliver(record)
        finally:
            with self._lock:
                self.busy -= 1
            self.slots.release()

    def deliver(self, record: dict[str, Any]) -> bool:
        """One invocation with one record; True when the message was deleted (the handler succeeded)."""
        context = LambdaContext(
            function_name=self.function_name,
            aws_request_id=uuid.uuid4().hex,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}",
            remaining_ms=self.remaining_ms,
        )
        with self._lock:
            self.invocations += 1
        try:
            result = self.handler({"Records": [record]}, context)
        except Killed:
            ok = False
        except Exception:
            ok = False
        else:
            failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
            ok = record["messageId"] not in failed
        if ok:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        else:
            with self._lock:
                self.failures += 1
        return ok


@dataclass
class FanoutStack:
    """The piece queue (with its redrive policy), the piece dead-letter queue and the idempotency
    table, as template.yaml declares them, on the moto server ``job_stack`` runs."""

    piece_queue: str
    piece_dead_letters: str
    idempotency_table: str
    env: dict[str, str]

    def queue_depth(self, url: str) -> int:
        import boto3

        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)


@contextmanager
def fanout_queues(
    *, visibility_seconds: int = 5, max_receives: int = 3, above_seconds: float = 60, concurrency: int = 10
) -> Iterator[FanoutStack]:
    """Fresh queues (their names in os.environ for the handlers built inside); needs ``job_stack``."""
    import boto3

    sqs = boto3.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    dead = sqs.create_queue(QueueName=f"heimdall-piece-dlq-{suffix}")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_receives)})
    queue = sqs.create_queue(
        QueueName=f"heimdall-pieces-{suffix}",
        Attributes={"VisibilityTimeout": str(visibility_seconds), "RedrivePolicy": redrive},
    )["QueueUrl"]
    table = f"heimdall-piece-idempotency-{suffix}"
    boto3.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    env = {
        "HEIMDALL_PIECE_QUEUE_URL": queue,
        "HEIMDALL_PIECE_IDEMPOTENCY_TABLE": table,
        "HEIMDALL_FANOUT_ABOVE_SECONDS": str(above_seconds),
        "HEIMDALL_PIECE_CONCURRENCY": str(concurrency),
        "HEIMDALL_PIECE_RETRY_SECONDS": "0",  # a failed piece is retried at once (30 s in the template)
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield FanoutStack(queue, dead, table, env)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


class Fanout:
    """The functions of a fanned-out job, wired as the template wires them, with ``workers`` as the
    piece function's maximum concurrency. Build it inside ``fanout_queues`` (and with
    ``HEIMDALL_CONFIG`` set) so the handlers read their environment."""

    def __init__(self, stack: FanoutStack, workers: int, *, remaining_ms: int = 8000) -> None:
        from heimdall.fanout import piece_failed_handler, piece_handler
        from heimdall.jobs import failure_handler, ingest_handler

        self.stack = stack
        self.ingest = ingest_handler()
        self.ingest_failed = failure_handler()
        self.piece = piece_handler()
        self.pieces = EventSourceMapping(stack.piece_queue, self.piece, workers, "heimdall-PieceFunction", remaining_ms)
        self.piece_failed = EventSourceMapping(
            stack.piece_dead_letters, piece_failed_handler(), 1, "heimdall-PieceFailedFunction", remaining_ms
        )
        self.ingest_attempts = 0

    def __enter__(self) -> Fanout:
        self.pieces.start()
        self.piece_failed.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pieces.stop()
        self.piece_failed.stop()

    @staticmethod
    def upload(key: str, body: bytes) -> dict[str, Any]:
        """Put the object and return the ObjectCreated event S3 sends for it."""
        return s3_event(put(key, body))

    def deliver_upload(self, event: dict[str, Any], attempts: int = 3) -> dict[str, Any]:
        """Lambda's asynchronous invocation: the event, retried when the handler raises (at once here,
        a minute and two later on AWS), then handed to the on-failure destination."""
        from tests.support.jobs import failure_event

        for _ in range(attempts):
            self.ingest_attempts += 1
            context = LambdaContext(function_name="heimdall-IngestFunction", remaining_ms=900_000)
            try:
                result: dict[str, Any] = self.ingest(event, context)
                return result
            except Exception:
                continue
        context = LambdaContext(function_name="heimdall-JobFailedFunction", remaining_ms=60_000)
        result = self.ingest_failed(failure_event(event, "RuntimeError"), context)
        return result

    def settled(self) -> bool:
        """Both queues empty and no invocation running."""
        stack = self.stack
        return (
            stack.queue_depth(stack.piece_queue) == 0
            and stack.queue_depth(stack.piece_dead_letters) == 0
            and self.pieces.idle()
            and self.piece_failed.idle()
        )

    @staticmethod
    def job(job_id: str) -> dict[str, Any]:
        from heimdall.job_table import JobTable

        return JobTable(TABLE).get(job_id) or {}

    def wait_for_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the job's item until it ends (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.job(job_id)
            if item.get("status") in ("succeeded", "failed"):
                return item
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} still {self.job(job_id).get('status')} after {timeout}s")


def transcript_document(job_id: str, etag: str) -> Any:
    from heimdall.storage import AudioBucket, transcript_key

    return AudioBucket(BUCKET).get_json(transcript_key(job_id, etag))


def latency_model(overhead: float, real_time_factor: float) -> Callable[[Any], float]:
    """A provider's answer time: a fixed overhead plus the real-time factor times the piece's seconds."""
    return lambda recorded: overhead + real_time_factor * (recorded.audio_seconds or 0.0)
