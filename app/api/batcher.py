"""Cross-request batching for the reranker: concurrent rerank requests share forward passes.

Each request puts its (query, documents, instruction) on a queue and awaits a future. A drain runs on
the query thread (``Services.model_executor``, so reranking never overlaps other query work): it takes
every request waiting, encodes each one (a request whose media is broken fails alone, here), plans
batches over all pairs of all those requests with the reranker's token budget, runs one forward per
batch and hands each request its scores in input order. While a drain runs, new requests queue up and
the next round takes them together: under load, batches fill; when idle, a request starts at once.

There is no thread of its own: a drain is submitted to the model executor when the first request
arrives and ends when the queue is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from core.content import Content
from core.qwen_vl.batching import plan_batches

logger = logging.getLogger(__name__)

# stage name, seconds
StageObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class RerankScores:
    """The scores of one request, in input order, and the prompt tokens they took."""

    scores: list[float]
    input_tokens: int


@dataclass
class BatcherStats:
    """Counters that show how well requests were batched (read them in tests and logs)."""

    requests: int = 0
    rounds: int = 0  # drain iterations: each took every request waiting at that moment
    forward_passes: int = 0
    pairs: int = 0


@dataclass
class _Job:
    query: Content
    documents: Sequence[Content]
    instruction: str | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    pairs: list[Any] = field(default_factory=list)


class RerankBatcher:
    """Batches concurrent :meth:`score` calls over one reranker.

    Args:
        reranker: a reranker with ``encode(query, docs, instruction=)``, ``forward(pairs)`` and
            ``batch_tokens`` (:class:`reranker.Qwen3VLReranker`).
        executor: the one thread that runs model work.
        observe: optional callback ``(stage, seconds)`` for ``rerank_encode`` and ``rerank_forward``.
    """

    def __init__(self, reranker: Any, executor: Executor, *, observe: StageObserver | None = None) -> None:
        self.reranker = reranker
        self.executor = executor
        self.observe = observe
        self.stats = BatcherStats()
        self._lock = threading.Lock()
        self._pending: list[_Job] = []
        self._draining = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Requests waiting for the next round."""
        with self._lock:
            return len(self._pending)

    async def score(
        self, query: Content, documents: Sequence[Content], instruction: str | None = None
    ) -> RerankScores:
        """Score ``documents`` against ``query``, batched with whatever else is waiting.

        Raises:
            MMSearchError: what the reranker raised for this request (its media, its length).
            RuntimeError: the batcher was closed.
        """
        if not documents:
            return RerankScores([], 0)
        loop = asyncio.get_running_loop()
        job = _Job(query, list(documents), instruction, loop, loop.create_future())
        with self._lock:
            if self._closed:
                raise RuntimeError("the rerank batcher is closed")
            self._pending.append(job)
            start = not self._draining
            self._draining = True
        if start:
            try:
                self.executor.submit(self._drain)
            except RuntimeError:  # the executor is shutting down
                with self._lock:
                    self._draining = False
                    self._pending.remove(job)
                raise
        return await job.future

    def close(self) -> None:
        """Refuse new requests and fail those still waiting (at shutdown)."""
        with self._lock:
            self._closed = True
            jobs, self._pending = self._pending, []
        for job in jobs:
            _resolve(job, error=RuntimeError("the server is shutting down"))

    # -- on the model thread --------------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            with self._lock:
                jobs, self._pending = self._pending, []
                if not jobs:
                    self._draining = False
                    return
            try:
                self._round(jobs)
            except BaseException as exc:  # never leave a request waiting forever
                logger.exception("rerank round failed")
                for job in jobs:
                    _resolve(job, error=exc)

    def _round(self, jobs: list[_Job]) -> None:
        self.stats.rounds += 1
        self.stats.requests += len(jobs)
        ready: list[_Job] = []
        start = time.perf_counter()
        for job in jobs:
            if job.future.done():  # the client went away (cancelled) before its turn
                continue
            try:
                job.pairs = self.reranker.encode(job.query, job.documents, instruction=job.instruction)
            except Exception as exc:  # this request's media or length: it alone fails
                _resolve(job, error=exc)
                continue
            ready.append(job)
        self._observe("rerank_encode", time.perf_counter() - start)
        if not ready:
            return
        # Flatten every pair of every request, so one forward pass can mix requests.
        owners = [(j, i) for j, job in enumerate(ready) for i in range(len(job.pairs))]
        pairs = [ready[j].pairs[i] for j, i in owners]
        scores: list[list[float]] = [[0.0] * len(job.pairs) for job in ready]
        failed: dict[int, BaseException] = {}
        start = time.perf_counter()
        for batch in plan_batches([len(p.input_ids) for p in pairs], self.reranker.batch_tokens):
            if any(owners[k][0] in failed for k in batch):
                batch = [k for k in batch if owners[k][0] not in failed]
                if not batch:
                    continue
            self.stats.forward_passes += 1
            self.stats.pairs += len(batch)
            try:
                values = self.reranker.forward([pairs[k] for k in batch])
            except Exception as exc:
                # Unexpected (a model error, out of memory): fail the requests in this batch only.
                logger.exception("rerank forward pass failed")
                for k in batch:
                    failed.setdefault(owners[k][0], exc)
                continue
            for k, value in zip(batch, values, strict=True):
                j, i = owners[k]
                scores[j][i] = value
        self._observe("rerank_forward", time.perf_counter() - start)
        for j, job in enumerate(ready):
            if j in failed:
                _resolve(job, error=failed[j])
            else:
                tokens = sum(len(p.input_ids) for p in job.pairs)
                _resolve(job, result=RerankScores(scores[j], tokens))
            job.pairs = []  # free the pixel tensors now, not when the request object goes

    def _observe(self, stage: str, seconds: float) -> None:
        if self.observe is not None:
            try:
                self.observe(stage, seconds)
            except Exception:  # metrics must never fail a request
                logger.exception("could not record stage %s", stage)


def _resolve(job: _Job, *, result: RerankScores | None = None, error: BaseException | None = None) -> None:
    """Complete a job's future from any thread (futures belong to their event loop)."""

    def complete() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        job.loop.call_soon_threadsafe(complete)


def get_batcher(
    services: Any, model: str | None = None, *, observe: StageObserver | None = None
) -> tuple[str, RerankBatcher]:
    """The batcher of the reranker a request names (None: the default), created on first use and kept
    in ``services.extras``; each loaded reranker has its own, all on the one query thread.

    Raises:
        UnknownModelError: no reranker is loaded under that name.
    """
    name, reranker = services.reranker_for(model)
    key = f"rerank_batcher:{name}"
    batcher = services.extras.get(key)
    if batcher is None:
        # setdefault: two first requests racing on the event loop cannot both install one.
        batcher = services.extras.setdefault(
            key, RerankBatcher(reranker, services.model_executor, observe=observe)
        )
    return name, batcher
