"""What every restoration method shares: the result type, the reconstruction loss on degraded
images, the optimisation loop (LR schedule, loss curve, NaN guard, progress) and the method registry.

A method is a :class:`Method` subclass with a ``name`` and ``presets``; ``run(prior, degradation,
observation, ...)`` returns a :class:`Result` in generator space (``ganprior.api`` maps it back to the
photo's own size). Register new methods with :func:`register_method` (DGP does).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ganprior.losses import PerceptualDistance, PerceptualUnavailableError, get_perceptual
from ganprior.models.prior import GenerativePrior


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; raised only when a caller asks for strict behaviour."""


class StopRestoration(Exception):
    """Raise from a step callback to end the run cleanly (same as returning ``False``)."""


#: ``callback(step, stage, loss, preview) -> bool``: ``step`` counts every optimisation step of the run
#: (0, 1, 2, ... across stages), ``preview`` is that step's generator output ``[1, C, R, R]`` (``None``
#: when the stage renders none); returning ``False`` (or raising :class:`StopRestoration`) stops the run
#: and keeps the best state so far. ``None`` (no return) means continue.
StepCallback = Callable[[int, str, float, "torch.Tensor | None"], "bool | None"]


@dataclass
class Result:
    """One restoration in generator space (square, ``prior.resolution``), before fusion."""

    method: str
    image: torch.Tensor  # [1, C, R, R] in [-1, 1]
    latent: torch.Tensor  # [1, num_ws, w_dim]
    class_index: int | None = None
    class_score: float | None = None
    class_source: str | None = None  # 'given' | 'classifier' | 'centroid-search' | None
    #: tuned − original for every generator tensor pivotal tuning changed (state-dict keys)
    generator_delta: dict[str, torch.Tensor] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    losses: list[dict[str, Any]] = field(default_factory=list)
    frames: list[torch.Tensor] = field(default_factory=list)
    #: why optimisation stopped early (non-finite loss, or the step callback asked); ``None`` when every
    #: stage ran to the end
    stopped: str | None = None
    #: True when the step callback stopped the run (``stopped`` then says where)
    interrupted: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def raise_if_stopped(self) -> None:
        if self.stopped and not self.interrupted:
            raise NonFiniteLossError(self.stopped)


