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
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

WeightTransform = Callable[[torch.Tensor], torch.Tensor]


def _remove_projections(x: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    """Gram-Schmidt: drop from row vector ``x`` its components along each earlier vector."""
    for y in basis:
        x = x - torch.mm(y, x.t()) * y / torch.mm(y, y.t())
    return x


def power_iteration(
    weight_matrix: torch.Tensor, us: list[torch.Tensor], update: bool, eps: float
) -> list[torch.Tensor]:
    """One power-iteration step per stored left vector; returns the singular-value estimates.

    ``u`` and ``v`` are constants (no grad), the estimate ``v W^T u^T`` is differentiable in ``W``.
    With ``update`` the new ``u`` is written into the buffers in place (training mode only).
    """
    left, right, sigmas = [], [], []
    for u_buffer in us:
        with torch.no_grad():
            v = F.normalize(_remove_projections(torch.matmul(u_buffer, weight_matrix), right), eps=eps)
            right.append(v)
            u = F.normalize(_remove_projections(torch.matmul(v, weight_matrix.t()), left), eps=eps)
            left.append(u)
            if update:
                u_buffer[:] = u
        sigmas.append(torch.squeeze(torch.matmul(torch.matmul(v, weight_matrix.t()), u.t())))
    return sigmas


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

    def _compute_normalized_weight(self, transform: WeightTransform | None) -> torch.Tensor:
        matrix = self.weight.view(self.weight.size(0), -1)
        us = [getattr(self, f"u{i}") for i in range(self.num_svs)]
        for _ in range(self.num_itrs if self.training else 1):
            sigmas = power_iteration(matrix, us, update=self.training, eps=self.sn_eps)
        if self.training:
            with torch.no_grad():
                for i, sigma in enumerate(sigmas):
                    getattr(self, f"sv{i}")[:] = sigma
        weight = self.weight / sigmas[0]
        return weight if transform is None else transform(weight)


class SNConv2d(nn.Conv2d, SpectralNormMixin):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, num_svs: int = 1, num_itrs: int = 1, eps: float = 1e-12) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_spectral_norm(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


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
