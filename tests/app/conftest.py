"""API fixtures: loaded services built from the tiny session models, and in-process clients.

The services own a fresh embedded store under ``tmp_path`` per test; the models are the session
fixtures, so building services is cheap. ``client`` enters the ``TestClient`` as a context manager, so
the app's lifespan runs (services attached at startup, detached at shutdown).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

API_KEY = "test-secret-key"


@pytest.fixture
def api_settings_factory(tmp_path, tiny_reranker_dir, tiny_embedder_dir) -> Callable[..., Any]:
    """Build ``Settings`` for a test server under ``tmp_path``; keyword overrides win."""
    from core.settings import Settings

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "reranker_model": str(tiny_reranker_dir),
            "embedder_model": str(tiny_embedder_dir),
            "device": "cpu",
            "dtype": "float32",
            "api_key": None,  # never inherit MMSEARCH_API_KEY from the environment running the tests
            "remote_media_hosts": None,
        }
        values.update(overrides)
        # _env_file=None: a developer's .env must not change what the tests see.
        return Settings(_env_file=None, **values)

    return build


@pytest.fixture
def services_factory(
    tmp_path, api_settings_factory, tiny_reranker, tiny_embedder
) -> Iterator[Callable[..., Any]]:
    """Build loaded ``Services`` (tiny reranker and embedder, embedded store); all closed at teardown."""
    from app.api.services import Services
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    built: list[Services] = []

    def build(**settings_overrides: Any) -> Services:
        # Each build its own folder: an embedded store is locked by the client that opened it.
        settings_overrides.setdefault("data_dir", tmp_path / f"data-{len(built)}")
        settings = api_settings_factory(**settings_overrides)
        settings.store_path.mkdir(parents=True, exist_ok=True)
        store = VectorStore.open(path=settings.store_path, collection=settings.collection)
        services = Services(
            settings=settings,
            store=store,
            media=MediaStore(settings.media_dir),
            embedder=tiny_embedder,
            reranker=tiny_reranker,
        )
        built.append(services)
        return services

    yield build
    for services in built:
        services.close()


@pytest.fixture
def api_services(services_factory) -> Any:
    """Loaded services with default API settings (no API key)."""
    return services_factory()


@pytest.fixture
def client(api_services) -> Iterator[TestClient]:
    """An in-process client of an app without an API key; the lifespan runs around the test."""
    from app.api.main import create_app

    with TestClient(create_app(services=api_services)) as test_client:
        yield test_client


@pytest.fixture
def auth_client(services_factory) -> Iterator[TestClient]:
    """An in-process client of an app whose API key is :data:`API_KEY` (sends no key by itself)."""
    from app.api.main import create_app

    with TestClient(create_app(services=services_factory(api_key=API_KEY))) as test_client:
        yield test_client