# ----- loss on degraded images ----------------------------------------------------------------
def _masked(img: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return img if weight is None else img * weight


def _rgb(img: torch.Tensor) -> torch.Tensor:
    return img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img


class LossOperator(nn.Module):
    """The degradation as an official script applies it inside its loss, where that differs from the
    operator that made the observation.

    ``sr="torch-bicubic"``: super-resolution as CRI's ``ds`` script downsamples its renders
    (``F.interpolate(mode='bicubic')``, no antialiasing, ds:150, ds:311) instead of the task's own kernel.
    ``sr="pulse-bicubic"``: PULSE's reflect-padded Keys bicubic (``adamian98/pulse@40cacb9 bicubic.py``,
    the ``SuperResolution`` kernel of that name).
    ``colorize=False``: colorization left out (CRI's ``col`` script scores colour centroid renders
    against the grey target, col:236-241).
    ``gray="official"``: grey as CRI's ``col`` script takes it, of [0, 255] values (col:452-458): the weights
    sum to 0.9999, so in [-1, 1] units its grey is ``to_gray(x) - 0.0001``, renders and observation alike
    (:meth:`observation_view`); the MSE is unchanged, the perceptual network's input moves by 0.01275 levels.
    """

    def __init__(self, degradation: nn.Module, sr: str = "degradation", colorize: bool = True,
                 gray: str = "unit") -> None:
        super().__init__()
        if sr not in SR_OPERATORS:
            raise ValueError(f"sr_operator must be one of {', '.join(SR_OPERATORS)}, got {sr!r}")
        if gray not in GRAY_UNITS:
            raise ValueError(f"gray_units must be one of {', '.join(GRAY_UNITS)}, got {gray!r}")
        self.degradation, self.sr, self.colorize, self.gray = degradation, sr, colorize, gray
        self.ops = list(getattr(degradation, "ops", [degradation]))

    def _gray_shift(self) -> float:
        from ganprior.degradations import Colorization
        from ganprior.degradations.colorization import GRAY_WEIGHTS

        grey = self.gray == "official" and any(isinstance(op, Colorization) for op in self.ops)
        return (1.0 - sum(GRAY_WEIGHTS)) if grey else 0.0

    def observation_view(self, y: torch.Tensor) -> torch.Tensor:
        """The observation in the units the official loss compares it in."""
        shift = self._gray_shift()
        return y - shift if shift else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ganprior.degradations import Colorization, SuperResolution

        for op in self.ops:
            if isinstance(op, Colorization) and not self.colorize:
                continue
            if isinstance(op, Colorization) and self.gray == "official":
                x = op(x) - self._gray_shift()
                continue
            if isinstance(op, SuperResolution) and self.sr == "pulse-bicubic" and op.factor != 1:
                x = SuperResolution(op.factor, "pulse-bicubic", reupsample=op.reupsample)(x)
            elif isinstance(op, SuperResolution) and self.sr == "torch-bicubic" and op.factor != 1:
                low = F.interpolate(x, size=op.low_res_size(x.shape[-2:]), mode="bicubic", align_corners=False)
                x = op._finish(low, x.shape[-2:])
            else:
                x = op(x)
        return x


#: the SR operator inside the loss: the task's own, the CRI scripts' torch bicubic, or PULSE's bicubic
SR_OPERATORS = ("degradation", "torch-bicubic", "pulse-bicubic")
#: how the MSE averages when pixels are unobserved: over the observed ones, or over the whole image
L2_AVERAGES = ("observed", "image")
#: grey of [-1, 1] values (``unit``) or of [0, 255] values as CRI's colorization script (``official``)
GRAY_UNITS = ("unit", "official")


def loss_operator(degradation: nn.Module, sr_operator: str = "degradation", colorize: bool = True,
                  gray: str = "unit") -> nn.Module:
    """``degradation`` itself, or a :class:`LossOperator` when the loss must apply it otherwise."""
    if sr_operator == "degradation" and colorize and gray == "unit":
        return degradation
    return LossOperator(degradation, sr_operator, colorize, gray)


def add_term(logged: dict[str, Any], name: str, weight: float, value: torch.Tensor | float) -> None:
    """Log one loss term of a step: unweighted under ``name``, weighted under ``logged['weighted'][name]``."""
    v = float(value.detach().sum()) if isinstance(value, torch.Tensor) else float(value)
    logged[name] = v
    logged.setdefault("weighted", {})[name] = float(weight) * v


class ReconstructionLoss(nn.Module):
    """``perceptual_weight·P(D(x), y) + l2_weight·MSE(D(x), y)`` in observation space.

    ``weight`` ([1, 1, h, w], 1 = constrain) blanks regions that must not constrain the latent
    (letterbox padding, pixels the degradation never observed) in both images; with
    ``l2_average="observed"`` the MSE is normalised by the weighted area so padding does not dilute it,
    with ``"image"`` it is the mean over every pixel (the official CRI scripts' ``MSELoss``, holes 0 in
    both images). ``l2_max_size`` (official: 256) takes the MSE after the same area reduction the
    perceptual network's input gets.

    Observations smaller than the perceptual network accepts (``P.min_size``, e.g. the 8² image of ×4
    SR at 32²) are compared, both of them, after bilinear upsampling back to the generator resolution,
    as DGP compares its SR images; the MSE stays on the true low-resolution observation.
    """

    def __init__(
        self,
        perceptual: PerceptualDistance,
        degradation: nn.Module,
        observation: torch.Tensor,
        weight: torch.Tensor | None = None,
        perceptual_weight: float = 1.0,
        l2_weight: float = 0.0,
        l2_average: str = "observed",
        l2_max_size: int | None = None,
    ) -> None:
        super().__init__()
        if l2_average not in L2_AVERAGES:
            raise ValueError(f"l2_average must be one of {', '.join(L2_AVERAGES)}, got {l2_average!r}")
        self.l2_average, self.l2_max_size = l2_average, l2_max_size
        self.perceptual = perceptual
        self.degradation = degradation
        self.weight = weight
        self.observation = observation
        view = getattr(degradation, "observation_view", None)
        self.target = _masked(observation if view is None else view(observation), weight)
        self.perceptual_weight = perceptual_weight
        self.l2_weight = l2_weight
        self._area = 1.0 if weight is None or l2_average == "image" else float(weight.mean().clamp_min(1e-8))

    def terms(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample terms ``{'perceptual': [N], 'l2': [N]}`` (zero-weight terms are skipped)."""
        degraded = _masked(self.degradation(img), self.weight)
        target = self.target
        out: dict[str, torch.Tensor] = {}
        if self.perceptual_weight:
            size = tuple(img.shape[-2:])
            fake, real = self._perceptual_view(degraded, size), self._perceptual_view(target, size)
            out["perceptual"] = self.perceptual(fake, real.expand(fake.shape[0], -1, -1, -1))
        if self.l2_weight:
            out["l2"] = (self._l2_view(degraded) - self._l2_view(target)).square().flatten(1).mean(1) / self._area
        return out

    def _l2_view(self, img: torch.Tensor) -> torch.Tensor:
        limit = self.l2_max_size
        if limit and max(img.shape[-2:]) > limit:
            return F.interpolate(img, size=(limit, limit), mode="area")
        return img

    def term_weights(self) -> dict[str, float]:
        return {"perceptual": self.perceptual_weight, "l2": self.l2_weight}

    def logged(self, terms: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The step's terms for the loss curve: unweighted, and weighted under ``'weighted'``."""
        out: dict[str, Any] = {}
        weights = self.term_weights()
        for name, value in terms.items():
            add_term(out, name, weights[name], value)
        return out

    def _perceptual_view(self, img: torch.Tensor, generator_size: tuple[int, ...]) -> torch.Tensor:
        """RGB, upsampled to the generator resolution when too small for the perceptual network."""
        needed = self.perceptual.min_size
        if min(img.shape[-2:]) >= needed:
            return _rgb(img)
        if min(generator_size) < needed:
            raise PerceptualUnavailableError(
                f"perceptual {self.perceptual.name!r} needs images of at least {needed} px; this generator "
                f"makes {generator_size[0]}x{generator_size[1]}: choose another --perceptual")
        return _rgb(F.interpolate(img, size=generator_size, mode="bilinear", align_corners=False))

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        if "perceptual" in terms:
            total = total + self.perceptual_weight * terms["perceptual"]
        if "l2" in terms:
            total = total + self.l2_weight * terms["l2"]
        return total

    def with_weights(self, perceptual_weight: float, l2_weight: float) -> "ReconstructionLoss":
        """The same observation and distance with other weights (no second network load)."""
        return ReconstructionLoss(self.perceptual, self.degradation, self.observation, self.weight,
                                  perceptual_weight, l2_weight, self.l2_average, self.l2_max_size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Per-sample weighted loss ``[N]``."""
        return self.total(self.terms(img))


# ----- learning-rate schedules ---------------------------------------------------------------
def stylegan_lr_ramp(peak: float, rampdown: float = 0.25, rampup: float = 0.05) -> Callable[[float], float]:
    """NVIDIA projector schedule: linear warm-up over the first 5 %, cosine decay over the last 25 %."""

    def lr(t: float) -> float:
        ramp = min(1.0, (1.0 - t) / rampdown)
        ramp = 0.5 - 0.5 * math.cos(math.pi * ramp)
        return peak * ramp * min(1.0, t / rampup)

    return lr


def constant_lr(value: float) -> Callable[[float], float]:
    return lambda t: value


# ----- the optimisation loop -----------------------------------------------------------------
@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No parameter of ``modules`` requires a gradient inside the block; the flags come back after.

    Latent-only stages run inside it, so backward computes no generator (or loss-network) weight
    gradient; the tuning stages unfreeze only what they tune, on their own copy.
    """
    params = list({id(p): p for m in modules if isinstance(m, nn.Module) for p in m.parameters()}.values())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)



StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float], torch.Tensor | None]]


