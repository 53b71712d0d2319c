"""A streaming ``multipart/form-data`` reader with the checks a public gateway needs.

Starlette's own form parser silently accepts a truncated body (the cut-off part just vanishes), so
the body is fed to python-multipart's parser here and its final state is checked. The audio part
is written to memory as it arrives while the process's ``UploadMemory`` has room for it, and to a
file in /tmp once it has not, so the upload is held once, never as body bytes plus a copy.
"""

from __future__ import annotations

import io
import tempfile
import threading
from typing import IO, NamedTuple

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from heimdall.api.body import limited_stream
from heimdall.core.errors import InvalidRequest, UnsupportedMediaType
from heimdall.core.parameters import safe_filename
from heimdall.core.types import AudioInput

FILE_FIELD = "file"
#: Uploaded audio one Lambda execution environment holds in memory (it serves one request at a
#: time): the rest goes to /tmp, which keeps the handler's added peak under the size of the audio.
LAMBDA_UPLOAD_MEMORY = 1024 * 1024
#: Uploaded audio a server process (``make run``) holds in memory across every request in flight:
#: writing 10 MB to /tmp and reading it back costs more CPU than the rest of the request
#: (docs/performance.md); the budget keeps a thousand concurrent uploads from holding 25 GB.
SERVER_UPLOAD_MEMORY = 64 * 1024 * 1024


class UploadMemory:
    """The bytes of uploaded audio the process may hold in memory at once, shared by its requests.

    An upload takes room as its bytes arrive; one that finds no more room moves to a file in /tmp,
    before the write that would pass the budget, and gives back what it held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()  # given back from worker threads when a request ends

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > self.limit:
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


class FormLimits(NamedTuple):
    memory: UploadMemory
    max_body_bytes: int = 25 * 1024 * 1024
    max_fields: int = 64
    max_field_bytes: int = 64 * 1024


class UploadedForm:
    """The form's fields in order, and its audio."""

    def __init__(self, memory: UploadMemory) -> None:
        self.fields: list[tuple[str, str]] = []
        self.audio: AudioInput | None = None
        self.memory = memory
        #: What the audio holds of ``memory`` (0 once it is on disk), given back when the form is closed.
        self.held = 0

    def close(self) -> None:
        if self.audio is not None:
            self.audio.file.close()
        if self.held:
            self.memory.give(self.held)
            self.held = 0


class _Part:
    """The part being read: a field's bytes, or the file's."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.filename: str | None = None
        self.content_type = "application/octet-stream"
        self.data = bytearray()
        self.file: IO[bytes] | None = None
        self.size = 0


class _FormBuilder:
    """python-multipart callbacks that build the form as the bytes arrive."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.form = UploadedForm(limits.memory)
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
        self.part.file = io.BytesIO()  # closed by UploadedForm.close() once the request is done

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # a view: Lambda hands over the whole body as one chunk
        if self.part.file is not None:
            if isinstance(self.part.file, io.BytesIO):  # in memory: take room for the chunk, or move to /tmp
                if self.limits.memory.take(len(chunk)):
                    self.form.held += len(chunk)
                else:
                    self._to_disk()  # before the write, not after (which would copy it twice)
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

    def _to_disk(self) -> None:
        """Move the file part from memory to /tmp and give its room back."""
        memory = self.part.file
        assert isinstance(memory, io.BytesIO)
        disk = tempfile.TemporaryFile()  # noqa: SIM115 - closed by UploadedForm.close() or abandon()
        try:
            disk.write(memory.getvalue())  # the buffer itself, not a copy of it
        except BaseException:
            disk.close()
            raise
        memory.close()
        self.part.file = disk
        self.limits.memory.give(self.form.held)
        self.form.held = 0

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
        self.form.close()  # gives back the room the file part took, read whole or not


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
