"""Text loaders (txt, Markdown, HTML) and the chunker, on real files and generated texts."""

from __future__ import annotations

import codecs
import itertools
import logging
import random
import re
from pathlib import Path

import pytest

from core.errors import CorruptDocumentError, EmptyDocumentError, InvalidInputError, MediaTooLargeError
from core.media import MediaPolicy
from indexer.loaders.base import LoadOptions
from indexer.loaders.text import (
    approximate_token_spans,
    chunk_spans,
    html_to_text,
    load_html,
    load_markdown,
    load_plain_text,
    markdown_title,
)
from tests.corpus import GUIDE_TITLE, HTML_HIDDEN, HTML_TITLE, NOTES_TEXT, Corpus

_VOCABULARY = "river stone market signal garden engine harbor lantern meadow orbit pencil quartz"
WORDS = _VOCABULARY.split()


def _prose(seed: int, paragraphs: int = 12) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 18))).capitalize() + rng.choice(".!?")
            for _ in range(rng.randint(1, 6))
        ]
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def _subword_tokens(text: str) -> list[tuple[int, int]]:
    """A tokenizer in the style of BPE: leading spaces belong to the token, words split every 3 chars."""
    return [m.span() for m in re.finditer(r"\s*(?:\w{1,3}|[^\w\s])|\s+$", text)]


