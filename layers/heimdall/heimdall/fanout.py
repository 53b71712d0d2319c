"""Long audio fanned out across Lambda: scatter → work → gather, on SQS, DynamoDB and S3.

- **Scatter** (the ingest function, holding the job's lease): the upload is decoded once, streamed,
  and cut at the quietest 100 ms into pieces sized for the piece function's concurrency
  (``piece_seconds``); each piece is written to S3 as WAV and queued (one SQS message) as soon as it
  is cut, so pieces are transcribed while the rest is still being cut. After the last piece the job
  item records ``pieces_total`` and is handed to its pieces (owner ``pieces``, a lease as long as the
  pieces can take), so a duplicated or retried upload event does not cut it again. A scatter that
  died is redone by the ingest function's retry: same keys, same indexes; pieces already done stay
  counted, duplicated messages are harmless.
- **Work** (the piece function, one SQS message at a time): the piece is transcribed with the job's
  stored request (same router, retries and fallbacks as a single run), at most once per piece
  (Powertools Idempotency on the piece; its in-progress record expires with the function's remaining
  time, so a killed handler's redelivery proceeds), and its transcript written once to S3.
- **Gather**: one conditional write on the job's item marks the piece done and counts it
  (``pieces_done``). Whoever sees every piece done — the last piece, or, when all finished before the
  scatter recorded the total, a second delivery of the last piece the scatter queues then — claims the
  stitch (a conditional write with a lease), stitches once and records the job ``succeeded`` like a
  single run. The stitch always runs in the piece function, under SQS's redelivery.

A piece that fails for the client's fault fails the job at once; any other failure is retried by
SQS (``maxReceiveCount``) and then lands in the piece dead-letter queue, whose consumer
(``piece_failed_handler``) fails the job naming the piece. docs/jobs.md has the state machine and
its time bounds.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from heimdall.audio import RATE
from heimdall.aws_clients import LazyClient
from heimdall.chunking import SEARCH_SECONDS, WAV_HEADER, PieceSpan, pcm_pieces, stitch, wav_bytes
from heimdall.config import GatewayConfig
from heimdall.core.errors import HeimdallError
from heimdall.core.types import AudioInput, Transcript, TranscriptionRequest
from heimdall.governance.jobs import JobAccounting
from heimdall.job_table import JobTable, ObjectVersion
from heimdall.jobs import DeadLetters, FannedOut, Heartbeat, LostTheJob, dead_letter, job_request, store_transcript
from heimdall.observability import logger
from heimdall.routing import Router, Target, TargetGate, deadline_for
from heimdall.storage import AudioBucket, piece_key

#: The piece function's timeout (template.yaml PieceFunction); the queue's visibility timeout is six
#: times it, as AWS asks of an SQS event source.
PIECE_TIMEOUT_SECONDS = 300
#: Receives of a piece's message before SQS moves it to the piece dead-letter queue (the template's
#: maxReceiveCount).
MAX_RECEIVES = 3
#: How long a job is handed to its pieces: every piece's receives at the visibility timeout apart,
#: plus one piece run. Past it a new delivery of the upload may cut the job again (pieces done stay).
HOLD_SECONDS = MAX_RECEIVES * 6 * PIECE_TIMEOUT_SECONDS + PIECE_TIMEOUT_SECONDS
#: How long a stitcher holds its claim before another may stitch (reading the pieces' transcripts and
#: writing the job's takes seconds).
STITCH_SECONDS = 120.0
#: A piece's WAV: 16 kHz mono 16-bit PCM.
BYTES_PER_SECOND = RATE * 2


@dataclass(frozen=True)
class FanoutSettings:
    """Read once at start-up from the environment the template sets."""

    queue_url: str  # HEIMDALL_PIECE_QUEUE_URL: without it every job runs in one invocation
    above_seconds: float = 600.0  # HEIMDALL_FANOUT_ABOVE_SECONDS: audio longer than this fans out
    concurrency: int = 100  # HEIMDALL_PIECE_CONCURRENCY: the piece function's maximum concurrency
    min_piece_seconds: float = 30.0  # HEIMDALL_PIECE_MIN_SECONDS
    idempotency_table: str | None = None  # HEIMDALL_PIECE_IDEMPOTENCY_TABLE
    retry_seconds: int = 10  # HEIMDALL_PIECE_RETRY_SECONDS: a failed piece is retried this much later
    hold_seconds: float = HOLD_SECONDS

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FanoutSettings | None:
        queue_url = environ.get("HEIMDALL_PIECE_QUEUE_URL")
        if not queue_url:
            return None
        return cls(
            queue_url=queue_url,
            above_seconds=float(environ.get("HEIMDALL_FANOUT_ABOVE_SECONDS") or cls.above_seconds),
            concurrency=max(1, int(environ.get("HEIMDALL_PIECE_CONCURRENCY") or cls.concurrency)),
            min_piece_seconds=max(SEARCH_SECONDS, float(environ.get("HEIMDALL_PIECE_MIN_SECONDS") or 30.0)),
            idempotency_table=environ.get("HEIMDALL_PIECE_IDEMPOTENCY_TABLE") or None,
            retry_seconds=int(environ.get("HEIMDALL_PIECE_RETRY_SECONDS") or cls.retry_seconds),
        )


def piece_seconds(duration: float, concurrency: int, limit_seconds: float | None, floor: float) -> float:
    """The longest a piece may be. Each piece is cut at the quietest 100 ms in the last 30 s before
    this length, so a piece is at least ``length - 30 s``: with ``length = duration / concurrency +
    30 s`` every piece but the last is at least ``duration / concurrency`` long, and there are at most
    ``concurrency`` pieces — one wave of the piece function. Never under ``floor + 30 s`` (a piece
    shorter than that costs more in overhead than it saves), never over ``limit_seconds`` (the
    smallest file limit among the job's targets)."""
    length = max(duration / concurrency, floor) + SEARCH_SECONDS
    return min(length, limit_seconds) if limit_seconds is not None else length


#: The job ids Heimdall hands out; an ETag as S3 writes one (it is only compared with the job's).
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_ETAG = re.compile(r"[0-9A-Za-z-]{1,128}")
#: More pieces than any job has (pieces are at least the floor long; a day of audio at 30 s is 2,880).
MAX_PIECES = 100_000


class NotAPieceMessage(ValueError):
    """A body on a piece queue that the scatter did not send: dropped, never retried."""


@dataclass(frozen=True)
class PieceMessage:
    """One SQS message per piece: which job and upload it belongs to, and where it lies."""

    job_id: str
    etag: str
    index: int
    offset: float  # seconds from the start of the upload
    seconds: float

    def body(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> PieceMessage:
        """The message the scatter sent; ``NotAPieceMessage`` for anything else (a body of another
        shape must not be retried into the dead-letter queue, where it would fail a job)."""
        try:
            data = json.loads(body)
            message = cls(data["job_id"], data["etag"], data["index"], float(data["offset"]), float(data["seconds"]))
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise NotAPieceMessage(type(exc).__name__) from None
        if not (
            isinstance(message.job_id, str) and _JOB_ID.fullmatch(message.job_id)
            and isinstance(message.etag, str) and _ETAG.fullmatch(message.etag)
            and type(message.index) is int and 0 <= message.index < MAX_PIECES
            and all(math.isfinite(v) and v >= 0 for v in (message.offset, message.seconds))
        ):  # fmt: skip
            raise NotAPieceMessage("fields out of shape")
        return message

    def beyond(self, job: dict[str, Any]) -> bool:
        """The job has fewer pieces than this one's index: not a piece the scatter cut."""
        total = job.get("pieces_total")
        return total is not None and self.index >= int(total)

    def key(self, extension: str) -> str:
        return piece_key(self.job_id, self.etag, self.index, extension)


def read_message(record: dict[str, Any]) -> PieceMessage | None:
    """The record's piece message, or None (logged) when its body is not one."""
    try:
        return PieceMessage.parse(str(record.get("body", "")))
    except NotAPieceMessage as exc:
        logger.error("not a piece message: dropped", extra={"reason": str(exc), "message_id": record.get("messageId")})
        return None


def finished(item: dict[str, Any]) -> set[int]:
    return {int(index) for index in item.get("pieces_finished") or ()}


class Gather:
    """Stitch a job once every piece is done: whoever sees it first claims the stitch."""

    def __init__(
        self,
        config: GatewayConfig,
        router: Router,
        bucket: AudioBucket,
        table: JobTable,
        accounting: JobAccounting | None,
    ) -> None:
        self.config, self.router, self.bucket, self.table = config, router, bucket, table
        self.accounting = accounting

    def complete(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Stitch if ``item`` shows every piece done and nobody else stitches; the job as left, else None."""
        total = item.get("pieces_total")
        if item.get("status") != "running" or total is None or int(item.get("pieces_done", 0)) < int(total):
            return None
        job_id, etag, stitcher = item["job_id"], item["etag"], uuid.uuid4().hex
        claimed = self.table.claim_stitch(job_id, etag, stitcher, STITCH_SECONDS)
        if claimed is None:
            return None
        total = int(total)
        keys = [piece_key(job_id, etag, index, "json") for index in range(total)]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="gather") as pool:
            found = list(pool.map(self.bucket.get_json, keys))
        missing = [index for index, document in enumerate(found) if document is None]
        if missing:  # counted done only after its transcript was written: cannot happen but by hand
            raise RuntimeError(f"pieces counted done without a transcript: {missing[:5]}")
        documents: list[dict[str, Any]] = [document for document in found if document is not None]
        parts = [(PieceSpan(d["offset"], d["seconds"]), Transcript.model_validate(d["transcript"])) for d in documents]
        seconds = float(claimed["audio_seconds"])
        transcript = stitch(parts, seconds)
        # the target of the piece that fell back furthest names what served the job
        served = max(documents, key=lambda d: int(d["fallback_index"]))
        target = Target(served["provider"], served["model_deployment"])
        request = job_request(self.config, self.router, claimed)
        source = {"key": claimed["key"], "etag": etag, "size": claimed["size"]}
        outcome = store_transcript(
            self.bucket, job_id, source, request, (target.provider, target.model, int(served["fallback_index"])),
            transcript,
        )  # fmt: skip
        done = self.table.finish_stitched(job_id, etag, stitcher, **outcome)
        if done is not None:
            if self.accounting is not None:  # charged like a single run: the whole file's seconds
                self.accounting.settle(done, status=200, seconds=seconds, target=target,
                                       fallback_index=int(served["fallback_index"]))  # fmt: skip
            logger.info("job succeeded", extra={"provider": outcome["provider"], "pieces_total": total})
        return done


class Scatter:
    """Cut a long upload into pieces and queue them (inside the ingest run that holds the job)."""

    def __init__(
        self,
        settings: FanoutSettings,
        config: GatewayConfig,
        router: Router,
        bucket: AudioBucket,
        table: JobTable,
    ) -> None:
        self.settings, self.config, self.router, self.bucket, self.table = settings, config, router, bucket, table
        self._sqs = LazyClient("sqs")

    def wants(self, seconds: float) -> bool:
        return seconds > self.settings.above_seconds

    def limit_seconds(self, request: TranscriptionRequest) -> float | None:
        """The longest WAV piece every target of the request takes (5 % under its file limit, as
        the single path cuts)."""
        limits = []
        for target in self.router.resolve_targets(request.model, request.fallbacks):
            limit = self.router.providers[target.provider].capabilities(target.model).max_file_bytes
            if limit is not None:
                limits.append((int(limit * 0.95) - WAV_HEADER) / BYTES_PER_SECOND)
        return min(limits) if limits else None

    def run(
        self, job_id: str, version: ObjectVersion, request: TranscriptionRequest, audio: AudioInput, duration: float,
        heartbeat: Heartbeat,
    ) -> FannedOut:  # fmt: skip
        settings = self.settings
        length = piece_seconds(duration, settings.concurrency, self.limit_seconds(request), settings.min_piece_seconds)
        if self.table.begin_pieces(job_id, heartbeat.owner) is None:
            raise LostTheJob(job_id)
        started = time.monotonic()
        count, end, last = 0, 0.0, None
        max_seconds = self.config.client_config.max_audio_seconds
        for index, part in enumerate(pcm_pieces(audio, int(length * RATE), max_seconds)):
            if heartbeat.lost:
                raise LostTheJob(job_id)
            message = PieceMessage(job_id, version.etag, index, round(part.offset, 6), round(part.seconds, 6))
            self.bucket.put_bytes(message.key("wav"), wav_bytes(part.pcm), "audio/wav")
            self._sqs().send_message(QueueUrl=settings.queue_url, MessageBody=message.body())
            count, end, last = index + 1, part.offset + part.seconds, message
        item = self.table.pieces_cut(job_id, heartbeat.owner, count, round(end, 6), settings.hold_seconds)
        if item is None:
            raise LostTheJob(job_id)
        logger.info("pieces cut", extra={"pieces_total": count, "piece_seconds": round(length, 1),
                                         "cut_seconds": round(time.monotonic() - started, 3)})  # fmt: skip
        if last is not None and int(item.get("pieces_done", 0)) >= count:
            # Every piece finished before the count was recorded, so no piece saw the set complete. The
            # stitch goes to the piece function as a second delivery of the last piece (harmless by
            # design), not into this run: there it is redelivered if it dies, and dead-lettered (the job
            # failed) if it keeps dying; here nothing would be left to retry it once this run is gone.
            self._sqs().send_message(QueueUrl=settings.queue_url, MessageBody=last.body())
        return FannedOut(item)


class PieceBusy(Exception):
    """Another delivery of the same piece is transcribing it: leave this one for redelivery."""


class PieceFailed(Exception):
    """A piece's attempt failed in a way a later attempt may not: SQS redelivers it."""


class PieceWorker:
    """One piece's message, as the piece function's SQS event source delivers it."""

    def __init__(
        self,
        settings: FanoutSettings,
        config: GatewayConfig,
        router: Router,
        bucket: AudioBucket,
        table: JobTable,
        dead_letters: DeadLetters,
        accounting: JobAccounting | None = None,
    ) -> None:
        self.settings, self.config, self.router, self.bucket, self.table = settings, config, router, bucket, table
        self.dead_letters, self.accounting = dead_letters, accounting
        self.gather = Gather(config, router, bucket, table, accounting)
        self._sqs = LazyClient("sqs")
        self._persistence: Any = None
        if settings.idempotency_table:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            self._persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)

    def handle(self, record: dict[str, Any], context: Any) -> None:
        """Transcribe the record's piece once and count it; raises to leave the message for redelivery."""
        message = read_message(record)
        if message is None:
            return
        logger.append_keys(job_id=message.job_id, piece=message.index)
        job = self.table.get(message.job_id) or {}
        if job.get("etag") != message.etag or job.get("status") != "running" or message.beyond(job):
            logger.info("piece of a job that ended or was replaced, or that it does not have: nothing to do")
            return
        if message.index not in finished(job):
            self._transcribe_once(message, job, record, context)
            counted = self.table.piece_done(message.job_id, message.etag, message.index)
            job = counted or self.table.get(message.job_id) or {}
        self.gather.complete(job)

    def _transcribe_once(
        self, message: PieceMessage, job: dict[str, Any], record: dict[str, Any], context: Any
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        request = job_request(self.config, self.router, job)
        gate = self.accounting.provider_gate(job) if self.accounting is not None else None
        deadline = deadline_for(self.config.client_config.request_budget_seconds, context, 2.0)

        def transcribe_piece(piece: dict[str, Any]) -> dict[str, Any]:
            return self._transcribe(message, request, deadline, gate)

        try:
            if self._persistence is None:
                transcribe_piece(piece=asdict(message))
                return
            config = IdempotencyConfig(event_key_jmespath="[job_id, etag, index]", raise_on_no_idempotency_key=True,
                                       expires_after_seconds=86400)  # fmt: skip
            config.register_lambda_context(context)  # a killed handler's record expires with its time
            once = idempotent_function(
                transcribe_piece, data_keyword_argument="piece", config=config, persistence_store=self._persistence
            )
            once(piece=asdict(message))
        except IdempotencyAlreadyInProgressError:
            raise PieceBusy(f"piece {message.index} is being transcribed by another delivery") from None
        except HeimdallError as exc:
            envelope = exc.envelope(event_id=message.job_id, model_requested=request.model)
            if exc.client_fault:  # the same request fails the same way on every attempt
                self.fail(message, envelope, job)
                return
            self.bucket.put_json(message.key("error.json"), envelope)
            receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
            self._sqs().change_message_visibility(
                QueueUrl=self.settings.queue_url, ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=min(self.settings.retry_seconds * receives, 6 * PIECE_TIMEOUT_SECONDS),
            )  # fmt: skip
            raise PieceFailed(f"piece {message.index}: {exc.code}") from None

    def _transcribe(
        self, message: PieceMessage, request: TranscriptionRequest, deadline: float, gate: TargetGate | None
    ) -> dict[str, Any]:
        """The provider call for one piece, and its transcript written once."""
        key = message.key("json")
        if self.bucket.get_json(key) is not None:
            return {"key": key}
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
            size = self.bucket.read_into(message.key("wav"), spool)
            audio = AudioInput(spool, f"piece{message.index:05d}.wav", "audio/wav", size)
            routed = self.router.transcribe(request, audio, deadline, gate)
        document = {
            **asdict(message), "provider": routed.target.provider, "model_deployment": routed.target.model,
            "fallback_index": routed.fallback_index, "transcript": routed.transcript.model_dump(exclude_none=True),
        }  # fmt: skip
        self.bucket.put_json(key, document, only_if_absent=True)
        return {"key": key}

    def fail(self, message: PieceMessage, envelope: dict[str, Any], job: dict[str, Any]) -> None:
        """Fail the piece's job for good, naming the piece, and dead-letter it once."""
        envelope = piece_envelope(envelope, message, job)
        failed = self.table.fail_pieces(message.job_id, message.etag, message.index, envelope)
        if failed is not None:
            logger.warning("job failed: a piece failed for good", extra={"error_code": envelope["error"]["code"]})
            if self.accounting is not None:  # released like a single run's failure
                self.accounting.settle(failed, status=int(envelope.get("status_code") or 500))
            dead_letter(self.dead_letters, self.bucket, message.job_id, job["key"], message.etag, envelope)


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def piece_envelope(envelope: dict[str, Any], message: PieceMessage, job: dict[str, Any]) -> dict[str, Any]:
    """A piece's error envelope, as its job's: the message names the piece and where it lies, and
    ``extra_fields`` which pieces failed and how many were done."""
    total = job.get("pieces_total")
    where = f"{message.index + 1} of {total}" if total is not None else f"{message.index + 1}"
    span = f"{clock(message.offset)} to {clock(math.ceil(message.offset + message.seconds))}"
    error = {**envelope["error"], "message": f"Piece {where} ({span}) failed: {envelope['error']['message']}"}
    extra = {**envelope.get("extra_fields", {}), "pieces_failed": [message.index],
             "pieces_done": int(job.get("pieces_done", 0))}  # fmt: skip
    if total is not None:
        extra["pieces_total"] = int(total)
    return {**envelope, "error": error, "extra_fields": extra}


class PieceDeadLetters:
    """The piece dead-letter queue's consumer: a piece whose receives ran out fails its job."""

    def __init__(self, worker: PieceWorker) -> None:
        self.worker = worker

    def handle(self, record: dict[str, Any]) -> None:
        worker = self.worker
        message = read_message(record)
        if message is None:
            return
        logger.append_keys(job_id=message.job_id, piece=message.index)
        job = worker.table.get(message.job_id) or {}
        if job.get("etag") != message.etag or job.get("status") != "running" or message.beyond(job):
            return  # the job ended (or was replaced) already, or has no such piece
        if message.index in finished(job) and (job.get("pieces_total") is None or
                                               int(job["pieces_done"]) < int(job["pieces_total"])):  # fmt: skip
            return  # a duplicate of a piece that was done: the others are still running
        if message.index in finished(job):
            # every piece done, yet the job is running: the stitch kept dying (its lease is the bound)
            if float(job.get("stitch_until", 0)) >= time.time():
                raise PieceBusy("a stitch is running")
            error = HeimdallError("The job's pieces were transcribed but could not be stitched.", code="job_crashed")
            envelope = error.envelope(event_id=message.job_id, model_requested=None)
        else:
            envelope = worker.bucket.get_json(message.key("error.json")) or HeimdallError(
                f"The piece's runner stopped (killed, out of memory or out of time) on each of its {MAX_RECEIVES} "
                "attempts.",
                code="job_interrupted",
            ).envelope(event_id=message.job_id, model_requested=None)
        worker.fail(message, envelope, job)


def _sqs_batch(handle: Any) -> Any:
    """Run ``handle(record)`` over an SQS batch with Powertools' partial batch response: a record
    that raised is reported failed (ReportBatchItemFailures) and redelivered, the rest deleted."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=lambda record: handle(record.raw_event, context), processor=processor,
            context=context,
        )  # fmt: skip
        return dict(response)

    return handler


def _worker(*, transcribes: bool) -> PieceWorker:
    """What both piece handlers read at start-up. The dead-letter consumer transcribes nothing: it
    builds no provider, and reads the config only for governance — a config it cannot read is logged
    and the job still failed (as JobFailedFunction does)."""
    import os

    from heimdall.config import load_config
    from heimdall.jobs import _environment, job_accounting
    from heimdall.providers.registry import build_providers

    settings = FanoutSettings.from_environment(os.environ)
    if settings is None:
        raise RuntimeError("HEIMDALL_PIECE_QUEUE_URL is not set")
    bucket, table, dead_letters, _ = _environment()
    if transcribes:
        config = load_config(os.environ.get("HEIMDALL_CONFIG"))
        router = Router(config, build_providers(config))
        return PieceWorker(settings, config, router, bucket, table, dead_letters, job_accounting(config, table))
    try:
        config = load_config(os.environ.get("HEIMDALL_CONFIG"))
        accounting: JobAccounting | None = job_accounting(config, table)
    except Exception:
        logger.exception("the config could not be read: failed jobs are not settled by this function")
        config, accounting = GatewayConfig(), None
    return PieceWorker(settings, config, Router(config, {}), bucket, table, dead_letters, accounting)


def piece_handler() -> Any:
    """The piece function's handler (functions/piece/app.py): SQS event source on the piece queue,
    batch size 1, built once per execution environment."""
    worker = _worker(transcribes=True)
    return logger.inject_lambda_context(clear_state=True)(_sqs_batch(worker.handle))


def piece_failed_handler() -> Any:
    """The piece dead-letter queue's consumer (functions/piece_failed/app.py)."""
    consumer = PieceDeadLetters(_worker(transcribes=False))
    return logger.inject_lambda_context(clear_state=True)(_sqs_batch(lambda record, context: consumer.handle(record)))
