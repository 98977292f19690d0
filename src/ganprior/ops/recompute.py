"""When the memory-saving recompute paths (``torch.utils.checkpoint``) may run."""

from __future__ import annotations

import torch


def can_recompute(*tensors: torch.Tensor | None) -> bool:
    """False inside ``torch.func.vmap`` (batched pivotal tuning), which cannot run a checkpoint: the op
    then keeps its intermediates, as below the size thresholds."""
    return not any(t is not None and torch._C._functorch.is_batchedtensor(t) for t in tensors)
