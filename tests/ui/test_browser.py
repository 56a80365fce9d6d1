"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, on the real UI
process (started the way `mmsearch ui` starts it) against the live API. Saves a screenshot."""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
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


@contextmanager
def searched(url: str, query: str):
    """A headless Chromium page on the UI at `url` with `query` searched (the results may still load)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        box = page.get_by_label("Query")
        box.wait_for(timeout=60_000)
        box.fill(query)
        page.get_by_role("button", name="Search").click()
        try:
            yield page
        finally:
            browser.close()


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
    with searched(ui_server, "revenue growth chart") as page:
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
    assert pictures >= 1
    assert shot.stat().st_size > 10_000


def test_upload_limit_follows_the_api_and_document_text_is_not_markdown(ui_env):
    # The UI as `mmsearch serve` starts it, with the API's upload limit set to 7 MiB.
    settings = Settings(_env_file=None, ui_host="127.0.0.1", ui_port=free_port(), max_upload_bytes=7 * 2**20)
    process = start_ui(settings, ui_env.url)
    url = f"http://127.0.0.1:{settings.ui_port}"
    try:
        wait_for_ui(url, process)
        with searched(url, "Annual report revenue") as page:
            # examples/annual-report.md starts with "# Annual report 2024": its snippet is that line
            # as written, not a heading.
            expect(page.get_by_text("# Annual report 2024", exact=False).first).to_be_visible(timeout=120_000)
            main = page.locator('[data-testid="stMain"]')
            assert main.locator("h1, h2, h3, h4", has_text="Annual report 2024").count() == 0
            page.get_by_text("Library", exact=True).click()
            expect(page.get_by_text("7MB per file", exact=False)).to_be_visible(timeout=60_000)
            assert page.get_by_text("200MB", exact=False).count() == 0
    finally:
        process.terminate()
        process.wait(timeout=10)


def orange_box(png: bytes) -> tuple[float, float, float, float] | None:
    """Where the term highlight's outline colour is in a screenshot, normalised to it; None if nowhere."""
    import io

    import numpy as np
    from PIL import Image

    from ui.formatting import HIGHLIGHT_STYLE

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    outline = np.array(HIGHLIGHT_STYLE["term"][1][:3])
    ys, xs = np.nonzero(np.abs(pixels - outline).sum(axis=2) < 60)
    if len(xs) < 8:
        return None
    height, width = pixels.shape[:2]
    return xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height


def loaded_image(page, alt: str):
    """The picture with this alt text, once it is on screen and its pixels have loaded."""
    image = page.locator(f'img[alt="{alt}"]')
    expect(image).to_be_visible(timeout=120_000)
    page.wait_for_function(
        'alt => { const i = document.querySelector(`img[alt="${alt}"]`);'
        " return i && i.complete && i.naturalWidth > 0; }",
        arg=alt,
        timeout=60_000,
    )
    return image


def test_the_query_s_words_are_highlighted_over_the_page(ui_server, ui_env):
    # What the API says: the OCR'd scan of examples/ holds both words, and where.
    api = httpx.post(
        f"{ui_env.url}/v1/search",
        json={"query": "parking permits", "rerank": False, "top_n": 10},
        headers={"X-API-Key": ui_env.api_key},
        timeout=60,
    ).json()
    scan = next(h for h in api["hits"] if h["title"] == "board-minutes")
    terms = [h["box"] for h in scan["highlights"] if h["kind"] == "term"]
    assert len(terms) == 2
    expected = (
        min(b[0] for b in terms),
        min(b[1] for b in terms),
        max(b[2] for b in terms),
        max(b[3] for b in terms),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with searched(ui_server, "parking permits") as page:
        thumb = loaded_image(page, "thumbnail of board-minutes")
        expect(page.get_by_text("2 matching words marked on the page").first).to_be_visible()
        # The snippet marks the words (bold on a background), and shows no Markdown syntax.
        main = page.locator('[data-testid="stMain"]')
        expect(main.locator("strong", has_text="Parking").first).to_be_visible()
        assert "orange-background" not in main.inner_text()
        on_thumb = orange_box(thumb.screenshot())
        page.screenshot(path=str(ARTIFACTS / "ui-highlight.png"), full_page=True)
        # Full size: the same words boxed on the page's own picture.
        card = main.locator('[data-testid="stVerticalBlock"]', has=thumb).last
        card.get_by_role("button", name="View full size").click()
        full = loaded_image(page, "full page of board-minutes")
        on_full = orange_box(full.screenshot())
    for seen in (on_thumb, on_full):
        assert seen is not None, "no highlight drawn over the picture"
        # The outline hugs the words' boxes (padding and outline: a few pixels at this size).
        assert all(abs(s - e) < 0.05 for s, e in zip(seen, expected, strict=True)), (seen, expected)
