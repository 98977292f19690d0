"""Perceptual distances, pluggable by name (``--perceptual NAME``).

``get_perceptual(name, prior)`` builds the distance and binds it to the prior when it needs one
(its discriminator, its shipped feature network). New distances register with
``register_perceptual(name, factory)``; a factory takes keyword options and returns a
:class:`PerceptualDistance`.

``auto`` (the methods' default) picks per model: the feature network the model ships (the embedded
emoji32 ships the emoji-feature-net), else NVIDIA's VGG16-LPIPS when it is cached or downloadable,
else, offline, the model's own discriminator (with a warning saying so).
"""

from __future__ import annotations

import warnings
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


AUTO = "auto"


class PerceptualFallbackWarning(UserWarning):
    """``auto`` could not use its preferred distance and fell back to another one."""


def available_perceptuals() -> list[str]:
    return sorted([*_REGISTRY, AUTO])


def get_perceptual(name: str | PerceptualDistance, prior: nn.Module | None = None, **options) -> PerceptualDistance:
    """Build the named distance (or pass an instance through) and bind it to ``prior``.

    ``auto`` resolves per model (module doc); the distance's ``name`` then says which one it became.
    """
    if isinstance(name, PerceptualDistance):
        return name.prepare(prior)
    if name == AUTO:
        return auto_perceptual(prior)
    if name not in _REGISTRY:
        raise ValueError(f"unknown perceptual distance {name!r}; choose one of {', '.join(available_perceptuals())}")
    distance = _REGISTRY[name](**options).prepare(prior)
    return distance.to(prior.device) if prior is not None else distance


def auto_perceptual(prior: nn.Module | None) -> PerceptualDistance:
    """The model's own feature network, else ``nvidia-vgg16``, else (offline) its discriminator."""
    if getattr(prior, "feature_net", None) is not None:
        return get_perceptual("feature-net", prior)
    try:
        return get_perceptual("nvidia-vgg16", prior)
    except PerceptualUnavailableError as exc:
        if not getattr(prior, "has_discriminator", False):
            raise PerceptualUnavailableError(
                f"no perceptual distance for this model: it ships no feature network and has no discriminator, "
                f"and {exc}; or choose one with --perceptual (e.g. lpips-alex, mse)") from exc
        reason = "nvidia-vgg16 is unavailable (not cached, download failed or GANPRIOR_OFFLINE set)"
        warnings.warn(f"perceptual distance: using the model's discriminator because {reason}",
                      PerceptualFallbackWarning, stacklevel=2)
        return get_perceptual("discriminator", prior)


__all__ = [
    "AUTO",
    "PerceptualDistance",
    "PerceptualFallbackWarning",
    "PerceptualUnavailableError",
    "auto_perceptual",
    "available_perceptuals",
    "cache_dir",
    "get_perceptual",
    "register_perceptual",
]