class RunRecorder:
    """Collects the loss curve, stage timings, video frames and the early-stop reason of one run, and
    reports each step to the caller's :data:`StepCallback`."""

    def __init__(self, progress: bool = True, frame_every: int = 0, callback: StepCallback | None = None) -> None:
        self.progress = progress
        self.frame_every = frame_every
        self.callback = callback
        self.losses: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.frames: list[torch.Tensor] = []
        self.stopped: str | None = None
        self.interrupted = False
        self.step_count = 0

    def record(self, stage: str, step: int, loss: float, terms: dict[str, Any],
               image: torch.Tensor | None) -> bool:
        """Log one step (loss curve, a video frame every ``frame_every`` steps) and :meth:`report` it.

        ``terms``: every term of the step unweighted by name, and weighted under ``'weighted'``
        (:func:`add_term`), so a run's ``run.json`` shows which term drives it."""
        self.losses.append({"stage": stage, "step": step, "loss": loss, **terms})
        if image is not None and self.frame_every and step % self.frame_every == 0:
            self.frames.append(image.detach()[:1].cpu())
        return self.report(stage, step, loss, image)

    def report(self, stage: str, step: int, loss: float, image: torch.Tensor | None) -> bool:
        """Tell the callback about one step; ``False`` (and ``stopped`` set) when it asks to stop."""
        global_step, self.step_count = self.step_count, self.step_count + 1
        if self.callback is None:
            return True
        preview = None if image is None else image.detach()[:1]
        try:
            go_on = self.callback(global_step, stage, loss, preview) is not False
        except StopRestoration:
            go_on = False
        if not go_on:
            self.interrupted = True
            self.stopped = f"stopped on request at {stage} step {step}: kept the best state so far"
        return go_on

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``timings[stage]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def fill(self, result: Result) -> Result:
        result.losses, result.timings, result.frames = self.losses, self.timings, self.frames
        result.stopped, result.interrupted = self.stopped, self.interrupted
        return result


