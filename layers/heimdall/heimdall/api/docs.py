"""``GET /docs``: the API's browser view, served offline.

FastAPI's default page loads Swagger UI from a CDN and is blank without a network. Here the page and
every file it loads come from the gateway itself: Swagger UI's distribution as shipped by the
``swagger-ui-bundle-v2`` package (Swagger UI 5, which renders OpenAPI 3.1), under ``/docs/assets``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.requests import Request
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

ASSETS = "/docs/assets"


class _Assets:
    """Swagger UI's files; the package is found on the first request, not at every cold start."""

    def __init__(self) -> None:
        self.files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.files is None:
            from swagger_ui_bundle import swagger_ui_path

            self.files = StaticFiles(directory=str(swagger_ui_path))
        await self.files(scope, receive, send)


def add_docs_routes(app: FastAPI) -> None:
    """``/docs`` and its assets; the app must be built with ``docs_url=None, redoc_url=None``."""

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # an API Gateway stage, when there is one
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
        )

    app.add_route("/docs", docs, include_in_schema=False)
    app.mount(ASSETS, _Assets(), name="docs-assets")
