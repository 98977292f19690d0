"""Spectral normalisation exactly as BigGAN-PyTorch (and DGP) compute it.

Not ``torch.nn.utils.spectral_norm``: the official layers keep their singular-vector estimates in
buffers named ``u0, u1, ...`` (plus logging-only ``sv0, ...``) on the layer itself, and they run the
power iteration on *every* forward, also in eval mode. In eval mode the refreshed ``u`` is simply not
written back, so the divisor is recomputed each call from the stored ``u`` and the current weight. DGP
relies on that: it fine-tunes G in eval mode, so sigma follows the tuned weights while ``u`` stays put.

Speed: in eval mode the result is a pure function of ``weight`` and the stored ``u``, so while neither
changes (a frozen generator or discriminator: latent steps, candidate selection, feature losses) the
normalised weight is computed once and reused, keyed on the tensors' storage and version counters,
which every in-place write (optimiser steps, ``load_state_dict``, ``copy_``) advances. The cache costs
one extra copy of each frozen layer's weight.

When the weight itself is being tuned in eval mode (DGP's generator fine-tuning), sigma is still
recomputed every call, with the same power iteration and the same gradient (sigma's included), but that
gradient is written out analytically, ``dL/dW = h - (<h, W> / sigma) u^T v``, instead of being traced
through the division and the matmuls: on CPU at the released width the traced version allocated half a
dozen weight-sized temporaries per layer and was over half of the tuning step. Convolutions divide their
output instead of their weight where that is smaller, and the few-pixel layers with weights over 32 MiB
run the im2col kernel (measured faster there). Compiled graphs, vmap/grad transforms and training mode
keep the plain traced path; the fast path cannot be differentiated twice (it says so if asked).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

WeightTransform = Callable[[torch.Tensor], torch.Tensor]


def _remove_projections(x: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """Gram-Schmidt: drop from row vector ``x`` its components along each earlier vector."""
    for y in basis:
        x = x - torch.mm(y, x.t()) * y / torch.mm(y, y.t())
    return x


def power_iteration(
    weight_matrix: torch.Tensor, us: list[torch.Tensor], update: bool, eps: float, differentiable: bool = True
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """One power-iteration step per stored left vector; returns the singular-value estimates and the
    new left (``u``) and right (``v``) vectors.

    ``u`` and ``v`` are constants (no grad). With ``differentiable`` the estimate ``v W^T u^T`` is
    computed as the official code does, differentiable in ``W``; without, it is a constant that reuses
    the product ``v W^T`` the iteration already formed (the same matmul, so the same value).
    With ``update`` the new ``u`` is written into the buffers in place (training mode only).
    """
    left, right, sigmas = [], [], []
    for u_buffer in us:
        with torch.no_grad():
            v = F.normalize(_remove_projections(torch.matmul(u_buffer, weight_matrix), right), eps=eps)
            right.append(v)
            v_wt = torch.matmul(v, weight_matrix.t())
            u = F.normalize(_remove_projections(v_wt, left), eps=eps)
            left.append(u)
            if update:
                u_buffer[:] = u
            if not differentiable:
                sigmas.append(torch.squeeze(torch.matmul(v_wt, u.t())))
        if differentiable:
            sigmas.append(torch.squeeze(torch.matmul(torch.matmul(v, weight_matrix.t()), u.t())))
    return sigmas, left, right


def _sigma_chain_rule(h: torch.Tensor, weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                      sigma: torch.Tensor) -> torch.Tensor:
    """``dL/dW`` for ``W' = W / sigma``, ``sigma = u W v^T`` (``u``, ``v`` constant), from ``h = (dL/dW') / sigma``.

    ``dL/dW = h - (<h, W> / sigma) u^T v``: the direct term plus sigma's rank-one gradient ``u^T v``,
    what autograd derives through the official division and matmuls. ``h`` is overwritten (the caller
    owns it): one dot product and one in-place pass, instead of autograd's half a dozen weight-sized
    temporaries (on CPU each large new tensor also costs page faults).
    """
    k = torch.dot(h.reshape(-1), weight.reshape(-1)) / sigma
    rows = (-1,) + (1,) * (h.dim() - 1)  # u^T v as a broadcast product: h may be any layout (a transform's gradient)
    h.addcmul_(u.view(rows) * -k, v.view(1, *weight.shape[1:]))
    return h


class _DivideBySigma(torch.autograd.Function):
    """``weight / sigma`` with sigma's gradient taken analytically (see :func:`_sigma_chain_rule`)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, u, v, sigma)
        return weight / sigma

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, u, v, sigma = ctx.saved_tensors
        return _sigma_chain_rule(grad / sigma, weight, u, v, sigma), None, None, None


