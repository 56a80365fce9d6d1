"""The command line's two consoles. Messages are never wrapped: a path or a command in an error must
stay on one line to be copied (and searched for), whatever the terminal's width."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
