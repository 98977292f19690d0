"""Numerical precision guards for networks that must match the official float32 results."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def ieee_float32(enabled: bool = True) -> Iterator[None]:
    """Run convolutions/matmuls in true float32 on CUDA, restoring the caller's flags afterwards.

    cuDNN's TF32 default (10-bit mantissa) moves generator images by ~1e-3, far outside parity with
    the official float32 networks. Pass ``enabled=tensor.is_cuda``: on CPU this is a no-op.
    """
    if not enabled:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
