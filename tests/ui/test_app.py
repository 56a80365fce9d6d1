"""The Streamlit pages, run by Streamlit's AppTest against a live API over HTTP (tiny models)."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, text: str, **sliders: int) -> AppTest:
    at.text_input(key="query").input(text)
    for key, value in sliders.items():
        at.slider(key=key).set_value(value)
    at.form_submit_button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    """The elements' text, with the Markdown escapes the UI puts in front of punctuation removed."""
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", e.value) for e in elements]


def test_search_shows_ranked_cards_with_scores_movement_and_latency(ui_env):
    at = run_app()
    assert any("units indexed" in c for c in texts(at.sidebar.caption))
    search(at, "revenue growth chart", k=20, top_n=5)
    titles = [m for m in texts(at.markdown) if m.startswith("**#")]
    assert 1 <= len(titles) <= 5
    assert titles[0].startswith("**#1 ")
    captions = texts(at.caption)
    assert any(c.startswith("Reranking: ") and ("from #" in c or c.endswith(f"= #{1}")) for c in captions)
    bars = [p for p in at.get("progress")]
    assert len(bars) >= 2 * len(titles)  # a reranker bar and a vector-search bar per card
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Embed query", "Vector search", "Load pages", "Rerank"] and labels[-1] == "Total"
    assert len(at.image) >= len(titles)  # a thumbnail per picture hit, fetched from the API


def test_rerank_off_gives_the_first_stage_order_without_reranker_bars(ui_env):
    at = run_app()
    at.toggle(key="rerank").set_value(False)
    search(at, "board minutes")
    assert not [c for c in texts(at.caption) if c.startswith("Reranking: ")]
    assert "Rerank" not in [m.label for m in at.metric]


def test_the_reranker_is_chosen_when_the_server_has_several(ui_env, tiny_reranker_dir):
    at = run_app()
    choice = at.selectbox(key="reranker")
    assert choice.options == [tiny_reranker_dir.name, "jina"]
    assert choice.value == choice.options[0]  # the server's default
    choice.set_value("jina")
    search(at, "revenue growth chart", k=10, top_n=3)
    assert any(c.endswith("candidates, reranked by jina") for c in texts(at.caption))


def test_video_hits_show_keyframes_with_times_and_play_from_the_start(ui_env):
    at = run_app()
    at.multiselect(key="modalities").set_value(["video"])
    search(at, "a bar that grows")
    titles = [m for m in texts(at.markdown) if m.startswith("**#")]
    assert titles and all("–" in t for t in titles)  # a time span, e.g. "0:02–0:04"
    strips = [i for i in at.image if len(i.proto.imgs) > 1]  # keyframe strips, captioned with times
    assert strips and all(img.caption.count(":") == 1 for img in strips[0].proto.imgs)
    play = [b for b in at.button if b.label.startswith("▶ Play from ")]
    assert play
    play[0].click()
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("video")) == 1


def test_image_query_from_an_upload(ui_env):
    at = run_app()
    at.file_uploader(key="query_image").upload(
        "q.png", (ui_env.examples / "revenue-chart.png").read_bytes(), "image/png"
    )
    search(at, "")
    assert [m for m in texts(at.markdown) if m.startswith("**#1 ")]


def test_an_empty_query_is_refused_with_a_readable_message(ui_env):
    at = run_app()
    search(at, "   ")
    assert any("Type a query or add an image" in e for e in texts(at.error))


def test_api_down_and_wrong_key_are_readable_errors(monkeypatch, live_api):
    from tests.conftest import free_port

    monkeypatch.setenv("MMSEARCH_UI_API_URL", f"http://127.0.0.1:{free_port()}")
    at = run_app()
    assert any("is not reachable" in e and "mmsearch serve" in e for e in texts(at.sidebar.error))
    search(at, "revenue")
    assert any("is not reachable" in e for e in texts(at.error))

    monkeypatch.setenv("MMSEARCH_UI_API_URL", live_api.url)
    monkeypatch.setenv("MMSEARCH_API_KEY", "not-the-key")
    at = run_app()
    search(at, "revenue")
    assert any("refused the API key (403)" in e and "MMSEARCH_API_KEY" in e for e in texts(at.error))

    monkeypatch.delenv("MMSEARCH_API_KEY")
    at = run_app()
    search(at, "revenue")
    assert any("refused the API key (401)" in e for e in texts(at.error))


def test_library_lists_uploads_with_a_followed_job_and_deletes_after_confirmation(ui_env):
    at = run_app()
    at.radio(key="page").set_value("Library")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    before = int(metrics["Documents"])
    assert before >= 5 and int(metrics["Indexed units"]) > before
    assert set(metrics["Kinds"].split(", ")) >= {"page", "image", "video", "text"}

    note = b"Meeting notes: the committee approved the new greenhouse budget."
    at.file_uploader(key="files").upload("greenhouse.txt", note, "text/plain")
    at.text_input(key="upload_tags").input("garden, budget")
    at.form_submit_button[-1].click()
    at.run()
    assert not at.exception, at.exception
    assert [p.value for p in at.get("progress")][-1] == 100  # the bar followed the job to the end
    assert any(s.startswith("Done: 1 indexed, 0 failed") for s in texts(at.success))

    at.run()  # the list now holds the upload
    assert int({m.label: m.value for m in at.metric}["Documents"]) == before + 1
    choice = next(o for o in at.selectbox(key="delete_choice").options if o.startswith("greenhouse"))
    at.selectbox(key="delete_choice").set_value(choice)
    at.button(key="delete").click()
    at.run()
    assert any("cannot be undone" in w for w in texts(at.warning))
    assert int({m.label: m.value for m in at.metric}["Documents"]) == before + 1  # nothing deleted yet
    at.button(key="delete_yes").click()
    at.run()
    assert not at.exception, at.exception
    assert any(s.startswith("Deleted greenhouse") for s in texts(at.success))
    assert int({m.label: m.value for m in at.metric}["Documents"]) == before


def test_cancel_keeps_the_document(ui_env):
    at = run_app()
    at.radio(key="page").set_value("Library")
    at.run()
    before = int({m.label: m.value for m in at.metric}["Documents"])
    at.button(key="delete").click()
    at.run()
    at.button(key="delete_no").click()
    at.run()
    assert not at.exception, at.exception
    assert not any("cannot be undone" in w for w in texts(at.warning))
    assert int({m.label: m.value for m in at.metric}["Documents"]) == before


def test_view_full_size_opens_the_page_at_indexed_size(ui_env):
    at = run_app()
    search(at, "quarterly report", top_n=3)
    thumbnails = len(at.image)
    full = next(b for b in at.button if b.label == "View full size")
    full.click()
    at.run()
    assert not at.exception, at.exception
    assert len(at.image) == thumbnails + 1  # the dialog's full-size picture
