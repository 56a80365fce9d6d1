"""A document's own text is shown as text in the UI: never as a heading, a link or a remote image.

The pages run in Streamlit's AppTest against the live API; what Streamlit would render as Markdown is
rendered here by a CommonMark renderer (markdown-it-py) to see what a browser would get.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from ui.client import ApiClient, UploadFile
from ui.formatting import MARK_CLOSE, MARK_OPEN, markdown_text

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
EVIL = (
    "# Report [click here](http://evil.example/phish) ![tracker](http://evil.example/pixel.png)\n\n"
    "Quarterly **budget** notes: see <img src=http://evil.example/x.png> and [docs](http://evil.example/d).\n"
)


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)


def shown_text(markdown: str) -> str:
    """The text a reader sees of rendered Markdown."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", rendered(markdown))).split())


@pytest.mark.parametrize(
    "text",
    [
        "# Annual report 2024",
        "Report [click here](http://evil.example/phish) ![x](http://evil.example/p.png)",
        "**bold** _it_ `code` <b>html</b> &amp; 1. list | a | b | ~~gone~~ > quote \\ back",
        "https://evil.example/autolink <https://evil.example/angle> :red[colour] $x^2$",
        "line one\n\n    indented code\n- item",
    ],
)
def test_markdown_text_shows_exactly_the_text(text):
    out = rendered(markdown_text(text))
    assert not re.search(r"<(h\d|a|img|strong|em|code|pre|ul|ol|li|blockquote|table|del|b)\b", out), out
    assert shown_text(markdown_text(text)) == " ".join(text.split())


@pytest.fixture
def evil_document(ui_env):
    """A Markdown file whose title and text hold links, a remote image and emphasis, indexed through
    the API (and removed again afterwards)."""
    client = ApiClient(ui_env.url, ui_env.api_key)
    job = client.upload([UploadFile("evil-notes.md", EVIL.encode())])
    deadline = time.monotonic() + 120
    while (state := client.job(job["job_id"]))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state["files"][0]["status"] == "added", state
    doc_id = state["files"][0]["doc_id"]
    yield next(d for d in client.documents() if d["doc_id"] == doc_id)
    client.delete(doc_id)
    client.close()


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_cards_show_titles_and_snippets_as_text(ui_env, evil_document):
    at = run_app()
    label = next(o for o in at.multiselect(key="documents").options if "evil" in o or "Report" in o)
    at.multiselect(key="documents").set_value([label])
    at.text_input(key="query").input("budget notes")
    at.form_submit_button[0].click()
    at.run()
    assert not at.exception, at.exception
    cards = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert cards
    for card in cards:
        out = rendered(card)
        assert not re.search(r"<(a|img|h\d)\b", out), out
        assert evil_document["title"] in shown_text(card)  # the title, word for word
    # The snippet, with the query's words marked: still the document's text, character for character.
    marked = [m.value for m in at.markdown if MARK_OPEN in m.value]
    assert marked
    for snippet in marked:
        plain = snippet.replace(MARK_OPEN, "**").replace(MARK_CLOSE, "**")
        assert not re.search(r"<(a|img|h\d)\b", rendered(plain)), plain
        # The phrase "**budget** notes:" marked from its first letter to its last; its asterisks text.
        assert re.findall(r"<strong>(.*?)</strong>", rendered(plain)) == ["budget** notes"]
    assert any(shown_text(s).startswith("# Report [click here](http://evil.example/phish)") for s in marked)
    for caption in (c.value for c in at.caption):
        assert not re.search(r"<(a|img)\b", rendered(caption)), caption

    at.radio(key="page").set_value("Library")
    at.run()
    choice = next(
        o for o in at.selectbox(key="delete_choice").options if o.startswith(evil_document["title"])
    )
    at.selectbox(key="delete_choice").set_value(choice)
    at.button(key="delete").click()
    at.run()
    warning = next(w.value for w in at.warning if "cannot be undone" in w.value)
    assert not re.search(r"<(a|img)\b", rendered(warning))
    assert f"Delete {evil_document['title']} and its 1 unit from the index?" in shown_text(warning)
    at.button(key="delete_no").click()
    at.run()


def test_a_markdown_heading_in_a_snippet_stays_a_line_of_text(ui_env):
    at = run_app()
    label = next(o for o in at.multiselect(key="documents").options if o.startswith("Annual report"))
    at.multiselect(key="documents").set_value([label])
    at.text_input(key="query").input("revenue")
    at.form_submit_button[0].click()
    at.run()
    assert not at.exception, at.exception
    # As written, not a heading (the query's word marked in it).
    snippets = [t.value for t in at.text] + [shown_text(m.value) for m in at.markdown if MARK_OPEN in m.value]
    assert any(s.startswith("# Annual report 2024") for s in snippets)
    assert not any(m.value.lstrip().startswith("#") for m in at.markdown)
