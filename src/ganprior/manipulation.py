"""Manipulating a reconstruction through the GAN prior: random jittering, morphing, category transfer.

A :class:`Reconstruction` is what a restoration leaves behind: the latent, the class and the tuned
generator as a delta on the original weights. DGP gives BigGAN's z + fine-tuned G; CRI/PTI give a
StyleGAN2/XL W+ latent + the pivotal-tuning delta; W/W+ projections give a latent alone. The same
three operations work on all of them:

* :func:`jitter`: perturb the latent and render natural variants with the tuned generator (BigGAN:
  ``z + σε``, DGP's rule; StyleGAN: ``w + σ(mapping(ε) − w_avg)``, a step along a random *natural*
  direction of W, since W itself is not Gaussian);
* :func:`morph`: interpolate both latents and both tuned generators (every state-dict tensor,
  ``θ0 + (1−λ)δ_A + λδ_B``, as DGP does) and, for BigGAN, the two class-embedding vectors; in
  DGP's order (example.py:85-96: frame ``i`` weighs A by ``i/10``, so the first frame is B) unless
  ``order='a-to-b'``;
* :func:`transfer`: re-render under other classes. BigGAN: same z and tuned G, another class
  embedding. StyleGAN: W moves by the difference of the class centres (XL's per-class ``w_avg``;
  for conditional StyleGAN2 the mean mapped latent of each class).

DGP renders every manipulation with batch norm, even when the reconstruction's stages used its BN->IN
swap (``G(z, y)`` without ``use_in``: models/dgp.py:391, example.py:64, 95); so do these functions unless
``own_norm=True`` asks for the reconstruction's own mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ganprior.methods.dgp import set_instance_norm, tunable_copy
from ganprior.models.prior import GenerativePrior

CLASS_CENTER_SAMPLES = 2000
#: frame orders of :func:`morph`: DGP's (B first) or A first
MORPH_ORDERS = ("official", "a-to-b")


class ManipulationError(ValueError):
    """The reconstruction(s) and the model (or the request) do not fit together."""


@dataclass
class Reconstruction:
    """Latent ``[1, num_ws, w_dim]``, class, and tuned − original generator tensors (state-dict keys)."""

    latent: torch.Tensor
    class_index: int | None = None
    generator_delta: dict[str, torch.Tensor] = field(default_factory=dict)
    instance_norm: bool = False  # DGP reconstructions whose last stage used BigGAN's BN->IN swap

    @classmethod
    def from_result(cls, result: Any) -> "Reconstruction":
        """From a method :class:`~ganprior.methods.Result` or a :class:`~ganprior.results.RestorationResult`."""
        r = getattr(result, "result", result)
        return cls(r.latent.detach(), r.class_index, dict(r.generator_delta),
                   bool(r.extras.get("instance_norm", False)))

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "Reconstruction":
        """From a run directory written by ``RestorationResult.save`` (``ganprior restore``)."""
        from safetensors.torch import load_file

        d = Path(run_dir)
        if not (d / "run.json").is_file() or not (d / "latent.pt").is_file():
            raise ManipulationError(f"{d} is not a finished run directory (needs run.json and latent.pt)")
        summary = json.loads((d / "run.json").read_text())
        latent = torch.load(d / "latent.pt", map_location="cpu", weights_only=True)
        delta_file = d / "generator_delta.safetensors"
        delta = load_file(str(delta_file)) if delta_file.is_file() else {}
        return cls(latent, summary.get("class", {}).get("index"), delta,
                   bool(summary.get("extras", {}).get("instance_norm", False)))

    @staticmethod
    def model_label(run_dir: str | os.PathLike) -> str | None:
        """The model a saved run used (its ``run.json``), when it was loaded from a name or a file."""
        label = json.loads((Path(run_dir) / "run.json").read_text()).get("config", {}).get("model")
        return None if label is None or str(label).startswith("<") else str(label)


def _check(prior: GenerativePrior, rec: Reconstruction) -> None:
    want = (1, prior.num_ws, prior.w_dim)
    if tuple(rec.latent.shape) != want:
        raise ManipulationError(f"latent is {list(rec.latent.shape)} but this {prior.family} model takes {list(want)}; "
                                "was the reconstruction made with another model?")
    state = prior.state_dict()
    for key, value in rec.generator_delta.items():
        if key not in state or state[key].shape != value.shape:
            raise ManipulationError(f"generator delta entry {key!r} does not fit this {prior.family} model")
    if prior.c_dim and rec.class_index is None:
        raise ManipulationError(f"this {prior.family} model is class-conditional; the reconstruction has no class")


def tuned_prior(prior: GenerativePrior, rec: Reconstruction, own_norm: bool = True) -> GenerativePrior:
    """A copy of ``prior`` with the reconstruction's delta added (the discriminator is shared), rendering in
    the reconstruction's norm mode, or with batch norm (DGP's manipulations) when not ``own_norm``."""
    _check(prior, rec)
    tuned = tunable_copy(prior, frozen=True)
    state = tuned.state_dict()
    with torch.no_grad():
        for key, value in rec.generator_delta.items():
            state[key].add_(value.to(state[key]))
    set_instance_norm(tuned, rec.instance_norm and own_norm, initialized=True)
    return tuned


def _classes(prior: GenerativePrior, index: int | None, n: int) -> torch.Tensor:
    return prior.class_matrix(index, n) if prior.c_dim else torch.zeros(n, 0, device=prior.device)


def _render(prior: GenerativePrior, ws: torch.Tensor, c: torch.Tensor, chunk: int) -> torch.Tensor:
    out = [prior.synthesis(ws[i:i + chunk], c[i:i + chunk]).clamp(-1, 1).cpu() for i in range(0, len(ws), chunk)]
    return torch.cat(out)


@torch.no_grad()
def render(prior: GenerativePrior, rec: Reconstruction) -> torch.Tensor:
    """The reconstruction itself ``[1, C, R, R]`` (tuned generator at the latent)."""
    tuned = tuned_prior(prior, rec)
    return _render(tuned, rec.latent.to(prior.device), _classes(prior, rec.class_index, 1), 1)


@torch.no_grad()
def jitter(prior: GenerativePrior, rec: Reconstruction, n: int = 30, stds: Sequence[float] = (0.3, 0.5, 0.7),
           seed: int = 0, chunk: int = 8, own_norm: bool = False) -> torch.Tensor:
    """``n`` variants per σ in ``stds`` (DGP: 30 each at 0.3/0.5/0.7), ``[len(stds)·n, C, R, R]``, σ-major."""
    if n < 1 or not stds or any(s < 0 for s in stds):
        raise ManipulationError(f"jitter needs n >= 1 and non-negative stds, got n={n}, stds={list(stds)}")
    tuned = tuned_prior(prior, rec, own_norm)
    g = torch.Generator().manual_seed(seed)
    latent = rec.latent.to(prior.device)
    c = _classes(prior, rec.class_index, n)
    images = []
    for std in stds:
        eps = torch.randn(n, prior.z_dim, generator=g).to(prior.device)
        if prior.has_mapping:  # a random natural direction of W (see module doc)
            direction = prior.mapping(eps, c)[:, :1] - prior.w_avg(c)[:, None]
        else:
            direction = eps[:, None]
        images.append(_render(tuned, latent + std * direction, c, chunk))
    return torch.cat(images)


def _class_embedding(prior: GenerativePrior, rec: Reconstruction) -> torch.Tensor:
    """BigGAN: the reconstruction's class vector under its own (possibly tuned) embedding table."""
    table = prior.G.shared.weight
    delta = rec.generator_delta.get("G.shared.weight")
    if delta is not None:
        table = table + delta.to(table)
    return table[int(rec.class_index)][None]


