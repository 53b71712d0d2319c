"""Transcription jobs: an upload to ``incoming/`` becomes the transcript of exactly that upload.

A job is one item in the job table (heimdall.job_table), keyed by the job id of the object's key;
an S3 ObjectCreated event names the object version (ETag, size, sequencer). Each delivery first
*claims* the job with one conditional write, and only the claim's holder calls a provider:

- a duplicated or concurrent delivery finds the job done (its result is returned) or held by a
  live run (it leaves it alone); a delivery for an older upload than the job's finds it superseded;
- the holder heartbeats its lease every ``lease/3`` seconds and after each piece of long audio; a
  runner that dies stops heartbeating, so a retry may claim the job once ``lease`` has passed;
- a job runs at most ``MAX_ATTEMPTS`` times (the first delivery and Lambda's two retries). Every
  failure on the last attempt — a provider's for good, the client's, or an unexpected exception —
  marks the job ``failed`` with the error envelope and sends a dead-letter message; a runner killed
  on its last attempt is marked failed by ``failure_handler`` (Lambda's on-failure destination);
- a newer upload to the same key takes the job over; the older run notices at its next heartbeat,
  stops sending pieces, and can record nothing;
- every way a job ends (succeeded, failed, abandoned) settles its governance once with
  ``JobRunner.settle`` (heimdall.governance.jobs): charged when it succeeded, released when not, and
  its usage record written.

docs/jobs.md has the state machine and its time bounds.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote_plus

from heimdall.audio import check_audio
from heimdall.config import GatewayConfig
from heimdall.core.errors import HeimdallError, InvalidRequest
from heimdall.core.formats import PLAIN_TEXT_FORMATS, render_plain
from heimdall.core.parameters import build_request, safe_filename
from heimdall.core.types import AudioInput, ResponseFormat, Transcript, TranscriptionRequest
from heimdall.governance.jobs import JobAccounting
from heimdall.governance.store import UPLOAD_ROUTE
from heimdall.job_table import JobTable, ObjectVersion, view
from heimdall.observability import logger
from heimdall.routing import Router, Target, TargetGate, deadline_for
from heimdall.storage import INCOMING, AudioBucket, ObjectReplaced, transcript_key

if TYPE_CHECKING:
    from heimdall.fanout import Scatter

EXTENSIONS = {ResponseFormat.SRT: "srt", ResponseFormat.VTT: "vtt", ResponseFormat.TEXT: "txt"}
_JOB_NAMESPACE = uuid.UUID("6f1d3c1e-5b0a-4f7e-9f9a-2d5f0c8e7a11")
#: The first delivery and Lambda's retries (the template's MaximumRetryAttempts is one less).
MAX_ATTEMPTS = 3
#: How long a run holds a job without a heartbeat: how long a dead runner blocks its retry.
LEASE_SECONDS = 30.0
#: Lambda drops an event it could not run for this long to the on-failure destination (the
#: template's MaximumEventAgeInSeconds), so an upload's job starts by then or is marked failed.
MAX_EVENT_AGE_SECONDS = 3600

DeadLetters = Callable[[dict[str, Any]], None]


def new_job_id() -> str:
    return uuid.uuid4().hex


def job_of(key: str) -> tuple[str, str]:
    """(job id, filename) of an ``incoming/`` key: ``incoming/{job_id}/{filename}`` from an upload,
    or, for a file dropped anywhere else under ``incoming/``, an id derived from the key."""
    rest = key[len(INCOMING) :]
    job_id, sep, filename = rest.partition("/")
    if sep and len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id) and filename:
        return job_id, filename
    return uuid.uuid5(_JOB_NAMESPACE, key).hex, rest.rsplit("/", 1)[-1]


def default_model(config: GatewayConfig, router: Router) -> str:
    if config.client_config.default_model:
        return config.client_config.default_model
    if config.deployments:
        return next(iter(config.deployments))
    return "local/tiny.en" if "local" in router.providers else ""


def job_fields(config: GatewayConfig, router: Router, item: dict[str, Any]) -> list[list[str]]:
    """The request's parameters stored with the job (``POST /v1/uploads``), else the default model's
    (a file an operator dropped into ``incoming/``)."""
    return item.get("fields") or [["model", default_model(config, router)]]


def job_request(config: GatewayConfig, router: Router, item: dict[str, Any]) -> TranscriptionRequest:
    """The job's request, checked as a transcription's (a 400 for parameters that no longer hold)."""
    return build_request([(str(k), str(v)) for k, v in job_fields(config, router, item)], path_model=None)


class FannedOut(NamedTuple):
    """The run cut the audio into pieces for the piece function and handed the job over to them
    (heimdall.fanout); ``item`` is the job as it left it."""

    item: dict[str, Any]


def store_transcript(
    bucket: AudioBucket,
    job_id: str,
    source: dict[str, Any],
    request: TranscriptionRequest,
    served: tuple[str, str, int],
    transcript: Transcript,
) -> dict[str, Any]:
    """Write the transcript of exactly one upload (``source``: its key, ETag and size) once, with the
    requested rendering; returns what the job's status records about it. ``served`` is the
    (provider, model deployment, fallback index) that produced it."""
    provider, deployment, fallback_index = served
    key = transcript_key(job_id, source["etag"])
    document = {
        "job_id": job_id,
        "object": source,
        "request": {"model": request.model, "response_format": str(request.response_format),
                    "timestamp_granularities": sorted(str(g) for g in request.timestamp_granularities)},
        "provider": provider,
        "model_deployment": deployment,
        "fallback_index": fallback_index,
        "transcript": transcript.model_dump(exclude_none=True),
    }  # fmt: skip
    if bucket.put_json(key, document, only_if_absent=True) and request.response_format in PLAIN_TEXT_FORMATS:
        rendered = render_plain(transcript, request.response_format, provider)
        extension = EXTENSIONS[request.response_format]
        bucket.put_text(transcript_key(job_id, source["etag"], extension), rendered, "text/plain; charset=utf-8")
    return {"provider": provider, "model_deployment": deployment, "fallback_index": fallback_index,
            "transcript_key": key}  # fmt: skip


class LostTheJob(Exception):
    """A newer upload took the job over, or the lease lapsed and a retry holds it now."""


class Heartbeat:
    """Keeps a run's lease alive from a thread, and records progress; ``lost`` once the run no
    longer holds the job."""

    def __init__(self, table: JobTable, job_id: str, owner: str, lease_seconds: float) -> None:
        self.table, self.job_id, self.owner, self.lease_seconds = table, job_id, owner, lease_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            self.beat()

    def beat(self, **progress: Any) -> None:
        if not self.lost and not self.table.heartbeat(self.job_id, self.owner, self.lease_seconds, **progress):
            self.lost = True
            self._stop.set()

    def pieces(self, done: int, total: int | None) -> None:
        """Told after each piece of long audio: the status shows it, and a lost job stops here."""
        self.beat(pieces_done=done, **({"pieces_total": total} if total is not None else {}))
        if self.lost:
            raise LostTheJob(self.job_id)


class JobRunner:
    def __init__(
        self,
        config: GatewayConfig,
        router: Router,
        bucket: AudioBucket,
        table: JobTable,
        dead_letters: DeadLetters,
        lease_seconds: float = LEASE_SECONDS,
        accounting: JobAccounting | None = None,
        scatter: Scatter | None = None,
    ) -> None:
        self.config, self.router, self.bucket, self.table = config, router, bucket, table
        self.dead_letters = dead_letters
        self.lease_seconds = lease_seconds
        self.accounting = accounting
        self.scatter = scatter  # long audio fanned out across the piece function, when configured

    def settle(
        self,
        job: dict[str, Any],
        *,
        status: int,
        seconds: float | None = None,
        target: Target | None = None,
        fallback_index: int | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Governance for a job that ended, once per upload (heimdall.governance.jobs): every path that
        records a job's outcome calls this with the item that outcome wrote."""
        if self.accounting is not None:
            self.accounting.settle(job, status=status, seconds=seconds, target=target,
                                   fallback_index=fallback_index, latency_ms=latency_ms)  # fmt: skip

    def run(self, version: ObjectVersion, deadline: float) -> dict[str, Any]:
        """Transcribe one uploaded object version, if this delivery may; returns the job's status."""
        job_id, filename = job_of(version.key)
        logger.append_keys(job_id=job_id)
        owner = uuid.uuid4().hex
        started = time.perf_counter()
        claim = self.table.claim(
            job_id, version, owner=owner, lease_seconds=self.lease_seconds, max_attempts=MAX_ATTEMPTS
        )
        if claim.outcome == "exhausted":
            error = HeimdallError(
                f"The job's runner stopped (killed, out of memory or out of time) on each of its {MAX_ATTEMPTS} "
                "attempts.",
                code="job_interrupted",
            )
            return self.abandon(job_id, version, error.envelope(event_id=job_id, model_requested=None))
        if claim.outcome != "claimed":
            logger.info("job not run", extra={"reason": claim.outcome})
            return {**view(claim.item), "delivery": claim.outcome}
        attempt = int(claim.item["attempt"])
        logger.append_keys(attempt=attempt)
        model = dict(job_fields(self.config, self.router, claim.item)).get("model")
        with Heartbeat(self.table, job_id, owner, self.lease_seconds) as heartbeat:
            try:
                gate = None
                if self.accounting is not None:
                    self.accounting.refuse_if_spent(claim.item)
                    gate = self.accounting.provider_gate(claim.item)
                request = job_request(self.config, self.router, claim.item)
                outcome = self._transcribe(job_id, filename, version, request, deadline, heartbeat, gate)
            except LostTheJob:
                logger.info("job taken over by a newer upload or a retry")
                return {**view(self.table.get(job_id) or {}), "delivery": "superseded"}
            except ObjectReplaced:
                # A newer upload's event takes the job over, failed or not; a deleted one ends it here.
                error = InvalidRequest(
                    "The upload was replaced or deleted before it was transcribed; "
                    "a new upload to the same key is transcribed on its own.",
                    param="file",
                    code="upload_replaced",
                )
                envelope = error.envelope(event_id=job_id, model_requested=model)
                finished = self.table.finish(job_id, owner, "failed", error=envelope)
                if finished is not None:
                    self.settle(finished, status=error.status_code, latency_ms=_ms_since(started))
                return {**view(finished or self.table.get(job_id) or {}), "delivery": "superseded"}
            except HeimdallError as exc:
                envelope = exc.envelope(event_id=job_id, model_requested=model)
                logger.warning("job failed", extra={"error_code": exc.code, "status_code": exc.status_code})
                return self._failed(job_id, owner, version, envelope, started)
            except Exception as exc:
                if attempt < MAX_ATTEMPTS:
                    self.table.release(job_id, owner)  # Lambda's retry may claim it at once
                    raise
                logger.exception("job failed unexpectedly on its last attempt")
                error = HeimdallError(
                    f"The job failed unexpectedly ({type(exc).__name__}) on each of its {MAX_ATTEMPTS} attempts.",
                    code="job_crashed",
                )
                envelope = error.envelope(event_id=job_id, model_requested=model)
                return self._failed(job_id, owner, version, envelope, started)
        if isinstance(outcome, FannedOut):
            logger.info("job fanned out", extra={"pieces_total": outcome.item.get("pieces_total")})
            return {**view(outcome.item), "delivery": "fanned_out"}
        finished = self.table.finish(job_id, owner, "succeeded", **outcome) if not heartbeat.lost else None
        if finished is None:
            return {**view(self.table.get(job_id) or {}), "delivery": "superseded"}
        self.settle(finished, status=200, seconds=outcome["audio_seconds"],
                    target=Target(outcome["provider"], outcome["model_deployment"]),
                    fallback_index=outcome["fallback_index"], latency_ms=_ms_since(started))  # fmt: skip
        logger.info("job succeeded", extra={"provider": outcome["provider"]})
        return view(finished)

    def _transcribe(
        self,
        job_id: str,
        filename: str,
        version: ObjectVersion,
        request: TranscriptionRequest,
        deadline: float,
        heartbeat: Heartbeat,
        gate: TargetGate | None = None,
    ) -> dict[str, Any] | FannedOut:
        """The provider call, and the transcript of this object version written once; or, for audio
        long enough, the pieces cut and queued for the piece function."""
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
            size = self.bucket.download(version.key, version.etag, spool)
            audio = AudioInput(spool, safe_filename(filename), _content_type(filename), size)
            if size == 0:
                raise InvalidRequest("The uploaded file is empty.", param="file", code="empty_file")
            seconds = check_audio(audio, self.config.client_config.max_audio_seconds)
            if self.scatter is not None and self.scatter.wants(seconds):
                return self.scatter.run(job_id, version, request, audio, seconds, heartbeat)
            routed = self.router.transcribe(request, audio, deadline, gate, progress=heartbeat.pieces)
        if heartbeat.lost:
            raise LostTheJob(job_id)
        source = {"key": version.key, "etag": version.etag, "size": size}
        served = (routed.target.provider, routed.target.model, routed.fallback_index)
        stored = store_transcript(self.bucket, job_id, source, request, served, routed.transcript)
        return {**stored, "audio_seconds": seconds}

    def _failed(
        self, job_id: str, owner: str, version: ObjectVersion, envelope: dict[str, Any], started: float
    ) -> dict[str, Any]:
        finished = self.table.finish(job_id, owner, "failed", error=envelope)
        if finished is None:
            return {**view(self.table.get(job_id) or {}), "delivery": "superseded"}
        self.settle(finished, status=int(envelope.get("status_code") or 500), latency_ms=_ms_since(started))
        self._dead_letter(job_id, version, envelope)
        return view(finished)

    def abandon(self, job_id: str, version: ObjectVersion, envelope: dict[str, Any]) -> dict[str, Any]:
        failed = self.table.fail_abandoned(job_id, version, envelope)
        if failed is None:
            return {**view(self.table.get(job_id) or {}), "delivery": "busy"}
        logger.warning("job failed: its runner died on its last attempt", extra={"error_code": "job_interrupted"})
        self.settle(failed, status=int(envelope.get("status_code") or 500))
        self._dead_letter(job_id, version, envelope)
        return view(failed)

    def _dead_letter(self, job_id: str, version: ObjectVersion, envelope: dict[str, Any]) -> None:
        dead_letter(self.dead_letters, self.bucket, job_id, version.key, version.etag, envelope)


