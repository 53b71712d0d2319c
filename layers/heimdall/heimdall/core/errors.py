"""One error hierarchy that knows its HTTP status and turns into the reference's envelope.

Errors are raised deep inside (parsing, routing, providers) and rendered once, at the edge.
``is_bifrost_error`` is true when Heimdall itself refused the request and false when it relays
a provider's error; the name comes from the reference and clients check it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class HeimdallError(Exception):
    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"
    #: Trying the same target again may succeed (timeouts, resets, 429, 5xx).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        provider: str | None = None,
        is_bifrost_error: bool = True,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        client_fault: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.provider = provider
        self.is_bifrost_error = is_bifrost_error
        self.headers = headers or {}
        self.extra = extra or {}
        # A mistake in the client's own input: no other target would do better, so no fallback.
        self.client_fault = (
            (400 <= self.status_code < 500 and self.status_code not in _PROVIDER_SIDE_4XX)
            if (client_fault is None)
            else client_fault
        )

    def envelope(self, *, event_id: str, model_requested: str | None) -> dict[str, Any]:
        extra_fields: dict[str, Any] = {"request_type": "transcription"}
        if self.provider:
            extra_fields["provider"] = self.provider
        if model_requested:
            extra_fields["model_requested"] = model_requested
        extra_fields.update(self.extra)
        return {
            "event_id": event_id,
            "type": self.error_type,
            "is_bifrost_error": self.is_bifrost_error,
            "status_code": self.status_code,
            "error": {
                "type": self.error_type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "event_id": event_id,
            },
            "extra_fields": extra_fields,
        }


_PROVIDER_SIDE_4XX = frozenset({401, 403, 404, 408, 409, 429})


class InvalidRequest(HeimdallError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class Unauthorized(HeimdallError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class Forbidden(HeimdallError):
    status_code = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(HeimdallError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(HeimdallError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(HeimdallError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaType(HeimdallError):
    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class RateLimited(HeimdallError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))


class ProviderFailed(HeimdallError):
    status_code = 502
    error_type = "provider_error"
    default_code = "provider_error"
    retryable = True


class EngineUnavailable(HeimdallError):
    status_code = 503
    error_type = "server_error"
    default_code = "engine_unavailable"


class ProviderTimeout(HeimdallError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "provider_timeout"
    retryable = True


_BY_STATUS: dict[int, type[HeimdallError]] = {
    cls.status_code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        ProviderFailed,
        EngineUnavailable,
        ProviderTimeout,
    )
}


def error_for_status(status: int, message: str, **kwargs: Any) -> HeimdallError:
    """The typed error for an HTTP status Heimdall did not raise itself (routing's 404/405...)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        base = InvalidRequest if 400 <= status < 500 else HeimdallError
        cls = type(f"HTTP{status}Error", (base,), {"status_code": status})
    return cls(message, **kwargs)
