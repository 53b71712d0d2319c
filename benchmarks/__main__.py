"""Run every benchmark and print a table; results also go to .bench/results.json.

make bench                      # all
python -m benchmarks cold_start # one or more by name
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import measures

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> None:
    chosen = argv or list(measures.ALL)
    results = {}
    for name in chosen:
        print(f"== {name}", flush=True)
        results[name] = measures.ALL[name]()
        for key, value in results[name].items():
            print(f"   {key:<40} {value}")
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
