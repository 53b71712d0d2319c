"""`make bench` prints a table a person can read: Heimdall's JSON log lines go to a file beside the
results, not into the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_table_holds_no_log_lines(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "memory"],  # serves requests in-process: each logs a JSON line
        cwd=REPO, env={**os.environ, "BENCH_RESULTS": str(results)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "== memory"
    assert not [line for line in lines if line.lstrip().startswith("{")]
    assert "Lambda handler: peak / audio size" in run.stdout
    assert json.loads(results.read_text())["memory"]
    logged = [json.loads(line) for line in (tmp_path / "heimdall.log").read_text().splitlines()]
    assert any(record["message"] == "request" for record in logged)
