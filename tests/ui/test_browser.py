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


def wait_for_ui(url: str, process) -> None:
    """Until the UI process answers its health check (it fails when the process ends first)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the UI did not start (exit code {process.poll()})")
        time.sleep(0.2)


@pytest.fixture
def ui_server(ui_env):
    settings = Settings(_env_file=None, ui_host="127.0.0.1", ui_port=free_port())
    process = start_ui(settings, ui_env.url)
    url = f"http://127.0.0.1:{settings.ui_port}"
    try:
        wait_for_ui(url, process)
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


def test_upload_limit_follows_the_api_and_document_text_is_not_markdown(ui_env):
    # The UI as `mmsearch serve` starts it, with the API's upload limit set to 7 MiB.
    settings = Settings(_env_file=None, ui_host="127.0.0.1", ui_port=free_port(), max_upload_bytes=7 * 2**20)
    process = start_ui(settings, ui_env.url)
    url = f"http://127.0.0.1:{settings.ui_port}"
    try:
        wait_for_ui(url, process)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            query = page.get_by_label("Query")
            query.wait_for(timeout=60_000)
            query.fill("Annual report revenue")
            page.get_by_role("button", name="Search").click()
            # examples/annual-report.md starts with "# Annual report 2024": its snippet is that line
            # as written, not a heading.
            expect(page.get_by_text("# Annual report 2024", exact=False).first).to_be_visible(timeout=120_000)
            main = page.locator('[data-testid="stMain"]')
            assert main.locator("h1, h2, h3, h4", has_text="Annual report 2024").count() == 0
            page.get_by_text("Library", exact=True).click()
            expect(page.get_by_text("7MB per file", exact=False)).to_be_visible(timeout=60_000)
            assert page.get_by_text("200MB", exact=False).count() == 0
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
