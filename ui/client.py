"""A small client of the mmsearch REST API, as the UI uses it.

Every failure becomes an :class:`ApiError` with a sentence a person can act on: the API is not
reachable at this address, the API key is wrong, the request was refused and why.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


class ApiError(Exception):
    """The API could not be reached or refused a request; ``str()`` is the message to show."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadFile:
    """One file to upload: its name and bytes."""

    name: str
    data: bytes


class ApiClient:
    """Talks to one mmsearch API.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``X-API-Key`` when the server needs one.
        timeout_s: how long to wait for one answer (a search with reranking on a CPU takes seconds).
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- routes -------------------------------------------------------------------------------------

    def ready(self) -> dict[str, Any]:
        """``GET /ready``: whether the models and the store are loaded."""
        return self._json("GET", "/ready")

    def rerankers(self) -> list[str]:
        """``GET /v1/models``: the names of the loaded rerankers, the default first."""
        return [model["id"] for model in self._json("GET", "/v1/models")["data"]]

    def search(
        self,
        text: str = "",
        *,
        image: bytes | None = None,
        k: int = 50,
        top_n: int = 10,
        rerank: bool = True,
        reranker: str | None = None,
        instruction: str | None = None,
        modalities: Sequence[str] = (),
        doc_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        legs: Sequence[str] = (),
        group_size: int | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/search`` with text, an image (sent as base64), or both; ``legs`` empty uses the
        server's default legs, ``group_size`` groups hits by document."""
        if not text.strip() and image is None:
            raise ApiError("Type a query or add an image to search with.")
        query: dict[str, Any] = {}
        if text.strip():
            query["text"] = text.strip()
        if image is not None:
            query["image"] = base64.b64encode(image).decode()
        body = {
            "query": query,
            "k": k,
            "top_n": top_n,
            "rerank": rerank,
            "reranker": reranker or None,
            "instruction": instruction or None,
            "filters": {"modalities": list(modalities), "doc_ids": list(doc_ids), "tags": list(tags)},
        }
        if legs:
            body["legs"] = list(legs)
        if group_size is not None:
            body["group_by"], body["group_size"] = "document", group_size
        return self._json("POST", "/v1/search", json=body)

    def documents(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Every indexed document (``GET /v1/documents``, page by page)."""
        documents: list[dict[str, Any]] = []
        while True:
            page = self._json("GET", "/v1/documents", params={"limit": limit, "offset": len(documents)})
            documents.extend(page["documents"])
            if not page["documents"] or len(documents) >= page["total"]:
                return documents

    def upload(self, files: Sequence[UploadFile], tags: Sequence[str] = ()) -> dict[str, Any]:
        """``POST /v1/documents``: start indexing the files; returns the accepted job."""
        if not files:
            raise ApiError("Choose at least one file to upload.")
        parts = [("files", (f.name, f.data, "application/octet-stream")) for f in files]
        data = {"tags": ",".join(tags)} if tags else None
        return self._json("POST", "/v1/documents", files=parts, data=data)

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``: an ingestion job's state and per-file results."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def delete(self, doc_id: str) -> dict[str, Any]:
        """``DELETE /v1/documents/{id}``."""
        return self._json("DELETE", f"/v1/documents/{doc_id}")

    def fetch(self, path: str) -> bytes:
        """The bytes behind a path the API handed out (a picture, a keyframe, a source file)."""
        return self._request("GET", path).content

    # -- plumbing -----------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiError(
                f"The API at {self.base_url} did not answer in time ({exc.__class__.__name__})."
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                f"The API at {self.base_url} is not reachable: {exc}. Start it with `mmsearch serve`, "
                "or point the UI elsewhere with MMSEARCH_UI_API_URL."
            ) from exc
        if response.status_code >= 400:
            raise ApiError(_refusal(response), response.status_code)
        return response


def _refusal(response: httpx.Response) -> str:
    """The API's own explanation of a 4xx/5xx, prefixed with what it means for the user."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    detail = ""
    if isinstance(error, dict):
        detail = str(error.get("message") or "")
    elif isinstance(body, dict) and body.get("detail"):
        detail = str(body["detail"])
    detail = detail or response.text[:300] or response.reason_phrase
    if response.status_code in (401, 403):
        return (
            f"The API refused the API key ({response.status_code}): {detail}. "
            "Set MMSEARCH_API_KEY to the server's key."
        )
    if response.status_code == 503:
        return f"The API is not ready (503): {detail}"
    return f"The API refused the request ({response.status_code}): {detail}"
