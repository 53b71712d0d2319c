"""`make run` serves the gateway: `python -m heimdall` on 127.0.0.1:$PORT, with a usable snippet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, wait_until


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