def dead_letter(
    dead_letters: DeadLetters, bucket: AudioBucket, job_id: str, key: str, etag: str, envelope: dict[str, Any]
) -> None:
    """The dead-letter message of a job that failed for good (one shape for every way it fails)."""
    dead_letters({"job_id": job_id, "bucket": bucket.name, "key": key, "etag": etag, "error": envelope})


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _content_type(filename: str) -> str:
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def object_versions(event: dict[str, Any], bucket: str) -> list[ObjectVersion]:
    """The ``incoming/`` objects an S3 event names (keys arrive URL-encoded, a space as '+')."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    versions = []
    for record in S3Event(event).records:
        key = unquote_plus(record.s3.get_object.key)
        if record.s3.bucket.name != bucket or not key.startswith(INCOMING) or key.endswith("/"):
            continue
        s3_object = record.s3.get_object
        versions.append(ObjectVersion(key, s3_object.etag, int(s3_object.size or 0), s3_object.sequencer or "0"))
    return versions


def _environment() -> tuple[AudioBucket, JobTable, DeadLetters, float]:
    """What both handlers read from the environment the template sets: ``HEIMDALL_AUDIO_BUCKET``,
    ``HEIMDALL_JOB_TABLE``, ``HEIMDALL_DLQ_URL``, and ``HEIMDALL_JOB_LEASE_SECONDS`` (default 30)."""
    import json
    import os

    dlq_url = os.environ.get("HEIMDALL_DLQ_URL")
    sqs: list[Any] = []

    def dead_letter(message: dict[str, Any]) -> None:
        if not dlq_url:
            return
        if not sqs:
            import boto3

            sqs.append(boto3.client("sqs"))
        sqs[0].send_message(QueueUrl=dlq_url, MessageBody=json.dumps(message))

    lease = float(os.environ.get("HEIMDALL_JOB_LEASE_SECONDS") or LEASE_SECONDS)
    return (
        AudioBucket(os.environ["HEIMDALL_AUDIO_BUCKET"]),
        JobTable(os.environ["HEIMDALL_JOB_TABLE"]),
        dead_letter,
        lease,
    )


def job_accounting(config: GatewayConfig, table: JobTable) -> JobAccounting:
    """Governance for jobs as the template configures it: the store ``HEIMDALL_GOVERNANCE_TABLE``
    names (SQLite under ``HEIMDALL_STATE_DIR`` outside Lambda), when the config has gateway keys."""
    import os

    from heimdall.governance.governor import build_governor

    governor = build_governor(
        config,
        None,
        table=os.environ.get("HEIMDALL_GOVERNANCE_TABLE"),
        state_dir=os.environ.get("HEIMDALL_STATE_DIR"),
        in_lambda=bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")),
        usage_routes=frozenset({UPLOAD_ROUTE}),
        with_cache=False,
    )
    return JobAccounting(governor, table)


def ingest_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The S3-event Lambda handler (functions/ingest/app.py), built once per execution environment
    (it also reads ``HEIMDALL_CONFIG``)."""
    import os

    from heimdall.config import load_config
    from heimdall.providers.registry import build_providers

    config = load_config(os.environ.get("HEIMDALL_CONFIG"))
    router = Router(config, build_providers(config))
    from heimdall.fanout import FanoutSettings, Scatter

    bucket, table, dead_letters, lease = _environment()
    accounting = job_accounting(config, table)
    settings = FanoutSettings.from_environment(os.environ)
    scatter = Scatter(settings, config, router, bucket, table) if settings is not None else None
    runner = JobRunner(config, router, bucket, table, dead_letters, lease, accounting, scatter)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        jobs = []
        for version in object_versions(event, bucket.name):
            # two seconds kept back to record the job's outcome after the last provider call
            deadline = deadline_for(config.client_config.request_budget_seconds, context, 2.0)
            jobs.append(runner.run(version, deadline))
        return {"jobs": jobs}

    return handler


