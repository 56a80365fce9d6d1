"""The Qwen3-VL reranker prompt, rendered exactly as the released model was trained on it.

We render the chat format ourselves rather than through a checkpoint's chat template: the layout is
part of the scoring contract (a wrong template puts every image score near 0.5), and owning it makes
it testable against the published string. The chat frame and the vision markers are the family's
(:mod:`core.qwen_vl.markers`); only the pair layout below is the reranker's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.qwen_vl.markers import render_chat

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
EMPTY_SIDE = "NULL"


def render_side(vision: Iterable[str], texts: Iterable[str], *, empty: str = EMPTY_SIDE) -> str:
    """One side's content: videos, then images (already rendered), then texts; ``empty`` when empty."""
    body = "".join(vision) + "".join(texts)
    return body if body else empty


def render_prompt(query: str, document: str, instruction: str, system: str = SYSTEM_PROMPT) -> str:
    """The full chat prompt for one pair, given each side already rendered by :func:`render_side`."""
    return render_chat(system, f"<Instruct>: {instruction}<Query>:{query}\n<Document>:{document}")
