"""Gateway keys (Bifrost's virtual keys): who may call, and which models each caller may use.

A key is accepted from ``api-key`` (what the Azure SDK sends), ``x-bf-vk`` (Bifrost's header),
``x-api-key`` or ``Authorization: Bearer``. Only SHA-256 digests of the configured keys are held in
memory, and a presented key is compared against every one of them in constant time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from starlette.requests import Request

from heimdall.api.context import request_log
from heimdall.config import GatewayConfig
from heimdall.core.errors import Forbidden, Unauthorized

KEY_HEADERS = ("api-key", "x-bf-vk", "x-api-key")


class GatewayKey(NamedTuple):
    id: str
    digest: bytes
    allowed_models: tuple[str, ...]
    #: May read usage, and the jobs of files no key created (``"admin": true`` in the config).
    admin: bool = False

    def allows(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip()
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def authenticate(request: Request) -> GatewayKey | None:
    """The caller's gateway key (None when auth is off), named in the request's log line."""
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    key = gatekeeper.authenticate(request.headers)
    if key is not None:
        request_log(request.scope)["key_id"] = key.id
    return key


class Gatekeeper:
    def __init__(self, config: GatewayConfig) -> None:
        self.keys = tuple(
            GatewayKey(k.id, _digest(k.value.get_secret_value()), tuple(k.allowed_models), k.admin)
            for k in config.governance.virtual_keys
        )
        self.enforced = bool(self.keys) or config.client_config.enforce_auth_on_inference

    def authenticate(self, headers: Mapping[str, str]) -> GatewayKey | None:
        """The caller's key, None when auth is off; 401 when it is missing or unknown."""
        if not self.enforced:
            return None
        presented = presented_key(headers)
        if presented is None:
            raise Unauthorized(
                "A gateway key is required: send it as api-key, Authorization: Bearer, x-api-key or x-bf-vk.",
                code="missing_api_key",
            )
        digest = _digest(presented)
        found: GatewayKey | None = None
        for key in self.keys:  # no early exit: every key is compared, whichever matches
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise Unauthorized("The gateway key is not valid.", code="invalid_api_key")
        return found

    @staticmethod
    def authorize(key: GatewayKey | None, models: Iterable[str]) -> None:
        """403 unless the key may use every model the request names (fallbacks included)."""
        if key is None:
            return
        for index, model in enumerate(models):
            if not key.allows(model):
                raise Forbidden(
                    f"Gateway key '{key.id}' may not use '{model}'.",
                    param="model" if index == 0 else "fallbacks",
                )
