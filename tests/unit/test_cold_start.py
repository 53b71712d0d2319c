"""The API handler's import is Lambda's cold start: what it does not need to build the app is imported
where it is first used (docs/performance.md, "Cold start")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Each is imported by the first call that needs it, never while the handler is built.
NOT_AT_START = [
    "boto3",  # AWS clients: built on first use (aws_clients.LazyClient)
    "urllib3",  # the upstream HTTP client: with the first provider call
    "httpx",
    "requests",
    "faster_whisper",  # the embedded engine and what it runs on: with the first local transcription
    "ctranslate2",
    "av",
    "numpy",
    "sqlite3",  # the local governance store: only with gateway keys under make run
    "heimdall.governance.dynamodb_store",  # only when gateway keys are configured
    "heimdall.governance.cache",  # only with the semantic_cache plugin
    "heimdall.api.schemas",  # the OpenAPI component schemas: on the first /openapi.json
    "heimdall.jobs",  # jobs: with the first POST /v1/uploads or job status
    "heimdall.governance.jobs",
    "heimdall.job_table",  # and the job table only where HEIMDALL_JOB_TABLE names one
]


def test_building_the_lambda_handler_imports_nothing_it_does_not_need() -> None:
    code = (
        "import importlib.util, json, sys; "
        "spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py'); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "AWS_LAMBDA"))}
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout.splitlines()[-1]))
    assert not [name for name in NOT_AT_START if name in loaded]
