"""A fault-injecting HTTP proxy on 127.0.0.1 in front of moto's server, speaking DynamoDB's JSON
protocol: per operation, forward, answer an error without forwarding, or forward (the write is applied) and then
answer an error anyway — the answer DynamoDB applied but the client never saw."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# policy(operation, body, n) -> None (forward), or a dict:
#   {"error": (status, type)}           answer without forwarding
#   {"after": (status, type)}           forward (the write is applied), then answer an error anyway
#   {"delay": seconds}                  forward, then hold the answer
Policy = Callable[[str, dict[str, Any], int], dict[str, Any] | None]


@contextmanager
def fault_proxy(upstream: str, policy: Policy) -> Iterator[tuple[str, list[str]]]:
    target = urlsplit(upstream)
    seen: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            op = (self.headers.get("X-Amz-Target") or "").split(".")[-1]
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = {}
            with lock:
                seen.append(op)
                n = sum(1 for s in seen if s == op)
            action = policy(op, doc, n) or {}
            if "error" in action:
                return self._error(*action["error"])
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request("POST", self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if "after" in action:
                return self._error(*action["after"])
            if "delay" in action:
                time.sleep(action["delay"])
            try:
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(self, status: int, kind: str) -> None:
            data = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": "injected"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
