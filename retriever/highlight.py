"""The match shown where it is: which words of a hit the query matched, and where they are.

Two kinds of match:

- a **term**: a word whose keyword-leg tokens meet the query's. Tokens come from the bm25 leg's own
  model (:func:`indexer.store.bm25.query_vector`: its tokenizer, stop-words and stemmer), so
  "revenues" on a page matches the query "revenue" exactly when the keyword leg counts it, and a
  stop-word never does;
- a **phrase**: two or more consecutive words of the query found word for word (case and the
  punctuation around a word aside) in the same order on the page, holding at least two terms.

:func:`page_highlights` marks them on a page's words (from its text layer or OCR, each with a box
normalised to the page), :func:`text_spans` in a text (a hit's snippet) as character spans. Both are
bounded (query words, page words, matches), so a hostile query or page costs little; they are run only
for the hits a search returns.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from indexer.store import bm25
from indexer.units import Word
from retriever.types import PHRASE, TERM, Highlight, TextSpan

# Query words looked at for phrases (a longer query still matches terms anywhere in it).
MAX_QUERY_WORDS = 64
# Places one query word may take in a phrase (a query repeating a word costs no more than this).
MAX_POSITIONS = 8
# Words of a page or text looked at.
MAX_PAGE_WORDS = 20_000
# Highlights and spans returned per hit, phrases first.
MAX_MATCHES = 200
# Words longer than this are tokenised without the cache (a "word" of a page without spaces).
_CACHED_WORD_CHARS = 64

_WORD = re.compile(r"\S+")
_RUN = re.compile(r"\w+")


@dataclass(frozen=True)
class QueryTerms:
    """What a query's text matches: its keyword-leg tokens, and its words in order (for phrases)."""

    tokens: frozenset[int]
    words: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> QueryTerms:
        """The terms of a query's text (any text: empty, stop-words only, very long, odd unicode)."""
        vector = bm25.query_vector(text) if text else None
        tokens = frozenset(vector.indices) if vector is not None else frozenset()
        words = tuple(w for w in (normalise(m.group()) for m in _WORD.finditer(text)) if w)
        return cls(tokens, words[:MAX_QUERY_WORDS])

    @property
    def empty(self) -> bool:
        """Whether nothing can match (no word the keyword leg indexes)."""
        return not self.tokens


def normalise(word: str) -> str:
    """A word as phrases compare it: case folded, without the punctuation around it."""
    return _word(word)[1]


def tokens(word: str) -> frozenset[int]:
    """The keyword leg's tokens of one word (empty for a stop-word or punctuation)."""
    return _word(word)[0]


def _word(word: str) -> tuple[frozenset[int], str]:
    """(tokens, normalised form) of a word; short words (nearly all) are cached."""
    return _read_word(word) if len(word) > _CACHED_WORD_CHARS else _cached_word(word)


def _read_word(word: str) -> tuple[frozenset[int], str]:
    vector = bm25.query_vector(word)
    start, end = _core(word)
    return (frozenset(vector.indices) if vector is not None else frozenset()), word[start:end].casefold()


@lru_cache(maxsize=1 << 16)
def _cached_word(word: str) -> tuple[frozenset[int], str]:
    return _read_word(word)


def matches(word: str, terms: QueryTerms) -> bool:
    """Whether the keyword leg matches ``word`` to the query."""
    return not terms.tokens.isdisjoint(_word(word)[0])


def page_highlights(words: Sequence[Word], terms: QueryTerms) -> tuple[Highlight, ...]:
    """The query's phrases (a box per line they take) and terms on a page, phrases first.

    Args:
        words: the page's words in reading order, each ``(text, x0, y0, x1, y1)`` normalised.
        terms: the query's terms.
    """
    if terms.empty or not words:
        return ()
    words = list(words[:MAX_PAGE_WORDS])
    hit = [matches(w[0], terms) for w in words]
    found: list[Highlight] = []
    runs = phrase_runs([normalise(w[0]) for w in words], terms.words, hit) if len(terms.words) > 1 else []
    for start, end in runs:
        for line in _lines(words[start:end]):
            box = (
                min(w[1] for w in line),
                min(w[2] for w in line),
                max(w[3] for w in line),
                max(w[4] for w in line),
            )
            found.append(Highlight(" ".join(w[0] for w in line), box, PHRASE))
    found += [Highlight(w[0], (w[1], w[2], w[3], w[4]), TERM) for w, h in zip(words, hit, strict=True) if h]
    return tuple(found[:MAX_MATCHES])


