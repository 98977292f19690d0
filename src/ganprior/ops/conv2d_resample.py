"""2-D convolution fused with FIR up/down-sampling, with the official op's exact padding and flip rules.

StyleGAN's trained weights are not symmetric, so *which* of conv2d / conv_transpose2d runs and whether
the kernel is flipped changes the output; this follows ``torch_utils/ops/conv2d_resample.py`` path by
path (1x1 fast paths, strided down-conv, transposed up-conv, plain conv, generic fallback).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ganprior.ops.upfirdn2d import upfirdn2d


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | Sequence[int] = 0,
          groups: int = 1, transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """``flip_weight=True`` is PyTorch's correlation; ``False`` makes it a true convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    return f.shape[-1], f.shape[0]


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """``x [N, C*groups, H, W]``, ``w [O, C, kh, kw]`` -> conv padded by ``padding``, resampled by ``up``/``down``."""
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"up and down must be positive integers, got up={up!r}, down={down!r}")
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0 = px1 = py0 = py1 = int(padding)

    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, down only: decimate first, then the (cheap) conv.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, up only: conv first, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Down only: low-pass, then strided conv.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up (optionally followed by down): transposed strided conv, then low-pass.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: a plain conv.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # Anything else (negative or asymmetric padding): pad/crop explicitly, then conv.
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)
