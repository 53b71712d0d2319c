"""The audio bucket: presigned uploads, job manifests and statuses, and finished transcripts.

Layout (``HEIMDALL_AUDIO_BUCKET``):
  incoming/{job_id}/{filename}     uploads; an ObjectCreated event here starts a job
  jobs/{job_id}/manifest.json      the transcription parameters given with POST /v1/uploads
  jobs/{job_id}/status.json        queued | running | succeeded | failed (with the error envelope)
  transcripts/{job_id}.json        the canonical transcript, written once (a conditional put)
  transcripts/{job_id}.{format}    the requested rendering (srt, vtt, txt, json)

boto3 is imported when the bucket is first used, and reaches AWS (or a local endpoint) through its own
``AWS_ENDPOINT_URL*`` variables.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any

from heimdall.core.errors import NotFound

INCOMING = "incoming/"


class AudioBucket:
    def __init__(self, name: str) -> None:
        self.name = name
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client("s3", config=Config(signature_version="s3v4", retries={"mode": "standard"}))
            return self._client

    # -- uploads --------------------------------------------------------------------------------
    def presigned_upload(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A SigV4 presigned POST for exactly ``key``, refusing bodies over ``max_bytes``."""
        post: dict[str, Any] = self.s3.generate_presigned_post(
            Bucket=self.name,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return post

    def download(self, key: str, into: IO[bytes]) -> int:
        """Stream an object into a file (spooled to /tmp past 1 MB); returns its size."""
        self.s3.download_fileobj(self.name, key, into)
        size = into.tell()
        into.seek(0)
        return size

    # -- JSON documents ---------------------------------------------------------------------------
    def put_json(self, key: str, document: Any, *, only_if_absent: bool = False) -> bool:
        """Write a JSON object; with ``only_if_absent``, never overwrite (False when it existed)."""
        extra = {"IfNoneMatch": "*"} if only_if_absent else {}
        try:
            self.s3.put_object(
                Bucket=self.name,
                Key=key,
                Body=json.dumps(document, separators=(",", ":")).encode(),
                ContentType="application/json",
                **extra,
            )
        except self.s3.exceptions.ClientError as exc:
            if only_if_absent and exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def put_text(self, key: str, text: str, content_type: str) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=text.encode(), ContentType=content_type)

    def get_json(self, key: str) -> Any | None:
        try:
            body = self.s3.get_object(Bucket=self.name, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.name, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def manifest_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest.json"


def status_key(job_id: str) -> str:
    return f"jobs/{job_id}/status.json"


def transcript_key(job_id: str, extension: str = "json") -> str:
    return f"transcripts/{job_id}.{extension}"


def require_bucket(bucket: AudioBucket | None) -> AudioBucket:
    if bucket is None:
        raise NotFound(
            "Uploads and transcription jobs need the audio bucket (HEIMDALL_AUDIO_BUCKET), "
            "which this gateway does not have.",
            code="jobs_not_configured",
        )
    return bucket