# oneDNN's convolution copies the weight into its blocked layout on every call; above glibc's largest
# mmap threshold (32 MiB) that copy lands in freshly mapped pages each time, a fixed ~30-50 ms at
# 1536 x 1536 x 3 x 3 that the few-pixel layers of BigGAN-128 at the released width (G's first block,
# D's last two) cannot amortise. There the im2col + matrix-multiply kernel took 0.25-0.6x oneDNN's
# time forward and 0.3-0.65x backward on this CPU at one image of 8x8 or 4x4 or two of 4x4, ~0.9x at
# two of 8x8; at 4 images of 4x4, or from 256 pixels, oneDNN was as fast or faster (bench/biggan_speed.py,
# width 96).
_IM2COL_MIN_WEIGHT_BYTES = 32 << 20
_IM2COL_MAX_PIXELS = 128  # batch x height x width
_IM2COL_MAX_BATCH = 2


def _im2col_wins(x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d) -> bool:
    return (x.size(0) <= _IM2COL_MAX_BATCH and x.size(0) * x.size(2) * x.size(3) <= _IM2COL_MAX_PIXELS
            and weight.numel() * weight.element_size() > _IM2COL_MIN_WEIGHT_BYTES
            and conv.groups == 1 and tuple(conv.dilation) == (1, 1) and x.device.type == "cpu"
            and not torch.compiler.is_compiling())


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d) -> torch.Tensor:
    """``F.conv2d`` with ``conv``'s geometry, through the im2col kernel where that is faster (same sums,
    other order: equal up to float rounding; its autograd backward is im2col too)."""
    if _im2col_wins(x, weight, conv):
        return torch.ops.aten._slow_conv2d_forward(x, weight, weight.shape[2:], bias, conv.stride, conv.padding)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _conv2d_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d,
                     mask: list[bool]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Input and weight gradients of :func:`conv2d` (no bias), by the kernel it chose."""
    if _im2col_wins(x, weight, conv):
        grad_x, grad_w, _ = torch.ops.aten._slow_conv2d_backward.output_mask(
            grad, x, weight, weight.shape[2:], conv.stride, conv.padding, [*mask, False])
    else:
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, conv.stride, conv.padding, conv.dilation, False, [0, 0], conv.groups, [*mask, False])
    return grad_x, grad_w


class _SNConv2d(torch.autograd.Function):
    """``conv2d(x, W / sigma, b)`` with sigma's gradient taken analytically, dividing whichever is smaller.

    The convolution is linear in the weight, so ``conv(x, W / sigma) = conv(x, W) / sigma``: where the
    weight has more entries than the output (the wide low-resolution layers at small batches) the
    output is divided instead, and the backward pass scales the output gradient, so no weight-sized
    ``W / sigma`` or ``dL/dW' / sigma`` is ever allocated; the weight gradient ``h`` comes straight out
    of the convolution's backward and :func:`_sigma_chain_rule` finishes it in place.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, u: torch.Tensor,
                v: torch.Tensor, sigma: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        scale_output = weight.numel() > x.size(0) * weight.size(0) * x.size(2) * x.size(3)
        if scale_output:
            used = weight
            out = conv2d(x, weight, None, conv).div_(sigma)
            if bias is not None:
                out.add_(bias.view(1, -1, 1, 1))
        else:
            used = weight / sigma
            out = conv2d(x, used, bias, conv)
        ctx.save_for_backward(x, weight, used, u, v, sigma)
        ctx.conv, ctx.scale_output, ctx.has_bias = conv, scale_output, bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, used, u, v, sigma = ctx.saved_tensors
        grad_used = grad / sigma if ctx.scale_output else grad
        grad_x, h = _conv2d_backward(grad_used, x, used, ctx.conv, [ctx.needs_input_grad[0], ctx.needs_input_grad[1]])
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = _sigma_chain_rule(h if ctx.scale_output else h.div_(sigma), weight, u, v, sigma)
        grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None, None, None


class _WeightCache:
    """Holds one cached normalised weight. Copies and pickles start empty: a deep-copied layer has new
    tensors (its entry would never match), so copying the entry would only waste memory."""

    def __init__(self) -> None:
        self.entry: tuple | None = None

    def __reduce__(self) -> tuple:
        return _WeightCache, ()


