"""UI test fixtures: the UI reads its settings from the environment, pointed at the live API
(``live_api`` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import LiveApi


@pytest.fixture
def ui_env(monkeypatch, live_api) -> LiveApi:
    """Point the UI (which reads the settings from the environment) at the live API."""
    monkeypatch.setenv("MMSEARCH_UI_API_URL", live_api.url)
    monkeypatch.setenv("MMSEARCH_API_KEY", live_api.api_key)
    return live_api
