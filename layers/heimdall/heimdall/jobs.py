"""Transcription jobs: an upload to ``incoming/`` becomes a transcript in ``transcripts/``.

S3 delivers ObjectCreated events at least once, so a job runs under Powertools Idempotency (a
DynamoDB record keyed by bucket, key and ETag): a duplicated event returns the first run's result
without calling a provider, a run that failed unexpectedly may be retried, and one still in progress
is not started twice. The transcript itself is written with a conditional put, so even a second run
could never overwrite a finished one. A job that fails for good (every retry and fallback spent) is
marked ``failed`` with the error envelope and sent to the dead-letter queue; its upload stays.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from heimdall.audio import check_audio
from heimdall.config import GatewayConfig
from heimdall.core.errors import HeimdallError, InvalidRequest
from heimdall.core.formats import PLAIN_TEXT_FORMATS, render_plain
from heimdall.core.parameters import build_request, safe_filename
from heimdall.core.types import AudioInput, ResponseFormat
from heimdall.observability import logger
from heimdall.routing import Router, deadline_for
from heimdall.storage import INCOMING, AudioBucket, manifest_key, status_key, transcript_key

EXTENSIONS = {ResponseFormat.SRT: "srt", ResponseFormat.VTT: "vtt", ResponseFormat.TEXT: "txt"}
_JOB_NAMESPACE = uuid.UUID("6f1d3c1e-5b0a-4f7e-9f9a-2d5f0c8e7a11")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


class JobRunner:
    def __init__(
        self, config: GatewayConfig, router: Router, bucket: AudioBucket, dead_letters: Callable[[dict[str, Any]], None]
    ) -> None:
        self.config = config
        self.router = router
        self.bucket = bucket
        self.dead_letters = dead_letters

    def set_status(self, job_id: str, status: str, **fields: Any) -> dict[str, Any]:
        document = self.bucket.get_json(status_key(job_id)) or {"job_id": job_id, "created_at": now()}
        document.update(fields, status=status, updated_at=now())
        self.bucket.put_json(status_key(job_id), document)
        return document

    def run(self, key: str, deadline: float) -> dict[str, Any]:
        """Transcribe one uploaded object; returns the job's final status document."""
        job_id, filename = job_of(key)
        manifest = self.bucket.get_json(manifest_key(job_id))
        fields = manifest["fields"] if manifest else [["model", default_model(self.config, self.router)]]
        logger.append_keys(job_id=job_id)
        self.set_status(job_id, "running", key=key)
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 - closed below
        try:
            request = build_request([(str(k), str(v)) for k, v in fields], path_model=None)
            size = self.bucket.download(key, spool)
            audio = AudioInput(spool, safe_filename(filename), _content_type(filename), size)
            if size == 0:
                raise InvalidRequest("The uploaded file is empty.", param="file", code="empty_file")
            check_audio(audio, self.config.client_config.max_audio_seconds)
            routed = self.router.transcribe(request, audio, deadline)
        except HeimdallError as exc:
            envelope = exc.envelope(event_id=job_id, model_requested=dict(fields).get("model"))
            status = self.set_status(job_id, "failed", error=envelope)
            self.dead_letters({"job_id": job_id, "bucket": self.bucket.name, "key": key, "error": envelope})
            logger.warning("job failed", extra={"error_code": exc.code, "status_code": exc.status_code})
            return status
        finally:
            spool.close()
        document = {
            "job_id": job_id,
            "request": {"model": request.model, "response_format": str(request.response_format),
                        "timestamp_granularities": sorted(str(g) for g in request.timestamp_granularities)},
            "provider": routed.target.provider,
            "model_deployment": routed.target.model,
            "fallback_index": routed.fallback_index,
            "transcript": routed.transcript.model_dump(exclude_none=True),
        }  # fmt: skip
        written = self.bucket.put_json(transcript_key(job_id), document, only_if_absent=True)
        if written and request.response_format in PLAIN_TEXT_FORMATS:
            rendered = render_plain(routed.transcript, request.response_format, routed.target.provider)
            self.bucket.put_text(
                transcript_key(job_id, EXTENSIONS[request.response_format]), rendered, "text/plain; charset=utf-8"
            )
        logger.info("job succeeded", extra={"provider": routed.target.provider, "first_write": written})
        return self.set_status(
            job_id,
            "succeeded",
            provider=routed.target.provider,
            model_deployment=routed.target.model,
            fallback_index=routed.fallback_index,
            transcript_key=transcript_key(job_id),
        )


def _content_type(filename: str) -> str:
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def ingest_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The S3-event Lambda handler (functions/ingest/app.py), built once per execution environment.

    Reads ``HEIMDALL_CONFIG``, ``HEIMDALL_AUDIO_BUCKET``, ``HEIMDALL_IDEMPOTENCY_TABLE`` and
    ``HEIMDALL_DLQ_URL`` (the template sets them)."""
    import json
    import os

    from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from heimdall.config import load_config
    from heimdall.providers.registry import build_providers

    config = load_config(os.environ.get("HEIMDALL_CONFIG"))
    router = Router(config, build_providers(config))
    bucket = AudioBucket(os.environ["HEIMDALL_AUDIO_BUCKET"])
    dlq_url = os.environ.get("HEIMDALL_DLQ_URL")
    sqs: list[Any] = []

    def dead_letter(message: dict[str, Any]) -> None:
        if not dlq_url:
            return
        if not sqs:
            import boto3

            sqs.append(boto3.client("sqs"))
        sqs[0].send_message(QueueUrl=dlq_url, MessageBody=json.dumps(message))

    runner = JobRunner(config, router, bucket, dead_letter)
    idempotency = IdempotencyConfig(event_key_jmespath="[bucket, key, etag]", expires_after_seconds=7 * 24 * 3600)
    persistence = DynamoDBPersistenceLayer(table_name=os.environ["HEIMDALL_IDEMPOTENCY_TABLE"])
    current: dict[str, Any] = {}

    @idempotent_function(data_keyword_argument="record", persistence_store=persistence, config=idempotency)  # type: ignore[untyped-decorator]
    def run_once(record: dict[str, str]) -> dict[str, Any]:
        # two seconds kept back to record the job's status after the last provider call
        deadline = deadline_for(config.client_config.request_budget_seconds, current.get("context"), 2.0)
        return runner.run(record["key"], deadline)

    @logger.inject_lambda_context(clear_state=True)
    @event_source(data_class=S3Event)
    def handler(event: S3Event, context: Any) -> dict[str, Any]:
        idempotency.register_lambda_context(context)
        current["context"] = context
        jobs = []
        for record in event.records:
            if record.s3.bucket.name != bucket.name:
                continue
            key = unquote_plus(record.s3.get_object.key)  # S3 events URL-encode keys, a space as '+'
            if not key.startswith(INCOMING) or key.endswith("/"):
                continue
            jobs.append(run_once(record={"bucket": bucket.name, "key": key, "etag": record.s3.get_object.etag}))
        return {"jobs": jobs}

    return handler
