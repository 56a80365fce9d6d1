"""Where the server's model work runs: one thread for queries, one for ingestion, side by side.

Queries (search recall, reranking, deletes) run one at a time on the query thread, in arrival order:
two forwards of one model at once on a small CPU only slow both, and the rerank batcher gathers
concurrent requests into shared forwards instead. An upload's embedding forwards run on a second
thread, the ingest thread, at the same time as queries: a search never waits for an ingest batch
to finish. Measured on 2 cores (bench/serve_under_ingest.py), a single thread with queries first
still left a search waiting for the running ingest forward (p95 3.4x the idle p95 with forwards of
one page); two threads kept it at 1.4x, with the upload at full speed. On a GPU the two threads'
kernels interleave on the device.

Sharing a model between the two threads is safe for inference (no state changes), except for a
tokenizer's padding settings: every tokenizer call takes :data:`core.threads.TOKENIZER_LOCK`.

It is a :class:`concurrent.futures.Executor`, so ``loop.run_in_executor`` and the rerank batcher use
it as they would a one-thread pool; ``submit`` is the query thread, ``submit_background`` the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)


class SchedulerStopped(RuntimeError):
    """The scheduler is shut down (the server is stopping): no more work is taken."""


class ModelScheduler(Executor):
    """The query thread and the ingest thread (each runs its own work in arrival order)."""

    def __init__(self) -> None:
        self._queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-model")
        self._ingest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-ingest")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run query work on the query thread."""
        return self._on(self._queries, fn, args, kwargs)

    def submit_background(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ingestion work on the ingest thread (beside queries, never before them)."""
        return self._on(self._ingest, fn, args, kwargs)

    def run_background(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ingestion work on the ingest thread and wait for its result (from another thread)."""
        return self.submit_background(fn, *args, **kwargs).result()

    @staticmethod
    def _on(pool: ThreadPoolExecutor, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Future:
        try:
            return pool.submit(fn, *args, **kwargs)
        except RuntimeError as exc:  # the pool is shut down
            raise SchedulerStopped("the server is stopping; no more model work is taken") from exc

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; with ``cancel_futures`` drop what waits (its callers get CancelledError)."""
        for pool in (self._ingest, self._queries):
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
