"""``heimdall transcribe FILE``: transcribe a file through a Heimdall gateway, large or small.

The gateway's ``/health`` says what it accepts: a file that fits one request goes to the
transcription route; a larger one through ``/v1/uploads`` (a presigned S3 POST) when the gateway
has an audio bucket, with progress for the upload and for the job (pieces done of total once the
job knows them). Every failure is one line on stderr and a documented exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

DEFAULT_URL = "http://127.0.0.1:8080"
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
# A gateway too old to say what it takes: API Gateway's 6 MB, less base64 and the form around the audio.
DIRECT_LIMIT = 4 * 1024 * 1024
FORM_OVERHEAD = 64 * 1024  # the multipart fields and boundaries around the audio, kept under the limit

OK, FAILED, USAGE, UNREACHABLE, TIMED_OUT, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = f"""exit codes:
  {OK}    the transcript was written
  {FAILED}    the gateway refused the request, or the job failed (its message is printed)
  {USAGE}    bad arguments, or a file that cannot be read or written
  {UNREACHABLE}    the gateway (or the upload URL it handed out) could not be reached
  {TIMED_OUT}    the job was still running after --timeout seconds
  {INTERRUPTED}  interrupted (Ctrl-C)
"""


class CliError(Exception):
    """A failure to report as one line, with its exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def _printable(text: str, limit: int = 300) -> str:
    """Text from the network, safe for a terminal: one line, no control characters."""
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()[:limit]


class Progress:
    """One status line on stderr: rewritten in place on a terminal, else printed when it changes."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.shown = ""  # what the line says now (non-interactive: the last line printed)
        self.width = 0

    def show(self, text: str, *, transient: str = "") -> None:
        """``transient`` (a percentage, elapsed seconds) is drawn on a terminal but never makes a new line."""
        line = f"{self.label}: {text}"
        if self.interactive:
            drawn = f"{line}  {transient}" if transient else line
            self.stream.write("\r" + drawn.ljust(self.width))
            self.width = max(self.width, len(drawn))
        elif line != self.shown:
            self.stream.write(line + "\n")
        self.shown = line
        self.stream.flush()

    def close(self, text: str | None = None) -> None:
        """End the line (with ``text`` as its last word), so whatever is printed next starts clean."""
        if text is not None:
            self.show(text)
        if self.interactive and self.width:
            self.stream.write("\n")
            self.width = 0
        self.stream.flush()


def bar(done: float, total: float, width: int = 24) -> str:
    filled = int(width * min(done / total, 1.0)) if total else 0
    return f"[{'#' * filled}{'.' * (width - filled)}]"


def describe_job(status: dict[str, Any]) -> str:
    """The job's state in words, with pieces done of total when the gateway reports them."""
    state = str(status.get("status", "unknown"))
    done, total = status.get("pieces_done"), status.get("pieces_total")
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        return f"{state} {bar(done, total)} {done}/{total} pieces"
    if isinstance(done, int) and done > 0:
        return f"{state}, {done} pieces done"
    return state


def time_left(status: dict[str, Any]) -> list[str]:
    """``~1m20s left`` when the status estimates it (drawn on a terminal only: it changes every poll)."""
    eta = status.get("eta_seconds")
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 0:
        return []
    minutes, seconds = divmod(eta, 60)
    return [f"~{minutes}m{seconds:02d}s left" if minutes else f"~{seconds}s left"]


