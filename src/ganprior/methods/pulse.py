"""PULSE (Menon et al., CVPR 2020) on any StyleGAN prior, as ``adamian98/pulse@40cacb9`` runs it.

The latent is a per-layer Gaussian vector kept on its initial sphere (spherical optimiser); it maps
to W through the "Gaussianised W" fit of the mapping network: ``w = lrelu_0.2(latent·std + mean)``,
with mean/std taken over ``lrelu_5(mapping(z))`` (slope 5 undoes the mapping's final slope-0.2 leaky
ReLU; ``PULSE.py:41-48`` fits 1 M samples, here ``fit_samples``, streamed). Loss ``100·L2 + 0.05·GEOCROSS``
on [0, 1] images (L2 on [-1, 1] images is 4× larger, hence the weight 25 here), the L2 clamped from
below at ``eps`` = 2e-3 ([0, 1] units, ``loss.py:21-22``); Adam, lr 0.4, 100 steps, "linear1cycledrop".

Noise (``PULSE.py:80-100``, ``run.py:39-42``): with ``noise="trainable"`` every noise input gets a
fresh ``randn`` map (drawn after the latent, in synthesis order), the first ``trainable_noise_layers`` (5)
are optimised on their own spheres with the latent, and ``bad_noise_layers`` (PULSE's "17", the last of
its 18 inputs; here ``[-1]``, the last one) are zero. StyleGAN3/XL have no noise inputs.

Super-resolution in the loss: ``sr_operator="pulse-bicubic"`` downsamples the renders with PULSE's own
reflect-padded Keys bicubic (``bicubic.py``) instead of the task's operator.

Returned state (``PULSE.py:170-174``): the official code yields the image of the last evaluated step
(one update before the final latent) only when the smallest L2 reached ``eps``, and nothing otherwise.
Here the run then warns and returns the lowest-loss state; ``extras['pulse']`` says which happened.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ganprior.methods.base import (
    CLASS_SEARCH_DEFAULTS,
    Method,
    Result,
    RunStart,
    add_term,
    frozen,
    optimize,
    rank_seed,
    register_method,
)
from ganprior.methods.projection import noise_inputs, noise_layers
from ganprior.models.prior import GenerativePrior

#: mapped latents per chunk of the Gaussian fit (1 M samples stream through in these)
FIT_CHUNK = 10_000
#: noise handling: the generator's own constant maps, or PULSE's fresh maps (trained, fixed or zero)
NOISE_TYPES = ("const", "trainable", "fixed", "zero")


class PulseNotConvergedWarning(UserWarning):
    """No step of the run got the L2 down to ``eps``: the official PULSE returns nothing then."""


def linear_one_cycle_drop(peak: float) -> Callable[[float], float]:
    """PULSE's default schedule: triangular cycle over 90 % of the steps, then a drop to peak/1000."""

    def lr(t: float) -> float:
        if t < 0.9:
            return peak * (9 * (1 - abs(t / 0.9 - 0.5) * 2) + 1) / 10
        return peak * (0.1 + (t - 0.9) / 0.1 * (0.001 - 0.1))

    return lr


def geocross(ws: torch.Tensor) -> torch.Tensor:
    """Mean squared geodesic distance between the layers' latents (PULSE's GEOCROSS), per sample."""
    if ws.shape[1] < 2:
        return ws.new_zeros(ws.shape[0])
    a, b = ws[:, :, None, :], ws[:, None, :, :]
    d = 2 * torch.atan2(torch.sqrt(((a - b) ** 2).sum(-1) + 1e-9), torch.sqrt(((a + b) ** 2).sum(-1) + 1e-9))
    return (ws.shape[-1] * d.square()).mean((1, 2)) / 8


def sphere_norm(latent: torch.Tensor) -> torch.Tensor:
    """Per-layer radius ``[..., num_ws, 1]`` of the spherical latent."""
    return latent.square().sum(-1, keepdim=True).add(1e-9).sqrt()


def map_norm(maps: torch.Tensor) -> torch.Tensor:
    """Radius ``[N, 1, 1, 1]`` of each ``[N, 1, H, W]`` noise map (``SphericalOptimizer.py:16``)."""
    return maps.square().sum((2, 3), keepdim=True).add(1e-9).sqrt()


