"""Large audio, asynchronously: ``POST /v1/uploads`` hands out a presigned S3 POST and records the
job's parameters; ``GET /v1/transcriptions/{job_id}`` reports the job and, once done, serves the
transcript in any response_format.

API Gateway caps a request at 6 MB; the presigned POST goes straight to S3 (up to
``client_config.max_upload_size_mb``), and the ingest function picks the file up from there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from heimdall.api.auth import Gatekeeper, GatewayKey, authenticate
from heimdall.api.body import read_body
from heimdall.api.context import request_log
from heimdall.api.openapi import ERROR_RESPONSES
from heimdall.config import GatewayConfig
from heimdall.core.errors import InvalidRequest, NotFound, UnsupportedMediaType
from heimdall.core.formats import PLAIN_TEXT_FORMATS, extra_fields, render_document, render_plain
from heimdall.core.parameters import bounded_json, build_request, safe_filename
from heimdall.core.types import ResponseFormat, Transcript, TranscriptionRequest, named_for_format
from heimdall.storage import INCOMING, AudioBucket

if TYPE_CHECKING:
    from heimdall.job_table import JobTable

UPLOAD_URL_SECONDS = 900
_MAX_BODY = 64 * 1024
_JOB_ID = re.compile(r"[0-9a-f]{32}")  # new_job_id(): a UUID4 as hex


def _age_seconds(iso: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()


def _fields(document: dict[str, Any]) -> list[tuple[str, str]]:
    """The JSON parameters as form fields, so one validator serves both: a list is repeated fields,
    an object (``chunking_strategy``) its bracketed members, as the openai SDK sends them."""
    fields: list[tuple[str, str]] = []
    for name, value in document.items():
        if isinstance(value, dict):
            pairs = [(f"{name}[{key}]", item) for key, item in value.items()]
        else:
            pairs = [(name, item) for item in (value if isinstance(value, list) else [value])]
        for field_name, item in pairs:
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int | float):
                raise InvalidRequest(
                    f"Field '{field_name}' must be a string, a number, or a list or object of them.", param=name
                )
            fields.append((field_name, str(item)))
    return fields


def _sees(key: GatewayKey | None, item: dict[str, Any]) -> bool:
    """A key sees the jobs it created. A job without a key (a file an operator dropped into
    ``incoming/``, or an upload made while auth was off) only admin keys see: a dropped file's job id
    derives from the file's name, which anyone may guess."""
    if key is None:  # auth is off: there are no tenants to keep apart
        return True
    owner = item.get("key_id")
    return key.admin if owner is None else bool(owner == key.id)


def _jobs(request: Request) -> tuple[AudioBucket, JobTable]:
    bucket: AudioBucket | None = request.app.state.bucket
    table: JobTable | None = request.app.state.job_table
    if bucket is None or table is None:
        raise NotFound(
            "Uploads and transcription jobs need the audio bucket and the job table (HEIMDALL_AUDIO_BUCKET, "
            "HEIMDALL_JOB_TABLE), which this gateway does not have.",
            code="jobs_not_configured",
        )
    return bucket, table


async def create_upload(request: Request) -> JSONResponse:
    # The jobs modules load with the first upload, not with every cold start of the API function.
    from heimdall.governance.jobs import JobAccounting, claim_to_item
    from heimdall.jobs import new_job_id

    log = request_log(request.scope)
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    key = authenticate(request)
    bucket, table = _jobs(request)
    config: GatewayConfig = request.app.state.config
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType('POST /v1/uploads takes a JSON object: {"filename": ..., "model": ..., ...}.')
    raw = await read_body(request, _MAX_BODY, "upload request (it carries parameters, not audio)")
    try:
        document = bounded_json(raw, max_chars=_MAX_BODY)
    except ValueError as exc:
        raise InvalidRequest(f"The body is not usable: {exc}.", code="invalid_json") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    filename = document.pop("filename", None)
    if not isinstance(filename, str) or not filename.strip():
        raise InvalidRequest(
            "Missing required parameter: 'filename'.", param="filename", code="missing_required_parameter"
        )
    if document.get("stream") not in (None, False, "false"):
        raise InvalidRequest("A job's result is fetched when it is done; stream is not available here.", param="stream")
    fields = _fields(document)
    transcription = build_request(fields, path_model=None)
    gatekeeper.authorize(key, [transcription.model, *transcription.fallbacks])
    request.app.state.router.resolve_targets(transcription.model, transcription.fallbacks)  # 404 now, not later
    log.update(model=transcription.model)

    job_id = new_job_id()
    filename = named_for_format(filename, transcription.file_format)  # the job reads the format from the name
    object_key = f"{INCOMING}{job_id}/{safe_filename(filename)}"
    max_bytes = int(config.client_config.max_upload_size_mb * 1024 * 1024)

    accounting = JobAccounting(request.app.state.governor, table)
    key_id = key.id if key else None

    def prepare() -> dict[str, Any]:
        # The upload is admitted here, like a transcription: its request counted, its key's audio and
        # budget checked (a 429 when spent). Its audio is charged when the job ends (governance.jobs).
        claims = accounting.admit_upload(key_id)
        try:
            # the job's parameters, its owner's key id and what it reserved ride on the job item
            table.create(job_id, key=object_key, key_id=key_id, fields=[list(f) for f in fields],
                         reserved=[claim_to_item(c) for c in claims])  # fmt: skip
            return bucket.presigned_upload(object_key, max_bytes, UPLOAD_URL_SECONDS)
        except BaseException:
            accounting.release(claims)  # no upload URL was handed out: nothing to count
            raise

    post = await run_in_threadpool(prepare)
    log["job_id"] = job_id
    return JSONResponse(
        {
            "job_id": job_id,
            "status": "queued",
            "upload": {
                "url": post["url"],
                "fields": post["fields"],
                "method": "POST",
                "file_field": "file",
                "max_bytes": max_bytes,
                "expires_in": UPLOAD_URL_SECONDS,
            },
            "status_url": f"/v1/transcriptions/{job_id}",
        },
        status_code=201,
    )


