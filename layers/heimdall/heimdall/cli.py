"""``heimdall transcribe FILE``: transcribe a file through a Heimdall gateway, large or small.

Files that fit one request go to the transcription route; larger ones through ``/v1/uploads`` (a
presigned S3 POST) with a progress bar for the upload and for the job, then the result is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

DIRECT_LIMIT = 4 * 1024 * 1024  # API Gateway's 6 MB, less base64 and the form around the audio
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


class Progress:
    """A one-line text progress bar on stderr (no dependency, no terminal tricks beyond \\r)."""

    def __init__(self, label: str, total: int | None, stream: IO[str] = sys.stderr) -> None:
        self.label, self.total, self.stream, self.done = label, total, stream, 0
        self.interactive = stream.isatty()

    def update(self, done: int) -> None:
        self.done = done
        if self.total:
            filled = int(30 * done / self.total)
            text = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * done // self.total:3d}%"
        else:
            text = f"{self.label} {done}"
        if self.interactive:
            self.stream.write("\r" + text)
            self.stream.flush()

    def finish(self, message: str) -> None:
        if self.interactive:
            self.stream.write("\r" + " " * 60 + "\r")
        self.stream.write(f"{self.label} {message}\n")
        self.stream.flush()


def _headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _fail(response: Any) -> None:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    sys.exit(f"heimdall: {response.status_code}: {message}")


def transcribe_direct(args: argparse.Namespace, path: Path) -> bytes:
    import requests

    with path.open("rb") as audio:
        response = requests.post(
            f"{args.url}/v1/audio/transcriptions",
            headers=_headers(args.key),
            data={"model": args.model, "response_format": args.format},
            files={"file": (path.name, audio)},
            timeout=args.timeout,
        )
    if response.status_code != 200:
        _fail(response)
    return response.content


def transcribe_via_upload(args: argparse.Namespace, path: Path) -> bytes:
    import requests
    from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

    job = requests.post(
        f"{args.url}/v1/uploads",
        headers=_headers(args.key),
        json={"filename": path.name, "model": args.model, "response_format": args.format},
        timeout=60,
    )
    if job.status_code != 201:
        _fail(job)
    post = job.json()["upload"]
    size = path.stat().st_size
    progress = Progress("upload", size)
    with path.open("rb") as audio:
        encoder = MultipartEncoder(fields=[*post["fields"].items(), ("file", (path.name, audio))])
        monitor = MultipartEncoderMonitor(encoder, lambda m: progress.update(min(m.bytes_read, size)))
        uploaded = requests.post(
            post["url"], data=monitor, headers={"Content-Type": monitor.content_type}, timeout=(30, args.timeout)
        )
    if uploaded.status_code not in (200, 201, 204):
        sys.exit(f"heimdall: the upload was refused ({uploaded.status_code}): {uploaded.text[:300]}")
    progress.finish(f"done ({size / 1e6:.1f} MB)")

    job_id = job.json()["job_id"]
    waiting = Progress("transcription", None)
    started = time.monotonic()
    while True:
        status = requests.get(f"{args.url}/v1/transcriptions/{job_id}", headers=_headers(args.key), timeout=60)
        if status.status_code != 200:
            _fail(status)
        state = status.json()["status"]
        waiting.update(int(time.monotonic() - started))
        if state == "succeeded":
            waiting.finish(f"done in {time.monotonic() - started:.0f} s")
            break
        if state == "failed":
            waiting.finish("failed")
            sys.exit(f"heimdall: the job failed: {status.json()['error']['error']['message']}")
        if time.monotonic() - started > args.timeout:
            sys.exit(f"heimdall: job {job_id} is still {state} after {args.timeout} s; ask again later")
        time.sleep(args.poll)  # the job runs elsewhere; asking once every few seconds is the protocol
    result = requests.get(
        f"{args.url}/v1/transcriptions/{job_id}", params={"response_format": args.format},
        headers=_headers(args.key), timeout=60,
    )  # fmt: skip
    if result.status_code != 200:
        _fail(result)
    return result.content


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="heimdall", description="Heimdall speech-to-text gateway client")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("transcribe", help="transcribe an audio file")
    command.add_argument("file", type=Path)
    command.add_argument("--model", default="whisper-1", help="alias or provider/model (default whisper-1)")
    command.add_argument("--format", default="text", choices=FORMATS, help="response format (default text)")
    command.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    command.add_argument("--url", default=os.environ.get("HEIMDALL_URL", "http://127.0.0.1:8080"))
    command.add_argument("--key", default=os.environ.get("HEIMDALL_KEY"), help="gateway key (or HEIMDALL_KEY)")
    command.add_argument("--timeout", type=float, default=3600, help="seconds to wait in all")
    command.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    if not args.file.is_file():
        sys.exit(f"heimdall: no such file: {args.file}")
    direct = args.file.stat().st_size <= DIRECT_LIMIT
    body = transcribe_direct(args, args.file) if direct else transcribe_via_upload(args, args.file)
    if args.output:
        args.output.write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
