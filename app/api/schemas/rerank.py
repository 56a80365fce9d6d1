"""Request and response models of ``POST /v1/rerank`` (and ``/v2/rerank``): the Cohere/Jina rerank schema.

The shapes follow Cohere's rerank API closely enough that the official Cohere SDKs (``cohere.Client``
for v1, ``cohere.ClientV2`` for v2) work unchanged with ``base_url`` pointing at this server, and Jina
style clients (``{"model", "query", "documents", "top_n", "return_documents"}``) too. Extensions: a query
or document may be an object with ``text``, ``image`` and ``video`` (media as base64, a ``data:`` URI or
an allow-listed http(s) URL), and ``instruction`` replaces the reranker's default task instruction.

Fields that hosted APIs define but a self-hosted cross-encoder has no use for (``max_tokens_per_doc``,
``max_chunks_per_doc``, ``rank_fields``, ``relevant_spans``, ``priority``) and unknown fields are
accepted and ignored, so that SDK upgrades that send new optional fields keep working.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import TextRequest


class ContentInput(BaseModel):
    """A multimodal query or document: any mix of text, images and one video (at least one of them)."""

    model_config = ConfigDict(extra="forbid")

    text: str | list[str] | None = Field(None, description="Text, or several text parts.")
    image: str | list[str] | None = Field(
        None, description="An image (or a list) as base64, a data: URI, or an allow-listed http(s) URL."
    )
    video: str | None = Field(None, description="A video as base64, a data: URI, or an allow-listed URL.")


# A query or a document: a plain string is the same as {"text": "..."}.
ContentValue = str | ContentInput


class RerankRequest(TextRequest):
    """Body of ``POST /v1/rerank`` (every string checked for lone surrogates: see ``TextRequest``)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "query": "quarterly revenue growth",
                    "documents": ["Revenue grew 12 percent.", {"text": "The cat sat on the mat."}],
                    "top_n": 1,
                    "return_documents": True,
                }
            ]
        },
    )

    model: str | None = Field(
        None,
        description="Which loaded reranker scores the request: its name (GET /v1/models) or model id; "
        "empty: the default. An unknown name is 404.",
    )
    query: ContentValue = Field(description="The query: a string or a {text, image, video} object.")
    documents: list[ContentValue] = Field(
        description="The documents to rank: strings or {text, image, video} objects. At most "
        "MMSEARCH_MAX_RERANK_DOCUMENTS (413 beyond)."
    )
    top_n: int | None = Field(None, ge=1, description="Return only the best n results (default: all).")
    return_documents: bool = Field(False, description="Echo each result's document back.")
    instruction: str | None = Field(
        None, description="Task instruction for the reranker (mmsearch extension); default: the model's."
    )
    max_tokens_per_doc: int | None = Field(
        None,
        description="Accepted for Cohere v2 clients and ignored (documents are cut at rerank_max_length).",
    )


class RerankDocument(BaseModel):
    """A document echoed back (``return_documents``): ``{"text": ...}`` for a string, as Cohere returns it."""

    model_config = ConfigDict(extra="forbid")

    text: str | list[str] | None = None
    image: str | list[str] | None = None
    video: str | None = None


class RerankResult(BaseModel):
    """One ranked document."""

    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float = Field(description="Relevance in [0, 1]; higher is more relevant.")
    document: RerankDocument | None = Field(None, description="The document, when `return_documents`.")


class ApiVersion(BaseModel):
    """Which API shape answered (Cohere's ``meta.api_version``)."""

    version: str


class BilledUnits(BaseModel):
    """Cohere's ``meta.billed_units``: one search unit per 100 documents (nothing is billed here)."""

    search_units: int


class TokenUsage(BaseModel):
    """Tokens the reranker read: every (query, document) prompt after truncation."""

    input_tokens: int


class RerankMeta(BaseModel):
    """Cohere's ``meta`` object."""

    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: TokenUsage


class RerankResponse(BaseModel):
    """Body of a successful rerank: results best first, ties in input order."""

    id: str
    model: str = Field(description="The name of the reranker that scored the request.")
    results: list[RerankResult]
    meta: RerankMeta


def echo_document(value: Any) -> RerankDocument:
    """The document as a client sent it, in the response's shape (a string becomes ``{"text": ...}``)."""
    if isinstance(value, str):
        return RerankDocument(text=value)
    return RerankDocument(**value.model_dump(exclude_none=True))


class ModelInfo(BaseModel):
    """One loaded reranker."""

    id: str = Field(description="Its name: what `model` in /v1/rerank and `reranker` in /v1/search take.")
    object: str = "model"
    model: str = Field(description="The checkpoint it was loaded from (hub id or folder).")
    backend: str = Field(description="Its scoring rule: qwen3-vl or jina-m0.")
    default: bool = Field(description="Whether requests that name no model get this one.")


class ModelList(BaseModel):
    """Body of ``GET /v1/models`` (the OpenAI-style list shape): the default reranker first."""

    object: str = "list"
    data: list[ModelInfo]
