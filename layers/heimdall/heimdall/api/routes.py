"""The transcription routes, declared as data: every SDK-compatible path runs the same endpoint.

A route parses and validates the upload, hands the request to the router, and renders the result;
it never sees a provider's wire format.
"""

from __future__ import annotations

import io
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor

from heimdall.api.auth import Gatekeeper, authenticate
from heimdall.api.context import request_log
from heimdall.api.multipart import FormLimits, read_multipart
from heimdall.api.openapi import ERROR_RESPONSES, ref
from heimdall.api.streaming import HEADERS as STREAM_HEADERS
from heimdall.api.streaming import event_stream
from heimdall.audio import check_audio, pcm_wav_seconds
from heimdall.config import GatewayConfig
from heimdall.core.errors import InvalidRequest
from heimdall.core.formats import PLAIN_TEXT_FORMATS, extra_fields, render_document, render_plain
from heimdall.core.parameters import build_request, check_model_name
from heimdall.core.types import AudioInput, TranscriptionRequest
from heimdall.governance.governor import Governor, Ticket
from heimdall.providers.local import LocalProvider, engine_installed
from heimdall.providers.upstream import ONE_BLOCK
from heimdall.routing import RoutedStream, RoutedTranscript, Router, deadline_for

if TYPE_CHECKING:
    from heimdall.providers.loop_client import LoopClient

# API Gateway's 6 MB Lambda payload, less base64 and the form around the audio.
API_GATEWAY_DIRECT_BYTES = 4 * 1024 * 1024
API_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2}(-preview)?|v1|latest|preview)$")


class AnyText(PathConvertor):
    """Starlette's ``path`` without its blind spot: ``.`` stops at a (percent-decoded) newline, so a
    deployment id with CR/LF would be a 404 instead of the 400 that says what is wrong with it."""

    regex = "(?s:.*)"


register_url_convertor("any_text", AnyText())


class TranscriptionRoute(NamedTuple):
    path: str
    operation_id: str
    summary: str
    deployment_in_path: bool = False


TRANSCRIPTION_ROUTES = (
    TranscriptionRoute(
        "/openai/openai/deployments/{deployment_id:any_text}/audio/transcriptions",
        "azureCreateTranscription",
        "Create transcription (Azure OpenAI). The deployment id in the path names the model.",
        deployment_in_path=True,
    ),
    TranscriptionRoute(
        "/openai/v1/audio/transcriptions",
        "openaiV1CreateTranscription",
        "Create transcription (OpenAI SDK, /v1 base URL)",
    ),
    TranscriptionRoute(
        "/openai/audio/transcriptions", "openaiCreateTranscription", "Create transcription (OpenAI SDK)"
    ),
    TranscriptionRoute(
        "/v1/audio/transcriptions",
        "createTranscription",
        "Create transcription (unified: model is alias or provider/model)",
    ),
)


def _max_body_bytes(config: GatewayConfig) -> int:
    return int(config.client_config.max_request_body_size_mb * 1024 * 1024)


def _render(
    routed: RoutedTranscript, request: TranscriptionRequest, latency_ms: int, cache_debug: dict[str, Any] | None
) -> Response:
    target = routed.target
    if request.response_format in PLAIN_TEXT_FORMATS:
        body = render_plain(routed.transcript, request.response_format, target.provider)
        return PlainTextResponse(
            body, headers={"x-heimdall-provider": target.provider, "x-heimdall-model": target.model}
        )
    payload = render_document(routed.transcript, request)
    payload["extra_fields"] = extra_fields(
        provider=target.provider,
        model_requested=request.model,
        model_deployment=target.model,
        fallback_index=routed.fallback_index,
        latency=latency_ms,
        chunk_index=0,
        **({"cache_debug": cache_debug} if cache_debug is not None else {}),
    )
    return JSONResponse(payload)


def _deadline(request: Request) -> float:
    config: GatewayConfig = request.app.state.config
    return deadline_for(config.client_config.request_budget_seconds, request.scope.get("aws.context"))


