"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, on the real UI
process (started the way `mmsearch ui` starts it) against the live API. Saves a screenshot."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from app.cli.ui_command import start_ui
from core.settings import Settings
from tests.conftest import free_port

ARTIFACTS = Path(os.environ.get("MMSEARCH_TEST_ARTIFACTS", "test-artifacts"))


def chromium() -> str:
    path = os.environ.get("MMSEARCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no Chromium: install Debian's `chromium` package (CI does) or set MMSEARCH_CHROMIUM")
    return path


@pytest.fixture
def ui_server(ui_env):
    settings = Settings(_env_file=None, ui_host="127.0.0.1", ui_port=free_port())
    process = start_ui(settings, ui_env.url)
    url = f"http://127.0.0.1:{settings.ui_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the UI did not start (exit code {process.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_query_in_the_browser_shows_result_cards_with_pictures(ui_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(ui_server)
        query = page.get_by_label("Query")
        query.wait_for(timeout=60_000)
        query.fill("revenue growth chart")
        page.get_by_role("button", name="Search").click()
        first = page.get_by_text("#1 ", exact=False).first
        expect(first).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Reranker score").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Total")).to_be_visible()
        # Every picture on a card really loaded (a broken image has no natural width).
        page.wait_for_function(
            "() => { const imgs = [...document.querySelectorAll('[data-testid=\"stMain\"] img')];"
            " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
            timeout=60_000,
        )
        pictures = page.locator('[data-testid="stMain"] img').count()
        shot = ARTIFACTS / "ui-search.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert pictures >= 1
    assert shot.stat().st_size > 10_000