def gaussianised_ws(latent: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``w = lrelu_0.2(latent·std + mean)``, row by row (one mean/std row per stacked image)."""
    return F.leaky_relu(latent * std + mean, 0.2)


@torch.no_grad()
def gaussian_fit(prior: GenerativePrior, c: torch.Tensor, n: int, seed: int,
                 chunk: int = FIT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) std ``[w_dim]`` of ``lrelu_5(mapping(z))`` over ``n`` samples, streamed in
    chunks (sums in float64), so 1 M samples need no more memory than one chunk."""
    if n < 2:
        raise ValueError(f"fit_samples must be at least 2, got {n}")
    g = torch.Generator().manual_seed(seed)
    s1 = torch.zeros(prior.w_dim, dtype=torch.float64)
    s2 = torch.zeros(prior.w_dim, dtype=torch.float64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = torch.randn(m, prior.z_dim, generator=g).to(prior.device)
        w = F.leaky_relu(prior.mapping(z, c.expand(m, -1))[:, 0].float(), 5.0).double().cpu()
        s1 += w.sum(0)
        s2 += w.square().sum(0)
    mean = s1 / n
    std = ((s2 - n * mean.square()).clamp_min(0) / (n - 1)).sqrt()
    return mean.float().to(prior.device), std.float().to(prior.device)


def reached(l2: float, eps: float) -> bool:
    """``min L2 ≤ eps`` as the official code compares it: a float32 tensor against ``eps`` (the clamped
    L2 equals float32(eps), which is above the float64 ``eps``)."""
    return bool(torch.tensor(l2, dtype=torch.float32) <= eps)


def cached_gaussian_fit(prior: GenerativePrior, c: torch.Tensor, class_index: int | None, n: int, seed: int,
                        cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gaussian_fit`, kept in the cache directory per model fingerprint, class, count and seed
    (1 M samples take 13 s on the 32² fixture and 53 s on the embedded model, one CPU thread)."""
    if not cache:
        return gaussian_fit(prior, c, n, seed)
    from safetensors.torch import load_file

    from ganprior.losses import cache_dir
    from ganprior.methods.centroids import _atomic_save, model_fingerprint

    key = f"{model_fingerprint(prior)[:32]}-c{'none' if class_index is None else class_index}-m{n}-s{seed}"
    path = cache_dir() / "pulse_fit" / f"{key}.safetensors"
    if path.exists():
        stored = load_file(str(path))
        return stored["mean"].to(prior.device), stored["std"].to(prior.device)
    mean, std = gaussian_fit(prior, c, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save({"mean": mean.cpu().contiguous(), "std": std.cpu().contiguous()}, path, {"samples": str(n)})
    return mean, std


@dataclass
class SphereStart:
    """One image's PULSE start: the seeded random latent and its Gaussianised-W fit (rows stack), and
    PULSE's noise maps (``[1, 1, R, R]`` per noise input; empty with ``noise="const"``)."""

    latent: torch.Tensor  # [1, num_ws, w_dim]
    mean: torch.Tensor  # [1, 1, w_dim]
    std: torch.Tensor  # [1, 1, w_dim]
    maps: list[torch.Tensor] = field(default_factory=list)
    trainable: list[torch.Tensor] = field(default_factory=list)


@register_method
class PULSE(Method):
    name = "pulse"
    defaults = {
        "steps": 100,
        "lr": 0.4,
        "perceptual": "mse",
        "perceptual_weight": 0.0,
        "l2_weight": 25.0,
        "geocross_weight": 0.05,
        "eps": 2e-3,  # [0, 1] units (run.py:38); 0 = no clamp and no convergence check
        "fit_samples": 10_000,
        "fit_cache": True,  # keep the fit on disk per model, class, count and seed (as PULSE keeps gaussian_fit.pt)
        "noise": "trainable",
        "trainable_noise_layers": 5,
        "bad_noise_layers": [-1],
        "sr_operator": "pulse-bicubic",  # loss.py:11 BicubicDownSample; 'degradation' = the task's operator
        **CLASS_SEARCH_DEFAULTS,
    }

    def runs_alone(self, prior: GenerativePrior) -> bool:
        """The stacked (batched) loop has neither noise maps, the eps clamp nor PULSE's return rule."""
        o = self.options
        return bool(o["eps"]) or (o["noise"] != "const" and bool(noise_layers(prior)))

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        return self.complete(prior, run, seed)

    def complete(self, prior: GenerativePrior, run: RunStart, seed: int) -> Result:
        """The spherical optimisation of a started run and PULSE's choice of the returned state."""
        o = self.options
        start = self.sphere_start(prior, run, seed)
        latent = start.latent.requires_grad_(True)
        params = [latent, *start.trainable]
        radii = [sphere_norm(latent.detach())] + [map_norm(m.detach()) for m in start.trainable]
        layers = noise_layers(prior) if start.maps else []
        clamp = 4 * o["eps"]  # eps is in [0, 1] units; the L2 here is on [-1, 1] images
        track = {"best": math.inf, "min_l2": math.inf, "best_state": None, "last_state": None}

        def ws() -> torch.Tensor:
            return gaussianised_ws(latent, start.mean, start.std)

        def step(i: int):
            w = ws()
            with noise_inputs(layers, start.maps):
                img = prior.synthesis(w, run.c)
            terms = run.loss.terms(img)
            if clamp and "l2" in terms:
                terms["l2"] = terms["l2"].clamp_min(clamp)
            cross = geocross(w)
            total = (run.loss.total(terms) + o["geocross_weight"] * cross).sum()
            logged = run.loss.logged(terms)
            add_term(logged, "geocross", o["geocross_weight"], cross)
            state = [p.detach().clone() for p in params]
            value = float(total.detach())
            if value < track["best"]:
                track["best"], track["best_state"] = value, state
            if "l2" in terms:
                track["min_l2"] = min(track["min_l2"], logged["l2"] / 4)
            track["last_state"] = state
            return total, logged, img

        @torch.no_grad()
        def back_to_sphere() -> None:  # SphericalOptimizer.step: divide by the norm, times the start radius
            for p, r in zip(params, radii):
                p.div_(sphere_norm(p) if p is latent else map_norm(p)).mul_(r)

        with torch.enable_grad(), frozen(prior, run.loss.perceptual):
            optimize("pulse", params, step, o["steps"], linear_one_cycle_drop(o["lr"]), run.recorder,
                     back_to_sphere)
        self._choose_state(params, track, run)
        render = prior
        if start.maps:
            render = copy.deepcopy(prior)
            for layer, m in zip(noise_layers(render), start.maps):
                layer.noise_const = m.detach()[0, 0].clone()
        from ganprior.methods.pti import generator_delta

        delta = generator_delta(prior, render) if render is not prior else None
        return self.finish(prior, ws().detach(), run, delta, render)

    def _choose_state(self, params: list[torch.Tensor], track: dict, run: RunStart) -> None:
        """PULSE's returned state: the last evaluated step when min L2 reached eps, else (where the
        official code returns nothing) the lowest-loss step, with a warning; with eps 0 the final state."""
        eps = self.options["eps"]
        info = {"eps": eps, "min_l2": track["min_l2"] if math.isfinite(track["min_l2"]) else None}
        if run.recorder.stopped or track["last_state"] is None:
            info["returned"] = "best-loss (run stopped early)"
        elif not eps:
            info["returned"] = "final (eps 0: no convergence rule)"
        elif reached(track["min_l2"], eps):
            info["returned"] = "last-evaluated"
            self._restore(params, track["last_state"])
        else:
            info["returned"] = "best-loss (not converged)"
            self._restore(params, track["best_state"])
            warnings.warn(f"PULSE: no step brought the L2 down to eps={eps:g} (smallest {track['min_l2']:.4g}, "
                          "[0, 1] units); the official code returns no image then, this run returns the "
                          "lowest-loss state", PulseNotConvergedWarning, stacklevel=3)
        info["converged"] = bool(eps) and reached(track["min_l2"], eps)
        run.extras["pulse"] = info

    @staticmethod
    @torch.no_grad()
    def _restore(params: list[torch.Tensor], state: list[torch.Tensor]) -> None:
        for p, s in zip(params, state):
            p.copy_(s)

    def sphere_start(self, prior: GenerativePrior, run: RunStart, seed: int) -> SphereStart:
        """The Gaussianised-W fit for the run's class, the seeded random start latent and PULSE's noise
        maps (drawn from the same generator after the latent, as ``PULSE.py:77-100`` draws them);
        ``run.rank`` k > 0 draws them from another stream (:func:`rank_seed`), the fit stays the same."""
        o = self.options
        with run.recorder.timed("gaussian-fit"):
            mean, std = cached_gaussian_fit(prior, run.c, run.class_index, o["fit_samples"], seed, o["fit_cache"])
        g = torch.Generator().manual_seed(seed if not run.rank else rank_seed(seed, run.rank))
        latent = torch.randn(1, prior.num_ws, prior.w_dim, generator=g).to(prior.device)
        maps, trainable = self.noise_maps(prior, g)
        return SphereStart(latent, mean[None, None], std[None, None], maps, trainable)

    def noise_maps(self, prior: GenerativePrior, g: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """PULSE's noise maps ``[1, 1, R, R]`` for every noise input, and the trainable ones among them."""
        o = self.options
        if o["noise"] not in NOISE_TYPES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_TYPES)}, got {o['noise']!r}")
        layers = noise_layers(prior)
        if o["noise"] == "const" or not layers:
            return [], []
        bad = {i % len(layers) for i in o["bad_noise_layers"]}
        maps, trainable = [], []
        for i, layer in enumerate(layers):
            shape = (1, 1, *layer.noise_const.shape[-2:])
            if o["noise"] == "zero" or i in bad:
                maps.append(torch.zeros(shape, device=prior.device))
                continue
            m = torch.randn(shape, generator=g).to(prior.device)
            if o["noise"] == "trainable" and i < o["trainable_noise_layers"]:
                m.requires_grad_(True)
                trainable.append(m)
            maps.append(m)
        return maps, trainable
