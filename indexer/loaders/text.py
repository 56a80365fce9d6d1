"""Text loaders (plain text, Markdown, HTML) and the chunker that cuts a text into token-bounded spans.

Reading: the file is read whole (bounded by ``policy.max_bytes``) and decoded as UTF-8, with a BOM
(UTF-8 or UTF-16) honoured and stripped. Bytes that are not UTF-8 are decoded with the charset an
HTML page declares, else replaced by U+FFFD with a logged warning: the file is still indexed, and
the warning names it. Line ends become ``\\n``. A file holding NUL characters is binary, not text,
and is refused. Chunk spans index the text *after* this decoding (for HTML: after extraction).
"""

from __future__ import annotations

import codecs
import logging
import re
from array import array
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path

from core.errors import CorruptDocumentError, EmptyDocumentError, InvalidInputError
from core.media import describe_source, read_source_bytes
from indexer.loaders.base import LoadOptions, TokenSpans
from indexer.units import TEXT, Unit

logger = logging.getLogger(__name__)

PLAIN_EXTENSIONS = (".txt",)
MARKDOWN_EXTENSIONS = (".md", ".markdown")
HTML_EXTENSIONS = (".html", ".htm")

# --------------------------------------------------------------------------------------------------
# Tokens and chunks
# --------------------------------------------------------------------------------------------------

# Han, kana and Hangul are written without spaces: one token per character, as tokenizers roughly do.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# The approximation: a CJK character, a word (split every 10 characters, so that a long identifier or
# a base64 blob still counts as several tokens), or one punctuation mark.
_APPROX_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]{{1,10}}|[^\w\s]")
_SENTENCE_END = frozenset(".!?…。！？")
_CLOSERS = frozenset("\"')]}»”’")
_NO_SPACE_SENTENCE_END = frozenset("。！？")  # CJK sentences end without a following space

# Boundary ranks: a cut is preferred at the best-ranked boundary in the last part of the window.
_HARD, _WORD, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3


def approximate_token_spans(text: str) -> list[tuple[int, int]]:
    """Approximate token spans: words (one token per 10 characters), CJK characters and punctuation.

    Real subword tokenizers count about 1.3 tokens per English word, so with this approximation a
    chunk of ``max_tokens`` is a soft target; pass the embedder's tokenizer for exact counts.

    Args:
        text: any text.

    Returns:
        The ``(start, end)`` character span of each token, in order.
    """
    return [m.span() for m in _APPROX_TOKEN.finditer(text)]


def _boundary_rank(text: str, starts: Sequence[int], ends: Sequence[int], k: int) -> int:
    """How good a place to cut between token ``k - 1`` and token ``k`` is.

    Looks at the whitespace around the cut, including whitespace inside either token (subword
    tokenizers attach spaces and newlines to tokens), so it works for any tokenizer.
    """
    a = ends[k - 1]
    while a > starts[k - 1] and text[a - 1].isspace():
        a -= 1
    b = max(starts[k], a)
    while b < ends[k] and text[b].isspace():
        b += 1
    gap = text[a:b]
    if gap.count("\n") >= 2:
        return _PARAGRAPH
    spaced = any(c.isspace() for c in gap)
    before = text[a - 1] if a > 0 else ""
    if before in _CLOSERS and a > 1:
        before = text[a - 2]
    if "\n" in gap or (before in _SENTENCE_END and (spaced or before in _NO_SPACE_SENTENCE_END)):
        return _SENTENCE
    return _WORD if spaced else _HARD


