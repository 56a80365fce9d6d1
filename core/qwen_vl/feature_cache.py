"""A memory-bounded cache of the vision tower's output per image, keyed by the pixels' content hash
(or, for a stored image of the media store, by its file identity: see :class:`core.content.StoredImage`).

The vision tower is about 60% of the work of scoring a page (MODEL_FACTS.md), and a search service
sees the same pages again and again. The tower's output depends only on the pixels, so caching it is
exact: a hit returns the very tensors a miss would compute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VisionFeatures:
    """What the language model reads of one image: merged tokens and the deepstack features."""

    embeds: torch.Tensor  # (tokens, hidden)
    deepstack: tuple[torch.Tensor, ...]  # one (tokens, hidden) per deepstack level

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(t.numel() * t.element_size() for t in (self.embeds, *self.deepstack))


class VisionFeatureCache:
    """Least-recently-used cache of :class:`VisionFeatures`, bounded by the bytes it holds.

    Args:
        max_bytes: upper bound on the tensors held; an entry larger than this is never stored.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, VisionFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def contains(self, key: str) -> bool:
        """Whether ``key`` is stored; unlike :meth:`get` it counts nothing and keeps the order."""
        with self._lock:
            return key in self._entries

    def get(self, key: str) -> VisionFeatures | None:
        """The features stored under ``key`` (now the most recent), or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: str, features: VisionFeatures) -> None:
        """Store ``features``, evicting the least recently used entries to stay within the bound.

        The tensors are copied, so a slice of a larger batch tensor does not keep the batch alive.
        """
        size = features.nbytes
        if size > self.max_bytes:
            return
        owned = VisionFeatures(features.embeds.clone(), tuple(t.clone() for t in features.deepstack))
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            while self._entries and self.nbytes + size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.nbytes -= evicted.nbytes
            self._entries[key] = owned
            self.nbytes += size

    def clear(self) -> None:
        """Drop every entry (the hit and miss counters stay)."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0
