"""Everything the API serves with, loaded once in the lifespan: store, models, retriever, jobs.

Model calls go through :attr:`Services.model_executor`, a :class:`~app.api.scheduler.ModelScheduler`:
queries on one thread (never on the event loop, never two at a time), an upload's embedding forwards on
a second thread beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from app.api.scheduler import ModelScheduler
from core.settings import Settings
from indexer.media_store import MediaStore
from indexer.store import VectorStore

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """The loaded parts of a running server. Tests build one from tiny models and pass it to the app.

    Attributes:
        settings: the server's settings.
        store: the open vector store (one client for the whole process).
        media: the media store.
        embedder: embeds queries (and uploads) with the collection's model.
        text_embedder: optional second, text-only embedder.
        reranker: the default reranker (or None: search then returns first-stage order).
        other_rerankers: more rerankers by name (the ``rerankers`` setting); requests pick by name.
        model_executor: the query thread and the ingest thread that run model work.
    """

    settings: Settings
    store: VectorStore
    media: MediaStore
    embedder: Any
    text_embedder: Any = None
    reranker: Any = None
    other_rerankers: dict[str, Any] = field(default_factory=dict)
    model_executor: ModelScheduler = field(default_factory=ModelScheduler)
    extras: dict[str, Any] = field(default_factory=dict)  # per-feature state (jobs, batcher, ...)

    @classmethod
    def load(cls, settings: Settings) -> Services:
        """Open the configured store and load the configured models (slow: done once, at startup)."""
        from indexer.embedders import embedder_from_settings, text_embedder_from_settings
        from indexer.setup import open_store
        from reranker import rerankers_from_specs, specs_from_settings

        specs = specs_from_settings(settings)  # a malformed reranker spec fails before anything slow
        store = open_store(settings)
        try:
            # Index what earlier jobs left unindexed now, before the port opens: the embedded engine
            # holds Python's GIL while it builds, so while serving it would stall every request.
            store.optimize()
            embedder = embedder_from_settings(settings)
            text_embedder = text_embedder_from_settings(settings)
            rerankers = rerankers_from_specs(settings, specs)
        except BaseException:
            store.close()
            raise
        default, *others = rerankers.items()
        return cls(
            settings,
            store,
            MediaStore(settings.media_dir),
            embedder,
            text_embedder,
            default[1],
            dict(others),
        )

    def rerankers(self) -> dict[str, Any]:
        """Every loaded reranker by name, the default first."""
        from reranker.registry import default_name

        found = {}
        if self.reranker is not None:
            found[default_name(str(getattr(self.reranker, "model_name", "default")))] = self.reranker
        return found | self.other_rerankers

    def reranker_for(self, model: str | None) -> tuple[str, Any]:
        """The reranker a request names (``None``: the default), with its name.

        Raises:
            UnknownModelError: none is loaded under that name (404, listing the loaded names).
        """
        from reranker.registry import pick

        return pick(self.rerankers(), model)

    def close(self) -> None:
        """Stop the jobs after their batch (they resume at the next start), fail queued work (the
        rerank batcher's), stop the model thread, release the store."""
        for part in self.extras.values():
            close = getattr(part, "close", None)
            if callable(close):
                close()
        self.model_executor.shutdown(wait=True, cancel_futures=True)
        self.store.close()


def get_services(request: Request) -> Services:
    """FastAPI dependency: the loaded services, or 503 while they are still loading."""
    from fastapi import HTTPException

    services = getattr(request.app.state, "services", None)
    if services is None:
        raise HTTPException(503, "the server is still loading its models; retry in a moment")
    return services


async def run_model(services: Services, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run blocking model work on the model thread and await it, keeping the event loop free."""
    import asyncio
    import functools

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(services.model_executor, functools.partial(fn, *args, **kwargs))