def chunk_spans(
    text: str, max_tokens: int, overlap: int, token_spans: TokenSpans | None = None
) -> list[tuple[int, int]]:
    """Cut a text into chunks of at most ``max_tokens`` tokens, consecutive chunks sharing ``overlap``.

    A chunk ends at the last paragraph break in the last third of its window if there is one, else
    at the last sentence end or line break there, else at the last space there, else after exactly
    ``max_tokens`` tokens. The next chunk starts ``overlap`` tokens before the previous one ended.
    Spans are trimmed of surrounding whitespace; together they cover every token of the text.

    Args:
        text: the text to cut.
        max_tokens: most tokens in one chunk (at least 1).
        overlap: tokens shared by consecutive chunks (``0 <= overlap < max_tokens``).
        token_spans: returns each token's ``(start, end)`` character span; None uses
            :func:`approximate_token_spans`.

    Returns:
        ``(start, end)`` character spans into ``text``, in order; empty when the text has no token.

    Raises:
        InvalidInputError: ``max_tokens`` or ``overlap`` out of range.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise InvalidInputError(
            f"need max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens} and {overlap}"
        )
    # Two flat int arrays (16 bytes a token) rather than a list of tuples: a 64 MiB text has millions.
    starts, ends = array("q"), array("q")
    if token_spans is None:
        for match in _APPROX_TOKEN.finditer(text):
            starts.append(match.start())
            ends.append(match.end())
    else:
        for start, end in token_spans(text):
            starts.append(start)
            ends.append(end)
    n = len(starts)
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < n:
        stop = min(first + max_tokens, n)  # chunk = tokens [first, stop)
        if stop < n:
            # Search the last third of the window, never so early that the next chunk would not advance.
            lowest = first + max(overlap + 1, max_tokens - max_tokens // 3)
            best, best_rank = stop, -1
            for k in range(stop, lowest - 1, -1):
                rank = _boundary_rank(text, starts, ends, k)
                if rank > best_rank:
                    best, best_rank = k, rank
                    if rank == _PARAGRAPH:
                        break
            stop = best
        start, end = starts[first], max(ends[first:stop])
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:  # a window of whitespace-only tokens (a tokenizer's "\n\n") is no chunk
            chunks.append((start, end))
        if stop >= n:
            break
        first = stop - overlap
    return chunks


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _decode(data: bytes, label: str, *, html: bool = False) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) :].decode(encoding, errors="replace")
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = _decode_fallback(data, label, exc, html)
    if "\x00" in text:
        raise CorruptDocumentError(
            f"{label}: holds NUL bytes, so it is binary data (or UTF-16 without a BOM)"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_fallback(data: bytes, label: str, error: UnicodeDecodeError, html: bool) -> str:
    declared = _HTML_CHARSET.search(data[:4096]) if html else None
    if declared:
        charset = declared.group(1).decode("ascii")
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    logger.warning(
        "%s: not valid UTF-8 (first bad byte at offset %d); undecodable bytes are replaced by U+FFFD",
        label,
        error.start,
    )
    return data.decode("utf-8", errors="replace")


def _read_text(path: Path, options: LoadOptions, *, html: bool = False) -> str:
    data = read_source_bytes(path, policy=options.policy, what="text")
    return _decode(data, describe_source(path), html=html)


# --------------------------------------------------------------------------------------------------
# Titles and HTML
# --------------------------------------------------------------------------------------------------

_ATX_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_H1 = re.compile(r"^ {0,3}=+[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.IGNORECASE)


def markdown_title(text: str) -> str | None:
    """The title of a Markdown document: front matter ``title:``, else its first level-1 heading.

    Headings inside fenced code blocks are ignored; both ``# Title`` and ``Title`` underlined with
    ``===`` count.

    Args:
        text: the Markdown source.

    Returns:
        The title, or None when there is none.
    """
    lines = text.split("\n")
    body = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() in ("---", "..."):
                body = i + 1
                break
            match = _FRONT_MATTER_TITLE.match(line)
            if match:
                return match.group(1).strip("\"'") or None
    in_fence = False
    for i in range(body, len(lines)):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _ATX_H1.match(line)
        if match:
            return match.group(1).strip()
        if line.strip() and i + 1 < len(lines) and _SETEXT_H1.match(lines[i + 1]):
            return line.strip()
    return None


class _HTMLText(HTMLParser):
    """Collects the visible text of a page, its <title> and its first <h1>."""

    SKIP = frozenset({"script", "style", "noscript", "template"})
    PARAGRAPH = frozenset(
        {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre", "hr"}
        | {"section", "article", "header", "footer", "nav", "aside", "main", "figure", "form"}
        | {"fieldset", "address", "details"}
    )
    LINE = frozenset({"div", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "option", "legend"})
    CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive unescaped in handle_data
        self.parts: list[str] = []
        self.title: str | None = None
        self.h1: str | None = None
        self._skip = 0
        self._pre = 0
        self._capture: str | None = None  # "title" or "h1" while inside one
        self._captured: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title" and self.title is None and not self._skip:
            self._capture, self._captured = "title", []
        elif tag == "h1" and self.h1 is None and self._capture is None:
            self._capture, self._captured = "h1", []
        if tag == "pre":
            self._pre += 1
        if tag == "br":
            self.parts.append("\n")  # not merged: two <br> make a blank line
        else:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <br/>, <hr/>: no content, so no end tag to handle

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == self._capture:
            captured = " ".join("".join(self._captured).split())
            if tag == "title":
                self.title = captured
            else:
                self.h1 = captured
            self._capture = None
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._capture is not None:
            self._captured.append(data)
            if self._capture == "title":
                return  # the title is metadata, not page text
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag in self.CELL:
            self.parts.append(" ")
            return
        wanted = 2 if tag in self.PARAGRAPH else 1 if tag in self.LINE else 0
        if not wanted:
            return
        # Merge with the break (and blank text) just before: </div><div> is one line break, not two.
        have = 0
        while self.parts and not self.parts[-1].strip():
            have = max(have, self.parts.pop().count("\n"))
        self.parts.append("\n" * max(have, wanted))

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> tuple[str, str | None]:
    """Extract the visible text and the title of an HTML page with the standard library's parser.

    Script, style, noscript and template contents are dropped, block elements become line breaks
    (paragraph-level ones a blank line), entities are unescaped and runs of spaces collapsed.

    Args:
        html: the page source.

    Returns:
        ``(text, title)``: the title is the ``<title>``, else the first ``<h1>``, else None.
    """
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return parser.text(), parser.title or parser.h1 or None


# --------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------


def _chunk_units(text: str, title: str, options: LoadOptions, label: str) -> Iterator[Unit]:
    spans = chunk_spans(text, options.chunk_tokens, options.chunk_overlap, options.token_spans)
    if not spans:
        raise EmptyDocumentError(f"{label}: the document has no text to index")
    for index, (start, end) in enumerate(spans):
        yield Unit(
            index=index, modality=TEXT, title=title, text=text[start:end], char_start=start, char_end=end
        )


def load_plain_text(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield the chunks of a plain text file, titled with the file name without extension.

    Args:
        path: the ``.txt`` file.
        options: chunk size and overlap, tokenizer, byte limit (``policy.max_bytes``).

    Yields:
        Units of modality ``"text"`` with ``char_start``/``char_end`` into the decoded text.

    Raises:
        EmptyDocumentError: nothing but whitespace.
        CorruptDocumentError: binary data.
        MediaTooLargeError: over ``options.policy.max_bytes``.
        MediaNotFoundError: the file does not exist.
    """
    path = Path(path)
    yield from _chunk_units(_read_text(path, options), path.stem, options, describe_source(path))


