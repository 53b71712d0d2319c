"""Response shapes for the OpenAPI document (the bodies themselves are rendered in core.formats)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from heimdall.core.types import Logprob, Segment, Usage, Word


class ExtraFields(BaseModel):
    request_type: str
    provider: str
    model_requested: str
    model_deployment: str
    latency: int
    chunk_index: int
    fallback_index: int | None = None


class TranscriptionResponse(BaseModel):
    """``json`` carries text (+ usage, logprobs).

    ``verbose_json`` adds task, language, duration, segments and (when asked) words.
    """

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[Segment] | None = None
    words: list[Word] | None = None
    logprobs: list[Logprob] | None = None
    usage: Usage | None = None
    extra_fields: ExtraFields


class ErrorDetail(BaseModel):
    type: str
    code: str | None
    message: str
    param: str | None
    event_id: str


class ErrorExtraFields(BaseModel):
    request_type: str
    provider: str | None = None
    model_requested: str | None = None
    attempts: list[dict[str, Any]] | None = None


class ErrorEnvelope(BaseModel):
    event_id: str
    type: str
    is_bifrost_error: bool
    status_code: int
    error: ErrorDetail
    extra_fields: ErrorExtraFields


def component_schemas() -> dict[str, Any]:
    """The schemas the operations reference, generated on the first /openapi.json request."""
    from pydantic.json_schema import models_json_schema

    from heimdall.core.parameters import TranscriptionForm

    _, document = models_json_schema(
        [(TranscriptionForm, "validation"), (TranscriptionResponse, "serialization"), (ErrorEnvelope, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = document["$defs"]
    form = schemas["TranscriptionForm"]
    form["properties"] = {"file": {"type": "string", "format": "binary"}, **form["properties"]}
    form["required"] = ["file"]
    return schemas
