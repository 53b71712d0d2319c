"""The FastAPI application: routes, error envelopes and the request log, built by ``create_app``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from heimdall import __version__
from heimdall.api.auth import Gatekeeper
from heimdall.api.context import RequestContextMiddleware, error_response
from heimdall.api.docs import add_docs_routes
from heimdall.api.multipart import LAMBDA_UPLOAD_MEMORY, SERVER_UPLOAD_MEMORY, UploadMemory
from heimdall.api.playground import add_playground_routes
from heimdall.api.routes import TRANSCRIPTION_ROUTES, add_routes
from heimdall.api.uploads import add_upload_routes
from heimdall.api.usage import add_usage_route
from heimdall.config import GatewayConfig, load_config
from heimdall.core.errors import HeimdallError, InvalidRequest, error_for_status
from heimdall.governance.governor import build_governor
from heimdall.governance.store import UPLOAD_ROUTE
from heimdall.providers.registry import build_providers
from heimdall.routing import Router
from heimdall.storage import AudioBucket


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """While a server (``make run``) serves the app: its client for provider calls on its event loop,
    when aiohttp is installed, in the state its requests see (``request.state.loop_client``): a client
    belongs to one loop, and one app may be served by several servers. Lambda runs no lifespan: its
    calls keep the worker thread."""
    from heimdall.providers import loop_client

    if not loop_client.available():
        yield {}
        return
    client = loop_client.LoopClient()
    try:
        yield {"loop_client": client}
    finally:
        await client.close()


def create_app(
    config: GatewayConfig | None = None, *, metrics: Any = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The gateway app; without a config, the one ``HEIMDALL_CONFIG`` names (or the keyless default).
    ``clock`` is the wall clock that limit windows and cache expiry read."""
    if config is None:
        config = load_config(os.environ.get("HEIMDALL_CONFIG"))
    app = FastAPI(
        title="Heimdall",
        version=__version__,
        summary="Speech-to-text gateway speaking the Bifrost, Azure OpenAI and OpenAI transcription API.",
        docs_url=None,  # served by add_docs_routes, without a CDN
        redoc_url=None,
        # Starlette answers '/health/' with a redirect built from the client's Host header: client
        # text in a response header (an open redirect, a poisoned cache). A path is what it is.
        redirect_slashes=False,
        lifespan=_serving,
    )
    app.state.config = config
    app.state.router = Router(config, build_providers(config))
    app.state.gatekeeper = Gatekeeper(config)
    in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    app.state.upload_memory = UploadMemory(LAMBDA_UPLOAD_MEMORY if in_lambda else SERVER_UPLOAD_MEMORY)
    bucket_name = os.environ.get("HEIMDALL_AUDIO_BUCKET")
    app.state.bucket = AudioBucket(bucket_name) if bucket_name else None
    app.state.governor = build_governor(
        config,
        app.state.bucket,
        table=os.environ.get("HEIMDALL_GOVERNANCE_TABLE"),
        state_dir=os.environ.get("HEIMDALL_STATE_DIR"),
        in_lambda=in_lambda,
        usage_routes=frozenset([*(spec.path for spec in TRANSCRIPTION_ROUTES), UPLOAD_ROUTE]),
        clock=clock,
    )
    table_name = os.environ.get("HEIMDALL_JOB_TABLE")
    app.state.job_table = None
    if table_name:  # a deployment with jobs: the module is imported only there
        from heimdall.job_table import JobTable

        app.state.job_table = JobTable(table_name)

    @app.exception_handler(HeimdallError)
    async def _heimdall_error(request: Request, exc: HeimdallError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"No route for {request.method} {request.url.path}.",
            405: (f"Method {request.method} is not allowed on {request.url.path}."),
        }.get(exc.status_code, str(exc.detail))
        return error_response(request, error_for_status(exc.status_code, message, headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = str(first.get("loc", ["", "request"])[-1])
        return error_response(request, InvalidRequest(f"Invalid value for '{param}': {first.get('msg')}.", param=param))

    app.add_middleware(RequestContextMiddleware, metrics=metrics, governor=app.state.governor)
    add_routes(app)
    add_upload_routes(app)
    add_usage_route(app)
    add_playground_routes(app)
    add_docs_routes(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from heimdall.api.schemas import component_schemas

            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
