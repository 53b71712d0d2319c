"""The OpenAPI pieces routes declare as plain data (cheap at start-up); the schemas they reference
are generated from the models in ``schemas`` on the first ``/openapi.json`` request."""

from __future__ import annotations

from typing import Any

_ERRORS = {
    400: "Invalid field, malformed multipart, or audio that cannot be decoded",
    401: "Missing or unknown gateway key",
    403: "The key may not use this model",
    404: "Unknown model, deployment or route",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Body is not multipart/form-data",
    429: "Rate limited (see Retry-After)",
    500: "Internal error",
    502: "The provider failed",
    503: "The engine is not available in this deployment",
    504: "The provider timed out",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ERROR_RESPONSES: dict[str, dict[str, Any]] = {
    str(status): {"description": description, "content": {"application/json": {"schema": ref("ErrorEnvelope")}}}
    for status, description in _ERRORS.items()
}