def _tokens_in(spans: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of the tokens whose non-space part lies within [start, end)."""
    return [i for i, (s, e) in enumerate(spans) if s < end and e > start]


def _check_chunks(text: str, chunks: list[tuple[int, int]], max_tokens: int, overlap: int, tokenize) -> None:
    spans = tokenize(text)
    covered: set[int] = set()
    previous: list[int] | None = None
    for start, end in chunks:
        assert 0 <= start < end <= len(text)
        assert not text[start].isspace() and not text[end - 1].isspace()  # trimmed
        inside = _tokens_in(spans, start, end)
        assert 1 <= len(inside) <= max_tokens
        assert inside == list(range(inside[0], inside[-1] + 1))  # contiguous
        if previous is not None:
            assert inside[0] == previous[-1] + 1 - overlap  # exactly `overlap` tokens shared
        covered.update(inside)
        previous = inside
    assert covered == {i for i, (s, e) in enumerate(spans) if text[s:e].strip()}  # every token is in a chunk


@pytest.mark.parametrize(
    ("max_tokens", "overlap"), [(1, 0), (5, 4), (16, 0), (16, 4), (40, 8), (64, 32), (256, 32)]
)
def test_chunk_bounds_overlap_and_coverage(max_tokens: int, overlap: int) -> None:
    text = _prose(seed=max_tokens)
    chunks = chunk_spans(text, max_tokens, overlap)
    _check_chunks(text, chunks, max_tokens, overlap, approximate_token_spans)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(8, 2), (30, 5), (100, 20)])
def test_chunk_bounds_with_a_subword_tokenizer(max_tokens: int, overlap: int) -> None:
    text = _prose(seed=3) + "\n\nAntidisestablishmentarianism and internationalization, finally."
    chunks = chunk_spans(text, max_tokens, overlap, token_spans=_subword_tokens)
    _check_chunks(text, chunks, max_tokens, overlap, _subword_tokens)


def test_chunks_end_at_paragraphs_or_sentences_when_they_can() -> None:
    text = _prose(seed=11, paragraphs=30)
    chunks = chunk_spans(text, 60, 0)
    assert len(chunks) > 5
    # Sentences are at most 19 tokens, so the last third (20 tokens) of a window always holds an end.
    assert all(text[end - 1] in ".!?" for _, end in chunks)
    paragraph_ends = sum(text[end : end + 2] == "\n\n" for _, end in chunks[:-1])
    assert paragraph_ends >= len(chunks) // 3


def test_a_single_text_without_boundaries_is_cut_hard() -> None:
    text = "x" * 95  # one 95-character "word": 10 approximate tokens
    chunks = chunk_spans(text, 3, 1)
    _check_chunks(text, chunks, 3, 1, approximate_token_spans)
    assert chunks[0] == (0, 30)


def test_cjk_text_is_chunked_without_spaces() -> None:
    text = "日本語の文章です。次の文はもっと長いです。" * 20
    chunks = chunk_spans(text, 40, 2)  # one token per character
    _check_chunks(text, chunks, 40, 2, approximate_token_spans)
    # Sentences are at most 12 characters, so the last third of a window always holds an end.
    assert all(text[end - 1] == "。" for _, end in chunks)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_no_tokens_no_chunks(text: str) -> None:
    assert chunk_spans(text, 10, 2) == []


def test_short_text_is_one_chunk() -> None:
    assert chunk_spans("  Hello, world!\n", 10, 2) == [(2, 15)]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (4, 4), (4, -1)])
def test_invalid_chunk_arguments(max_tokens: int, overlap: int) -> None:
    with pytest.raises(InvalidInputError):
        chunk_spans("some text", max_tokens, overlap)


# --------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------


def test_plain_text_strips_the_bom_and_keeps_unicode(corpus: Corpus) -> None:
    (unit,) = list(load_plain_text(corpus.notes_txt, LoadOptions()))
    assert unit.title == "notes" and unit.modality == "text" and unit.index == 0
    assert unit.text == NOTES_TEXT.strip()
    assert (unit.char_start, unit.char_end) == (0, len(NOTES_TEXT.strip()))
    assert "café" in unit.text and "Zoë" in unit.text and not unit.text.startswith("\ufeff")


def test_markdown_chunks_reproduce_the_file(corpus: Corpus) -> None:
    text = corpus.guide_md.read_text(encoding="utf-8")
    units = list(load_markdown(corpus.guide_md, LoadOptions()))
    assert len(units) >= 3
    assert [u.index for u in units] == list(range(len(units)))
    assert {u.title for u in units} == {GUIDE_TITLE}
    for unit in units:
        assert unit.text == text[unit.char_start : unit.char_end]
        assert len(approximate_token_spans(unit.text)) <= 256
    assert units[0].char_start == 0 and units[-1].char_end == len(text.rstrip())
    # Consecutive chunks overlap.
    assert all(b.char_start < a.char_end for a, b in itertools.pairwise(units))


def test_loader_uses_the_given_tokenizer(corpus: Corpus) -> None:
    options = LoadOptions(chunk_tokens=50, chunk_overlap=10, token_spans=_subword_tokens)
    text = corpus.guide_md.read_text(encoding="utf-8")
    units = list(load_markdown(corpus.guide_md, options))
    spans = _subword_tokens(text)
    assert all(len(_tokens_in(spans, u.char_start, u.char_end)) <= 50 for u in units)
    assert len(units) > len(list(load_markdown(corpus.guide_md, LoadOptions())))


def test_html_keeps_visible_text_only(corpus: Corpus) -> None:
    units = list(load_html(corpus.page_html, LoadOptions()))
    assert {u.title for u in units} == {HTML_TITLE}
    text = "\n".join(u.text for u in units)
    for hidden in (*HTML_HIDDEN, "font-family", "console.log", "a comment", "Enable JavaScript", "nope"):
        assert hidden not in text
    assert "Frequently asked questions" in text
    assert 'Open Settings > Account and press "Reset".' in text  # entities unescaped, inline tags joined
    assert "€5" in text
    lines = text.split("\n")
    assert "Fast search" in lines and "Private by design" in lines  # list items on their own lines
    assert HTML_TITLE not in text  # the title is metadata, not body text


def test_html_spans_index_the_extracted_text(corpus: Corpus) -> None:
    text, _ = html_to_text(corpus.page_html.read_text(encoding="utf-8"))
    units = list(load_html(corpus.page_html, LoadOptions(chunk_tokens=12, chunk_overlap=3)))
    assert len(units) > 3
    assert all(u.text == text[u.char_start : u.char_end] for u in units)


@pytest.mark.parametrize(
    ("html", "title", "text"),
    [
        (
            "<html><body><h1> Big  <em>Title</em> </h1><p>Body</p></body></html>",
            "Big Title",
            "Big Title\n\nBody",
        ),
        ("<p>a<br>b<br/><br>c</p><div>d</div><div>e</div>", None, "a\nb\n\nc\n\nd\ne"),
        ("<pre>x  = 1\ny = 2</pre><p>after</p>", None, "x = 1\ny = 2\n\nafter"),
        ("<title>T</title><script>x</script><style>y</style>", "T", ""),
        ("<td>1</td><td>2</td>", None, "1 2"),
    ],
)
def test_html_to_text(html: str, title: str | None, text: str) -> None:
    assert html_to_text(html) == (text, title)


def test_html_title_falls_back_to_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bare-page.htm"
    path.write_text("<p>No title here.</p>", encoding="utf-8")
    assert next(load_html(path, LoadOptions())).title == "bare-page"


def test_html_in_a_declared_legacy_charset(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "legacy.html"
    path.write_bytes('<meta charset="windows-1252"><p>Café crème – 5 €</p>'.encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="indexer.loaders"):
        (unit,) = list(load_html(path, LoadOptions()))
    assert unit.text == "Café crème – 5 €" and not caplog.records


@pytest.mark.parametrize(
    ("source", "title"),
    [
        ("# Title\ntext", "Title"),
        ("Intro\n\n#  Spaced Title  ##\n", "Spaced Title"),
        ("```\n# not a title\n```\n# Real Title", "Real Title"),
        ("Setext Title\n=====\n\nbody", "Setext Title"),
        ("---\ntitle: From Front Matter\n---\n# Heading", "From Front Matter"),
        ("## Only a subheading\n#hashtag", None),
        ("", None),
    ],
)
def test_markdown_title(source: str, title: str | None) -> None:
    assert markdown_title(source) == title


def test_markdown_without_title_uses_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "changelog.markdown"
    path.write_text("## 1.0\n\n- first release\n", encoding="utf-8")
    assert next(load_markdown(path, LoadOptions())).title == "changelog"


def test_invalid_utf8_is_replaced_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Crème brûlée recipe".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="indexer.loaders"):
        (unit,) = list(load_plain_text(path, LoadOptions()))
    assert unit.text == "Cr\ufffdme br\ufffdl\ufffde recipe"
    assert "latin1.txt" in caplog.text and "U+FFFD" in caplog.text


def test_utf16_with_a_bom_and_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "Line one.\r\nLine two.\r\n".encode("utf-16-le"))
    (unit,) = list(load_plain_text(path, LoadOptions()))
    assert unit.text == "Line one.\nLine two."


def test_binary_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(CorruptDocumentError, match=r"blob\.txt: holds NUL bytes"):
        list(load_plain_text(path, LoadOptions()))


def test_size_limit(corpus: Corpus) -> None:
    with pytest.raises(MediaTooLargeError, match=r"guide\.md"):
        next(load_markdown(corpus.guide_md, LoadOptions(policy=MediaPolicy(max_bytes=1000))))


@pytest.mark.parametrize(
    ("name", "content", "loader"),
    [
        ("blank.txt", "  \n\t \n", load_plain_text),
        ("blank.md", "\n\n", load_markdown),
        (
            "scripts.html",
            "<html><head><title>Only code</title><script>run()</script></head></html>",
            load_html,
        ),
    ],
)
def test_empty_documents(tmp_path: Path, name: str, content: str, loader) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmptyDocumentError, match=f"{name}: the document has no text"):
        list(loader(path, LoadOptions()))


def test_corpus_empty_text_file(corpus: Corpus) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty\.txt"):
        list(load_plain_text(corpus.empty_txt, LoadOptions()))
