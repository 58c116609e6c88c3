"""The door of the HTTP API: a request without a known bearer token is refused before
anything reads its body, so an anonymous client cannot make the gateway hold a large body
(the size limit for known callers is FastAPI's `max_body_size`, see `create_http_app`)."""

from __future__ import annotations

from collections.abc import Mapping

from anyio import to_thread
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from servicedesk_gateway.auth import Caller, People, as_people

PUBLIC_PATHS = frozenset(
    {"/health", "/metrics", "/docs", "/openapi.json", "/asyncapi.yaml", "/asyncapi.json", "/portal"}
)
"""Operations and documentation: served without a token."""
PUBLIC_PREFIXES = ("/docs/static/", "/portal/")
"""Swagger UI's files; the customer portal, whose pages check their own cookie."""


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class RequireBearerToken:
    """ASGI middleware: every path but the public ones needs `Authorization: Bearer <token>`
    naming a person (`people.lookup`). Roles are still checked by the routes' dependencies.

    A token seen for the first time costs one argon2 verification (~30 ms), so the lookup
    runs in a worker thread, never on the event loop."""

    def __init__(self, app: ASGIApp, people: People | Mapping[str, Caller]) -> None:
        self.app = app
        self.people = as_people(people)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _public(scope["path"]) or await self._known(scope):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": "missing or unknown bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)

    async def _known(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return False
                caller = await to_thread.run_sync(self.people.lookup, token.strip())
                return caller is not None
        return False
