"""The transcription parameters of the reference, validated into a TranscriptionRequest.

Both ways in use it: a multipart form on the API, and the parameters stored with a job. It knows
nothing of HTTP: fields are (name, value) pairs of text.

Field names and enums come from Bifrost's "Create transcription" page (which follows OpenAI's).
List fields arrive as repeated ``name[]`` parts (what the openai SDK sends) or as plain ``name``.
"""

# No ``from __future__ import annotations`` here: pydantic compiles and evaluates every string
# annotation of a model when it builds it, at every cold start (docs/performance.md, "Cold start").

import re
import unicodedata
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import from_json

from heimdall.core.errors import InvalidRequest
from heimdall.core.languages import LANGUAGE_NAMES
from heimdall.core.names import RULE, name_problem
from heimdall.core.types import AUDIO_FORMATS, ResponseFormat, TimestampGranularity, TranscriptionRequest

LIST_FIELDS = frozenset({"timestamp_granularities", "fallbacks", "include"})
#: Fields that are objects: sent as a JSON string, or as bracketed parts (``chunking_strategy[type]``,
#: what the openai SDKs send).
OBJECT_FIELDS = frozenset({"chunking_strategy"})
MAX_JSON_DEPTH = 4
MAX_CHUNKING_STRATEGY_CHARS = 1024
#: Unicode controls, format characters, surrogates, private use, unassigned; line and paragraph separators.
_NOT_IN_FILENAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def bounded_json(text: str | bytes, *, max_chars: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A client's JSON, parsed within bounds: at most ``max_chars`` long and ``max_depth`` levels of
    arrays and objects, or a ValueError saying which bound (never a RecursionError).

    pydantic-core's parser stops deep nesting itself (at about 200 levels, with an error, not a
    crash); the depth walk below then holds the document to the shape parameters can have."""
    if len(text) > max_chars:
        raise ValueError(f"the JSON is longer than {max_chars} characters")
    try:
        value = from_json(text, allow_inf_nan=False)
    except ValueError:
        raise ValueError("not valid JSON, or nested too deeply") from None
    level: list[Any] = [value]
    for _ in range(max_depth):  # breadth first: what sits below max_depth levels of arrays and objects
        level = [child for node in level for child in _children(node)]
    if any(isinstance(node, dict | list) for node in level):
        raise ValueError(f"the JSON nests deeper than {max_depth} levels")
    return value


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node.values())
    return node if isinstance(node, list) else []


class ServerVad(BaseModel):
    """OpenAI's ``chunking_strategy`` object ("Create transcription", VAD config)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["server_vad"]
    prefix_padding_ms: int | None = Field(None, ge=0, le=60_000)
    silence_duration_ms: int | None = Field(None, ge=0, le=60_000)
    threshold: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class TranscriptionForm(BaseModel):
    """The non-file fields of a transcription request (``file`` is read separately, streamed)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(None, description="Deployment alias or provider/model.")
    language: str | None = Field(None, description="Language of the audio, ISO 639-1 (e.g. `en`).")
    prompt: str | None = Field(None, max_length=16_384, description="Text to guide the model's style.")
    response_format: ResponseFormat = Field(ResponseFormat.JSON)
    temperature: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    timestamp_granularities: list[TimestampGranularity] = Field(
        default=[], description="`word` needs `response_format=verbose_json`. Also sent as `[]`."
    )
    stream: bool = Field(False, description="Server-sent events (`true`/`false`/`1`/`0`).")
    fallbacks: list[str] = Field(default=[], description="provider/model targets tried in order.")
    include: list[Literal["logprobs"]] = Field(default=[], description="Extra outputs: `logprobs`.")
    chunking_strategy: str | None = Field(None, description='`auto`, or a JSON object {"type": "server_vad", …}.')
    file_format: str | None = Field(None, description="The audio's format (`mp3`, `wav`…) when the filename lacks it.")

    @field_validator("language")
    @classmethod
    def _iso_639_1(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.lower()
        if code not in LANGUAGE_NAMES:
            raise ValueError(f"'{value[:16]}' is not a supported ISO 639-1 language code")
        return code

    @field_validator("file_format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fmt = value.lower().removeprefix(".")
        if fmt not in AUDIO_FORMATS:
            raise ValueError(f"must be one of {', '.join(sorted(AUDIO_FORMATS))}")
        return fmt

    @field_validator("chunking_strategy", mode="before")
    @classmethod
    def _auto_or_server_vad(cls, value: Any) -> str | None:
        """``auto``, or a server_vad object (a JSON string, or the bracketed parts collected into a
        dict), passed on as canonical JSON: nothing of the client's own text but the values."""
        if value is None:
            return None
        if isinstance(value, str):
            value = value.strip()
            if value == "auto":
                return "auto"
            value = bounded_json(value, max_chars=MAX_CHUNKING_STRATEGY_CHARS)
        if not isinstance(value, dict) or value.get("type") != "server_vad":
            raise ValueError('must be "auto" or an object with "type": "server_vad"')
        try:
            return ServerVad.model_validate(value).model_dump_json(exclude_none=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"'{where}': {first['msg']}" if where else first["msg"]) from None

    @model_validator(mode="after")
    def _words_need_verbose_json(self) -> Self:
        if (
            TimestampGranularity.WORD in self.timestamp_granularities
            and self.response_format is not ResponseFormat.VERBOSE_JSON
        ):
            raise ValueError("word timestamps need response_format=verbose_json")
        return self


_MEMBER = re.compile(r"(?P<field>[a-z_]+)\[(?P<key>[a-z_]+)\]")


def _collect(fields: list[tuple[str, str]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for raw_name, value in fields:
        name = raw_name.removesuffix("[]")
        member = _MEMBER.fullmatch(raw_name)
        if name in LIST_FIELDS:
            data.setdefault(name, []).append(value)
        elif member is not None and member["field"] in OBJECT_FIELDS:  # chunking_strategy[type]=server_vad
            target = data.setdefault(member["field"], {})
            if not isinstance(target, dict) or member["key"] in target:
                raise InvalidRequest(
                    f"Field '{raw_name}' is given more than once.", param=member["field"], code="duplicate_field"
                )
            if value.strip() != "":
                target[member["key"]] = value
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
        file_format=form.file_format,
    )


def safe_filename(raw: str) -> str:
    """The client's filename without directories or control characters (it is passed upstream and
    becomes part of an S3 key). Control means every Unicode control, format and line or paragraph
    separator — C1 ``NEL``, ``U+2028``, bidi overrides, zero-width characters — not only ASCII's:
    ``str.splitlines()`` and other readers break lines at some of them."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in base if unicodedata.category(c) not in _NOT_IN_FILENAMES).strip()
    return name[:255] if name not in ("", ".", "..") else "audio"
