"""ganprior in deepinv's ecosystem (optional extra ``ganprior[deepinv]``; docs/deepinv.md).

* :class:`GANPrior`: any ganprior method as a ``deepinv.models.Reconstructor``: ``GANPrior("cri")(y, physics)``;
* :func:`from_deepinv` / :func:`to_deepinv` (also ``Degradation.to_deepinv()``): exact operator conversions;
* :class:`FilterOperator`: deepinv's filter-then-subsample operators (Downsampling, Blur, BlurFFT) in ganprior.

deepinv is imported only when a name that needs it is used, with one line saying how to install it.
"""

from __future__ import annotations

from typing import Any

from .operators import FilterOperator

__all__ = ["DeepinvMappingError", "FilterOperator", "GANPrior", "from_deepinv", "noise_sigma", "operator_gap",
           "to_deepinv"]


def __getattr__(name: str) -> Any:
    if name == "GANPrior":
        from .reconstructor import GANPrior

        return GANPrior
    if name in ("DeepinvMappingError", "from_deepinv", "noise_sigma", "operator_gap", "to_deepinv"):
        from . import convert

        return getattr(convert, name)
    raise AttributeError(f"module 'ganprior.deepinv' has no attribute {name!r}")