async def get_job(request: Request) -> Response:
    from heimdall.job_table import view
    from heimdall.jobs import MAX_EVENT_AGE_SECONDS

    job_id: str = request.path_params["job_id"]
    key = authenticate(request)
    bucket, table = _jobs(request)
    item = await run_in_threadpool(table.get, job_id) if _JOB_ID.fullmatch(job_id) else None
    if item is None or not _sees(key, item):
        raise NotFound("No such transcription job.", param="job_id", code="job_not_found")
    status = view(item)
    if status["status"] == "queued" and _age_seconds(status["created_at"]) > UPLOAD_URL_SECONDS + MAX_EVENT_AGE_SECONDS:
        # No upload came while its URL was valid (an upload's event would have run or failed by now).
        error = InvalidRequest(
            "Nothing was uploaded for this job while its upload URL was valid.", param="file", code="upload_missing"
        )
        status.update(status="failed", error=error.envelope(event_id=job_id, model_requested=None))
    if status["status"] != "succeeded":
        return JSONResponse(status)
    document = await run_in_threadpool(bucket.get_json, status["transcript_key"])
    if document is None:  # written before the job was marked succeeded: someone deleted it since
        raise NotFound(f"The transcript of job '{job_id}' is gone from the bucket.", code="transcript_missing")
    transcript = Transcript.model_validate(document["transcript"])
    # Without ?response_format the answer stays JSON (the status with the text), so polling is simple.
    fmt_text = request.query_params.get("response_format") or "json"
    try:
        fmt = ResponseFormat(fmt_text)
    except ValueError:
        raise InvalidRequest(f"Unknown response_format '{fmt_text[:20]}'.", param="response_format") from None
    if fmt in PLAIN_TEXT_FORMATS:
        return PlainTextResponse(render_plain(transcript, fmt, document["provider"]))
    words = "word" in document["request"].get("timestamp_granularities", [])
    wanted = TranscriptionRequest(
        model=document["request"]["model"],
        response_format=fmt,
        timestamp_granularities=frozenset({"word"}) if words else frozenset(),  # type: ignore[arg-type]
    )
    body = render_document(transcript, wanted)
    body.update(
        job_id=job_id,
        status="succeeded",
        object=status["object"],
        extra_fields=extra_fields(
            provider=document["provider"],
            model_requested=wanted.model,
            model_deployment=document["model_deployment"],
            fallback_index=document["fallback_index"],
            chunk_index=0,
        ),
    )
    return JSONResponse(body)


UPLOAD_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["filename"],
        "properties": {
            "filename": {"type": "string", "description": "The audio file's name (kept for the provider)."},
            "model": {"type": "string"}, "language": {"type": "string"}, "prompt": {"type": "string"},
            "response_format": {"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"]},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "timestamp_granularities": {"type": "array", "items": {"type": "string", "enum": ["word", "segment"]}},
            "fallbacks": {"type": "array", "items": {"type": "string"}},
            "file_format": {"type": "string", "description": "The audio's format when the filename lacks it."},
            "chunking_strategy": {"description": '"auto" or {"type": "server_vad", ...}'},
        },
    }}},
}  # fmt: skip


def add_upload_routes(app: FastAPI) -> None:
    app.add_api_route(
        "/v1/uploads",
        create_upload,
        methods=["POST"],
        tags=["Jobs"],
        response_model=None,
        operation_id="createUpload",
        summary="Start a transcription job: get a presigned S3 upload",
        openapi_extra={
            "requestBody": UPLOAD_BODY,
            "responses": {
                "201": {
                    "description": "The job, and the presigned POST to upload its file with",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **ERROR_RESPONSES,
            },
        },
    )
    app.add_api_route(
        "/v1/transcriptions/{job_id}",
        get_job,
        methods=["GET"],
        tags=["Jobs"],
        response_model=None,
        operation_id="getTranscriptionJob",
        summary="A job's status, and its transcript once done",
        openapi_extra={
            "parameters": [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "response_format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"]},
                },
            ],
            "responses": {
                "200": {
                    "description": "The status; once succeeded, the transcript in the asked format",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
                **ERROR_RESPONSES,
            },
        },
    )
