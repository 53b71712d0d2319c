"""`heimdall transcribe` as a user runs it (the installed command, its output captured or on a pty):
it asks the gateway what it accepts and chooses one request or an upload, shows the job's real
progress, and reports every failure as one clean line with a documented exit code."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from heimdall.api.app import create_app
from heimdall.config import parse_config
from tests.fakes.base import SPOKEN
from tests.support.servers import free_port, serve
from tests.support.speech import FILES, wav_bytes
from tests.support.upstreams import Upstreams

HEIMDALL = str(Path(sys.executable).parent / "heimdall")
KEY = "hk-cli-test-key-0123456789"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEIMDALL, "transcribe", *args, "--poll", "0.01"],
        env={k: v for k, v in os.environ.items() if k not in ("HEIMDALL_URL", "HEIMDALL_KEY")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_on_a_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """The command with its stderr on a pseudo-terminal, as in a shell: progress is drawn with \\r."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [HEIMDALL, "transcribe", *args, "--poll", "0.01"], stdout=subprocess.DEVNULL, stderr=terminal
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other side closed: the command has exited
                break
            if not chunk:
                break
            seen += chunk
    os.close(controller)
    return process.wait(timeout=10), seen.decode().replace("\r\n", "\n")


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert lines[-1].startswith("heimdall: ")
    return lines[-1]


# ---- a scripted gateway: its /health, its job statuses and its upload URL are set by each test ----


@dataclass
class Script:
    health: dict[str, Any] = field(default_factory=lambda: {"max_direct_bytes": 1024, "uploads": True})
    statuses: list[dict[str, Any]] = field(default_factory=list)
    refusal: Response | None = None
    upload_headers: list[dict[str, str]] = field(default_factory=list)
    gateway_headers: list[dict[str, str]] = field(default_factory=list)
    polls: int = 0


@contextmanager
def scripted_gateway(script: Script) -> Iterator[str]:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", **script.health})

    async def transcriptions(request: Request) -> Response:
        script.gateway_headers.append(dict(request.headers))
        await request.body()
        return script.refusal or PlainTextResponse(SPOKEN)

    async def uploads(request: Request) -> Response:
        script.gateway_headers.append(dict(request.headers))
        upload = {
            "url": f"{str(request.base_url).rstrip('/')}/bucket",
            "fields": {"key": "incoming/job-1/a.wav", "policy": "p"},
        }
        return script.refusal or JSONResponse(
            {"job_id": "job-1", "status": "queued", "upload": upload}, status_code=201
        )

    async def bucket(request: Request) -> Response:
        script.upload_headers.append(dict(request.headers))
        await request.body()
        return Response(status_code=204)

    async def job(request: Request) -> Response:
        script.gateway_headers.append(dict(request.headers))
        if request.query_params.get("response_format"):
            return PlainTextResponse(SPOKEN)
        status = script.statuses[min(script.polls, len(script.statuses) - 1)]
        script.polls += 1
        return JSONResponse({"job_id": "job-1", **status})

    app = Starlette(routes=[
        Route("/health", health), Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/uploads", uploads, methods=["POST"]), Route("/bucket", bucket, methods=["POST"]),
        Route("/v1/transcriptions/job-1", job),
    ])  # fmt: skip
    with serve(app) as url:
        yield url


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(48_000))
    return path


# ---- errors: one line, an exit code ----


def test_nothing_listening_is_one_line_and_exit_3(audio: Path) -> None:
    result = run_cli(str(audio), "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "Connection refused" in line
    assert "HEIMDALL_URL" in line
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_gateways_error_envelope_is_one_line_and_exit_1(provider_gateway: str, fakes: Upstreams) -> None:
    result = run_cli(str(FILES["fox"]), "--url", provider_gateway, "--model", "nowhere/model")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith("heimdall: 404 model_not_found: ")
    assert "'nowhere" in line  # the gateway's own message, relayed
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        (JSONResponse({"message": "Request Too Long"}, status_code=413), "heimdall: 413: Request Too Long"),
        (Response("<html><body>Bad Gateway</body></html>", 502, media_type="text/html"), "heimdall: 502: <html>"),
        (PlainTextResponse("no\x1b[2J\x07 escape", 500), "heimdall: 500: no [2J  escape"),
    ],
    ids=["api-gateway-413", "html-page", "terminal-escapes"],
)
def test_any_http_error_is_one_clean_line(audio: Path, refusal: Response, expected: str) -> None:
    with scripted_gateway(Script(health={"max_direct_bytes": 10_000_000, "uploads": False}, refusal=refusal)) as url:
        result = run_cli(str(audio), "--url", url)
    assert result.returncode == 1
    assert one_error_line(result.stderr).startswith(expected)
    assert "\x1b" not in result.stderr


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "absent.wav"))
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"heimdall: no such file: {tmp_path / 'absent.wav'}"


