"""A streaming ``multipart/form-data`` reader with the checks a public gateway needs.

Starlette's own form parser silently accepts a truncated body (the cut-off part just vanishes), so
the body is fed to python-multipart's parser here and its final state is checked. The audio part
is written to a spooled temporary file as it arrives (memory up to 1 MB, then /tmp), so the
upload is held once, never as body bytes plus a copy.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from heimdall.api.body import limited_stream
from heimdall.core.errors import InvalidRequest, UnsupportedMediaType
from heimdall.core.parameters import safe_filename
from heimdall.core.types import AudioInput

FILE_FIELD = "file"
SPOOL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FormLimits:
    max_body_bytes: int = 25 * 1024 * 1024
    max_fields: int = 64
    max_field_bytes: int = 64 * 1024


@dataclass
class UploadedForm:
    fields: list[tuple[str, str]] = field(default_factory=list)
    audio: AudioInput | None = None

    def close(self) -> None:
        if self.audio is not None:
            self.audio.file.close()


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    content_type: str = "application/octet-stream"
    data: bytearray = field(default_factory=bytearray)
    file: IO[bytes] | None = None
    size: int = 0


class _FormBuilder:
    """python-multipart callbacks that build the form as the bytes arrive."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.form = UploadedForm()
        self.part = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self.header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()
        self.headers = {}

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or not options.get(b"name"):
            raise InvalidRequest(
                "Every multipart part needs a Content-Disposition: form-data header with a name.",
                code="invalid_multipart",
            )
        self.part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.form.fields) >= self.limits.max_fields:
                raise InvalidRequest(
                    f"Too many form fields (at most {self.limits.max_fields}).", code="too_many_fields"
                )
            return
        if self.part.name != FILE_FIELD:
            raise InvalidRequest(
                f"Unexpected file in field '{self.part.name}': the audio goes in the 'file' field.",
                param=self.part.name,
                code="unexpected_file",
            )
        if self.form.audio is not None or self.part.file is not None:
            raise InvalidRequest("Only one file may be uploaded per request.", param=FILE_FIELD, code="too_many_files")
        self.part.filename = safe_filename(options[b"filename"].decode("utf-8", "replace"))
        content_type = self.headers.get(b"content-type", b"").decode("latin-1").strip()
        self.part.content_type = content_type or "application/octet-stream"
        # Closed by UploadedForm.close() once the request is done, not by this scope.
        self.part.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # a view: Lambda hands over the whole body as one chunk
        if self.part.file is not None:
            if self.part.size + len(chunk) > SPOOL_BYTES:
                self.part.file.rollover()  # type: ignore[attr-defined]  # to disk before the write, not after (which copies it twice)
            self.part.file.write(chunk)
            self.part.size += len(chunk)
            return
        self.part.data.extend(chunk)
        if len(self.part.data) > self.limits.max_field_bytes:
            raise InvalidRequest(
                f"Form field '{self.part.name}' is longer than {self.limits.max_field_bytes} bytes.",
                param=self.part.name,
                code="field_too_long",
            )

    def on_part_end(self) -> None:
        part = self.part
        assert part.name is not None
        if part.file is not None:
            part.file.seek(0)
            self.form.audio = AudioInput(part.file, part.filename or "audio", part.content_type, part.size)
            self.part = _Part()
            return
        try:
            value = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"Form field '{part.name}' is not valid UTF-8.", param=part.name, code="invalid_encoding"
            ) from None
        self.form.fields.append((part.name, value))

    def abandon(self) -> None:
        if self.part.file is not None:
            self.part.file.close()
        self.form.close()


def _boundary(request: Request) -> bytes:
    content_type = request.headers.get("content-type")
    if not content_type:
        raise UnsupportedMediaType(
            "The body must be multipart/form-data with the audio in the 'file' field (no Content-Type given).",
        )
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"The body must be multipart/form-data with the audio in the 'file' field, "
            f"not {media_type.decode('latin-1')[:100]}.",
        )
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 70:
        raise InvalidRequest("The multipart Content-Type has no valid boundary parameter.", code="invalid_multipart")
    return boundary


async def read_multipart(request: Request, limits: FormLimits) -> UploadedForm:
    """Parse the request body, or raise the 4xx that says what is wrong with it."""
    boundary = _boundary(request)
    builder = _FormBuilder(limits)
    parser = MultipartParser(boundary, builder.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in limited_stream(request, limits.max_body_bytes):
            if parser.write(chunk) != len(chunk):
                raise InvalidRequest("The multipart body is malformed.", code="invalid_multipart")
        parser.finalize()
        if parser.state != MultipartState.END:
            raise InvalidRequest(
                "The multipart body is truncated: it ends before its closing boundary.",
                code="invalid_multipart",
            )
    except FormParserError:
        builder.abandon()
        raise InvalidRequest("The multipart body is malformed.", code="invalid_multipart") from None
    except BaseException:
        builder.abandon()
        raise
    return builder.form
