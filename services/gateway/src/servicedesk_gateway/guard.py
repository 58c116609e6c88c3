"""The door of the HTTP API: a request without a known bearer token is refused before
anything reads its body, so an anonymous client cannot make the gateway hold a large body
(the size limit for known callers is FastAPI's `max_body_size`, see `create_http_app`)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from servicedesk_gateway.auth import Caller

PUBLIC_PATHS = frozenset(
    {"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Operations and documentation: served without a token."""


class RequireBearerToken:
    """ASGI middleware: every path but the public ones needs `Authorization: Bearer <token>`
    with a configured token. Roles are still checked by the routes' dependencies."""

    def __init__(self, app: ASGIApp, callers: Mapping[str, Caller]) -> None:
        self.app = app
        self.callers = callers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or self._known(scope):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"detail": "missing or unknown bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)

    def _known(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and token.strip() in self.callers
        return False
