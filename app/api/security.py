"""Optional API key: when ``MMSEARCH_API_KEY`` is set, every route but /health needs it."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def require_api_key(request: Request) -> None:
    """FastAPI dependency: accept ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

    401 when no key is given, 403 when a wrong one is.
    """
    secret = request.app.state.settings.api_key
    if secret is None:
        return
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given:
        raise HTTPException(
            401,
            "an API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        raise HTTPException(403, "the API key is not valid")