@torch.no_grad()
def morph(prior: GenerativePrior, a: Reconstruction, b: Reconstruction, frames: int = 11, order: str = "official",
          own_norm: bool = False) -> torch.Tensor:
    """``frames`` images between A (λ = 0) and B (λ = 1): λ = 1, ..., 1/(frames−1), 0 in DGP's order
    (``official``: its frame ``i`` weighs A by ``i/(frames−1)``), λ = 0, ..., 1 with ``order='a-to-b'``."""
    if frames < 2:
        raise ManipulationError(f"morphing needs at least 2 frames, got {frames}")
    if order not in MORPH_ORDERS:
        raise ManipulationError(f"morph order must be one of {', '.join(MORPH_ORDERS)}, got {order!r}")
    _check(prior, a)
    _check(prior, b)
    if own_norm and a.instance_norm != b.instance_norm:
        raise ManipulationError("cannot morph a BN reconstruction into an IN one (DGP's BN->IN swap differs)")
    work = tunable_copy(prior, frozen=True)
    set_instance_norm(work, a.instance_norm and own_norm, initialized=True)
    state, original = work.state_dict(), prior.state_dict()
    keys = sorted(set(a.generator_delta) | set(b.generator_delta))
    delta_a = {k: a.generator_delta[k].to(original[k]) for k in keys if k in a.generator_delta}
    delta_b = {k: b.generator_delta[k].to(original[k]) for k in keys if k in b.generator_delta}
    za, zb = a.latent.to(prior.device), b.latent.to(prior.device)
    biggan = hasattr(prior, "render") and not prior.has_mapping
    if biggan:
        ea, eb = _class_embedding(prior, a), _class_embedding(prior, b)
    out = []
    for i in range(frames):
        lam = i / (frames - 1) if order == "a-to-b" else 1 - i / (frames - 1)
        for k in keys:
            mixed = original[k].clone()
            if k in delta_a:
                mixed += (1 - lam) * delta_a[k]
            if k in delta_b:
                mixed += lam * delta_b[k]
            state[k].copy_(mixed)
        ws = (1 - lam) * za + lam * zb
        if biggan:
            img = work.render(ws[:, 0], (1 - lam) * ea + lam * eb)
        else:  # StyleGAN synthesis takes the class through W only
            img = work.synthesis(ws, _classes(prior, a.class_index, 1))
        out.append(img.clamp(-1, 1).cpu())
    return torch.cat(out)


