"""A provider on a bare socket, for answers the ASGI fakes cannot produce (headers of any size or shape,
a status line and body written byte by byte, a connection cut anywhere): each connection's requests
are read (headers, then the body by its Content-Length) and answered by a script of raw writes."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# A script: called with the connected socket and the request's number on that connection (0, 1, ...),
# after the request was read (or, with read_body=False, after its headers were); returns whether to
# keep the connection for a next request.
Script = Callable[[socket.socket, int], bool]

OK_BODY = b'{"text": "hello there"}'


def ok(extra_headers: bytes = b"", body: bytes = OK_BODY, status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra_headers
        + b"\r\n"
        + body
    )


def _read_request(conn: socket.socket, pending: bytes, read_body: bool) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in pending:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if not read_body:
        return head, b""
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return head, rest[length:]


class RawUpstream:
    def __init__(self, script: Script, *, read_body: bool = True) -> None:
        self.script = script
        self.read_body = read_body
        self.requests = 0
        self.connections = 0
        self.heads: list[bytes] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        number = 0
        try:
            while True:  # bounded by the client: a connection ends when it closes or the script says so
                got = _read_request(conn, pending, self.read_body)
                if got is None:
                    return
                head, pending = got
                self.heads.append(head)
                self.requests += 1
                if not self.script(conn, number):
                    return
                number += 1
        except OSError:
            return
        finally:
            with suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._closed = True
        self._sock.close()


@contextmanager
def raw_upstream(script: Script, **options: Any) -> Iterator[RawUpstream]:
    upstream = RawUpstream(script, **options)
    try:
        yield upstream
    finally:
        upstream.close()


def config_for(url: str, **network: Any) -> Any:
    """A gateway whose only provider is openai-compatible at ``url`` (no key, no proxy)."""
    from heimdall.config import parse_config

    return parse_config(
        {
            "providers": {
                "openai-compatible": {
                    "network_config": {
                        "default_request_timeout_in_seconds": 1.0,
                        "max_retries": 0,
                        "retry_backoff_initial": 10,
                        "retry_backoff_max": 2000,
                        **network,
                        "base_url": url,
                    }
                }
            }
        }
    )


def once(data: bytes, keep: bool = False) -> Script:
    def script(conn: socket.socket, number: int) -> bool:
        conn.sendall(data)
        return keep

    return script


def sleep_then(*parts: tuple[float, bytes]) -> Script:
    def script(conn: socket.socket, number: int) -> bool:
        for pause, data in parts:
            time.sleep(pause)
            conn.sendall(data)
        return False

    return script


def self_signed(directory: Path) -> Path:
    """A certificate and key for 127.0.0.1 that nobody trusts (one PEM file, which is also its own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "provider.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


class TlsUpstream(RawUpstream):
    """The same, over TLS with ``certificate`` (``self_signed``)."""

    def __init__(self, script: Script, certificate: Path, **options: Any) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate)
        super().__init__(script, **options)
        self.url = f"https://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            return
        super()._serve(conn)
