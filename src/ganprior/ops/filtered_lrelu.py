"""Filtered leaky ReLU: StyleGAN3's alias-free nonlinearity (bias -> upsample -> lrelu -> downsample).

The official op has a fused CUDA kernel and a reference path; this is the reference path, built on
our exact :func:`upfirdn2d` and :func:`bias_act`, so CPU and GPU results match the official
reference (which is what the official code itself runs off-CUDA).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ganprior.ops.bias_act import bias_act
from ganprior.ops.recompute import can_recompute
from ganprior.ops.upfirdn2d import upfirdn2d


def _filter_taps(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1-D (separable) or 2-D filter; an absent filter is 1x1."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filters must be 1-D or 2-D, got shape {tuple(f.shape)}")
    return f.shape[-1], f.shape[0]


def decimate(x: torch.Tensor, f: torch.Tensor | None, down: int, flip_filter: bool = False) -> torch.Tensor:
    """``upfirdn2d(x, f, down=down)`` computing only the samples it keeps (strided depthwise conv).

    Same sums as filtering everything and then dropping samples, at 1/down (1-D) or 1/down² (2-D) of the cost.
    """
    if f is None:
        return x[:, :, ::down, ::down]
    channels = x.shape[1]
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        return F.conv2d(x, f, stride=down, groups=channels)
    x = F.conv2d(x, f.unsqueeze(2), stride=(1, down), groups=channels)
    return F.conv2d(x, f.unsqueeze(3), stride=(down, 1), groups=channels)


def filtered_lrelu_output_size(
    in_size: tuple[int, int],
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    up: int,
    down: int,
    padding: Sequence[int],
) -> tuple[int, int]:
    """Spatial ``(height, width)`` the op produces for an input of ``(height, width)``."""
    px0, px1, py0, py1 = padding
    fu_w, fu_h = _filter_taps(fu)
    fd_w, fd_h = _filter_taps(fd)
    in_h, in_w = in_size
    out_w = (in_w * up + (px0 + px1) - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + (py0 + py1) - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_h, out_w


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
) -> torch.Tensor:
    """``downsample(clamp(lrelu(upsample(x + b)) * gain))`` with FIR filters ``fu`` / ``fd``.

    ``padding`` is ``[x0, x1, y0, y1]`` (an int pads all sides) and is applied to the zero-inserted,
    upsampled signal before ``fu``. ``slope=1, gain=1`` turns the op into bias + clamp (StyleGAN3 ToRGB).
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects [N, C, H, W], got shape {tuple(x.shape)}")
    if isinstance(padding, int):
        padding = [padding] * 4
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        padding = padding * 2
    if len(padding) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 entries, got {padding}")
    expected = filtered_lrelu_output_size(tuple(x.shape[2:]), fu, fd, up, down, padding)
    if min(expected) <= 0:
        raise ValueError(f"filtered_lrelu would produce an empty output {expected} for input {tuple(x.shape)}")

    upsampled = x.numel() * up * up
    if upsampled < RECOMPUTE_NUMEL:
        return _filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    return _filtered_lrelu_chunked(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter,
                                   chunk_channels=max(1, CHUNK_NUMEL // (upsampled // (x.shape[0] * x.shape[1]))))


#: upsampled elements per call from which the op runs in channel chunks and backward recomputes each
#: chunk instead of storing its ~5 up-sampled intermediates (2**20 float32 = 4 MiB each; reached by the
#: wide or large layers of 128²+ generators). On CPU the chunked, recomputed step is also faster than
#: the stored one (0.6x CPU time on a 256² StyleGAN-XL at 1/4 width): smaller tensors, fewer page faults.
RECOMPUTE_NUMEL = 2**20

#: upsampled elements per chunk of a large call (2**22 float32 = 16 MiB per intermediate)
CHUNK_NUMEL = 2**22


def _filtered_lrelu_chunked(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter,
                            chunk_channels: int) -> torch.Tensor:
    """The op on ``chunk_channels`` (image, channel) planes at a time: every step is per channel, so the
    result is the same, but only one chunk's up-sampled intermediates (up² times its input) exist at
    once. With autograd on, each chunk keeps only its input and is recomputed in backward, one chunk
    at a time (a 1024² StyleGAN3 or 512² StyleGAN-XL step otherwise holds several GB per layer)."""
    batch, channels = x.shape[:2]
    planes = x.reshape(1, batch * channels, *x.shape[2:])
    biases = None if b is None else b.to(x.dtype).repeat(batch)
    chunks = planes.split(chunk_channels, dim=1)  # split, not slices: backward joins the chunks' gradients once
    bias_chunks = [None] * len(chunks) if biases is None else biases.split(chunk_channels)
    outputs = []
    for chunk, bias in zip(chunks, bias_chunks):
        args = (chunk, fu, fd, bias, up, down, padding, gain, slope, clamp, flip_filter)
        if torch.is_grad_enabled() and (chunk.requires_grad or (bias is not None and bias.requires_grad)) \
                and can_recompute(chunk, bias):
            outputs.append(checkpoint(_filtered_lrelu, *args, use_reentrant=False))
        else:
            outputs.append(_filtered_lrelu(*args))
    out = torch.cat(outputs, dim=1)
    return out.reshape(batch, channels, *out.shape[2:])


def _filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter) -> torch.Tensor:
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2, flip_filter=flip_filter)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return decimate(x, fd, down, flip_filter=flip_filter)
