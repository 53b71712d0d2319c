"""boto3 clients made on first use: importing boto3 costs a cold start hundreds of milliseconds, and
a request that never touches AWS should not pay it. One client per owner, shared by its threads."""

from __future__ import annotations

import threading
from typing import Any


class LazyClient:
    """``boto3.client(service, config=Config(retries standard, **config))``, built on the first call
    (``config`` may name its own ``retries``)."""

    def __init__(self, service: str, **config: Any) -> None:
        self.service, self.config = service, config
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    self.service, config=Config(**{"retries": {"mode": "standard"}, **self.config})
                )
            return self._client