def class_center(prior: GenerativePrior, class_index: int, seed: int = 0) -> torch.Tensor:
    """``[1, w_dim]`` centre of a class in W: XL's per-class ``w_avg``, else the mean mapped latent."""
    c = prior.class_matrix(class_index, 1)
    if prior.family == "stylegan_xl":
        return prior.w_avg(c)
    from ganprior.methods.centroids import sample_w

    return sample_w(prior, c, CLASS_CENTER_SAMPLES, seed).mean(0, keepdim=True)


@torch.no_grad()
def transfer(prior: GenerativePrior, rec: Reconstruction, classes: Sequence[int], chunk: int = 8,
             own_norm: bool = False) -> torch.Tensor:
    """The reconstruction re-rendered under each of ``classes`` ``[len(classes), C, R, R]``."""
    if not prior.c_dim:
        raise ManipulationError(f"category transfer needs a class-conditional model; this {prior.family} "
                                "has no classes")
    classes = [int(k) for k in classes]
    if not classes:
        raise ManipulationError("give at least one target class")
    c = prior.class_matrix(torch.tensor(classes), len(classes))  # validates the indices
    tuned = tuned_prior(prior, rec, own_norm)
    latent = rec.latent.to(prior.device)
    if prior.has_mapping:
        source = class_center(prior, int(rec.class_index))
        ws = torch.cat([latent + (class_center(prior, k) - source)[:, None] for k in classes])
    else:
        if rec.instance_norm and own_norm:
            raise ManipulationError("this reconstruction used DGP's BN->IN swap, under which the class embedding "
                                    "has no effect; reconstruct with the manipulation schedule (no IN) for "
                                    "category transfer")
        ws = latent.expand(len(classes), -1, -1)
    return _render(tuned, ws, c, chunk)


# ----- saving ----------------------------------------------------------------------------------
def save_frames(images: torch.Tensor, directory: str | os.PathLike, prefix: str = "frame") -> list[Path]:
    """One PNG per image: ``<prefix>_000.png`` ..."""
    from ganprior.images import save_image

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return [save_image(img[None], d / f"{prefix}_{i:03d}.png") for i, img in enumerate(images)]


def mp4_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))


def save_animation(images: torch.Tensor, path: str | os.PathLike, fps: int = 8, boomerang: bool = True) -> list[Path]:
    """GIF (Pillow) at ``path``; also an MP4 next to it when imageio-ffmpeg is installed.

    ``boomerang`` plays the frames forth and back, so the loop has no jump. Returns the written files.
    """
    from ganprior.images import tensor_to_pil

    path = Path(path).with_suffix(".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = [tensor_to_pil(img) for img in images]
    if boomerang and len(pil) > 2:
        pil = pil + pil[-2:0:-1]
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=max(1, round(1000 / fps)), loop=0)
    written = [path]
    if mp4_available():
        import imageio.v2 as imageio
        import numpy as np

        mp4 = path.with_suffix(".mp4")
        with imageio.get_writer(mp4, fps=fps, macro_block_size=1) as writer:
            for im in pil:
                writer.append_data(np.asarray(im.convert("RGB")))
        written.append(mp4)
    return written


# ----- where reconstructions come from ---------------------------------------------------------------
def reconstruction_from(
    source: str | os.PathLike,
    prior: GenerativePrior,
    *,
    task: str = "reconstruct",
    class_index: int | None = None,
    seed: int = 0,
    steps: int | None = None,
    preset: str = "official",
    progress: bool = True,
    update_embed: bool = False,
) -> tuple[Reconstruction, Any]:
    """A finished run directory (any method), or an image reconstructed here with DGP.

    Images of the clean kind (``task='reconstruct'``) use DGP's manipulation schedule (paper Table 11:
    D loss only, no BN->IN swap, so the class keeps its effect); degraded ones use their task's schedule.
    ``update_embed``: also tune the class embedding, as DGP's morphing script does (run_morphing.sh:24;
    jitter and category transfer leave it fixed). Returns ``(reconstruction, RestorationResult or None)``.
    """
    path = Path(source)
    if path.is_dir():
        return Reconstruction.load(path), None
    from ganprior.api import restore

    options: dict[str, Any] = {"schedule": "manipulation"} if task in ("reconstruct", "", "none", "identity") else {}
    if update_embed:
        options["update_embed"] = True
    result = restore(path, task=task, method="dgp", model=prior, class_index=class_index, seed=seed, steps=steps,
                     preset=preset, progress=progress, options=options)
    return Reconstruction.from_result(result), result