class SpectralNormMixin:
    """Adds ``u<i>``/``sv<i>`` buffers and :meth:`normalized_weight` to a layer that has ``weight``.

    ``num_outputs`` is the first dimension of ``weight`` (out channels / out features / number of
    embeddings), i.e. the length of ``u``.
    """

    weight: torch.Tensor
    training: bool

    def _init_spectral_norm(self, num_svs: int, num_itrs: int, num_outputs: int, eps: float) -> None:
        if num_svs < 1 or num_itrs < 1:
            raise ValueError(f"spectral norm needs num_svs >= 1 and num_itrs >= 1, got {num_svs}, {num_itrs}")
        self.num_svs, self.num_itrs, self.sn_eps = num_svs, num_itrs, eps
        self._sn_cache = _WeightCache()
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, num_outputs))  # type: ignore[attr-defined]
            self.register_buffer(f"sv{i}", torch.ones(1))  # type: ignore[attr-defined]

    def normalized_weight(self, transform: WeightTransform | None = None) -> torch.Tensor:
        """``weight / sigma_0``, passed through ``transform`` if given (a fixed function of the weight,
        e.g. a resampled kernel). In eval mode the iterations would all restart from the same stored
        ``u``, so one is run; in training mode ``num_itrs`` chained steps update ``u`` and ``sv``.

        Cached (one entry per layer, for the last ``transform``) while nothing can make it differ from
        a fresh computation: eval mode, no gradient wanted for ``weight``, and the same weight and ``u``
        storage at the same versions.
        """
        if not self._cacheable():
            return self._compute_normalized_weight(transform)
        sources = [self.weight, *(getattr(self, f"u{i}") for i in range(self.num_svs))]
        key = (transform, [(t.data_ptr(), t._version, t.dtype, t.device, t.shape) for t in sources])
        cached = self._sn_cache.entry
        if cached is None or cached[0] != key:
            with torch.no_grad():
                value = self._compute_normalized_weight(transform)
            # the detached aliases keep the keyed storage alive, so its address cannot be reused by new data
            cached = self._sn_cache.entry = (key, value, [t.detach() for t in sources])
        return cached[1]

    def _cacheable(self) -> bool:
        if torch.compiler.is_compiling():  # a compiled graph computes it inside the graph
            return False
        weight = self.weight
        return not (self.training or (weight.requires_grad and torch.is_grad_enabled())
                    or torch.is_inference_mode_enabled()  # inference tensors cannot be saved for backward later
                    or torch._C._functorch.is_functorch_wrapped_tensor(weight))  # vmap / grad transforms

    def _fast_gradient(self) -> bool:
        """Whether to take sigma's gradient analytically (eval mode, a gradient wanted for the weight,
        plain eager autograd: compiled graphs and vmap/grad transforms, and training, keep the plain path)."""
        weight = self.weight
        return (not self.training and weight.requires_grad and torch.is_grad_enabled()
                and not torch.compiler.is_compiling() and not torch._C._functorch.is_functorch_wrapped_tensor(weight))

    def _sigma(self, differentiable: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sigma_0, u_0, v_0)``; in training mode after ``num_itrs`` steps that update ``u``/``sv``."""
        matrix = self.weight.view(self.weight.size(0), -1)
        us = [getattr(self, f"u{i}") for i in range(self.num_svs)]
        for _ in range(self.num_itrs if self.training else 1):
            sigmas, left, right = power_iteration(matrix, us, update=self.training, eps=self.sn_eps,
                                                  differentiable=differentiable)
        if self.training:
            with torch.no_grad():
                for i, sigma in enumerate(sigmas):
                    getattr(self, f"sv{i}")[:] = sigma
        return sigmas[0], left[0], right[0]

    def _compute_normalized_weight(self, transform: WeightTransform | None) -> torch.Tensor:
        if self._fast_gradient():
            sigma, u, v = self._sigma(differentiable=False)
            weight = _DivideBySigma.apply(self.weight, u, v, sigma)
        else:
            weight = self.weight / self._sigma(differentiable=True)[0]
        return weight if transform is None else transform(weight)


class SNConv2d(nn.Conv2d, SpectralNormMixin):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-12) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_spectral_norm(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_gradient():
            sigma, u, v = self._sigma(differentiable=False)
            return _SNConv2d.apply(x, self.weight, self.bias, u, v, sigma, self)
        return conv2d(x, self.normalized_weight(), self.bias, self)


class SNLinear(nn.Linear, SpectralNormMixin):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-12) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._init_spectral_norm(num_svs, num_itrs, out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(nn.Embedding, SpectralNormMixin):
    """Embedding table normalised as a ``[num_embeddings, dim]`` matrix (``u`` has num_embeddings entries).

    Besides integer indices it takes a ``[N, num_embeddings]`` float matrix (one-hot or soft classes),
    which is multiplied with the normalised table.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-12) -> None:
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self._init_spectral_norm(num_svs, num_itrs, num_embeddings, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.normalized_weight()
        if x.is_floating_point():
            return x @ table
        return F.embedding(x, table)
