"""Stores written by the old embedded engine (qdrant-client's local mode) and how they are found.

That engine kept ``meta.json`` and ``collection/<name>/storage.sqlite`` in the store folder. Its
points are copied into Qdrant Edge by ``mmsearch store migrate`` (``indexer.store.transfer``); until
that has finished, every command that opens the folder stops with a message naming the command.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import LegacyStoreError

MIGRATED_MARK = "migrated-from-local-mode.json"  # under <root>/edge, written when a migration ends


def legacy_collections(root: Path) -> list[str]:
    """The collections of an old-engine store in ``root`` (empty when there is none)."""
    meta = root / "meta.json"
    if not meta.is_file() or not (root / "collection").is_dir():
        return []
    try:
        names = json.loads(meta.read_text()).get("collections", {})
    except (OSError, ValueError):
        return []
    return sorted(names)


def needs_migration(root: Path) -> bool:
    """Whether ``root`` holds old-engine data that has not been migrated yet."""
    return bool(legacy_collections(root)) and not (root / "edge" / MIGRATED_MARK).exists()


def check_not_legacy(root: Path) -> None:
    """Raise :class:`LegacyStoreError` when ``root`` still needs ``mmsearch store migrate``."""
    if needs_migration(root):
        raise LegacyStoreError(
            f"the store {root} was written by mmsearch's earlier embedded engine. Run `mmsearch store "
            "migrate` once to copy it into the new engine (no re-embedding; it can be stopped and "
            "resumed), then run this command again."
        )
