"""Run every batch of a call on the device, then read all results once.

CUDA kernels run asynchronously: reading a batch's result makes the CPU wait until the GPU is done
with it. Launching every batch first and reading once at the end lets the CPU prepare batch k+1
(collation, M-RoPE positions, kernel launches) while the GPU still computes batch k.

Encoding chunks of items on a background thread while earlier batches run was measured on an H100
as well and did not pay (bench/RESULTS.md): smaller batches and GIL contention cost more than the
overlap saved, so encoding happens in full before the first launch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from core.qwen_vl.backbone import EncodedInput
from core.qwen_vl.batching import plan_batches


def run_batches(
    items: Sequence[EncodedInput],
    launch: Callable[[list[EncodedInput]], torch.Tensor],
    *,
    batch_tokens: int,
) -> torch.Tensor:
    """Launch token-budget batches of ``items`` and return their output rows in item order.

    Args:
        items: encoded items.
        launch: runs one batch on the device and returns one output row per item, without waiting.
        batch_tokens: padded-token budget of one forward pass (see :func:`plan_batches`).
    """
    outputs: list[torch.Tensor] = []
    order: list[int] = []
    for batch in plan_batches([len(e.input_ids) for e in items], batch_tokens):
        outputs.append(launch([items[i] for i in batch]))
        order.extend(batch)
    rows = torch.cat(outputs)
    result = torch.empty_like(rows)
    result[torch.tensor(order, device=rows.device)] = rows
    return result