async def transcribe(request: Request, deployment_id: str | None, api_version: str | None) -> Response:
    log = request_log(request.scope)
    if deployment_id is not None:  # the path's text reaches upstream URLs: its shape is checked first
        check_model_name(deployment_id, "deployment-id")
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    key = authenticate(request)  # before a byte of the body is read
    if api_version is not None and not API_VERSION.match(api_version):
        raise InvalidRequest(
            f"api-version '{api_version[:40]}' is not a version: use a date like 2024-06-01 "
            "(optionally -preview), or v1, latest, preview.",
            param="api-version",
            code="invalid_api_version",
        )
    if deployment_id is not None:
        log["model"] = deployment_id
        gatekeeper.authorize(key, [deployment_id])
    router: Router = request.app.state.router
    config: GatewayConfig = request.app.state.config
    governor: Governor = request.app.state.governor
    form = await read_multipart(request, FormLimits(request.app.state.upload_memory, _max_body_bytes(config)))
    handed_to_stream = False
    ticket: Ticket | None = None
    try:
        transcription = build_request(form.fields, path_model=deployment_id)
        log.update(model=transcription.model, response_format=str(transcription.response_format))
        gatekeeper.authorize(key, [transcription.model, *transcription.fallbacks])
        audio = form.audio
        if audio is None:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        log["audio_bytes"] = audio.size
        if audio.size == 0:
            raise InvalidRequest("The uploaded file is empty.", param="file", code="empty_file")
        audio = audio.with_format(transcription.file_format)
        router.resolve_targets(transcription.model, transcription.fallbacks)  # a 404 before the audio is read
        event_id = request.scope["state"]["event_id"]
        deadline = _deadline(request)
        key_id = key.id if key else None

        def check_and_route() -> tuple[RoutedTranscript | RoutedStream, dict[str, Any] | None, int]:
            """Everything that blocks, in one hand-off to a worker thread (each costs about as much CPU
            as parsing the request): the audio check, limits and the cache, the provider calls."""
            nonlocal ticket
            seconds = check_audio(audio, config.client_config.max_audio_seconds)
            ticket = governor.admit(router, key_id, transcription, audio, seconds, request.headers, log)
            if transcription.stream:
                return governor.open_stream(router, ticket, audio, deadline), None, 0
            started = time.perf_counter()
            routed, cache_debug = governor.transcribe(router, ticket, audio, deadline)
            return routed, cache_debug, round((time.perf_counter() - started) * 1000)

        client: LoopClient | None = getattr(request.state, "loop_client", None)  # a server's (api/app.py)
        routed: RoutedTranscript | RoutedStream
        if client is not None and _on_loop(transcription, audio, router, governor):
            max_seconds = config.client_config.max_audio_seconds
            seconds = pcm_wav_seconds(audio, max_seconds)  # microseconds, on the loop
            if seconds is None:  # PyAV counts the packets: milliseconds, in a worker thread
                seconds = await run_in_threadpool(check_audio, audio, max_seconds)
            ticket = governor.admit(router, key_id, transcription, audio, seconds, request.headers, log)  # no I/O
            started = time.perf_counter()
            routed = await governor.transcribe_on_loop(router, ticket, audio, deadline, client)
            cache_debug, latency_ms = None, round((time.perf_counter() - started) * 1000)
        else:
            routed, cache_debug, latency_ms = await run_in_threadpool(check_and_route)
        if isinstance(routed, RoutedStream):
            log.update(provider=routed.target.provider, model_deployment=routed.target.model,
                       fallback_index=routed.fallback_index, stream=True)  # fmt: skip
            events = event_stream(routed, transcription, event_id=event_id, log=log, on_close=form.close)
            handed_to_stream = True  # the stream closes the upload when it ends
            return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)
    finally:
        if not handed_to_stream:
            form.close()  # first: the await below is where a request cancelled at shutdown is cancelled again
        if ticket is not None and not ticket.settled:
            with anyio.CancelScope(shield=True):  # what it reserved is given back, even then
                await run_in_threadpool(governor.close, ticket)  # refused or failed before a provider answered
    log.update(
        provider=routed.target.provider,
        model_deployment=routed.target.model,
        fallback_index=routed.fallback_index,
    )
    return _render(routed, transcription, latency_ms, cache_debug)