def load_markdown(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield the chunks of a Markdown file (the source as written), titled by :func:`markdown_title`.

    Args:
        path: the ``.md`` or ``.markdown`` file.
        options: chunk size and overlap, tokenizer, byte limit.

    Yields:
        Units of modality ``"text"``; the title falls back to the file name without extension.

    Raises:
        EmptyDocumentError, CorruptDocumentError, MediaTooLargeError, MediaNotFoundError: as
        :func:`load_plain_text`.
    """
    path = Path(path)
    text = _read_text(path, options)
    yield from _chunk_units(text, markdown_title(text) or path.stem, options, describe_source(path))


def load_html(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield the chunks of an HTML page's visible text (see :func:`html_to_text`).

    Args:
        path: the ``.html`` or ``.htm`` file.
        options: chunk size and overlap, tokenizer, byte limit.

    Yields:
        Units of modality ``"text"`` whose spans index the extracted text; titled with the page's
        ``<title>``, else its first ``<h1>``, else the file name without extension.

    Raises:
        EmptyDocumentError: no visible text.
        CorruptDocumentError, MediaTooLargeError, MediaNotFoundError: as :func:`load_plain_text`.
    """
    path = Path(path)
    text, title = html_to_text(_read_text(path, options, html=True))
    yield from _chunk_units(text, title or path.stem, options, describe_source(path))
