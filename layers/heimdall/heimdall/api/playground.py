"""The playground: a static page (plain HTML, CSS and JS shipped in this package, no build step, no
CDN) that transcribes from the browser, and the small renderer it uses for its downloads.

The page is served with a Content-Security-Policy that allows only this origin (plus ``blob:`` and
``data:`` for the audio it plays, and the audio bucket's origin for a presigned upload). The
renderer turns the segments of a transcript the page already has into text, SRT and VTT with the
same functions the transcription routes use, so a download is byte for byte what the API returns
for that format, and the audio is transcribed once.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from heimdall.api.auth import authenticate
from heimdall.api.body import read_body
from heimdall.api.openapi import ERROR_RESPONSES
from heimdall.core.errors import InvalidRequest, UnsupportedMediaType
from heimdall.core.formats import render_srt, render_text, render_vtt
from heimdall.core.types import Segment, Transcript
from heimdall.observability import logger
from heimdall.storage import AudioBucket

#: The files the page is made of, and their media types; nothing else under static/ is served.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "playground.html": "text/html; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
}
RENDER_MAX_BYTES = 4 * 1024 * 1024  # segments of many hours of audio; the request carries no audio
# Cue times are seconds from the start of the audio: bounded, so a hostile value cannot overflow rendering.
_SECONDS = Field(ge=0, le=10_000_000, allow_inf_nan=False)


@cache
def asset(name: str) -> bytes:
    return files("heimdall.api").joinpath("static", name).read_bytes()


@cache
def _upload_origin(bucket: AudioBucket) -> str | None:
    """Where the browser posts a presigned upload (S3's endpoint for the bucket), computed locally:
    signing a POST makes no request. None when there are no credentials to sign with."""
    from botocore.exceptions import BotoCoreError

    try:
        url = bucket.presigned_upload("incoming/origin", 1, 60)["url"]
    except BotoCoreError:
        logger.warning("the playground cannot sign uploads: no AWS credentials")
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(upload_origin: str | None) -> str:
    connect = "'self'" + (f" {upload_origin}" if upload_origin else "")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: data:",  # the chosen or recorded audio, and its captions track
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


async def _serve(request: Request, name: str) -> Response:
    headers = {
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if name.endswith(".html"):
        bucket: AudioBucket | None = request.app.state.bucket
        origin = await run_in_threadpool(_upload_origin, bucket) if bucket is not None else None
        headers["Content-Security-Policy"] = content_security_policy(origin)
    return Response(asset(name), media_type=ASSETS[name], headers=headers)


async def index(request: Request) -> Response:
    return await _serve(request, "index.html")


async def page(request: Request) -> Response:
    return await _serve(request, "playground.html")


def _asset_endpoint(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, name)

    return endpoint


class _Cue(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    start: float = _SECONDS
    end: float = _SECONDS
    text: str


class RenderBody(BaseModel):
    """The part of a transcript the renderer needs: its text and, for subtitles, its segments."""

    model_config = ConfigDict(extra="ignore", defer_build=True)
    text: str
    segments: list[_Cue] | None = None


async def render(request: Request) -> JSONResponse:
    """``{text, srt, vtt}`` for a transcript the page already has (srt and vtt null without segments)."""
    authenticate(request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType('POST /playground/render takes a JSON object: {"text": ..., "segments": [...]}.')
    raw = await read_body(request, RENDER_MAX_BYTES, "transcript to render")
    try:
        body = RenderBody.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"Invalid transcript at '{param}': {first['msg']}.", param=param) from None
    segments = None
    if body.segments is not None:
        segments = [Segment(id=i, start=c.start, end=c.end, text=c.text) for i, c in enumerate(body.segments)]
    transcript = Transcript(text=body.text, segments=segments)
    rendered: dict[str, Any] = {"text": render_text(transcript), "srt": None, "vtt": None}
    if segments is not None:
        rendered.update(srt=render_srt(transcript), vtt=render_vtt(transcript))
    return JSONResponse(rendered)


_CUE_SCHEMA = {
    "type": "object",
    "required": ["start", "end", "text"],
    "properties": {
        "start": {"type": "number", "minimum": 0},
        "end": {"type": "number", "minimum": 0},
        "text": {"type": "string"},
    },
}
RENDER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string"}, "segments": {"type": "array", "items": _CUE_SCHEMA}},
    }}},
}  # fmt: skip


def add_playground_routes(app: FastAPI) -> None:
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.add_api_route("/playground", page, methods=["GET"], include_in_schema=False)
    for name in ASSETS:
        if not name.endswith(".html"):
            app.add_api_route(f"/playground/{name}", _asset_endpoint(name), methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/playground/render",
        render,
        methods=["POST"],
        tags=["Playground"],
        response_model=None,
        operation_id="renderTranscript",
        summary="Render a transcript's segments as text, SRT and VTT (the playground's downloads)",
        openapi_extra={
            "requestBody": RENDER_BODY,
            "responses": {
                "200": {
                    "description": "text, srt and vtt bodies (srt and vtt null when there are no segments)",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **ERROR_RESPONSES,
            },
        },
    )