def failure_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Lambda's on-failure destination for the ingest function (functions/ingest_failed/app.py):
    the event's last attempt died or raised, so its job is marked failed unless a run is alive on
    it — waiting at most one lease for a dying runner's lease to lapse. It reads the config only
    for governance (to release what the job reserved): a config that cannot be read is logged, and
    the job still marked failed."""
    import os

    from heimdall.config import load_config

    bucket, table, dead_letters, lease = _environment()
    try:
        config = load_config(os.environ.get("HEIMDALL_CONFIG"))
        accounting: JobAccounting | None = job_accounting(config, table)
    except Exception:
        logger.exception("the config could not be read: failed jobs are not settled by this function")
        accounting = None
    runner = JobRunner(GatewayConfig(), Router(GatewayConfig(), {}), bucket, table, dead_letters, lease, accounting)

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        reason = (event.get("responsePayload") or {}).get("errorType") or event.get("requestContext", {}).get(
            "condition", "unknown"
        )
        jobs = []
        for version in object_versions(event.get("requestPayload") or {}, bucket.name):
            job_id, _ = job_of(version.key)
            current = table.get(job_id) or {}
            if current.get("etag") == version.etag and current.get("status") == "running":
                until = float(current.get("lease_until", 0))
                while time.time() <= until:  # a lease lapses within one lease of its runner's death
                    time.sleep(min(1.0, until - time.time() + 0.05))
            error = HeimdallError(
                f"The job's runner stopped on its last attempt ({str(reason)[:80]}).", code="job_interrupted"
            )
            jobs.append(runner.abandon(job_id, version, error.envelope(event_id=job_id, model_requested=None)))
        return {"jobs": jobs}

    return handler
