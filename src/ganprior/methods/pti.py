"""Pivotal tuning (PTI): fine-tune the generator so that a frozen pivot latent reproduces the
observation, while a locality regulariser keeps the generator unchanged away from the pivot.

Used as CRI's second stage and as the PTI baseline (W projection + pivotal tuning). The regulariser
follows StyleGAN-XL's ``space_regularizer_loss`` (run_inversion.py:33-68, CRI inp:41-81): one latent per
step, ``w = mapping(z, class, ψ = 0.5)`` with a random class (XL, ``reg_class="random"``) or the image's
own (CRI, ``"own"``), moved to distance α = 30 from the pivot, ``w_r = pivot + α (w − pivot)/‖w − pivot‖``,
and the tuned and original renderings of ``w_r`` compared with the perceptual distance (×10 as in XL)
plus an optional L2 (PTI repository's form). The official code feeds those renderings to a VGG that
expects [0, 255] while they are in [-1, 1] (``reg_vgg_input="raw"``, which makes the term nearly inert);
``"images"`` compares the images themselves (the paper's Eq. 8).
"""

from __future__ import annotations

import copy
import math
import warnings

import torch

from ganprior.losses import AUTO, PerceptualFallbackWarning, PerceptualUnavailableError, get_perceptual
from ganprior.methods.base import (
    CLASS_SEARCH_DEFAULTS,
    Method,
    ReconstructionLoss,
    Result,
    RunRecorder,
    RunStart,
    add_term,
    constant_lr,
    frozen,
    optimize,
    register_method,
)
from ganprior.methods.presets import from_official_l2
from ganprior.methods.projection import NO_NOISE, optimize_ws, projector_noise, w_stats
from ganprior.models.prior import GenerativePrior


#: most output pixels the pivot and the locality latent render in one forward pass; above it (256² and
#: up) each gets its own forward and backward, which halves the activation peak for the same (summed)
#: gradient: StyleGAN-XL-512's pair went over 19 GB, where one rendering peaks at 9.5 GB
JOINT_RENDER_PIXELS = 2 * 128**2