def optimize(
    stage: str,
    params: Iterable[torch.Tensor],
    step_fn: StepFn,
    steps: int,
    lr: Callable[[float], float],
    recorder: RunRecorder,
    after_step: Callable[[], None] | None = None,
    stop: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Adam over ``params`` for ``steps`` iterations; ``step_fn(i) -> (loss, terms, image)``.

    ``stop(terms)`` true ends the stage after that step is logged and before its update, keeping the
    current state (PTI's early stop, ``single_id_coach.py:60-61``).

    The gradients are zeroed before ``step_fn`` runs, so it may back-propagate part of its loss itself
    (and free that part's graph) and return the rest with the part's value added detached.

    Keeps a copy of the parameters with the lowest finite loss. If the loss turns NaN/inf the stage
    stops, the parameters are put back to that best state and ``recorder.stopped`` says where (later
    stages then do nothing). The same happens when the recorder's step callback asks to stop.
    Otherwise the final state is kept, as in the official projectors.
    """
    params = list(params)
    if steps <= 0 or recorder.stopped:
        return
    optimizer = torch.optim.Adam(params, lr=lr(0.0), betas=(0.9, 0.999))
    best_loss, best = math.inf, [p.detach().clone() for p in params]
    with recorder.timed(stage):
        bar = tqdm(range(steps), desc=stage, disable=not recorder.progress, leave=False)
        for i in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr(i / steps)
            optimizer.zero_grad(set_to_none=True)
            loss, terms, image = step_fn(i)
            value = float(loss.detach())
            if not math.isfinite(value):
                with torch.no_grad():
                    for p, b in zip(params, best):
                        p.copy_(b)
                recorder.stopped = (
                    f"non-finite loss ({value}) at {stage} step {i}: stopped and kept the best state so far "
                    f"(loss {best_loss:.6g})"
                )
                bar.close()
                return
            if value < best_loss:
                best_loss = value
                with torch.no_grad():
                    for b, p in zip(best, params):
                        b.copy_(p)
            if not recorder.record(stage, i, value, terms, image):
                with torch.no_grad():
                    for p, b in zip(params, best):
                        p.copy_(b)
                bar.close()
                return
            if stop is not None and stop(terms):
                bar.close()
                return
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            bar.set_postfix(loss=f"{value:.4g}")
        bar.close()


# ----- registry -------------------------------------------------------------------------------
#: options of the class search (CRI's centroid banks) that every latent method runs when the class is
#: unknown and the model ships no classifier
CLASS_SEARCH_DEFAULTS: dict[str, Any] = {"n_clusters": 10, "n_samples": 10_000, "chunk": 8}


class Method(ABC):
    """A restoration method: named, with presets, options overridable one by one."""

    name: str = "abstract"
    #: option defaults; presets (``ganprior.methods.presets``) override them per task/family
    defaults: dict[str, Any] = {}

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"method {self.name!r} has no option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(self.defaults))}"
            )
        self.options = {**self.defaults, **options}

    @abstractmethod
    def run(
        self,
        prior: GenerativePrior,
        degradation: nn.Module,
        observation: torch.Tensor,
        *,
        weight: torch.Tensor | None = None,
        class_index: int | None = None,
        seed: int = 0,
        progress: bool = True,
        frame_every: int = 0,
        callback: StepCallback | None = None,
    ) -> Result:
        """Restore ``observation`` (= degradation(clean), ``[1, C, h, w]``) with ``prior``; ``callback``
        sees every optimisation step (:data:`StepCallback`) and may stop the run."""

    # helpers shared by the latent methods (options perceptual, *_weight, n_clusters, n_samples, chunk)
    def reconstruction_loss(
        self, prior: GenerativePrior, degradation: nn.Module, observation: torch.Tensor,
        weight: torch.Tensor | None, l2_weight: float, perceptual_weight: float = 1.0,
    ) -> ReconstructionLoss:
        o = self.options
        needs_net = perceptual_weight != 0
        perceptual = get_perceptual(o["perceptual"] if needs_net else "mse", prior)
        operator = loss_operator(degradation, o.get("sr_operator", "degradation"), gray=o.get("gray_units", "unit"))
        return ReconstructionLoss(perceptual, operator, observation, weight, perceptual_weight, l2_weight,
                                  o.get("l2_average", "observed"), o.get("l2_max_size"))

    def start(self, prior: GenerativePrior, degradation: nn.Module, observation: torch.Tensor,
              weight: torch.Tensor | None, class_index: int | None, seed: int, progress: bool,
              frame_every: int, callback: StepCallback | None = None) -> "RunStart":
        """Seed, recorder, the loss on the observation, and the class (given, classified or searched)."""
        from ganprior.methods.centroids import resolve_class

        o = self.options
        torch.manual_seed(seed)
        recorder = RunRecorder(progress, frame_every, callback)
        loss = self.reconstruction_loss(prior, degradation, observation, weight, o["l2_weight"], o["perceptual_weight"])
        with recorder.timed("class"):
            cls, score, source, extras = resolve_class(prior, class_index, observation, loss, o["n_clusters"],
                                                       o["n_samples"], seed, o["chunk"])
        return RunStart(recorder, loss, prior.class_matrix(cls, 1), cls, score, source, extras)

    @torch.no_grad()
    def finish(self, prior: GenerativePrior, ws: torch.Tensor, run: "RunStart",
               delta: dict[str, torch.Tensor] | None = None, render: GenerativePrior | None = None) -> Result:
        """Render the final latent (with the tuned generator when there is one) and package the result."""
        image = (prior if render is None else render).synthesis(ws, run.c).clamp(-1, 1)
        result = Result(method=self.name, image=image, latent=ws, class_index=run.class_index,
                        class_score=run.class_score, class_source=run.class_source, generator_delta=delta or {},
                        options=dict(self.options), extras={**run.extras, "perceptual": run.loss.perceptual.name})
        return run.recorder.fill(result)


@dataclass
class RunStart:
    """What :meth:`Method.start` sets up: recorder, loss, the class row ``c`` and how the class was found."""

    recorder: RunRecorder
    loss: ReconstructionLoss
    c: torch.Tensor
    class_index: int | None
    class_score: float | None
    class_source: str | None
    extras: dict[str, Any]
    #: which start of its method this run takes: 0 = the usual one, k = the k-th alternative
    #: (``ganprior.samples``: K restorations of one photo differ where the observation is silent)
    rank: int = 0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a run's rank-``rank`` alternative start: a stream apart from every other (seed, rank)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available to the API and the CLI by its ``name``."""
    _METHODS[cls.name] = cls
    return cls


def get_method_class(name: str) -> type[Method]:
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available_methods() -> list[str]:
    return sorted(_METHODS)

