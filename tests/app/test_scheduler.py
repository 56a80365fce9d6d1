"""The server's two model threads: queries never wait for ingestion, and sharing a model is exact."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor

import numpy as np
import pytest

from app.api.scheduler import ModelScheduler, SchedulerStopped
from core.content import Content


def test_a_query_runs_while_an_ingest_forward_holds_its_thread():
    scheduler = ModelScheduler()
    release = threading.Event()
    try:
        busy = scheduler.submit_background(release.wait, 30)
        queued = scheduler.submit_background(lambda: "second batch")
        assert scheduler.submit(lambda: "answer").result(timeout=10) == "answer"
        assert not busy.done() and not queued.done()  # the ingest thread is still on its forward
        release.set()
        assert queued.result(timeout=10) == "second batch"
    finally:
        release.set()
        scheduler.shutdown()


def test_shutdown_drops_waiting_ingest_work_and_refuses_more():
    scheduler = ModelScheduler()
    release = threading.Event()
    running = scheduler.submit_background(release.wait, 30)
    waiting = scheduler.submit_background(lambda: "never")
    scheduler.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert running.result(timeout=10) is True
    with pytest.raises(CancelledError):
        waiting.result(timeout=10)
    with pytest.raises(SchedulerStopped):
        scheduler.submit(lambda: None)


@pytest.mark.parametrize("which", ["tiny_embedder", "minilm"])
def test_one_embedder_used_from_both_threads_gives_what_it_gives_alone(request, which):
    embedder = request.getfixturevalue(which)
    documents = [Content(texts=(f"page {i}: " + "pump valve seal " * (i % 7 + 1),)) for i in range(12)]
    queries = [Content(texts=(f"which valve {i}?",)) for i in range(12)]
    alone_docs = embedder.embed_documents(documents)
    alone_queries = embedder.embed_queries(queries)
    # Documents one at a time (as an upload's forwards) against queries one at a time, at once:
    # the tokenizer's padding state would flip between the two without the shared lock.
    with ThreadPoolExecutor(2) as pool:
        docs = pool.submit(lambda: [embedder.embed_documents([d])[0] for d in documents])
        found = pool.submit(lambda: [embedder.embed_queries([q])[0] for q in queries])
        docs_vectors, query_vectors = np.stack(docs.result()), np.stack(found.result())
    np.testing.assert_allclose(docs_vectors, alone_docs, atol=1e-5)
    np.testing.assert_allclose(query_vectors, alone_queries, atol=1e-5)
