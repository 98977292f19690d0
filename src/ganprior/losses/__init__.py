"""Perceptual distances, pluggable by name (``--perceptual NAME``).

``get_perceptual(name, prior)`` builds the distance and binds it to the prior when it needs one
(its discriminator, its shipped feature network). New distances register with
``register_perceptual(name, factory)``; a factory takes keyword options and returns a
:class:`PerceptualDistance`.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ganprior.losses.perceptual import (
    DiscriminatorDistance,
    FeatureNetDistance,
    LpipsPackageDistance,
    MSEDistance,
    NvidiaVGG16Distance,
    PerceptualDistance,
    PerceptualUnavailableError,
    cache_dir,
)

_REGISTRY: dict[str, Callable[..., PerceptualDistance]] = {
    "nvidia-vgg16": NvidiaVGG16Distance,
    "lpips-vgg": lambda **kw: LpipsPackageDistance("vgg", **kw),
    "lpips-alex": lambda **kw: LpipsPackageDistance("alex", **kw),
    "discriminator": DiscriminatorDistance,
    "feature-net": FeatureNetDistance,
    "mse": MSEDistance,
}


def register_perceptual(name: str, factory: Callable[..., PerceptualDistance]) -> None:
    """Make a new distance available to every method, the API and the CLI under ``name``."""
    _REGISTRY[name] = factory


def available_perceptuals() -> list[str]:
    return sorted(_REGISTRY)


def get_perceptual(name: str | PerceptualDistance, prior: nn.Module | None = None, **options) -> PerceptualDistance:
    """Build the named distance (or pass an instance through) and bind it to ``prior``."""
    if isinstance(name, PerceptualDistance):
        return name.prepare(prior)
    if name not in _REGISTRY:
        raise ValueError(f"unknown perceptual distance {name!r}; choose one of {', '.join(available_perceptuals())}")
    distance = _REGISTRY[name](**options).prepare(prior)
    return distance.to(prior.device) if prior is not None else distance


__all__ = [
    "PerceptualDistance",
    "PerceptualUnavailableError",
    "available_perceptuals",
    "cache_dir",
    "get_perceptual",
    "register_perceptual",
]
