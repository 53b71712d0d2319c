"""moto's server in its own process, its DynamoDB writes atomic as the real service's are
(tests/support/aws.py): ``python -m benchmarks.moto_server PORT``."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moto.server import ThreadedMotoServer

from tests.support.aws import _atomic_conditional_writes

if __name__ == "__main__":
    _atomic_conditional_writes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()