def _on_loop(transcription: TranscriptionRequest, audio: AudioInput, router: Router, governor: Governor) -> bool:
    """Whether the request can be served without a worker thread (``providers/loop_client.py``): an
    upload held in memory, of at most 1 MiB (where the hand-off is most of the cost), a governor with
    no I/O, a transcript rather than a stream, and targets whose providers make their call on the loop."""
    return (
        isinstance(audio.file, io.BytesIO)
        and audio.size <= ONE_BLOCK
        and not transcription.stream
        and governor.passive
        and router.serves_on_loop(transcription, audio)
    )


def _operation(spec: TranscriptionRoute) -> dict[str, Any]:
    """The route's OpenAPI operation as plain data: cheap at start-up (no pydantic fields are built);
    the schemas it references are added when /openapi.json is first asked for."""
    parameters: list[dict[str, Any]] = [
        {"name": "api-version", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Azure API version: 2024-06-01, 2025-04-01-preview, v1, latest or preview."},
    ]  # fmt: skip
    if spec.deployment_in_path:
        parameters.insert(
            0,
            {"name": "deployment_id", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "Azure deployment, configured alias, or provider/model."},
        )  # fmt: skip
    return {
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": ref("TranscriptionForm")}}},
        "responses": {
            "200": {
                "description": "The transcript: JSON for json/verbose_json, plain text for text/srt/vtt",
                "content": {
                    "application/json": {"schema": ref("TranscriptionResponse")},
                    "text/plain": {"schema": {"type": "string"}},
                },
            },
            **ERROR_RESPONSES,
        },
    }


def add_routes(app: FastAPI) -> None:
    for spec in TRANSCRIPTION_ROUTES:
        app.add_api_route(
            spec.path,
            _endpoint(spec),
            methods=["POST"],
            summary=spec.summary,
            tags=["Audio"],
            response_model=None,
            operation_id=spec.operation_id,
            openapi_extra=_operation(spec),
        )
    app.add_api_route(
        "/health",
        health,
        methods=["GET"],
        tags=["Health"],
        summary="Liveness and configured providers",
        response_model=None,
        operation_id="health",
    )


def _endpoint(spec: TranscriptionRoute) -> Any:
    # Path and query are read from the request rather than declared as FastAPI parameters: declared
    # parameters cost pydantic field construction at every cold start, and add nothing to the docs
    # that _operation does not already say.
    if spec.deployment_in_path:

        async def deployment_endpoint(request: Request) -> Response:
            deployment_id: str = request.path_params["deployment_id"]
            return await transcribe(request, deployment_id, request.query_params.get("api-version"))

        return deployment_endpoint

    async def model_endpoint(request: Request) -> Response:
        return await transcribe(request, None, request.query_params.get("api-version"))

    return model_endpoint


async def health(request: Request) -> dict[str, Any]:
    router: Router = request.app.state.router
    config: GatewayConfig = request.app.state.config
    providers = []
    for name, provider in sorted(router.providers.items()):
        entry: dict[str, Any] = {"name": name, "models": sorted(provider.models() or [])}
        if isinstance(provider, LocalProvider):
            entry.update(installed=engine_installed(), loaded=provider.loaded)
        providers.append(entry)
    gatekeeper: Gatekeeper = request.app.state.gatekeeper
    max_direct = _max_body_bytes(config)
    if request.scope.get("aws.event") is not None:  # through API Gateway: its payload cap is lower
        max_direct = min(max_direct, API_GATEWAY_DIRECT_BYTES)
    return {
        "status": "ok",
        "providers": providers,
        "deployments": config.deployments,
        "default_model": "local/tiny.en" if router.keyless_default else None,
        "auth_required": gatekeeper.enforced,  # whether a gateway key is needed; never which keys exist
        "uploads": request.app.state.bucket is not None
        and request.app.state.job_table is not None,  # POST /v1/uploads for files over max_direct_bytes
        "max_direct_bytes": max_direct,
    }
