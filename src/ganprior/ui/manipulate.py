"""DGP's manipulations on the finished restoration shown in the page: jitter, morph towards a second
image (reconstructed here with the same method and step cap) and category transfer.

Like the command line's (``cli.jitter.PhotoMapping``), they are shown as the restoration was: at the
photo's size and fused with its observation (from the run folder the page saved), not as generator tiles.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ganprior.manipulation import ManipulationError, Reconstruction, jitter, morph, transfer
from ganprior.ui.inputs import UIInputError


def _reconstruction(result: Any) -> Reconstruction:
    if result is None:
        raise UIInputError("run a restoration first: the manipulations start from its result")
    return Reconstruction.from_result(result)


def _as_restored(prior: Any, result: Any, images: torch.Tensor, fused: bool = True) -> torch.Tensor:
    """Generator images shown as the restoration was (its run folder), or as they are without one."""
    run_dir = getattr(result, "run_dir", None)
    if run_dir is None:
        return images
    from ganprior.cli.jitter import PhotoMapping

    return PhotoMapping(run_dir, prior)(images, fused=fused)


def jitter_images(prior: Any, result: Any, n: int, std: float, seed: int) -> torch.Tensor:
    """``n`` natural variants of the restoration at perturbation size ``std``."""
    try:
        return _as_restored(prior, result, jitter(prior, _reconstruction(result), n=int(n), stds=(float(std),),
                                                  seed=int(seed)))
    except ManipulationError as exc:
        raise UIInputError(str(exc)) from None


def morph_images(prior: Any, result: Any, other: np.ndarray | None, frames: int, method: str,
                 steps: int | None, seed: int) -> torch.Tensor:
    """``frames`` images from the restoration to ``other`` (a clean image, reconstructed first)."""
    from ganprior.api import restore
    from ganprior.images import from_uint8

    a = _reconstruction(result)
    if other is None:
        raise UIInputError("morph needs a second image: upload one or pick a second example")
    second = restore(from_uint8(other), task="reconstruct", method=method, model=prior, seed=int(seed),
                     steps=steps, progress=False)
    try:
        tiles = morph(prior, a, Reconstruction.from_result(second), frames=int(frames), order="a-to-b")
        return _as_restored(prior, result, tiles, fused=False)  # (the frames leave A's observation)
    except ManipulationError as exc:
        raise UIInputError(str(exc)) from None


def transfer_images(prior: Any, result: Any, classes: Sequence[int]) -> torch.Tensor:
    """The restoration rendered under each of ``classes``."""
    try:
        return _as_restored(prior, result, transfer(prior, _reconstruction(result), [int(k) for k in classes]))
    except ManipulationError as exc:
        raise UIInputError(str(exc)) from None
