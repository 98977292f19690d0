"""Data consistency for separable linear operators: the range–null-space (DDNM-style) projection.

An operator of the form ``A(x) = R · x · Cᵀ`` per channel (every SR kernel, every blur) has the
pseudo-inverse ``A⁺``; the fused image ``x + A⁺(y − A x)`` keeps the restoration's null-space part
(what the observation cannot see) and replaces its range part by the observation's, so
``A(fused) = y`` up to float precision. We chose this over iterative back-projection because it is
exact in one step and has no step size to tune.

``A⁺`` is built from the SVDs of the two 1-D factors, truncated on the *product* of singular values
(``s_i · s_j <= rtol · max``): downsampling matrices are well conditioned, so nothing is dropped;
a blur's highest frequencies are damped to nearly zero, and inverting them would only amplify the
observation's quantisation noise, so there the fused image reproduces ``y`` up to those damped
components (well under 1/255 for a Gaussian blur of sigma 2).
"""

from __future__ import annotations

import torch

#: relative cut-off on s_i·s_j below which a direction counts as unobservable
DEFAULT_RTOL = 1e-2


def conv_matrix(taps: torch.Tensor, size: int, stride: int, before: int, after: int, padding: str) -> torch.Tensor:
    """``[out, size]`` float64 matrix of a 1-D correlation with ``taps`` (and ``stride``) after
    ``padding`` ('replicate' or 'reflect') of ``before`` / ``after`` samples at the two ends."""
    n = taps.numel()
    out = (size + before + after - n) // stride + 1
    matrix = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        for t in range(n):
            j = i * stride + t - before
            if padding == "replicate":
                j = min(max(j, 0), size - 1)
            else:  # reflect, without repeating the edge sample (torch's 'reflect')
                j = -j if j < 0 else (2 * (size - 1) - j if j > size - 1 else j)
            matrix[i, j] += float(taps[t])
    return matrix


class SeparablePseudoInverse:
    """``A⁺`` of ``A(x) = R x Cᵀ`` (float64 SVD factors, computed once per pair of matrices)."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, rtol: float = DEFAULT_RTOL) -> None:
        self.rows, self.cols = rows.double(), cols.double()
        ur, sr, vrt = torch.linalg.svd(self.rows, full_matrices=False)
        uc, sc, vct = torch.linalg.svd(self.cols, full_matrices=False)
        s = sr[:, None] * sc[None, :]
        self.singular = s
        keep = s > rtol * s.max()
        self.inverse_s = torch.where(keep, 1.0 / s.clamp_min(1e-300), torch.zeros_like(s))
        self.ur_t, self.vr, self.uc, self.vc_t = ur.T, vrt.T, uc, vct
        self.cols_t = self.cols.T
        self._cast: dict[tuple, torch.Tensor] = {}

    def _on(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A factor in ``like``'s device and dtype (cached: applied every fusion round)."""
        key = (name, like.device, like.dtype)
        if key not in self._cast:
            self._cast[key] = getattr(self, name).to(like.device, like.dtype).contiguous()
        return self._cast[key]

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """``A⁺ y`` for ``y`` ``[N, C, h, w]`` (in ``y``'s dtype; two matrix products per side)."""
        coeffs = self._on("ur_t", y) @ y @ self._on("uc", y)
        return self._on("vr", y) @ (coeffs * self._on("inverse_s", y)) @ self._on("vc_t", y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` with the same matrices."""
        return self._on("rows", x) @ x @ self._on("cols_t", x)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + A⁺(y − A x)``: the image nearest to ``x`` that reproduces ``y`` (in the kept directions)."""
        return x + self.apply(y.to(x.dtype) - self.forward(x))


    def regularised_project(self, x: torch.Tensor, y: torch.Tensor, sigma: float) -> tuple[torch.Tensor, float]:
        """``x + Aᵀ(AAᵀ + λI)⁻¹(y − A x)`` (Tikhonov around ``x``), with ``λ`` set by Morozov's discrepancy
        principle: the largest ``λ`` whose residual ``|A out − y|`` is the expected noise norm ``sigma·sqrt(N)``.

        Unlike the truncated ``A⁺`` this never divides by a tiny singular value, so what the restoration
        got wrong is not amplified into rings. Returns (image, λ); λ = inf when ``x`` already explains
        ``y`` to within the noise (it is returned unchanged).
        """
        coeffs = self._on("ur_t", y) @ (y.to(x.dtype) - self.forward(x)) @ self._on("uc", y)
        energy = coeffs.double().square()
        s2 = self.singular.square().to(energy.device)
        budget = sigma ** 2 * y[0].numel()
        if float(energy.sum(dim=(1, 2, 3)).max()) <= budget:
            return x, float("inf")
        low, high = -30.0, 10.0  # bisection on log10 λ: the residual grows with λ
        for _ in range(60):
            mid = (low + high) / 2
            lam = 10.0 ** mid
            residual = (energy * (lam / (s2 + lam)).square()).sum(dim=(1, 2, 3)).max()
            low, high = (mid, high) if float(residual) <= budget else (low, mid)
        lam = 10.0 ** low
        gain = (self.singular / (self.singular.square() + lam)).to(x.device, x.dtype)
        return x + self._on("vr", x) @ (coeffs * gain) @ self._on("vc_t", x), lam


class ProjectionCache:
    """Per-operator cache of :class:`SeparablePseudoInverse` by input size (photos of many sizes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], SeparablePseudoInverse] = {}

    def get(self, hw: tuple[int, int], build) -> SeparablePseudoInverse:
        if hw not in self._cache:
            rows, cols = build(hw)
            self._cache[hw] = SeparablePseudoInverse(rows, cols)
        return self._cache[hw]
