"""The command line's two consoles, and the few helpers every command's messages share.

Messages are never wrapped: a path or a command in an error must stay on one line to be copied (and
searched for), whatever the terminal's width.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from core.errors import ModelLoadError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

# The option that chooses each kind of model, per command ("": the command has none; its setting
# then), for the hint after a model that cannot load.
MODEL_FLAGS: dict[str, dict[str, str]] = {
    "rerank": {"reranker": "--model"},
    "search": {"embedder": "--embedder", "text embedder": "", "reranker": "--reranker"},
    "ingest": {"embedder": "--embedder", "text embedder": "--text-embedder"},
    "serve": {
        "embedder": "--embedder",
        "text embedder": "",
        "reranker": "--reranker",
        "added reranker": "--add-reranker",
    },
    "eval": {"embedder": "--embedder", "text embedder": "--text-embedder", "reranker": "--reranker"},
}
MODEL_SETTINGS = {
    "embedder": "MMSEARCH_EMBEDDER_MODEL",
    "text embedder": "MMSEARCH_TEXT_EMBEDDER_MODEL",
    "reranker": "MMSEARCH_RERANKER_MODEL",
    "added reranker": "MMSEARCH_RERANKERS",
}
# What the error's wording says failed, for kinds whose name the command does not know.
_ROLE_WORDS = {"added reranker": "reranker"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 document``, ``2 documents`` (``many`` for irregular plurals)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def print_error(message: object) -> None:
    """``error: MESSAGE`` on stderr; the message is printed as it is (no rich markup in it is read)."""
    err_console.print(f"[red]error:[/red] {escape(str(message))}")


def model_hint(
    command: str, exc: ModelLoadError, models: dict[str, str | Sequence[str] | None] | None = None
) -> str:
    """What to do when a model does not load, in the terms of ``command``'s own options.

    Names the option (or setting) of the model that failed: the kind whose model name (``models``,
    by kind) appears in the error, else the kind its wording names ("cannot load reranker ...").
    Then how to try everything offline on random-weight replicas (``mmsearch replica``), and
    ``HF_HUB_OFFLINE=1`` unless it is set already.
    """
    flags = MODEL_FLAGS.get(command, {})
    text = str(exc)
    by_role = [
        k
        for k in flags
        if f"load {_ROLE_WORDS.get(k, k)} " in text or f"the {_ROLE_WORDS.get(k, k)} " in text
    ]
    failed = []
    for kind, names in (models or {}).items():
        listed = [names] if isinstance(names, str) else list(names or ())
        if kind in flags and any(repr(name) in text for name in listed if name):
            failed.append(kind)
    if len(failed) > 1:  # one checkpoint in two roles: the error's wording tells which one failed
        failed = [k for k in failed if k in by_role] or failed
    # The most specific kind: the text embedder after the embedder, an added reranker after the default.
    kinds = failed[-1:] or [k for k in by_role if k not in _ROLE_WORDS][-1:] or list(flags)
    chosen = [f"{flags[k]} (or {MODEL_SETTINGS[k]})" if flags[k] else MODEL_SETTINGS[k] for k in kinds]
    chosen = chosen or [f"{MODEL_SETTINGS['embedder']} or {MODEL_SETTINGS['reranker']}"]
    lines = [f"Give {' or '.join(chosen)} a hub id you can reach or a local folder."]
    replica_flags = " ".join(f"{flags[k]} models/tiny" for k in ("embedder", "reranker") if flags.get(k))
    lines.append(
        "To try mmsearch offline, build a random-weight replica (real vocabulary, random scores): "
        f"mmsearch replica models/tiny, then run mmsearch {command} with {replica_flags or 'it'}."
    )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("1", "true", "yes", "on"):
        lines.append("Set HF_HUB_OFFLINE=1 to make a missing model fail at once instead of after retries.")
    return "\n".join(lines)


def print_model_error(
    command: str, exc: ModelLoadError, models: dict[str, str | Sequence[str] | None] | None = None
) -> None:
    """A model that could not load: the reason (without the library's generic hint), then
    :func:`model_hint` for ``command``."""
    reason = "\n".join(line for line in str(exc).splitlines() if not line.startswith("Give a "))
    print_error(reason)
    err_console.print(escape(model_hint(command, exc, models)))
