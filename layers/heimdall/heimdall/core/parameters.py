"""The transcription parameters of the reference, validated into a TranscriptionRequest.

Both ways in use it: a multipart form on the API, and the parameters stored with a job. It knows
nothing of HTTP: fields are (name, value) pairs of text.

Field names and enums come from Bifrost's "Create transcription" page (which follows OpenAI's).
List fields arrive as repeated ``name[]`` parts (what the openai SDK sends) or as plain ``name``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from heimdall.core.errors import InvalidRequest
from heimdall.core.languages import LANGUAGE_NAMES
from heimdall.core.names import RULE, name_problem
from heimdall.core.types import ResponseFormat, TimestampGranularity, TranscriptionRequest

LIST_FIELDS = frozenset({"timestamp_granularities", "fallbacks", "include"})
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f]")


class TranscriptionForm(BaseModel):
    """The non-file fields of a transcription request (``file`` is read separately, streamed)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(None, description="Deployment alias or provider/model.")
    language: str | None = Field(None, description="Language of the audio, ISO 639-1 (e.g. `en`).")
    prompt: str | None = Field(None, max_length=16_384, description="Text to guide the model's style.")
    response_format: ResponseFormat = Field(ResponseFormat.JSON)
    temperature: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    timestamp_granularities: list[TimestampGranularity] = Field(
        default_factory=list, description="`word` needs `response_format=verbose_json`. Also sent as `[]`."
    )
    stream: bool = Field(False, description="Server-sent events (`true`/`false`/`1`/`0`).")
    fallbacks: list[str] = Field(default_factory=list, description="provider/model targets tried in order.")
    include: list[Literal["logprobs"]] = Field(default_factory=list, description="Extra outputs: `logprobs`.")
    chunking_strategy: str | None = Field(None, description='`auto`, or a JSON object {"type": "server_vad", …}.')

    @field_validator("language")
    @classmethod
    def _iso_639_1(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.lower()
        if code not in LANGUAGE_NAMES:
            raise ValueError(f"'{value[:16]}' is not a supported ISO 639-1 language code")
        return code

    @field_validator("chunking_strategy")
    @classmethod
    def _auto_or_server_vad(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("type") != "server_vad":
            raise ValueError('must be "auto" or a JSON object with "type": "server_vad"')
        return value

    @model_validator(mode="after")
    def _words_need_verbose_json(self) -> TranscriptionForm:
        if (
            TimestampGranularity.WORD in self.timestamp_granularities
            and self.response_format is not ResponseFormat.VERBOSE_JSON
        ):
            raise ValueError("word timestamps need response_format=verbose_json")
        return self


def _collect(fields: list[tuple[str, str]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for raw_name, value in fields:
        name = raw_name.removesuffix("[]")
        if name in LIST_FIELDS:
            data.setdefault(name, []).append(value)
        elif name in data:
            raise InvalidRequest(f"Field '{name}' is given more than once.", param=name, code="duplicate_field")
        elif value.strip() != "":  # an empty optional field is an absent one (curl -F 'language=')
            data[name] = value
    return data


def _param_of(error: Any) -> str | None:
    loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if loc:
        return f"{loc[0]}[]" if loc[0] in LIST_FIELDS else loc[0]
    return None


def check_model_name(name: str, param: str) -> str:
    """``name`` when it is a well-formed model name, else the 400 saying what shape one has.

    Runs before authorization and routing: a model name reaches upstream URLs and response headers."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidRequest(f"Invalid value for '{param}': {problem} ({RULE}).", param=param, code="invalid_model")
    return name


def build_request(fields: list[tuple[str, str]], *, path_model: str | None) -> TranscriptionRequest:
    """Validate the form; a deployment id in the path is authoritative over the ``model`` field."""
    data = _collect(fields)
    try:
        form = TranscriptionForm.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param_of(first)
        if first["type"] == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}"
            code = "unknown_parameter"
        elif param is None:  # a model-level rule
            message = first["msg"].removeprefix("Value error, ")
            param = "timestamp_granularities[]"
            code = "invalid_value"
        else:
            message = f"Invalid value for '{param}': {first['msg'].removeprefix('Value error, ')}."
            code = "invalid_value"
        raise InvalidRequest(message, param=param, code=code) from None
    model = path_model or form.model
    if not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    check_model_name(model, "model")
    for fallback in form.fallbacks:
        check_model_name(fallback, "fallbacks[]")
    if form.stream and form.response_format not in (ResponseFormat.JSON, ResponseFormat.TEXT):
        raise InvalidRequest(
            f"stream=true sends transcript text events; it goes with response_format json or text, "
            f"not {form.response_format}.",
            param="stream",
            code="unsupported_value",
        )
    return TranscriptionRequest(
        model=model,
        response_format=form.response_format,
        language=form.language,
        prompt=form.prompt,
        temperature=form.temperature,
        timestamp_granularities=frozenset(form.timestamp_granularities),
        stream=form.stream,
        fallbacks=tuple(form.fallbacks),
        include=tuple(form.include),
        chunking_strategy=form.chunking_strategy,
    )


def safe_filename(raw: str) -> str:
    """The client's filename without directories or control characters (it is passed upstream)."""
    name = _UNSAFE_FILENAME.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] if name not in ("", ".", "..") else "audio"
