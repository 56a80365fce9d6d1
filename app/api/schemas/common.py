"""What request bodies share: text that every tokenizer (and the store) can take."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


def lone_surrogate_path(value: Any) -> str | None:
    """The dotted path of the first string in ``value`` (nested dicts and lists) that holds a lone
    surrogate (U+D800-U+DFFF), or None.

    JSON's ``\\ud800`` escape decodes to one, and it is not text: tokenizers and the store's engine
    cannot encode it and fail with a TypeError. Walked with a stack, not recursion, so a deeply
    nested body cannot overflow the interpreter's stack here.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                where = f"{path}.{key}" if path else str(key)
                stack.extend(((where, inner), (where, key)))  # the key is checked first
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in reversed(list(enumerate(item))))
    return None


class TextRequest(BaseModel):
    """A request body whose every string (nested documents and filter values included) is valid
    Unicode: a lone surrogate anywhere is a 422 that names the field, not a 500 in a tokenizer."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        where = lone_surrogate_path(data)
        if where is not None:
            # The path may hold the surrogate itself (a key): escaped, or building the error would fail.
            where = where.encode("utf-8", "backslashreplace").decode("utf-8")
            raise ValueError(
                f"{where} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is "
                "not text: send valid Unicode"
            )
        return data
