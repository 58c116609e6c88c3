"""Swagger UI served from the gateway itself: FastAPI's default page loads its script and
style from a CDN, so /docs was blank on a machine without internet. The files come from
the `swagger-ui-bundle` package (the Swagger UI distribution, packaged for Python).

The AsyncAPI document of the topics and messages (`servicedesk_contracts.asyncapi`) is
served beside the OpenAPI one, for integrators that read or write the topics."""

from __future__ import annotations

from anyio import to_thread
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from servicedesk_contracts.asyncapi import document_json, document_yaml

STATIC = "/docs/static"


def serve_docs(app: FastAPI) -> None:
    """/docs: Swagger UI for the app's OpenAPI document, with no request leaving the host."""
    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, include_in_schema=False)


def serve_asyncapi(app: FastAPI) -> None:
    """/asyncapi.yaml and /asyncapi.json: the AsyncAPI 3.0 document of every topic and
    message (built once, off the event loop, on the first request)."""

    async def asyncapi_yaml() -> Response:
        text = await to_thread.run_sync(document_yaml)
        return Response(text, media_type="application/yaml")

    async def asyncapi_json() -> Response:
        text = await to_thread.run_sync(document_json)
        return Response(text, media_type="application/json")

    app.add_api_route("/asyncapi.yaml", asyncapi_yaml, include_in_schema=False)
    app.add_api_route("/asyncapi.json", asyncapi_json, include_in_schema=False)