def test_help_documents_the_url_its_default_and_the_exit_codes() -> None:
    help_text = subprocess.run([HEIMDALL, "transcribe", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "$HEIMDALL_URL, else http://127.0.0.1:8080" in " ".join(help_text.split())
    assert "$HEIMDALL_KEY" in help_text
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n  {code}" in help_text


# ---- one request or an upload: the gateway says ----


def test_a_large_file_goes_in_one_request_when_the_gateway_takes_it(
    provider_gateway: str, fakes: Upstreams, tmp_path: Path
) -> None:
    """A laptop gateway takes 25 MB in one request and has no bucket: a 5 MB file is sent directly."""
    path = tmp_path / "five.wav"
    path.write_bytes(wav_bytes(5 * 1024 * 1024))
    result = run_cli(str(path), "--url", provider_gateway, "--model", "openai/whisper-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == SPOKEN
    (request,) = fakes.fakes["openai"].requests
    assert request.file is not None and request.file["filename"] == "five.wav"


def test_too_large_for_one_request_and_no_uploads_says_what_to_change(tmp_path: Path) -> None:
    path = tmp_path / "two.wav"
    path.write_bytes(wav_bytes(2 * 1024 * 1024))
    with serve(create_app(parse_config({"client_config": {"max_request_body_size_mb": 1}}))) as gateway:
        result = run_cli(str(path), "--url", gateway)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "takes at most 1.0 MB in one request" in line
    assert "HEIMDALL_AUDIO_BUCKET" in line


def test_the_upload_path_shows_the_jobs_pieces_and_never_sends_the_key_to_the_upload_url(audio: Path) -> None:
    script = Script(statuses=[
        {"status": "queued"}, {"status": "running"},
        {"status": "running", "pieces_done": 0, "pieces_total": 3},
        {"status": "running", "pieces_done": 1, "pieces_total": 3},
        {"status": "running", "pieces_done": 3, "pieces_total": 3},
        {"status": "succeeded", "pieces_done": 3, "pieces_total": 3},
    ])  # fmt: skip
    with scripted_gateway(script) as url:
        result = run_cli(str(audio), "--url", url, "--key", KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout == SPOKEN
    lines = result.stderr.splitlines()
    assert lines[:2] == ["upload: 0.0 MB", "upload: done (0.0 MB)"]
    assert lines[2:-1] == [
        "transcription: queued",
        "transcription: running",
        "transcription: running [........................] 0/3 pieces",
        "transcription: running [########................] 1/3 pieces",
        "transcription: running [########################] 3/3 pieces",
    ]
    assert lines[-1].startswith("transcription: done in ")
    assert all(h.get("authorization") == f"Bearer {KEY}" for h in script.gateway_headers)
    assert script.upload_headers and all("authorization" not in h for h in script.upload_headers)


def test_on_a_terminal_progress_is_drawn_in_place_and_a_timeout_starts_its_own_line(audio: Path) -> None:
    script = Script(statuses=[{"status": "running", "pieces_done": 2, "pieces_total": 9}])
    with scripted_gateway(script) as url:
        code, screen = run_cli_on_a_terminal(str(audio), "--url", url, "--timeout", "0.3")
    assert code == 4
    assert "\rtranscription: running [#####...................] 2/9 pieces" in screen
    lines = screen.split("\n")
    assert lines[-2].startswith("heimdall: job job-1 is still running [")  # on a line of its own
    assert "2/9 pieces after 0.3 s; ask again later: GET " in lines[-2]
    assert lines[-1] == ""


def test_a_failed_job_is_its_message_and_exit_1(audio: Path) -> None:
    failed = {"status": "failed", "error": {"error": {"message": "The audio could not be decoded."}}}
    with scripted_gateway(Script(statuses=[{"status": "queued"}, failed])) as url:
        result = run_cli(str(audio), "--url", url)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2] == "transcription: failed"
    assert one_error_line(result.stderr) == "heimdall: the job failed: The audio could not be decoded."


def test_an_older_gateway_that_does_not_say_keeps_the_4_mb_rule(tmp_path: Path) -> None:
    path = tmp_path / "small.wav"
    path.write_bytes(wav_bytes(200_000))
    script = Script(health={})
    with scripted_gateway(script) as url:
        result = run_cli(str(path), "--url", url)
    assert result.returncode == 0, result.stderr
    assert script.polls == 0  # sent in one request


def test_on_a_terminal_the_bar_carries_the_jobs_estimate_of_the_time_left(audio: Path) -> None:
    script = Script(statuses=[{"status": "running", "pieces_done": 3, "pieces_total": 12, "eta_seconds": 80}])
    with scripted_gateway(script) as url:
        code, screen = run_cli_on_a_terminal(str(audio), "--url", url, "--timeout", "0.3")
    assert code == 4
    assert "\rtranscription: running [######..................] 3/12 pieces  ~1m20s left · " in screen
