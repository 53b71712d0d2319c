"""schemathesis against the gateway's own OpenAPI document, over real HTTP: no generated request
may produce a 5xx, a status the document does not declare, or an undeclared content type.

`make test` runs a short, seeded pass; `make fuzz` a long one (HEIMDALL_FUZZ_EXAMPLES, random seed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from heimdall.api.app import create_app
from tests.support.servers import serve
from tests.support.upstreams import Upstreams

EXAMPLES = os.environ.get("HEIMDALL_FUZZ_EXAMPLES", "25")
SEED = os.environ.get("HEIMDALL_FUZZ_SEED", "20261123")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"


def run_schemathesis(base_url: str, *extra: str) -> str:
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{base_url}/openapi.json",
        "--checks", CHECKS, "--max-examples", EXAMPLES, "--request-timeout", "60", "--workers", "1",
        "--suppress-health-check", "all", "--warnings", "off", *extra,
    ]  # fmt: skip
    if SEED != "random":
        command += ["--seed", SEED]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-5000:]
    assert summary is not None and int(summary.group(1)) > 0
    return summary.group(0)


@pytest.mark.engine
def test_keyless_gateway_survives_schemathesis(gateway_url: str) -> None:
    run_schemathesis(gateway_url)


def test_gateway_with_every_provider_and_keys_survives_schemathesis(upstreams: Upstreams, fakes: Upstreams) -> None:
    key = "hk-fuzz-key-0123456789abcdef"
    config = upstreams.config(governance={"virtual_keys": [{"id": "fuzz", "value": key, "allowed_models": ["*"]}]})
    with serve(create_app(config)) as url:
        run_schemathesis(url, "--header", f"api-key:{key}")
