"""The model thread, with priorities: queries first, ingestion in between.

Every model call of the server runs on one thread (two forwards at once on 2 cores only slow both,
and a model is not safe to call from two threads). Work comes in two classes: queries (search recall,
reranking, deletes) and background work (an ingestion job's embedding batches). The thread always
takes the oldest query first; a background batch runs only when no query waits. A query therefore
waits at most for the one batch that is running, whatever the size of the upload, and a job still
progresses whenever the queries leave the thread free.

It is a :class:`concurrent.futures.Executor`, so ``loop.run_in_executor`` and the rerank batcher use
it as they would a one-thread pool; ``submit`` is the query class, ``submit_background`` the other.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

logger = logging.getLogger(__name__)

QUERY, BACKGROUND = 0, 1


class SchedulerStopped(RuntimeError):
    """The scheduler is shut down (the server is stopping): no more work is taken."""


class ModelScheduler(Executor):
    """One worker thread taking queries before background work, each class in arrival order."""

    def __init__(self, name: str = "mmsearch-model") -> None:
        self._queue: list[tuple[int, int, Future, Callable[[], Any]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self.done = {QUERY: 0, BACKGROUND: 0}  # tasks run, per class (tests and logs read them)
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue query work (ahead of any background work waiting)."""
        return self._put(QUERY, fn, args, kwargs)

    def submit_background(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue background work: it runs when no query waits."""
        return self._put(BACKGROUND, fn, args, kwargs)

    def run_background(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run background work on the model thread and wait for its result (from another thread)."""
        return self.submit_background(fn, *args, **kwargs).result()

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def _put(self, priority: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Future:
        future: Future = Future()
        with self._cond:
            if self._stopped:
                raise SchedulerStopped("the server is stopping; no more model work is taken")
            heapq.heappush(self._queue, (priority, next(self._order), future, lambda: fn(*args, **kwargs)))
            self._cond.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return  # stopped and drained
                priority, _, future, call = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # the caller gets it; the thread goes on
                future.set_exception(exc)
            self.done[priority] += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; with ``cancel_futures`` drop what waits (its callers get CancelledError)."""
        with self._cond:
            self._stopped = True
            if cancel_futures:
                for _, _, future, _ in self._queue:
                    future.cancel()
                self._queue.clear()
            self._cond.notify_all()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()
