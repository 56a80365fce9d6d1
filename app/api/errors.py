"""Errors to HTTP: typed library errors become 4xx with a JSON body; nothing leaks a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ContentTypeError,
    DocumentError,
    InputTooLongError,
    InvalidInputError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    ModelLoadError,
    RemoteMediaError,
    SchemaMismatchError,
    StoreError,
    UnknownModelError,
    UnsupportedFormatError,
)

logger = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (MediaTooLargeError, 413),
    (InputTooLongError, 413),
    (UnsupportedFormatError, 415),
    (ContentTypeError, 422),
    (RemoteMediaError, 422),
    (MediaNotFoundError, 422),  # a media reference in a request that points nowhere
    (MediaError, 422),
    (DocumentError, 422),
    (InvalidInputError, 422),
    (SchemaMismatchError, 409),
    (UnknownModelError, 404),
    (ModelLoadError, 503),
    (StoreError, 503),
    (MMSearchError, 400),
)


def status_for(exc: Exception) -> int:
    """The HTTP status of a library error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


# The error type of an HTTP status raised without a library error.
HTTP_KINDS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 408: "Timeout", 413: "TooLarge"}


def error_body(status: int, kind: str, message: str) -> dict[str, object]:
    """The one JSON error shape of the API."""
    # A message may quote client text; a lone surrogate in it would make the JSON encoder raise (a 500).
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"status": status, "type": kind, "message": message}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer for an HTTP status (the body of :func:`error_body`, typed by its status)."""
    body = error_body(status, HTTP_KINDS.get(status, "HTTPError"), message)
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map library errors, validation errors and anything unexpected to JSON responses."""

    @app.exception_handler(MMSearchError)
    async def _library(request: Request, exc: MMSearchError) -> JSONResponse:
        status = status_for(exc)
        return JSONResponse(error_body(status, type(exc).__name__, str(exc)), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return JSONResponse(error_body(422, "ValidationError", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(500, "InternalError", "the server failed; the error is in its log"), status_code=500
        )
