"""Run an ASGI app under a real uvicorn server on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, *, timeout: float = 30.0, interval: float = 0.02, what: str = "condition") -> None:
    """Poll ``predicate`` until true; a bounded loop, never an open-ended sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Yield the base URL of ``app`` served by uvicorn on 127.0.0.1 (``options``: uvicorn.Config's). The
    app's lifespan runs as under ``make run`` (``lifespan="off"`` serves it as Lambda runs it: without)."""
    port = free_port()
    options = {"lifespan": "auto", **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
