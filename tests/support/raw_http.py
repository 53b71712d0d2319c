"""HTTP over a bare socket, for what a well-behaved client library will not do: send a body that
never ends, stop sending half-way, or hold a connection open doing nothing. Every loop is bounded."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

CHUNK = 64 * 1024


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def read_reply(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the reply on ``sock`` (blocking or not)."""
    reply = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:
            break
        reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        if body.rstrip().endswith(b"}"):
            return int(head.split()[1]), json.loads(body)
    raise AssertionError(f"no complete reply: {reply[:300]!r}")


def _answered(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False


def send_until_answered(
    url: str, path: str, content_type: str, first: bytes, at_most: int = 256 * 1024 * 1024
) -> tuple[int, dict[str, Any], int]:
    """Stream a chunked body that starts with ``first`` and goes on (up to ``at_most`` bytes) until
    the server answers; returns the status, the JSON body, and how many bytes had been sent by then."""
    host, port = address(url)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        frame = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        sent, pending = 0, f"{len(first):x}\r\n".encode() + first + b"\r\n"
        while sent < at_most:
            pending = pending or frame
            try:
                written = sock.send(pending)
            except BlockingIOError:  # the server stopped reading: its answer is (or will be) there
                if _answered(sock):
                    break
                time.sleep(0.005)
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            pending, sent = pending[written:], sent + written
            if _answered(sock):  # answered while still reading: what was sent until now is what counts
                break
        sock.setblocking(True)
        status, body = read_reply(sock)
    return status, body, sent
