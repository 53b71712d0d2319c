"""The audio bucket: presigned uploads, job manifests and statuses, and finished transcripts.

Layout (``HEIMDALL_AUDIO_BUCKET``):
  incoming/{job_id}/{filename}     uploads; an ObjectCreated event here starts a job
  jobs/{job_id}/manifest.json      the transcription parameters given with POST /v1/uploads
  jobs/{job_id}/status.json        queued | running | succeeded | failed (with the error envelope)
  transcripts/{job_id}.json        the canonical transcript, written once (a conditional put)
  transcripts/{job_id}.{format}    the requested rendering (srt, vtt, txt, json)
  staged/{request_id}/{filename}   large synchronous uploads, read from here by every retry and fallback
                                   (expired by the bucket's lifecycle rule)

boto3 is imported when the bucket is first used, and reaches AWS (or a local endpoint) through its own
``AWS_ENDPOINT_URL*`` variables.
"""

from __future__ import annotations

import io
import json
import threading
from typing import IO, Any

from heimdall.core.errors import NotFound
from heimdall.core.types import AudioInput

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


class S3Object(io.RawIOBase):
    """A seekable, read-only file over an S3 object, read with ranged GETs (wrap it in a
    BufferedReader): what a provider adapter or PyAV reads, without a local copy."""

    def __init__(self, bucket: AudioBucket, key: str, size: int) -> None:
        super().__init__()
        self.bucket, self.key, self.size, self.position = bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.size or len(buffer) == 0:
            return 0
        last = min(self.size, self.position + len(buffer)) - 1
        body = self.bucket.s3.get_object(Bucket=self.bucket.name, Key=self.key, Range=f"bytes={self.position}-{last}")
        data = body["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


class StagedAudio(io.BufferedReader):
    """The staged object, buffered 1 MiB at a time; ``len()`` is its whole size, as multipart
    encoders and ``requests`` ask of a file before streaming it."""

    def __init__(self, bucket: AudioBucket, key: str, size: int) -> None:
        super().__init__(S3Object(bucket, key, size), buffer_size=1024 * 1024)
        self.size = size

    def __len__(self) -> int:
        return self.size


def stage(bucket: AudioBucket, audio: AudioInput, request_id: str) -> AudioInput:
    """Copy the upload to ``staged/`` and hand back an AudioInput that reads it from there: every
    retry and fallback re-reads S3, and the local spooled copy is released now."""
    key = f"staged/{request_id}/{audio.filename}"
    bucket.s3.upload_fileobj(audio.rewind(), bucket.name, key, ExtraArgs={"ContentType": audio.content_type})
    audio.file.close()
    return AudioInput(StagedAudio(bucket, key, audio.size), audio.filename, audio.content_type, audio.size)
