"""Help text that reads whole: Click's layout, with words never broken at a hyphen.

Click rewraps every paragraph to the terminal (unlike the rich layout, which keeps a docstring's line
breaks and cuts long names short), but its wrapper breaks a line after any hyphen, so "comma-separated"
or "[default: no-reload]" could be split across two lines. The formatter here hides hyphens from the
wrapper (as U+2011, a non-breaking hyphen of the same width) and puts them back in the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer
from typer.core import TyperCommand, TyperGroup

_HIDDEN_HYPHEN = "\u2011"


# Typer ships its own copy of Click: the formatter and the context must be that copy's.
_Formatter = typer.Context.formatter_class


class WholeWordFormatter(_Formatter):  # type: ignore[misc,valid-type]
    """Click's help formatter, wrapping between words only."""

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _HIDDEN_HYPHEN))

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = [(term, definition.replace("-", _HIDDEN_HYPHEN)) for term, definition in rows]
        super().write_dl(rows, col_max, col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HIDDEN_HYPHEN, "-")


class HelpContext(typer.Context):
    formatter_class = WholeWordFormatter


class HelpCommand(TyperCommand):
    """A command whose help is laid out by :class:`WholeWordFormatter`."""

    context_class = HelpContext


class HelpGroup(TyperGroup):
    """A group whose help is laid out by :class:`WholeWordFormatter`."""

    context_class = HelpContext
