"""deepinv's filter-then-subsample operators as ganprior degradations (no deepinv import needed).

deepinv's ``Downsampling``, ``Blur`` and ``BlurFFT`` all compute ``y = S_f(h * x)``: a true 2-D
convolution with the filter ``h`` (``deepinv.physics.functional.conv2d``: pad ``n//2 - (n-1)%2``
samples before and ``n//2`` after, flip, correlate), then keep every ``f``-th row and column starting
at 0. ganprior's own :class:`~ganprior.degradations.SuperResolution` resamples like Pillow (taps
renormalised at the border, output centred between input pixels) and its :class:`~ganprior.degradations.Blur`
only has Gaussian/box taps with reflect padding, so neither equals deepinv's operators; this one does.

A separable filter (``h = col ⊗ row``, every deepinv named filter) makes the operator
``R · x · Cᵀ`` per channel, so the fusion is ganprior's own, on the same matrices
(:class:`~ganprior.degradations.projection.SeparablePseudoInverse`): the range–null-space projection
for downsampling, as its SR; the noise-aware Tikhonov fusion for a blur (stride 1), as its Blur, at the
given noise level (floored at 8-bit quantisation). Non-separable filters are not handled here
(``ganprior.deepinv`` then takes the generic path).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ganprior.degradations.base import Degradation, DegradationError, Size, check_image
from ganprior.degradations.noise import QUANTISATION_SIGMA
from ganprior.degradations.projection import ProjectionCache

PADDINGS = ("circular", "reflect", "replicate")
#: deepinv class each operator came from (``to_deepinv`` rebuilds it)
KINDS = ("downsampling", "blur", "blurfft")


def separable_factors(filter2d: torch.Tensor, rtol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(col, row)`` float64 with ``filter2d = outer(col, row)``, or None when the filter is not rank one."""
    f = filter2d.detach().double().cpu()
    u, s, vt = torch.linalg.svd(f)
    if s.numel() > 1 and float(s[1]) > rtol * float(s[0]):
        return None
    col, row = u[:, 0] * s[0].sqrt(), vt[0] * s[0].sqrt()
    if float(col.sum()) < 0:
        col, row = -col, -row
    return col, row


def filter_matrix(taps: torch.Tensor, size: int, stride: int, padding: str) -> torch.Tensor:
    """``[ceil(size/stride), size]`` float64 matrix of deepinv's 1-D convolution + subsampling."""
    n = taps.numel()
    before = n // 2 - (n - 1) % 2
    out = -(-size // stride)
    matrix = torch.zeros(out, size, dtype=torch.float64)
    flipped = taps.double().flip(0)
    for i in range(out):
        for t in range(n):
            j = i * stride + t - before
            if padding == "circular":
                j %= size
            elif padding == "replicate":
                j = min(max(j, 0), size - 1)
            else:  # torch's reflect (the edge sample is not repeated)
                j = -j if j < 0 else (2 * (size - 1) - j if j > size - 1 else j)
            matrix[i, j] += float(flipped[t])
    return matrix


class FilterOperator(Degradation):
    """``y = S_f(h * x)`` exactly as deepinv computes it, for a separable, normalised filter ``h``.

    ``factor`` is the subsampling step (1 for a blur), ``padding`` one of :data:`PADDINGS`; ``kind``
    and ``label`` only say which deepinv class and named filter it came from (names, ``to_deepinv``);
    ``img_size`` (C, H, W) is kept for ``BlurFFT``, which deepinv builds for one size; ``noise_sigma`` (on
    ganprior's [-1, 1] scale) sets a blur's fusion.
    The filter must sum to 1, so the operator maps constants to constants and is the same linear map on
    deepinv's [0, 1] images and ganprior's [-1, 1] ones.
    """

    def __init__(self, filter2d: torch.Tensor, factor: int = 1, padding: str = "circular", kind: str = "downsampling",
                 label: str = "filter", fusion: str = "project", img_size: tuple[int, ...] | None = None,
                 noise_sigma: float = 0.0) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise DegradationError(f"filter padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
        if kind not in KINDS:
            raise DegradationError(f"filter operator kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if fusion not in ("none", "project"):
            raise DegradationError(f"filter fusion must be 'none' or 'project', got {fusion!r}")
        if int(factor) != factor or factor < 1:
            raise DegradationError(f"subsampling factor must be a whole number >= 1, got {factor!r}")
        f = torch.as_tensor(filter2d).detach()
        while f.ndim > 2 and f.shape[0] == 1:
            f = f[0]
        if f.ndim != 2:
            raise DegradationError(f"filter must be one 2-D kernel [h, w] (or [1, 1, h, w]), got {tuple(filter2d.shape)}")
        if abs(float(f.double().sum()) - 1.0) > 1e-5:
            raise DegradationError(f"filter must sum to 1 (it sums to {float(f.sum()):.6g})")
        factors = separable_factors(f)
        if factors is None:
            raise DegradationError("filter is not separable (rank one); ganprior has no exact projection for it")
        self.col, self.row = factors
        self.register_buffer("filter2d", f.float(), persistent=False)
        self.factor, self.padding, self.kind, self.label, self.fusion = int(factor), padding, kind, label, fusion
        self.img_size, self.noise_sigma = img_size, float(noise_sigma)
        self._projections = ProjectionCache()
        self._matrices: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def name(self) -> str:  # type: ignore[override]
        # "<task><number>-<kernel>" is what ganprior.tasks reads as a named kernel; a blur's number here is
        # the filter's width in pixels (it has no sigma)
        head = f"sr{self.factor}" if self.factor > 1 else f"blur{max(self.filter2d.shape)}"
        return f"{head}-deepinv-{self.label}"

    def axis_matrices(self, hw: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column matrices (float64) for an input of size ``hw``."""
        key = (int(hw[0]), int(hw[1]))
        if key not in self._matrices:
            if max(self.col.numel(), self.row.numel()) // 2 >= min(key) and self.padding == "reflect":
                raise DegradationError(f"a {tuple(self.filter2d.shape)} filter is too wide to reflect-pad {key}")
            self._matrices[key] = (filter_matrix(self.col, key[0], self.factor, self.padding),
                                   filter_matrix(self.row, key[1], self.factor, self.padding))
        return self._matrices[key]

    def observed_size(self, hw: Sequence[int]) -> Size:
        return -(-int(hw[0]) // self.factor), -(-int(hw[1]) // self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x)
        rows, cols = (m.to(x.device, x.dtype) for m in self.axis_matrices(x.shape[-2:]))
        return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.fusion == "none":
            return x_restored
        hw = (int(x_restored.shape[-2]), int(x_restored.shape[-1]))
        op = self._projections.get(hw, self.axis_matrices)
        if self.factor > 1:
            return op.project(x_restored, y)
        return op.regularised_project(x_restored, y, max(self.noise_sigma, QUANTISATION_SIGMA))[0]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "FilterOperator", "kind": self.kind, "factor": self.factor,
                "padding": self.padding, "filter_size": list(self.filter2d.shape), "fusion": self.fusion,
                "noise_sigma": self.noise_sigma}
