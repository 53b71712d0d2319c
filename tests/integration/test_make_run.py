"""`make run` serves the gateway: `python -m heimdall` on 127.0.0.1:$PORT, with a snippet that works
as printed for the config in force; from `make run`'s own install; stopped quietly by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
import pytest

from tests.fakes.base import SPOKEN
from tests.support.aws import moto_endpoint
from tests.support.run_deps import run_deps_only
from tests.support.servers import free_port, wait_until
from tests.support.upstreams import Upstreams

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def running_gateway(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "heimdall"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def make_run(env: dict[str, str], output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real ``make run`` (its install step taken as done), in its own process group as a shell
    runs it, writing what the user would see to ``output``."""
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.run-deps", "run", f"PY={sys.executable}"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_serves_on_loopback_and_prints_a_snippet() -> None:
    port = free_port()
    with running_gateway({"PORT": str(port)}) as process:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/health") or process.poll() is not None, what="health")
        assert process.poll() is None
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["default_model"] == "local/tiny.en"
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/openai/openai/deployments/whisper-1/audio/transcriptions" in output
    assert "AzureOpenAI(" in output
    assert f"http://127.0.0.1:{port}/playground" in output
    assert output.count("auth is off") == 1


def test_refuses_a_public_address_without_gateway_keys() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "heimdall"],
        env={**os.environ, "PORT": str(free_port()), "HEIMDALL_HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "without gateway keys" in result.stderr


def test_honours_heimdall_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"deployments": {"transcriber": ["local/tiny.en"]}}))
    port = free_port()
    with running_gateway({"PORT": str(port), "HEIMDALL_CONFIG": str(config)}) as process:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/health") or process.poll() is not None, what="health")
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["deployments"] == {"transcriber": ["local/tiny.en"]}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ('{"deployments": {"x": ["nowhere/model"]}}', "config deployments"),
        ('{"providers": {"openai": {"keys": [{"value": "env.HEIMDALL_TEST_UNSET_KEY"}]}}}', "HEIMDALL_TEST_UNSET_KEY"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_config_stops_start_up_with_a_clear_message(tmp_path: Path, document: str, expected: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(document)
    result = subprocess.run(
        [sys.executable, "-m", "heimdall"],
        env={**os.environ, "PORT": str(free_port()), "HEIMDALL_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_make_run_quietly(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "terminal.txt"
    with make_run({"PORT": str(port)}, output) as process:
        wait_until(lambda: "Try it with curl" in output.read_text(), what="the start-up snippet")
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: SIGINT to the whole group
        process.wait(timeout=15)
    printed = output.read_text()
    assert "Traceback" not in printed
    assert "KeyboardInterrupt" not in printed
    assert "make: ***" not in printed
    assert printed.rstrip().endswith('print(client.audio.transcriptions.create(model="whisper-1", file=audio).text)')


def _printed_snippet(output: Path) -> tuple[str, str]:
    """The curl command and the Python program exactly as the banner prints them."""
    text = output.read_text()
    curl = text.split("Try it with curl:\n", 1)[1].split("\n\n", 1)[0]
    program = text.split("(pip install openai):\n", 1)[1].split("\n\n", 1)[0]
    return curl, textwrap.dedent(program)


def test_the_printed_snippet_works_as_printed_with_the_config_in_force(tmp_path: Path, upstreams: Upstreams) -> None:
    """With aliases and gateway keys, the snippet names a configured model and the key's variable."""
    upstreams.reset()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "providers": {"openai": {"keys": [{"value": "env.HEIMDALL_TEST_OPENAI_KEY", "models": ["whisper-1"]}],
                                 "network_config": {"base_url": upstreams.urls["openai"]}}},
        "deployments": {"transcriber": ["openai/whisper-1"]},
        "governance": {"virtual_keys": [{"id": "team", "value": "env.HEIMDALL_TEST_TEAM_KEY",
                                         "allowed_models": ["transcriber"]}]},
    }))  # fmt: skip
    env = {"HEIMDALL_TEST_OPENAI_KEY": upstreams.keys["openai"], "HEIMDALL_TEST_TEAM_KEY": "hk-team-0123456789abcdef"}
    port = free_port()
    output = tmp_path / "terminal.txt"
    with make_run({"PORT": str(port), "HEIMDALL_CONFIG": str(config), **env}, output):
        wait_until(lambda: "(pip install openai)" in output.read_text(), what="the start-up snippet")
        curl, program = _printed_snippet(output)
        assert "deployments/transcriber/" in curl
        assert "hk-team-0123456789abcdef" not in output.read_text()  # the variable is named, never the key
        shell = {**os.environ, **env}
        answer = subprocess.run(["bash", "-c", curl], cwd=REPO, env=shell, capture_output=True, text=True, timeout=60)
        assert json.loads(answer.stdout)["text"] == SPOKEN, answer.stdout
        run = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=shell, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert run.stdout.strip() == SPOKEN, run.stderr
    assert len(upstreams.fakes["openai"].requests) == 2


def test_make_run_reads_an_ssm_config_and_serves_uploads_from_its_own_install(tmp_path: Path) -> None:
    """Only the packages ``make run`` installs can be imported; the config comes from SSM and the
    audio bucket and job table from S3 and DynamoDB, all moto's server on loopback."""
    with moto_endpoint() as endpoint:
        document = {"deployments": {"meetings": ["local/tiny.en"]}}
        boto3.client("ssm").put_parameter(Name="/heimdall/run", Value=json.dumps(document), Type="SecureString")
        boto3.client("s3").create_bucket(Bucket="heimdall-run-audio")
        boto3.client("dynamodb").create_table(
            TableName="heimdall-run-jobs",
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        blocker = tmp_path / "run-deps"
        blocker.mkdir()
        port = free_port()
        output = tmp_path / "terminal.txt"
        env = {"PORT": str(port), "PYTHONPATH": run_deps_only(blocker), "HEIMDALL_CONFIG": "ssm:/heimdall/run",
               "HEIMDALL_AUDIO_BUCKET": "heimdall-run-audio", "HEIMDALL_JOB_TABLE": "heimdall-run-jobs",
               "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
        with make_run(env, output) as process:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(f"{base}/health") or process.poll() is not None, what="health")
            assert process.poll() is None, output.read_text()
            assert httpx.get(f"{base}/health").json()["deployments"] == document["deployments"]
            job = httpx.post(f"{base}/v1/uploads", json={"filename": "standup.flac", "model": "meetings"}, timeout=30)
            assert job.status_code == 201, job.text
            status = httpx.get(f"{base}{job.json()['status_url']}", timeout=30)
            assert status.json()["status"] == "queued"
            assert httpx.get(f"{base}/docs/assets/swagger-ui-bundle.js", timeout=30).status_code == 200
        assert "Traceback" not in output.read_text()


def test_a_taken_port_is_one_line_naming_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "heimdall"], env={**os.environ, "PORT": str(port)},
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"heimdall: port {port} on 127.0.0.1 is in use (another make run?); try PORT={port + 1} make run"
    )
    assert "Traceback" not in result.stderr