def text_spans(text: str, terms: QueryTerms) -> tuple[TextSpan, ...]:
    """The query's phrases and terms in ``text`` as character spans, phrases first, terms in order.

    A term's span is the part of the word the keyword leg matched (``revenue`` of ``revenue,``, and
    ``report`` of ``report-writing``); a phrase's runs from its first word to its last.
    """
    if terms.empty or not text:
        return ()
    found = [m for _, m in zip(range(MAX_PAGE_WORDS), _WORD.finditer(text), strict=False)]
    hit = [matches(m.group(), terms) for m in found]
    spans: list[TextSpan] = []
    for start, end in phrase_runs([normalise(m.group()) for m in found], terms.words, hit):
        first, last = found[start], found[end - 1]
        spans.append(
            TextSpan(first.start() + _core(first.group())[0], last.start() + _core(last.group())[1], PHRASE)
        )
    for match, matched in zip(found, hit, strict=True):
        if matched:
            spans += _term_spans(match, terms)
    return tuple(spans[:MAX_MATCHES])


def _term_spans(match: re.Match[str], terms: QueryTerms) -> list[TextSpan]:
    word, at = match.group(), match.start()
    runs = [r for r in _RUN.finditer(word) if matches(r.group(), terms)]
    if runs:
        return [TextSpan(at + r.start(), at + r.end(), TERM) for r in runs]
    start, end = _core(word)  # the tokenizer kept the word whole ("U.S."): mark all of it
    return [TextSpan(at + start, at + end, TERM)] if end > start else []


def phrase_runs(page: Sequence[str], query: Sequence[str], hit: Sequence[bool]) -> list[tuple[int, int]]:
    """Where the page holds two or more consecutive query words in order: ``[start, end)`` word
    ranges, merged where they overlap, each holding at least two matched terms.

    Args:
        page: the page's words, normalised (:func:`normalise`); empty ones never match.
        query: the query's words, normalised.
        hit: per page word, whether it is a term of the query.
    """
    positions: dict[str, list[int]] = defaultdict(list)
    for j, word in enumerate(query):
        if word and len(positions[word]) < MAX_POSITIONS:
            positions[word].append(j)
    if len(query) < 2 or not positions:
        return []
    runs: list[tuple[int, int]] = []
    previous: dict[int, int] = {}  # query position -> length of the run ending there at the last word
    for i in range(len(page) + 1):
        current: dict[int, int] = {}
        if i < len(page) and page[i]:
            for j in positions.get(page[i], ()):
                current[j] = previous.get(j - 1, 0) + 1
        for j, length in previous.items():
            if length >= 2 and j + 1 not in current:
                runs.append((i - length, i))
        previous = current
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in set(runs) if sum(hit[r[0] : r[1]]) >= 2):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _lines(words: Sequence[Word]) -> list[list[Word]]:
    """Consecutive words cut where the next one does not continue the line (lower, or back left)."""
    lines: list[list[Word]] = []
    for word in words:
        if lines:
            last = lines[-1][-1]
            overlap = min(last[4], word[4]) - max(last[2], word[2])
            height = min(last[4] - last[2], word[4] - word[2])
            if overlap > 0.5 * height and word[1] >= last[1]:
                lines[-1].append(word)
                continue
        lines.append([word])
    return lines


def _core(word: str) -> tuple[int, int]:
    """``(start, end)`` of a word without the non-alphanumeric characters around it."""
    start, end = 0, len(word)
    while start < end and not word[start].isalnum():
        start += 1
    while end > start and not word[end - 1].isalnum():
        end -= 1
    return start, end
