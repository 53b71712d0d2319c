"""Run every benchmark and print a table; results also go to .bench/results.json.

make bench                      # all
python -m benchmarks cold_start # one or more by name

Heimdall's own JSON log lines (one per request served in this process) go to .bench/heimdall.log,
never into the table: they are still written, so what they cost is still measured.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import IO

from benchmarks import measures

ROOT = Path(__file__).resolve().parent.parent


def send_logs_to(stream: IO[str]) -> None:
    from heimdall.observability import logger

    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def main(argv: list[str]) -> None:
    chosen = argv or list(measures.ALL)
    out = Path(os.environ.get("BENCH_RESULTS", ROOT / ".bench" / "results.json"))
    out.parent.mkdir(exist_ok=True)
    results = {}
    with (out.parent / "heimdall.log").open("a", encoding="utf-8") as log:
        send_logs_to(log)
        for name in chosen:
            print(f"== {name}", flush=True)
            results[name] = measures.ALL[name]()
            for key, value in results[name].items():
                print(f"   {key:<48} {value}")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
