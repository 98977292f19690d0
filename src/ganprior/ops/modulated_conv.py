"""StyleGAN2's modulated (and optionally demodulated) convolution, in its two exact formulations.

* fused: build one weight per sample (``weight * style``, demodulated) and run a grouped conv.
  That is what the official code uses for inference.
* non-fused: "scale input, conv with the shared weight, demodulate output". Mathematically the same
  (agrees to float rounding, ~1e-6 relative), and faster on CPU once the batch grows (about 1.6x
  forward+backward at batch 8 on the fixture generators) because it runs one ordinary conv over the
  whole batch instead of a grouped conv with per-sample weights.
"""

from __future__ import annotations

import torch

from ganprior.ops.conv2d_resample import conv2d_resample


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = False,
) -> torch.Tensor:
    """``x [N, I, H, W]``, stored ``weight [O, I, k, k]``, ``styles [N, I]`` -> ``[N, O, H', W']`` (+ noise)."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"modulated_conv2d: input {tuple(x.shape)} does not have {in_channels} channels")
    if styles.shape != (batch_size, in_channels):
        raise ValueError(f"modulated_conv2d: styles {tuple(styles.shape)} must be [{batch_size}, {in_channels}]")

    if not fused_modconv:
        # sum_{i,k} (W[o,i,k] s[n,i])^2 = sum_i s[n,i]^2 sum_k W[o,i,k]^2: the demodulation coefficients
        # without materialising the [N, O, I, k, k] weights (that was most of the CPU training time).
        if demodulate:
            dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
        x = x * styles.reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight, f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise, x, dcoefs.reshape(batch_size, -1, 1, 1))
        if demodulate:
            return x * dcoefs.reshape(batch_size, -1, 1, 1)
        if noise is not None:
            return x + noise
        return x

    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch_size, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
                        flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x
