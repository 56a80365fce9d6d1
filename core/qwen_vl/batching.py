"""Token-budget batching: many sequences per forward pass, little padding."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Group item indices into batches whose padded size (count x longest) stays within ``max_tokens``.

    Items are taken longest first, so each batch holds similar lengths and padding stays small.
    An item longer than the budget gets a batch of its own.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted descending, so the first item of a batch is its longest.
        if current and lengths[current[0]] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