class Gateway:
    """The few calls the CLI makes, each failure turned into a one-line ``CliError``."""

    def __init__(self, url: str, key: str | None, timeout: float) -> None:
        import requests

        self.url, self.key, self.timeout = url, key, timeout
        self.session = requests.Session()

    def call(
        self, method: str, url: str, *, expect: tuple[int, ...] = (200,), to_gateway: bool = True, **kwargs: Any
    ) -> Any:
        """``to_gateway=False`` for the upload URL the gateway hands out: it never gets the gateway key."""
        import requests

        kwargs.setdefault("timeout", (10, self.timeout))
        if self.key and to_gateway:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {self.key}"}
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout:
            raise CliError(f"{_where(url)} did not answer in time (--timeout {self.timeout:g})", UNREACHABLE) from None
        except requests.ConnectionError as exc:
            hint = " Is the gateway running? (make run, or --url / HEIMDALL_URL)" if to_gateway else ""
            raise CliError(f"cannot reach {_where(url)}: {_reason(exc)}.{hint}", UNREACHABLE) from None
        except requests.RequestException as exc:
            raise CliError(f"request to {_where(url)} failed: {_printable(str(exc))}", UNREACHABLE) from None
        if response.status_code not in expect:
            raise CliError(_refusal(response))
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """A call whose answer must be a JSON object; anything else is reported, never a traceback."""
        response = self.call(method, url, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CliError(
                f"{_where(url)} answered {response.status_code} without a JSON object: is it a Heimdall gateway?"
            )
        return body

    def accepts(self) -> tuple[int, bool]:
        """(largest file one request takes, whether uploads work), as the gateway's /health says."""
        health = self.json("GET", f"{self.url}/health")
        max_direct = health.get("max_direct_bytes")
        if not isinstance(max_direct, int):
            return DIRECT_LIMIT, True  # an older gateway: what it always took
        return max_direct, bool(health.get("uploads"))


def _where(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: BaseException) -> str:
    """The innermost cause in words (``Connection refused``), not urllib3's nested repr."""
    seen: BaseException | None = exc
    reason = ""
    for _ in range(20):  # a chain of causes is short; never follow a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        nested = [a for a in seen.args if isinstance(a, BaseException)]
        seen = nested[0] if nested else (seen.__cause__ or seen.__context__)
    if not reason:
        text = str(exc)
        reason = text.rsplit(": ", 1)[-1].rstrip("')") if ": " in text else text
    return _printable(reason, 120)


def _refusal(response: Any) -> str:
    """The gateway's error envelope (or API Gateway's, or any body) as one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = f" {error['code']}" if error.get("code") else ""
        return f"{response.status_code}{code}: {_printable(str(error.get('message', '')))}"
    if isinstance(body, dict) and "message" in body:  # API Gateway's own errors: {"message": "Request Too Long"}
        return f"{response.status_code}: {_printable(str(body['message']))}"
    first_line = response.text.strip().splitlines()[0] if response.text.strip() else response.reason
    return f"{response.status_code}: {_printable(str(first_line))}"


def transcribe_direct(gateway: Gateway, args: argparse.Namespace, path: Path) -> bytes:
    with path.open("rb") as audio:
        response = gateway.call(
            "POST",
            f"{gateway.url}/v1/audio/transcriptions",
            data={"model": args.model, "response_format": args.format},
            files={"file": (path.name, audio)},
        )
    content: bytes = response.content
    return content


def transcribe_via_upload(gateway: Gateway, args: argparse.Namespace, path: Path) -> bytes:
    from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

    job = gateway.json(
        "POST",
        f"{gateway.url}/v1/uploads",
        json={"filename": path.name, "model": args.model, "response_format": args.format},
        expect=(201,),
    )
    post, job_id = job.get("upload"), job.get("job_id")
    if not isinstance(post, dict) or not isinstance(post.get("fields"), dict) or not isinstance(job_id, str):
        raise CliError(f"{gateway.url}/v1/uploads answered without an upload to make")
    size = path.stat().st_size
    upload = Progress("upload")
    with path.open("rb") as audio:
        encoder = MultipartEncoder(fields=[*post["fields"].items(), ("file", (path.name, audio))])

        def sent(monitor: MultipartEncoderMonitor) -> None:
            done = min(monitor.bytes_read, size)
            upload.show(f"{size / 1e6:.1f} MB", transient=f"{bar(done, size)} {100 * done // max(size, 1)}%")

        monitor = MultipartEncoderMonitor(encoder, sent)
        try:
            gateway.call("POST", str(post.get("url")), data=monitor, headers={"Content-Type": monitor.content_type},
                         expect=(200, 201, 204), to_gateway=False)  # fmt: skip
        except BaseException:
            upload.close()
            raise
    upload.close(f"done ({size / 1e6:.1f} MB)")

    status_url = f"{gateway.url}/v1/transcriptions/{job_id}"
    waiting = Progress("transcription")
    started = time.monotonic()
    try:
        while True:
            status = gateway.json("GET", status_url)
            elapsed = time.monotonic() - started
            state = status.get("status")
            if state == "succeeded":
                waiting.close(f"done in {elapsed:.0f} s")
                break
            if state == "failed":
                waiting.close("failed")
                error = (status.get("error") or {}).get("error") or {}
                raise CliError(f"the job failed: {_printable(str(error.get('message', 'no reason given')))}")
            waiting.show(describe_job(status), transient=" · ".join([*time_left(status), f"{elapsed:.0f} s"]))
            if elapsed > args.timeout:
                waiting.close()
                raise CliError(
                    f"job {job_id} is still {describe_job(status)} after {args.timeout:g} s; "
                    f"ask again later: GET {status_url}",
                    TIMED_OUT,
                )
            time.sleep(args.poll)  # the job runs elsewhere; asking every few seconds is the protocol
    finally:
        waiting.close()
    result = gateway.call("GET", status_url, params={"response_format": args.format})
    content: bytes = result.content
    return content


def transcribe(args: argparse.Namespace) -> bytes:
    path: Path = args.file
    if not path.is_file():
        raise CliError(f"no such file: {path}", USAGE)
    gateway = Gateway(args.url, args.key, args.timeout)
    max_direct, uploads = gateway.accepts()
    size = path.stat().st_size
    if size + FORM_OVERHEAD <= max_direct:
        return transcribe_direct(gateway, args, path)
    if uploads:
        return transcribe_via_upload(gateway, args, path)
    raise CliError(
        f"{path.name} is {size / 1e6:.1f} MB; the gateway at {args.url} takes at most "
        f"{(max_direct - FORM_OVERHEAD) / 1e6:.1f} MB in one request and has no audio bucket for uploads "
        "(set HEIMDALL_AUDIO_BUCKET and HEIMDALL_JOB_TABLE where it runs, or raise "
        "client_config.max_request_body_size_mb)"
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="heimdall", description="Heimdall speech-to-text gateway client")
    commands = root.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "transcribe",
        help="transcribe an audio file",
        description="Transcribe FILE through a Heimdall gateway: in one request when it fits, else through "
        "an upload and a job (the gateway's /health says which it takes).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("file", type=Path, help="the audio file")
    command.add_argument("--model", default="whisper-1", help="alias or provider/model (default: whisper-1)")
    command.add_argument("--format", default="text", choices=FORMATS, help="response format (default: text)")
    command.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    command.add_argument(
        "--url", default=None, help=f"the gateway's base URL (default: $HEIMDALL_URL, else {DEFAULT_URL})"
    )
    command.add_argument("--key", default=None, help="gateway key (default: $HEIMDALL_KEY)")
    command.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for one request, and for a job in all "
        "(default: 3600)"
    )  # fmt: skip
    command.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.url = (args.url or os.environ.get("HEIMDALL_URL") or DEFAULT_URL).rstrip("/")
    args.key = args.key or os.environ.get("HEIMDALL_KEY")
    try:
        body = transcribe(args)
        if args.output:
            try:
                args.output.write_bytes(body)
            except OSError as exc:
                raise CliError(f"cannot write {args.output}: {exc.strerror}", USAGE) from None
        else:
            sys.stdout.buffer.write(body)
            sys.stdout.flush()
    except CliError as exc:
        print(f"heimdall: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        print("heimdall: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)


if __name__ == "__main__":
    main()
