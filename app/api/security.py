"""The API key and the request-body limits, enforced before any route reads a byte of a body.

FastAPI reads and parses a request's body before it solves the route's dependencies, so a key check
as a dependency alone would read (and hold in memory) a 300 MiB body before answering 401.
:class:`RequestGuard` is a pure ASGI middleware in front of every route (not ``BaseHTTPMiddleware``,
which would buffer and wrap the body itself): it checks the key first, refuses a body whose
``Content-Length`` is over the route's limit without reading it, counts the bytes of a streamed body
as ``receive`` yields them, and answers 408 when a client stops sending in the middle of a body.

When ``MMSEARCH_API_KEY`` is set, every route but /health needs it, as ``Authorization: Bearer <key>``
or ``X-API-Key: <key>``. The docs routes (/openapi.json, /docs, /redoc and their assets) also take it
as the query parameter ``api_key`` or the cookie ``mmsearch_api_key``, because a browser cannot send a
header when it opens a page; no other route reads either.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import anyio
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.routing import compile_path

from app.api.errors import error_response
from app.api.metrics import ROUTE_TEMPLATE_KEY

PUBLIC_PATHS = frozenset({"/health"})
# Multipart routes take files: they get max_upload_bytes, every other route max_json_body_bytes.
UPLOAD_PATHS = frozenset({"/v1/documents", "/v1/search/upload"})
DOCS_PAGES = frozenset({"/openapi.json", "/docs", "/redoc"})
KEY_QUERY = "api_key"
KEY_COOKIE = "mmsearch_api_key"

# Declared so that the OpenAPI schema lists the two ways to send the key (Swagger UI's "Authorize").
_BEARER = HTTPBearer(auto_error=False, description="The API key as a bearer token.")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


def is_docs_path(path: str) -> bool:
    """Whether ``path`` is one of the docs routes (the pages, the schema, their assets)."""
    return path in DOCS_PAGES or path.startswith("/docs/")


def route_path(scope: dict[str, Any]) -> str:
    """The request's path below the app's root path (a proxy's prefix)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def presented_key(headers: Headers, path: str, query_string: bytes = b"") -> str | None:
    """The key a request carries: its header, or on the docs routes also its query or cookie."""
    given = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given and is_docs_path(path):
        given = QueryParams(query_string).get(KEY_QUERY) or cookie_parser(headers.get("cookie", "")).get(
            KEY_COOKIE
        )
    return given or None


def key_refusal(secret: SecretStr | None, given: str | None) -> tuple[int, str] | None:
    """``(status, message)`` when a request with key ``given`` must be refused; None when it may pass."""
    if secret is None:
        return None
    if not given:
        return 401, "an API key is required (Authorization: Bearer <key> or X-API-Key)"
    # surrogatepass: a header never holds one, but a key must never be the thing that raises.
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), secret.get_secret_value().encode("utf-8", "surrogatepass")
    ):
        return 403, "the API key is not valid"
    return None


def require_api_key(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    _header: Annotated[str | None, Security(_HEADER)] = None,
) -> None:
    """FastAPI dependency: the same check as :class:`RequestGuard`, which has already made it in an app
    from ``create_app``; it stays on the API routes as a second line, and so that the OpenAPI schema
    names the key. 401 when no key is given, 403 when a wrong one is.
    """
    path = route_path(request.scope)
    given = presented_key(request.headers, path, request.scope.get("query_string", b""))
    refusal = key_refusal(request.app.state.settings.api_key, given)
    if refusal is not None:
        status, message = refusal
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, message, headers=headers)


class BodyRefused(HTTPException):
    """A body over its limit (413) or stalled (408). An ``HTTPException``, so that FastAPI's body
    parsing lets it through unchanged (it turns other errors into a 400) and the app's handler
    renders it in the API's error shape."""


class RequestGuard:
    """Pure ASGI middleware: the API key, then the body limit, then the body-read timeout.

    Args:
        app: the ASGI app it guards.
        settings: ``api_key``, ``max_upload_bytes`` (upload routes), ``max_json_body_bytes`` (all
            others) and ``body_read_timeout_s`` (the longest wait for the next piece of a body).
    """

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        path = route_path(scope)
        headers = Headers(scope=scope)
        length = headers.get("content-length", "")
        # A refusal sent before the body is read closes the connection: the unread body cannot be
        # skipped safely, and keeping the connection would mean reading it after all.
        unread = (length not in ("", "0")) or "transfer-encoding" in headers
        if path not in PUBLIC_PATHS:
            given = presented_key(headers, path, scope.get("query_string", b""))
            refusal = key_refusal(settings.api_key, given)
            if refusal is not None:
                status, message = refusal
                extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
                await _refuse(scope, receive, send, status, message, close=unread, headers=extra)
                return
        limit = settings.max_upload_bytes if path in UPLOAD_PATHS else settings.max_json_body_bytes
        if length.isdigit() and int(length) > limit:
            message = f"the request body is {int(length)} bytes; this route takes at most {limit} bytes"
            await _refuse(scope, receive, send, 413, message, close=True)
            return

        timeout = settings.body_read_timeout_s
        received, body_done, started = 0, False, False

        async def guarded_receive() -> dict:
            nonlocal received, body_done
            if body_done:
                return await receive()  # past the body: a disconnect, whenever it comes
            # Once the answer is on its way, a slow body is the handler's business, not a 408.
            with anyio.move_on_after(None if started else timeout) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise BodyRefused(
                    408,
                    f"the request body stopped arriving: nothing for {timeout:g} s "
                    "(MMSEARCH_BODY_READ_TIMEOUT_S)",
                    headers={"Connection": "close"},
                )
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body (or one longer than it said): refused at once
                    raise BodyRefused(
                        413,
                        f"the request body is over this route's limit of {limit} bytes",
                        headers={"Connection": "close"},
                    )
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except BodyRefused as exc:  # raised where no handler of the app rendered it
            if started:
                raise
            await _refuse(scope, receive, send, exc.status_code, str(exc.detail), close=True)


async def _refuse(
    scope: dict,
    receive: Any,
    send: Any,
    status: int,
    message: str,
    *,
    close: bool,
    headers: dict[str, str] | None = None,
) -> None:
    extra = dict(headers or {})
    if close:
        extra["Connection"] = "close"
    template = _route_template(scope)
    if template is not None:
        scope[ROUTE_TEMPLATE_KEY] = template
    await error_response(status, message, extra)(scope, receive, send)


def _route_template(scope: dict) -> str | None:
    """The route template of a request the router never saw (refused here), read from the app's
    OpenAPI paths (public API, unlike FastAPI's router internals), so metrics count it under its route."""
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return None
    templates = getattr(app.state, "route_templates", None)
    if templates is None:  # built once per app, on its first refusal
        templates = [(compile_path(p)[0], p) for p in [*app.openapi()["paths"], *DOCS_PAGES]]
        app.state.route_templates = templates
    path = route_path(scope)
    return next((template for regex, template in templates if regex.match(path)), None)
