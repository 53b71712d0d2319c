"""The audio bucket: presigned uploads and finished transcripts (a job's status is in the job table).

Layout (``HEIMDALL_AUDIO_BUCKET``):
  incoming/{job_id}/{filename}            uploads; an ObjectCreated event here starts a job
  transcripts/{job_id}/{etag}.json        the canonical transcript of exactly that upload, written once
  transcripts/{job_id}/{etag}.{format}    the requested rendering (srt, vtt, txt)
  pieces/{job_id}/{etag}/{index}.wav      a piece of a long upload, cut for the piece function
  pieces/{job_id}/{etag}/{index}.json     that piece's transcript, written once
  pieces/{job_id}/{etag}/{index}.error.json  the last error a piece's attempt met (for its job's failure)

boto3 is imported when the bucket is first used, and reaches AWS (or a local endpoint) through its own
``AWS_ENDPOINT_URL*`` variables.
"""

from __future__ import annotations

import json
from typing import IO, Any

from heimdall.aws_clients import LazyClient

INCOMING = "incoming/"


class ObjectReplaced(Exception):
    """The key no longer holds the object version a job was started for."""


class AudioBucket:
    def __init__(self, name: str) -> None:
        self.name = name
        self._s3 = LazyClient("s3", signature_version="s3v4")

    @property
    def s3(self) -> Any:
        return self._s3()

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

    def download(self, key: str, etag: str, into: IO[bytes]) -> int:
        """Stream exactly the object version ``etag`` into a file (spooled to /tmp past 1 MB), in order;
        returns its size, the object's own ContentLength, checked against the bytes written.
        Raises ObjectReplaced when the key now holds other bytes."""
        try:
            response = self.s3.get_object(Bucket=self.name, Key=key, IfMatch=f'"{etag}"')
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "NoSuchKey"):
                raise ObjectReplaced(key) from None
            raise
        size = int(response["ContentLength"])
        written = 0
        for chunk in response["Body"].iter_chunks(1024 * 1024):
            into.write(chunk)
            written += len(chunk)
        if written != size:
            raise OSError(f"s3://{self.name}/{key}: read {written} of {size} bytes")
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

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type)

    def read_into(self, key: str, into: IO[bytes]) -> int:
        """Stream an object Heimdall wrote itself into a file; returns its size."""
        response = self.s3.get_object(Bucket=self.name, Key=key)
        size = 0
        for chunk in response["Body"].iter_chunks(1024 * 1024):
            into.write(chunk)
            size += len(chunk)
        into.seek(0)
        return size

    def get_json(self, key: str) -> Any | None:
        try:
            body = self.s3.get_object(Bucket=self.name, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)


def transcript_key(job_id: str, etag: str, extension: str = "json") -> str:
    return f"transcripts/{job_id}/{etag}.{extension}"


def piece_key(job_id: str, etag: str, index: int, extension: str) -> str:
    return f"pieces/{job_id}/{etag}/{index:05d}.{extension}"
