"""The agents' HTTP API (OpenAPI at /docs): commands go out on topics, queries read the
gateway's own view (tables in its database, see `view/`). Everything a route needs sits on
`app.state` (set by `create_http_app`), so routes are plain module-level functions. The
view's queries are synchronous: routes run them in a worker thread (`common.read`)."""

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError

from servicedesk_gateway.auth import People
from servicedesk_gateway.guard import RequireBearerToken
from servicedesk_gateway.http import agreements, commands, mail, portal, queues, tickets
from servicedesk_gateway.http.common import Publish
from servicedesk_gateway.http.docs import serve_asyncapi, serve_docs
from servicedesk_gateway.view.queries import ViewQueries
from servicedesk_runtime.blobs import BlobStore
from servicedesk_runtime.logs import get_logger
from servicedesk_runtime.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

access = get_logger("servicedesk_gateway.access")


async def _count_requests(request: Request, call_next: Any) -> Response:
    """Counts, times and logs every request: the access log is one JSON line each, with the
    route's template (never a query string, which can carry search words) and the caller."""
    started = time.perf_counter()
    response: Response = await call_next(request)
    seconds = time.perf_counter() - started
    template = getattr(request.scope.get("route"), "path", "unmatched")
    HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
    HTTP_REQUEST_SECONDS.labels(template).observe(seconds)
    who = getattr(request.state, "who", None)
    access.info(
        "http_request",
        method=request.method,
        route=template,
        path=request.url.path[:300],
        status=response.status_code,
        ms=round(seconds * 1000, 1),
        caller=getattr(who, "name", None),
        role=getattr(who, "role", None),
    )
    return response


async def _validation_failed(request: Request, error: Exception) -> Response:
    """FastAPI's own 422, in ASCII JSON: it echoes the input, and a lone surrogate in it
    (a JSON escape such as \\ud800) cannot be encoded as UTF-8, which made the 422 a 500."""
    assert isinstance(error, RequestValidationError)
    problems = [_without_long_input(problem) for problem in error.errors()]
    body = json.dumps({"detail": jsonable_encoder(problems)}, ensure_ascii=True)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


ECHOED_INPUT_CHARS = 200
"""A 422 names the field and shows at most this much of what was sent there: a 900 KB
body must not come back whole."""


def _without_long_input(problem: Any) -> Any:
    echoed = repr(problem.get("input")) if isinstance(problem, dict) else ""
    if len(echoed) <= ECHOED_INPUT_CHARS:
        return problem
    shortened = f"{echoed[:ECHOED_INPUT_CHARS]}... ({len(echoed)} characters)"
    return {**problem, "input": shortened}


def create_http_app(
    view: ViewQueries,
    publish: Publish,
    people: People,
    now: Callable[[], datetime],
    max_body_bytes: int = 1 << 20,
    find_accepted: Callable[[uuid.UUID], dict[str, Any] | None] = lambda _: None,
    blobs: BlobStore | None = None,
) -> FastAPI:
    """`max_body_bytes`: larger request bodies are refused with 413 as they arrive (by
    Content-Length, or counted while a chunked body streams in), never buffered."""
    app = FastAPI(
        title="servicedesk gateway",
        description="Agents' API: submit and work tickets, register agreements, read "
        "statements. Commands are accepted (202) and applied by the services; queries "
        "read a view built from the event topics.",
        version="1",
        max_body_size=max_body_bytes,
        docs_url=None,  # served offline by `serve_docs`
        redoc_url=None,  # ReDoc loads from a CDN only
    )
    app.state.view = view
    app.state.publish = publish
    app.state.people = people
    app.state.now = now
    app.state.find_accepted = find_accepted
    app.state.blobs = blobs  # attachments and raw mail (intake writes them)
    # The address an assignee is told at: the people directory's, when it keeps one.
    app.state.email_of = getattr(people, "email_of", lambda name: None)
    # Agreements this gateway sent for registration: tickets may name them at once.
    app.state.registering = set()
    # Whether the view has caught up with the topics (the composition root sets it).
    app.state.view_ready = lambda: False
    app.add_middleware(RequireBearerToken, people=people)  # before any body is read
    app.middleware("http")(_count_requests)
    app.exception_handler(RequestValidationError)(_validation_failed)
    for module in (tickets, queues, agreements, commands, mail, portal):
        app.include_router(module.router)
    serve_docs(app)
    serve_asyncapi(app)
    return app