class LocalityRegularizer:
    """Where the locality term ``perceptual_weight·P(x_r, x_r*) + l2_weight·MSE(x_r, x_r*)`` is taken: a latent
    α away from the pivot, one per step.

    Split in two so that the tuned generator renders ``w_r`` in the same call as the pivot (one batch of
    two, which the batched tuning in ``batched_tuning.py`` runs per image as well): :meth:`anchor`
    draws ``w_r`` and :func:`locality_distance` compares the two renderings of it.
    """

    def __init__(self, original: GenerativePrior, pivot: torch.Tensor, alpha: float = 30.0, seed: int = 0,
                 c: torch.Tensor | None = None) -> None:
        self.original, self.pivot, self.alpha, self.c = original, pivot, alpha, c
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``z`` ``[1, z_dim]`` and class row ``[1, c_dim]``: the class given at construction
        (the image's own), else a random one."""
        g, prior = self.generator, self.original
        z = torch.randn(1, prior.z_dim, generator=g).to(prior.device)
        if self.c is not None:
            return z, self.c
        cls = int(torch.randint(prior.c_dim, (1,), generator=g)) if prior.c_dim else None
        return z, prior.class_matrix(cls, 1)

    @torch.no_grad()
    def anchor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's ``w_r`` ``[1, num_ws, w_dim]`` and its class row ``[1, c_dim]``."""
        z, c = self.draw()
        w = self.original.mapping(z, c, truncation_psi=0.5)
        direction = w - self.pivot
        return self.pivot + self.alpha * direction / torch.linalg.vector_norm(direction).clamp_min(1e-8), c


#: what the locality term's perceptual network sees: the renderings as the official code passes them
#: (``raw``: [-1, 1] values where [0, 255] are expected) or the images themselves
REG_VGG_INPUTS = ("raw", "images")
REG_CLASSES = ("own", "random")


def raw_vgg_view(img: torch.Tensor) -> torch.Tensor:
    """The image whose [0, 255] rendering is ``img``'s [-1, 1] values: what the official regulariser's VGG sees."""
    return img / 127.5 - 1.0


def locality_distance(perceptual, new: torch.Tensor, old: torch.Tensor, perceptual_weight: float,
                      l2_weight: float, vgg_input: str = "images") -> torch.Tensor:
    """Per-sample ``[N]`` regulariser between the tuned (``new``) and original (``old``) renderings."""
    if vgg_input not in REG_VGG_INPUTS:
        raise ValueError(f"reg_vgg_input must be one of {', '.join(REG_VGG_INPUTS)}, got {vgg_input!r}")
    reg = new.new_zeros(new.shape[0])
    if perceptual_weight:
        view = raw_vgg_view if vgg_input == "raw" else (lambda x: x)
        reg = reg + perceptual_weight * perceptual(view(new), view(old))
    if l2_weight:
        reg = reg + l2_weight * (new - old).square().flatten(1).mean(1)
    return reg


def generator_delta(original: GenerativePrior, tuned: GenerativePrior) -> dict[str, torch.Tensor]:
    """``tuned − original`` for every state-dict tensor that changed (floating point only)."""
    before = original.state_dict()
    delta = {}
    for name, after in tuned.state_dict().items():
        ref = before[name]
        if after.is_floating_point() and not torch.equal(after, ref):
            delta[name] = (after - ref).detach().cpu().contiguous()
    return delta


def pivotal_tuning(
    prior: GenerativePrior,
    pivot: torch.Tensor,
    c: torch.Tensor,
    loss: ReconstructionLoss,
    recorder: RunRecorder,
    steps: int,
    lr: float = 3e-4,
    reg_weight: float = 1.0,
    reg_alpha: float = 30.0,
    reg_perceptual_weight: float = 10.0,
    reg_l2_weight: float = 0.0,
    seed: int = 0,
    stage: str = "pivotal-tuning",
    stop_below: float | None = None,
    reg_vgg_input: str = "images",
    reg_class: str = "random",
) -> GenerativePrior:
    """Tune a copy of ``prior`` at the frozen ``pivot``; the original is left untouched (and returned
    as is when there is nothing to tune)."""
    if steps <= 0 or recorder.stopped:
        return prior
    tuned = copy.deepcopy(prior).requires_grad_(False)
    params = tuned.synthesis_parameters()
    for p in params:
        p.requires_grad_(True)
    regularizer = make_regularizer(prior, pivot, c, reg_weight, reg_alpha, seed, reg_class)
    one_pass = 2 * int(prior.resolution) ** 2 <= JOINT_RENDER_PIXELS

    def step(i: int):
        reg = None
        if regularizer is None:
            img = tuned.synthesis(pivot, c)
        else:
            w_r, c_r = regularizer.anchor()
            with torch.no_grad():
                old = prior.synthesis(w_r, c_r)
            if one_pass:
                img, new = tuned.synthesis(torch.cat([pivot, w_r]), torch.cat([c, c_r])).split(1)
                reg = locality_distance(loss.perceptual, new, old, reg_perceptual_weight, reg_l2_weight,
                                        reg_vgg_input).sum()
            else:  # the locality term's backward first (optimize zeroed the grads), its graph freed
                new = tuned.synthesis(w_r, c_r)
                reg = locality_distance(loss.perceptual, new, old, reg_perceptual_weight, reg_l2_weight,
                                        reg_vgg_input).sum()
                (reg_weight * reg).backward()
                reg = reg.detach()
                img = tuned.synthesis(pivot, c)
        terms = loss.terms(img)
        total = loss.total(terms).sum()
        logged = loss.logged(terms)
        if reg is not None:
            total = total + reg_weight * reg
            add_term(logged, "locality", reg_weight, reg)
        return total, logged, img

    with torch.enable_grad(), frozen(prior, loss.perceptual):  # the original and the loss net stay fixed
        optimize(stage, params, step, steps, constant_lr(lr), recorder,
                 stop=None if stop_below is None else lambda terms: terms.get("perceptual", math.inf) <= stop_below)
    tuned.requires_grad_(False)
    return tuned


def make_regularizer(prior: GenerativePrior, pivot: torch.Tensor, c: torch.Tensor, reg_weight: float,
                     reg_alpha: float, seed: int, reg_class: str) -> LocalityRegularizer | None:
    """The locality regulariser of one image (``None`` when its weight is 0); ``reg_class`` says whether
    its latents take the image's class ``c`` (CRI, inp:61) or a random one (XL, run_inversion.py:48)."""
    if reg_class not in REG_CLASSES:
        raise ValueError(f"reg_class must be one of {', '.join(REG_CLASSES)}, got {reg_class!r}")
    if not reg_weight:
        return None
    own = c if reg_class == "own" and prior.c_dim else None
    return LocalityRegularizer(prior, pivot, reg_alpha, seed, own)


@register_method
class PTI(Method):
    """PTI baseline: W projection to a pivot (class-weighted w_avg start), then pivotal tuning."""

    name = "pti"
    defaults = {
        "projection_steps": 1000,
        "projection_lr": 0.1,
        "projection_space": "w",  # 'w' (PTI) or 'wplus'
        **NO_NOISE,  # the PTI repository's projector: SG2-ADA's noise handling (w_projector.py:58-137)
        "w_noise_ramp": 0.75,
        "tuning_perceptual": "",  # '' = the projection's; the PTI repository tunes with lpips-alex
        "tuning_stop_perceptual": 0.0,  # stop tuning once the perceptual term is <= this (PTI repo: 0.06)
        "tuning_steps": 350,
        "tuning_lr": 3e-4,
        "perceptual": AUTO,  # the model's own feature net, else nvidia-vgg16, else its D
        "perceptual_weight": 1.0,
        "l2_weight": 1.0,  # the projection's MSE weight ([-1, 1] images)
        "tuning_l2_weight": from_official_l2(1.0),  # tuning's MSE: run_inversion.py:121-128 (weight 1, [0, 255])
        "reg_weight": 1.0,
        "reg_alpha": 30.0,
        "reg_perceptual_weight": 10.0,
        "reg_l2_weight": 0.0,
        "reg_vgg_input": "raw",  # run_inversion.py:55-65
        "reg_class": "random",  # run_inversion.py:48
        "l2_average": "image",
        "l2_max_size": 256,
        "w_avg_samples": 10_000,
        **CLASS_SEARCH_DEFAULTS,
    }

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        run = self.start(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                         callback)
        return self.complete(prior, run, seed)

    def complete(self, prior: GenerativePrior, run: RunStart, seed: int) -> Result:
        """Projection to the pivot, pivotal tuning on a generator copy, and the result of a started run."""
        o = self.options
        recorder, loss, c = run.recorder, run.loss, run.c
        init = self.pivot_start(prior, run, seed)
        noise = projector_noise(o, prior, run.extras["w_std"], seed)
        pivot = optimize_ws(prior, c, loss, init, o["projection_steps"], o["projection_lr"], recorder, "projection",
                            noise=noise)
        loss = self.tuning_distance(prior, loss, run)
        tuning_loss = loss.with_weights(o["perceptual_weight"], o["tuning_l2_weight"])
        stop = {"tuning_stop_perceptual": run.extras.get("tuning_stop_perceptual", o["tuning_stop_perceptual"])}
        tuned = pivotal_tuning(prior, pivot, c, tuning_loss, recorder, **tuning_options({**o, **stop}), seed=seed)
        return self.finish(prior, pivot, run, generator_delta(prior, tuned), tuned)

    def runs_alone(self, prior: GenerativePrior) -> bool:
        """The PTI repository's recipe (noise maps, its own tuning network, early stop) is per image."""
        o = self.options
        return (projector_noise(o, prior, 1.0, 0) is not None or bool(o["tuning_perceptual"])
                or bool(o["tuning_stop_perceptual"]))

    def tuning_distance(self, prior: GenerativePrior, loss: ReconstructionLoss, run: RunStart) -> ReconstructionLoss:
        """``loss`` with the tuning stage's perceptual network (``tuning_perceptual``; the PTI repository
        tunes with the lpips package's AlexNet, base_coach.py:36). Offline without its weights the
        projection's network stays, with a warning, and the early stop (a threshold on that LPIPS) is off;
        ``extras['tuning_perceptual']`` says which ran."""
        name = self.options["tuning_perceptual"]
        if not name:
            run.extras["tuning_perceptual"] = loss.perceptual.name
            return loss
        try:
            net = get_perceptual(name, prior)
        except PerceptualUnavailableError as exc:
            stop = self.options["tuning_stop_perceptual"]
            warnings.warn(f"tuning_perceptual {name!r} is unavailable ({exc}); tuning with "
                          f"{loss.perceptual.name!r} instead" + (f", without the early stop at {name} <= {stop:g}"
                                                                 if stop else ""),
                          PerceptualFallbackWarning, stacklevel=3)
            run.extras["tuning_perceptual"] = loss.perceptual.name
            run.extras["tuning_stop_perceptual"] = 0.0
            return loss
        tuned = loss.with_weights(loss.perceptual_weight, loss.l2_weight)
        tuned.perceptual = net
        run.extras["tuning_perceptual"] = net.name
        return tuned

    def pivot_start(self, prior: GenerativePrior, run: RunStart, seed: int) -> torch.Tensor:
        """The projection's start, the class-weighted ``w_avg``: ``[1, 1, w_dim]`` (W) or ``[1, num_ws, w_dim]`` (W+);
        ``run.rank`` k > 0: the k-th mapped sample instead."""
        o = self.options
        if o["projection_space"] not in ("w", "wplus"):
            raise ValueError(f"projection_space must be 'w' or 'wplus', got {o['projection_space']!r}")
        with run.recorder.timed("start"):
            start, run.extras["w_std"] = w_stats(prior, run.c, o["w_avg_samples"], seed, run.rank)
        return start.expand(-1, prior.num_ws, -1).clone() if o["projection_space"] == "wplus" else start


def tuning_options(options: dict) -> dict:
    """:func:`pivotal_tuning`'s keyword arguments from a method's options (PTI's and CRI's names)."""
    return dict(steps=options["tuning_steps"], lr=options["tuning_lr"], reg_weight=options["reg_weight"],
                **({"stop_below": options["tuning_stop_perceptual"]} if options.get("tuning_stop_perceptual") else {}),
                reg_alpha=options["reg_alpha"], reg_perceptual_weight=options["reg_perceptual_weight"],
                reg_l2_weight=options["reg_l2_weight"], reg_vgg_input=options["reg_vgg_input"],
                reg_class=options["reg_class"])
