"""A live REST API (tiny models, the examples/ folder indexed) for the UI tests, on a free local port.

The server runs in a thread of the test process with uvicorn, exactly as ``mmsearch serve`` runs the
app; the UI under test reaches it over real HTTP.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from indexer.loaders.base import LoadOptions

API_KEY = "ui-test-key"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Small renders keep the tiny models fast; what the UI shows does not depend on the size.
OPTIONS = LoadOptions(image_max_pixels=48 * 32 * 32, frame_max_pixels=8 * 32 * 32, segment_seconds=2.0)


@dataclass(frozen=True)
class LiveApi:
    url: str
    api_key: str
    examples: Path  # the indexed copy of examples/


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_api(
    tmp_path_factory, tiny_reranker_dir, tiny_embedder_dir, tiny_reranker, tiny_embedder
) -> Iterator[LiveApi]:
    from app.main import create_app
    from app.services import Services
    from core.settings import Settings
    from indexer.ingest import Ingestor
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    root = tmp_path_factory.mktemp("ui-api")
    examples = Path(shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.py")))
    settings = Settings(
        _env_file=None,
        data_dir=root / "data",
        reranker_model=str(tiny_reranker_dir),
        embedder_model=str(tiny_embedder_dir),
        device="cpu",
        dtype="float32",
        api_key=API_KEY,
        remote_media_hosts=None,
    )
    settings.store_path.mkdir(parents=True)
    store = VectorStore.open(path=settings.store_path, collection=settings.collection)
    media = MediaStore(settings.media_dir)
    report = Ingestor(store, media, tiny_embedder, options=OPTIONS).ingest([examples])
    assert not report.failed, report
    services = Services(
        settings=settings, store=store, media=media, embedder=tiny_embedder, reranker=tiny_reranker
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API did not start")
        time.sleep(0.05)
    yield LiveApi(f"http://127.0.0.1:{port}", API_KEY, examples)
    server.should_exit = True
    thread.join(timeout=10)
    services.close()


@pytest.fixture
def ui_env(monkeypatch, live_api) -> LiveApi:
    """Point the UI (which reads the settings from the environment) at the live API."""
    monkeypatch.setenv("MMSEARCH_UI_API_URL", live_api.url)
    monkeypatch.setenv("MMSEARCH_API_KEY", live_api.api_key)
    return live_api
