"""DGP, Deep Generative Prior (Pan et al., ECCV 2020 / TPAMI): discriminator-guided progressive
reconstruction.

1. Start: the best of ``select_num`` random latents (z ~ N(0, select_std²), the class sampled with it
   when none is given) under the discriminator-feature distance to the observation, scored in chunks
   (for several images at once, each with its own draws and best: :func:`select_latents`).
2. Progressive fine-tuning: stages that tune the latent and the leading ``tuned_groups`` generator
   groups (``prior.blocks()``, shallow to deep), each stage with its own iterations, loss weights and
   learning rates (``dgp_presets.py``: the paper's tables 6-11 or the official scripts' values).
   Generator BN keeps its stored statistics (eval mode); BigGAN's BN->IN swap is a per-stage switch.
3. Loss on degraded images: ``d_weight·Σ_i mean|D_i(A(G(z))) − D_i(y)|`` over the last ``d_features``
   discriminator features (Eq. 3) ``+ mse_weight·MSE(A(G(z)), y) + latent_weight·mean((w − w_avg)²)/2``.

The same code runs on any prior with ordered ``blocks()`` and a discriminator (BigGAN, StyleGAN2); for
BigGAN the latent is z, for StyleGAN it is W+ started from the mapped candidate. Every choice where
the paper and the official code disagree is recorded in ``docs/dgp_decisions.md`` (numbers below refer
to it).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ganprior.classify.choice import ClassCandidates
from ganprior.degradations import SuperResolution
from ganprior.methods.base import Method, Result, RunRecorder, StepCallback, add_term, frozen, register_method
from ganprior.methods.centroids import render_chunk
from ganprior.methods.dgp_presets import STAGE_OPTIONS, ScheduleError, Stage, resolve_schedule
from ganprior.methods.pti import generator_delta
from ganprior.models.prior import GenerativePrior
from ganprior.losses import AUTO, PerceptualDistance, PerceptualUnavailableError, get_perceptual
from ganprior.losses.perceptual import discriminator_features

#: DGP's Adam (decision 20): no first moment, eps 1e-8
ADAM_BETAS = (0.0, 0.999)
ADAM_EPS = 1e-8


#: Adam states carried from one image to the next, by the ``adam_carry`` option's key (see :class:`DGP`)
ADAM_CARRY: dict[str, dict] = {}


class DGPError(ValueError):
    """DGP cannot run with this model or these options (no discriminator, IN on a non-BigGAN, ...)."""


# ----- loss ----------------------------------------------------------------------------------------
#: where the MSE is measured: ``generator`` = after bilinear upsampling to the generator's resolution, as
#: DGP's ``pre_process`` does before ``self.mse`` (models/dgp.py:241-258, 153); ``observation`` = the
#: observation's own (low) resolution
MSE_AT = ("generator", "observation")


class DGPLoss:
    """Discriminator-feature L1 (Eq. 3) and MSE between the degraded generator output and the observation.

    Both images go through the same operator ``degradation`` (decision 7) and are multiplied by ``weight``
    (0 = padding / never observed, e.g. inpainting holes, as DGP's mask zeroes both). The discriminator
    sees them at the generator resolution: smaller observations (SR) are bilinearly upsampled first, as
    DGP compares images. The MSE is measured where ``mse_at`` says (official: at the generator resolution)
    and is a mean over every pixel, holes included (``torch.nn.MSELoss``, models/dgp.py:153), unless
    ``observed_area`` divides it by the observed fraction (the project's old choice, decision 9).
    """

    def __init__(self, prior: GenerativePrior, degradation: nn.Module, observation: torch.Tensor,
                 weight: torch.Tensor | None = None, stand_in: PerceptualDistance | None = None,
                 mse_at: str = "generator", observed_area: bool = False) -> None:
        """``stand_in``: for a model without a discriminator (StyleGAN-XL), the perceptual distance that
        takes the place of the feature term (``d_features`` then holds that distance)."""
        if mse_at not in MSE_AT:
            raise DGPError(f"mse_at must be one of {', '.join(MSE_AT)}, got {mse_at!r}")
        self.prior, self.degradation, self.weight, self.stand_in = prior, degradation, weight, stand_in
        self.mse_at = mse_at
        self.target = self._masked(observation)
        self._area = 1.0 if weight is None or not observed_area else float(weight.mean().clamp_min(1e-8))
        self.target_features = []
        if stand_in is None:
            with torch.no_grad():
                self.target_features = [f.detach() for f in discriminator_features(prior, self._d_input(self.target))]

    def _masked(self, img: torch.Tensor) -> torch.Tensor:
        img = img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img
        return img if self.weight is None else img * self.weight

    def _d_input(self, img: torch.Tensor) -> torch.Tensor:
        size = (self.prior.resolution, self.prior.resolution)
        if tuple(img.shape[-2:]) != size:
            img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
        return img

    def terms(self, img: torch.Tensor, d_features: int | None = None, with_d: bool = True,
              observation_path: bool = False) -> dict[str, torch.Tensor]:
        """Per-sample ``{'d_features': [N], 'mse': [N]}`` for generator images ``img`` ``[N, 3, R, R]``.

        ``observation_path``: degrade ``img`` the way the observation was made (DGP's ``select_z`` calls
        ``pre_process(x)`` with ``target=True``, models/dgp.py:229, i.e. the PIL Lanczos path for SR) instead
        of the differentiable operator; for scoring candidates only."""
        degraded = self._masked(observe(self.degradation, img) if observation_path else self.degradation(img))
        if self.mse_at == "generator" and tuple(degraded.shape[-2:]) != tuple(img.shape[-2:]):
            diff = self._d_input(degraded) - self._d_input(self.target)
        else:
            diff = degraded - self.target
        out = {"mse": diff.square().flatten(1).mean(1) / self._area}
        if with_d and self.stand_in is not None:
            real = self._d_input(self.target).expand(img.shape[0], -1, -1, -1)
            out["d_features"] = self.stand_in(self._d_input(degraded), real)
        elif with_d:
            fake = discriminator_features(self.prior, self._d_input(degraded))
            k = len(fake) if d_features is None else min(int(d_features), len(fake))
            out["d_features"] = sum((f - t).abs().flatten(1).mean(1)
                                    for f, t in zip(fake[-k:], self.target_features[-k:]))
        return out


def observe(degradation: nn.Module, img: torch.Tensor) -> torch.Tensor:
    """``img`` through ``degradation`` with DGP's non-differentiable observation path where an operator has
    one (``SuperResolution('dgp-lanczos2').degrade``: uint8, PIL Lanczos-3), the operator itself elsewhere
    (never a random draw: noise and JPEG operators are applied as their deterministic model)."""
    ops = getattr(degradation, "ops", [degradation])
    for op in ops:
        img = op.degrade(img) if isinstance(op, SuperResolution) and op.kernel == "dgp-lanczos2" else op(img)
    return img


# ----- 1. latent (and class) selection --------------------------------------------------------------
@dataclass
class Selection:
    latent: torch.Tensor  # [1, num_ws, w_dim]
    class_index: int | None
    score: float
    class_sampled: bool
    candidate: int = 0  # which of the draws won


@torch.no_grad()
def select_latent(prior: GenerativePrior, loss: DGPLoss, class_index: int | ClassCandidates | None, n: int,
                  std: float, d_features: int | None = 3, chunk: int = 8, seed: int = 0,
                  observation_path: bool = True) -> Selection:
    """Best of ``n`` candidates ``mapping(std·ε, c)`` under the feature distance (last ``d_features``).

    All draws come from one CPU generator seeded with ``seed`` (z first, then the classes), so the
    result does not depend on ``chunk`` or the device. ``n = 0`` starts at the mean latent. Without a
    class, candidates' classes are uniform over all classes; with :class:`ClassCandidates` (a
    classifier's top-K) they are drawn from its weights. ``observation_path``: candidates are degraded as
    the observation was (DGP's ``select_z``), not by the loss operator.
    """
    return select_latents(prior, [loss], [class_index], n, std, d_features, chunk, [seed], observation_path)[0]


@torch.no_grad()
def select_latents(prior: GenerativePrior, losses: Sequence[DGPLoss],
                   class_indices: Sequence[int | ClassCandidates | None], n: int, std: float,
                   d_features: int | None = 3, chunk: int = 8, seeds: Sequence[int] = (0,),
                   observation_path: bool = True, progress: bool = False,
                   ranks: Sequence[int] | None = None) -> list[Selection]:
    """:func:`select_latent` for several images at once: each draws its own candidates (its own seed and
    class), the candidates of all images are rendered together, ``chunk`` per image at a time within the
    pixel budget (:func:`~ganprior.methods.centroids.render_chunk`), and each image scores its own
    with its own loss and picks its own best (``ranks[k]`` > 0: its (rank+1)-th best, for
    ``ganprior.samples``)."""
    conditional = prior.c_dim > 0
    draws = [_candidates(prior, cls, n, std, seed) for cls, seed in zip(class_indices, seeds, strict=True)]
    z, classes = torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws])
    per_image = len(draws[0][0])
    scores: list[list[torch.Tensor]] = [[] for _ in draws]
    step = render_chunk(chunk * len(draws), prior.resolution)
    bar = tqdm(total=len(z), desc="dgp selection", unit="candidate", disable=not progress, leave=False)
    for start in range(0, len(z), step):
        zz, cls = z[start:start + step].to(prior.device), classes[start:start + step]
        c = prior.class_matrix(cls, len(zz)) if conditional else torch.zeros(len(zz), 0, device=prior.device)
        img = prior.synthesis(prior.mapping(zz, c), c)
        for k in range(start // per_image, (start + len(zz) - 1) // per_image + 1):  # the images in this chunk
            rows = slice(max(k * per_image - start, 0), min((k + 1) * per_image - start, len(zz)))
            scores[k].append(losses[k].terms(img[rows], d_features, observation_path=observation_path)
                             ["d_features"].float().cpu())
        bar.update(len(zz))
    bar.close()
    selections = []
    for (zk, classes_k, sampled), scores_k, rank in zip(draws, scores, ranks or [0] * len(draws), strict=True):
        scores_t = torch.cat(scores_k)
        best = int(scores_t.argsort()[rank % len(scores_t)]) if rank else int(scores_t.argmin())
        cls = int(classes_k[best]) if conditional else None
        c = prior.class_matrix(cls, 1) if conditional else torch.zeros(1, 0, device=prior.device)
        latent = prior.mapping(zk[best:best + 1].to(prior.device), c)
        selections.append(Selection(latent.detach(), cls, float(scores_t[best]), sampled, best))
    return selections


def _candidates(prior: GenerativePrior, class_index: int | ClassCandidates | None, n: int,
                std: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One image's draws ``(z [max(n, 1), z_dim], classes, class sampled?)`` from its seeded generator."""
    conditional = prior.c_dim > 0
    candidates = class_index if isinstance(class_index, ClassCandidates) else None
    sample_class = conditional and (class_index is None or candidates is not None)
    g = torch.Generator().manual_seed(seed)
    z = std * torch.randn(max(n, 1), prior.z_dim, generator=g) if n > 0 else torch.zeros(1, prior.z_dim)
    if candidates is not None:
        classes = candidates.draw(len(z), g)
    elif sample_class:
        classes = torch.randint(prior.c_dim, (len(z),), generator=g)
    else:
        classes = torch.full((len(z),), 0 if class_index is None else int(class_index))
    return z, classes, sample_class


def _class_source(prior: GenerativePrior, class_index: int | ClassCandidates | None, sampled: bool) -> str | None:
    if not prior.c_dim:
        return None
    if isinstance(class_index, ClassCandidates):
        return f"{class_index.source}+dgp-selection"
    return "dgp-selection" if sampled else "given"


# ----- 2. progressive fine-tuning --------------------------------------------------------------------
def parameter_groups(prior: GenerativePrior, update_embed: bool = False) -> list[list[nn.Parameter]]:
    """Trainable parameters of each ``prior.blocks()`` group (BigGAN adds its class embedding to group 0)."""
    if hasattr(prior, "parameter_groups"):
        groups = prior.parameter_groups(update_embed)
    elif update_embed:
        raise DGPError(f"update_embed (tuning the class embedding) needs a BigGAN prior, not {prior.family}")
    else:
        groups = [list(block.parameters()) for block in prior.blocks()]
    return [[p for p in group if p.requires_grad] for group in groups]


def tunable_copy(prior: GenerativePrior, frozen: bool = False) -> GenerativePrior:
    """A copy whose generator can be tuned; the discriminator (never tuned) is shared, not copied.

    ``frozen``: no generator parameter requires a gradient (the shared D's flags are left alone).
    """
    d = getattr(prior, "D", None)
    tuned = copy.deepcopy(prior, {id(d): d} if d is not None else {})
    if frozen:
        freeze_generator(tuned)
    elif not hasattr(tuned, "parameter_groups"):  # BigGAN keeps its IN affine values out on purpose
        for block in tuned.blocks():
            block.requires_grad_(True)  # StyleGAN3/XL load with frozen weights; the copy is what gets tuned
    return tuned


def freeze_generator(prior: GenerativePrior) -> None:
    """``requires_grad = False`` on every parameter except the discriminator's."""
    d = getattr(prior, "D", None)
    shared = {id(p) for p in d.parameters()} if isinstance(d, nn.Module) else set()
    for p in prior.parameters():
        if id(p) not in shared:
            p.requires_grad_(False)


def set_instance_norm(prior: GenerativePrior, enabled: bool, initialized: bool = False) -> None:
    """Switch BigGAN's BN->IN swap; ``initialized`` marks IN affine values already set (from a delta)."""
    if not hasattr(prior, "use_instance_norm"):
        if enabled:
            raise DGPError(f"the BN->IN swap is a BigGAN feature; {prior.family} has no batch norm to swap")
        return
    prior.use_instance_norm(enabled)
    if initialized:
        for group in prior.G.blocks:  # the flag DGP's lazy IN initialisation checks
            group[0].in_initialized = True


@dataclass
class _Outcome:
    latent: torch.Tensor
    early_stop: dict[str, Any] | None
    adam_state: dict | None = None
    last_image: torch.Tensor | None = None  # the last forward pass (None when stopped on a kept best state)


def fine_tune(tuned: GenerativePrior, latent: torch.Tensor, c: torch.Tensor, loss: DGPLoss, stages: list[Stage],
              recorder: RunRecorder, latent_weight: float, update_embed: bool = False,
              frozen_adam_state: bool = True, early_stop_mse: float = 0.0,
              groups: list[list[nn.Parameter]] | None = None, early_stop_ends: str = "stage",
              adam_state: dict | None = None) -> _Outcome:
    """Run the stages on ``tuned`` (modified in place) from ``latent``; returns the final latent.

    One Adam for the whole image (fresh per image, decision 1) with one param group per generator group;
    groups outside a stage get lr 0. With ``frozen_adam_state`` they still receive gradients, so Adam's
    second moments accumulate as in the official code (decision 2); otherwise they get no gradient.
    Either way their values stay bit-identical. A non-finite loss stops the run and restores the best
    state of the current stage, as does a stop asked by the recorder's step callback. The MSE early stop
    (``[-1, 1]`` scale, checked on the step's pre-update MSE) ends the current stage after that step's
    update, as DGP's ``break`` does (models/dgp.py:211-214), or the whole run (``early_stop_ends='run'``,
    no update). The outcome keeps the image of the last forward pass, which is what DGP saves
    (models/dgp.py:218-220), one update before the final parameters (which DGP's manipulations and
    ``save_G`` use, dgp.py:224-228, 383-391, example.py:61-66). ``adam_state``: an optimiser state from an earlier image's
    :attr:`_Outcome.adam_state` (DGP's dataset driver keeps one Adam for the whole list, trainer.py:94-99).
    ``groups`` defaults to :func:`parameter_groups` of ``tuned``, read before anything is frozen.
    """
    if early_stop_ends not in ("stage", "run"):
        raise DGPError(f"early_stop_ends must be 'stage' or 'run', got {early_stop_ends!r}")
    if groups is None:
        groups = parameter_groups(tuned, update_embed)  # before freezing: keeps the IN affine params out
    freeze_generator(tuned)
    latent = latent.detach().clone().requires_grad_(True)
    w_avg = tuned.w_avg(c)[:, None, :].to(latent)
    optimizer = torch.optim.Adam([{"params": [latent], "depth": None}]
                                 + [{"params": g, "depth": i} for i, g in enumerate(groups) if g],
                                 lr=0.0, betas=ADAM_BETAS, eps=ADAM_EPS)
    if adam_state is not None:
        optimizer.load_state_dict(adam_state)  # restores the moments; every lr is set per stage below
    total = sum(s.iterations for s in stages)
    bar = tqdm(total=total, desc="dgp", disable=not recorder.progress, leave=False)
    step_no, early, last_image = 0, None, None
    if hasattr(tuned, "reset_instance_norm"):
        tuned.reset_instance_norm()
    for s, stage in enumerate(stages):
        n_tuned = len(groups) if stage.tuned_groups is None else min(int(stage.tuned_groups), len(groups))
        live = [latent]
        optimizer.param_groups[0]["lr"] = stage.z_lr
        for i, group in enumerate(groups):
            trained = i < n_tuned
            for p in group:
                p.requires_grad_(trained or frozen_adam_state)
            if trained:
                live += group
        for pg in optimizer.param_groups[1:]:
            depth = pg["depth"]
            pg["lr"] = stage.g_lr * stage.lr_ratio**depth if depth < n_tuned else 0.0
        set_instance_norm(tuned, stage.instance_norm)
        best_loss, best = math.inf, [p.detach().clone() for p in live]
        with recorder.timed(f"stage{s + 1}"):
            for i in range(stage.iterations):
                img = tuned.synthesis(latent, c)
                terms = loss.terms(img, stage.d_features, with_d=stage.d_weight != 0)
                prior_term = (latent - w_avg).square().mean() / 2
                total_loss = stage.mse_weight * terms["mse"].sum() + latent_weight * prior_term
                if "d_features" in terms:
                    total_loss = total_loss + stage.d_weight * terms["d_features"].sum()
                value = float(total_loss.detach())
                if not math.isfinite(value):
                    with torch.no_grad():
                        torch._foreach_copy_(live, best)
                    recorder.stopped = (f"non-finite loss ({value}) at stage {s + 1} step {i}: stopped and kept "
                                        f"the best state of that stage (loss {best_loss:.6g})")
                    bar.close()
                    return _Outcome(latent.detach(), early)
                if value < best_loss:
                    best_loss = value
                    with torch.no_grad():
                        torch._foreach_copy_(best, [p.detach() for p in live])
                logged: dict[str, Any] = {}
                add_term(logged, "mse", stage.mse_weight, terms["mse"])
                if "d_features" in terms:
                    add_term(logged, "d_features", stage.d_weight, terms["d_features"])
                add_term(logged, "latent_prior", latent_weight, prior_term)
                recorder.losses.append({"stage": f"stage{s + 1}", "step": i, "loss": value, **logged})
                if recorder.frame_every and step_no % recorder.frame_every == 0:
                    recorder.frames.append(img.detach()[:1].cpu())
                if not recorder.report(f"stage{s + 1}", i, value, img):
                    with torch.no_grad():
                        torch._foreach_copy_(live, best)
                    bar.close()
                    return _Outcome(latent.detach(), early)
                stop = early_stop_mse > 0 and logged["mse"] < early_stop_mse
                if stop:
                    early = early or {"stage": s + 1, "step": i, "mse": logged["mse"], "threshold": early_stop_mse,
                                      "ends": early_stop_ends, "stages": []}
                    early["stages"].append(s + 1)
                last_image = img.detach()
                if not (stop and early_stop_ends == "run"):  # ending the run: checked before the update, none made
                    optimizer.zero_grad(set_to_none=True)
                    total_loss.backward()
                    optimizer.step()
                step_no += 1
                bar.update(1)
                bar.set_postfix(stage=s + 1, loss=f"{value:.4g}")
                if stop:
                    break
        if early is not None and early_stop_ends == "run":
            break
    bar.close()
    return _Outcome(latent.detach(), early, optimizer.state_dict(), last_image)


def _fit_to_family(prior: GenerativePrior, schedule: str, stages: list[Stage],
                   settings: dict[str, Any]) -> tuple[list[Stage], dict[str, Any], list[str]]:
    """Drop the BigGAN-only parts of a schedule (BN->IN swap, class-embedding tuning) on other families,
    with a note for run.json, so every schedule runs on StyleGAN2/3/XL priors."""
    notes = []
    if any(st.instance_norm for st in stages) and not hasattr(prior, "use_instance_norm"):
        stages = [replace(st, instance_norm=False) for st in stages]
        notes.append(f"schedule {schedule!r} swaps batch norm for instance norm; this {prior.family} model has "
                     "no batch norm, so the swap was skipped")
    if settings["update_embed"] and not hasattr(prior, "parameter_groups"):
        settings = {**settings, "update_embed": False}
        notes.append(f"schedule {schedule!r} tunes BigGAN's class embedding; this {prior.family} model has none, "
                     "so only the latent and the generator blocks are tuned")
    return stages, settings, notes


# ----- the method ----------------------------------------------------------------------------------------
@register_method
class DGP(Method):
    """Deep Generative Prior. Options left at ``None`` come from the (``table``, ``schedule``) preset."""

    name = "dgp"
    defaults: dict[str, Any] = {
        "table": "official",  # official (= code) | paper | fast  (set by --preset)
        "schedule": "reconstruct",  # set from the task; colorize | inpaint | sr-mse | sr-d | hybrid | ...
        **{name: None for name in STAGE_OPTIONS},  # per-stage lists overriding the schedule
        "max_stage_steps": 100_000,  # caps every stage's iterations (the CLI's --steps); see __init__
        "select_num": None,
        "select_steps": 100_000,  # caps select_num (the CLI's --steps caps it like every stage); see __init__
        "select_std": None,
        "select_features": 3,  # last k D features for the selection (the code's choice, decision 6)
        "select_chunk": 8,
        "latent_weight": None,
        "update_embed": None,
        # How the objective is computed; the defaults are the official code's (models/dgp.py, decisions 2, 6, 7, 9, 10)
        "frozen_adam_state": True,  # frozen groups stay in Adam with lr 0 and get gradients (dgp.py:43-49)
        "mse_at": "generator",  # SR: MSE after bilinear upsampling to the generator size | "observation"
        "mse_observed_area": False,  # True: divide the MSE by the observed fraction (inpainting x1.12)
        "select_observation_path": True,  # candidates degraded as the observation was (PIL Lanczos for SR)
        "early_stop_ends": "stage",  # an MSE early stop ends the current stage (DGP's break) | "run"
        # "last-forward": the image of the last forward pass, as DGP saves it (models/dgp.py:218-220); the latent and
        # generator delta are the final parameters, one update later, as DGP's z/G (its manipulations use them).
        # "final": render the final parameters, so latent + delta reproduce the image exactly
        "returned_image": "last-forward",
        "early_stop_mse": 0.0,  # > 0 with the reconstruct schedule = adversarial-defence mode
        # a key: start from (and leave) the Adam state stored under it in ADAM_CARRY, as DGP's dataset driver
        # keeps one Adam for a whole image list (trainer.py:94-99, models/dgp.py:43-49, 94-100). Off (None) by
        # default: a result would depend on which images ran before it, in which order (decision 1)
        "adam_carry": None,
        "perceptual": None,  # only for models without a discriminator (XL): the distance in its place; None = auto
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Report the effective cap (the longest stage), so generic "*_steps" bookkeeping (the API's
        # video-frame spacing) sees a real number of steps.
        self.options["max_stage_steps"] = max((st.iterations for st in self.plan()[1]), default=0)
        self.options["select_steps"] = int(self.plan()[2]["select_num"])  # the effective number, as above

    def plan(self) -> tuple[str, list[Stage], dict[str, Any]]:
        """``(schedule name, stages, settings)`` after applying every option to the preset's table."""
        o = self.options
        schedule = o["schedule"]
        if schedule == "reconstruct" and o["early_stop_mse"] > 0:
            schedule = "defence"  # Table 10: MSE-only reconstruction stopped at the threshold
        try:
            base = resolve_schedule(o["table"], schedule)
        except ScheduleError as exc:
            raise DGPError(str(exc)) from None
        stages: list[Stage] = base["stages"]
        given = {name: o[name] for name in STAGE_OPTIONS if o[name] is not None}
        n = len(given.get("stage_iterations", stages))
        for name, values in given.items():
            if not isinstance(values, (list, tuple)) or len(values) != n:
                raise DGPError(f"{name} must be a list with one value per stage ({n} stages), got {values!r}")
        if n != len(stages):
            missing = sorted(set(STAGE_OPTIONS) - set(given))
            if missing:
                raise DGPError(f"{n} stages given but schedule {schedule!r} has {len(stages)}: "
                               f"also give {', '.join(missing)}")
            stages = [Stage(**{field: 0 for field in STAGE_OPTIONS.values()})] * n
        stages = [replace(st, **{STAGE_OPTIONS[k]: v[i] for k, v in given.items()}) for i, st in enumerate(stages)]
        if o["max_stage_steps"] is not None:
            stages = [replace(st, iterations=min(st.iterations, int(o["max_stage_steps"]))) for st in stages]
        for st in stages:
            if st.iterations < 0 or (st.tuned_groups is not None and st.tuned_groups < 0):
                raise DGPError(f"stage iterations and tuned groups must be >= 0, got {st}")
        settings = {key: (o[key] if o[key] is not None else base[key])
                    for key in ("select_num", "select_std", "latent_weight", "update_embed")}
        settings["select_num"] = min(int(settings["select_num"]), int(o["select_steps"]))
        settings["frozen_adam_state"] = bool(o["frozen_adam_state"])
        if o["returned_image"] not in ("last-forward", "final"):
            raise DGPError(f"returned_image must be 'last-forward' or 'final', got {o['returned_image']!r}")
        return schedule, stages, settings

    def _stand_in(self, prior: GenerativePrior) -> PerceptualDistance:
        try:
            return get_perceptual(self.options["perceptual"] or AUTO, prior)
        except (PerceptualUnavailableError, ValueError) as exc:
            raise DGPError(f"DGP needs the GAN's discriminator or a perceptual distance in its place; this "
                           f"{prior.family} model has no discriminator and {exc}. Load the checkpoint with its D "
                           "(BigGAN: D_<name>.pth next to G_ema_<name>.pth; StyleGAN2/3: a training snapshot "
                           "pickle) or choose --perceptual") from exc

    def total_steps(self) -> int:
        """Optimisation steps of one run (the API spaces video frames with it)."""
        return sum(st.iterations for st in self.plan()[1])

    def run(self, prior, degradation, observation, *, weight=None, class_index=None, seed=0, progress=True,
            frame_every=0, callback=None) -> Result:
        start = self.begin(prior, degradation, observation, weight, class_index, seed, progress, frame_every,
                           callback)
        return self.complete(prior, start, self.select(prior, [start])[0])

    def begin(self, prior: GenerativePrior, degradation: nn.Module, observation: torch.Tensor,
              weight: torch.Tensor | None, class_index: int | ClassCandidates | None, seed: int, progress: bool,
              frame_every: int, callback: StepCallback | None = None) -> "DGPStart":
        """One image's plan, loss (its observation's target features) and recorder, before the selection."""
        schedule, stages, settings = self.plan()
        stages, settings, notes = _fit_to_family(prior, schedule, stages, settings)
        stand_in = None
        if not prior.has_discriminator:
            stand_in = self._stand_in(prior)
            notes.append(f"this {prior.family} model has no discriminator: the selection and the feature term use "
                         f"the {stand_in.name!r} distance instead of DGP's discriminator features")
        torch.manual_seed(seed)
        recorder = RunRecorder(progress, frame_every, callback)
        with frozen(getattr(prior, "D", None), stand_in):
            loss = DGPLoss(prior, degradation, observation, weight, stand_in, self.options["mse_at"],
                           bool(self.options["mse_observed_area"]))
        return DGPStart(schedule, stages, settings, notes, stand_in, recorder, loss, class_index, seed)

    def select(self, prior: GenerativePrior, starts: Sequence["DGPStart"]) -> list[Selection]:
        """The selection (step 1) for one or several images (same options) at once; each image is charged
        its share of the time."""
        settings, o = starts[0].settings, self.options
        started = time.perf_counter()
        with frozen(getattr(prior, "D", None), *[s.stand_in for s in starts]):
            selections = select_latents(prior, [s.loss for s in starts], [s.class_index for s in starts],
                                        int(settings["select_num"]), float(settings["select_std"]),
                                        o["select_features"], int(o["select_chunk"]), [s.seed for s in starts],
                                        bool(o["select_observation_path"]),
                                        progress=any(s.recorder.progress for s in starts),
                                        ranks=[s.rank for s in starts])
        share = (time.perf_counter() - started) / len(starts)
        for s in starts:
            s.recorder.timings["selection"] = s.recorder.timings.get("selection", 0.0) + share
        return selections

    def complete(self, prior: GenerativePrior, start: "DGPStart", sel: Selection) -> Result:
        """The progressive fine-tuning (step 2) from the selected start, one image on its own generator
        copy, and the result."""
        stages, settings, recorder, loss, class_index = (start.stages, start.settings, start.recorder, start.loss,
                                                         start.class_index)
        torch.manual_seed(start.seed)  # the global RNG as a one-image run leaves it after its selection
        with frozen(getattr(prior, "D", None), start.stand_in):  # fixed feature extractors: no gradient into them
            c = prior.class_matrix(sel.class_index, 1) if prior.c_dim else torch.zeros(1, 0, device=prior.device)
            tuned = tunable_copy(prior)
            with torch.enable_grad():
                outcome = fine_tune(tuned, sel.latent, c, loss, stages, recorder, float(settings["latent_weight"]),
                                    bool(settings["update_embed"]), settings["frozen_adam_state"],
                                    float(self.options["early_stop_mse"]), early_stop_ends=self.options["early_stop_ends"],
                                    adam_state=ADAM_CARRY.get(self.options["adam_carry"]))
            if self.options["adam_carry"] is not None:
                ADAM_CARRY[str(self.options["adam_carry"])] = outcome.adam_state
            freeze_generator(tuned)
            with torch.no_grad():
                last = outcome.last_image if self.options["returned_image"] == "last-forward" else None
                image = (last if last is not None else tuned.synthesis(outcome.latent, c)).clamp(-1, 1)
                delta = generator_delta(prior, tuned)
        extras = {
            "schedule": start.schedule,
            "stages": [vars(st) for st in stages],
            "settings": settings,
            "selection": {"candidates": int(settings["select_num"]), "std": settings["select_std"],
                          "score": sel.score, "class_sampled": sel.class_sampled, "candidate": sel.candidate,
                          "rank": start.rank},
            "instance_norm": bool(getattr(tuned, "instance_norm", False)),
            "early_stop": outcome.early_stop,
        "returned_image": self.options["returned_image"] if outcome.last_image is not None else "final",
        }
        if start.notes:
            extras["notes"] = start.notes
        if isinstance(class_index, ClassCandidates):
            extras["class_weights"] = class_index.describe()
        result = Result(method=self.name, image=image, latent=outcome.latent, class_index=sel.class_index,
                        class_score=sel.score if sel.class_sampled else None,
                        class_source=_class_source(prior, class_index, sel.class_sampled),
                        generator_delta=delta, options=dict(self.options), extras=extras)
        return recorder.fill(result)


@dataclass
class DGPStart:
    """What :meth:`DGP.begin` sets up for one image: its plan, loss, recorder, class and seed."""

    schedule: str
    stages: list[Stage]
    settings: dict[str, Any]
    notes: list[str]
    stand_in: PerceptualDistance | None
    recorder: RunRecorder
    loss: DGPLoss
    class_index: int | ClassCandidates | None
    seed: int
    #: which candidate of the selection this image starts from: 0 = the best, k = the (k+1)-th best
    rank: int = 0
