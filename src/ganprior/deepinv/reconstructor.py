"""``GANPrior``: CRI, DGP, PTI, W/W+ and PULSE as a ``deepinv.models.Reconstructor``.

``GANPrior(method="cri", model="emoji32")(y, physics)`` takes deepinv's measurements and physics and
returns ``[N, C, H, W]`` images on deepinv's [0, 1] scale.

* Physics that :func:`~ganprior.deepinv.convert.from_deepinv` maps exactly (inpainting, decolorize,
  downsampling, blur and their compositions) run the native :func:`ganprior.restore` path: letterboxing,
  class choice, presets and the operator's own consistent fusion, identical to calling it yourself.
* Any other ``LinearPhysics`` whose images are the generator's size is optimised through
  ``physics.A`` (L2 only when its measurements are not images, where a perceptual distance means
  nothing) and fused with ``physics.A_dagger``: ``x + A⁺(y − A x)``, alternated with clamping to [0, 1].
* ``physics.noise_model``: fusion reproduces the observation, so with noise it would paste the noise
  back. ``fuse="auto"`` (default) fuses only noise-free observations and otherwise returns the
  generator's image, as ganprior does for its own denoising task.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .convert import DeepinvMappingError, from_deepinv, noise_sigma, require_deepinv

dinv = require_deepinv()

FUSE_CHOICES = ("auto", "always", "never")
#: alternations of the A_dagger projection and the [0, 1] clamp in the generic path (stops earlier when stable)
GENERIC_FUSE_ROUNDS = 50


class GANPrior(dinv.models.Reconstructor):
    """A GAN-prior restoration method as a deepinv reconstructor (see the module docstring).

    ``method``/``model``/``weights`` are :func:`ganprior.restore`'s (``model`` may be a loaded prior);
    ``steps`` caps every stage,
    ``class_index``, ``seed`` and ``preset`` are passed on; any other keyword is a method option
    (``offset_steps=200``). ``fuse`` is ``"auto"``, ``"always"`` or ``"never"``. After a call,
    ``last_results`` holds the ganprior results and ``last_path`` says which path ran (``"native"``, or
    ``"generic (<why the physics did not map>)"``).
    """

    def __init__(self, method: str = "cri", model: str | os.PathLike | Any | None = "emoji32", *,
                 weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 class_index: int | str | None = None, seed: int = 0, steps: int | None = None,
                 preset: str = "paper", fuse: str = "auto", progress: bool = False, **options: Any) -> None:
        super().__init__(device=device)
        if fuse not in FUSE_CHOICES:
            raise ValueError(f"fuse must be one of {', '.join(FUSE_CHOICES)}, got {fuse!r}")
        from ganprior.methods import get_method_class

        get_method_class(method)  # an unknown method fails here, not after the model loads
        self.method, self.model_name, self.weights = method, model, weights
        self._device = torch.device(device)
        self.class_index, self.seed, self.steps, self.preset = class_index, seed, steps, preset
        self.fuse, self.progress, self.options = fuse, progress, dict(options)
        self._prior = None
        self.last_results: list[Any] = []
        self.last_path: str | None = None

    @property
    def device(self) -> torch.device:
        """Where the generator runs; deepinv's benchmark runner sets it (``model.device = device``)."""
        return self._device

    @device.setter
    def device(self, value: str | torch.device) -> None:
        self._device = torch.device(value)

    @property
    def prior(self):
        """The generator, loaded on first use (and moved when the benchmark runner sets ``device``)."""
        from ganprior.models.prior import GenerativePrior

        if isinstance(self.model_name, GenerativePrior):  # a loaded model, shared with other callers
            return self.model_name
        if self._prior is None or self._prior.device != self.device:
            from ganprior.api import load_prior

            self._prior = load_prior(self.model_name, self.weights, self.device)
        return self._prior

    def _fused(self, physics: Any) -> bool:
        if self.fuse != "auto":
            return self.fuse == "always"
        return noise_sigma(physics) == 0.0

    def forward(self, y: torch.Tensor, physics: Any, **kwargs: Any) -> torch.Tensor:
        if not isinstance(physics, dinv.physics.LinearPhysics):
            raise TypeError(f"GANPrior needs a deepinv LinearPhysics, got {type(physics).__name__}")
        if isinstance(physics, dinv.physics.StackedPhysics):
            raise TypeError("GANPrior restores from one measurement tensor; stacked physics (TensorList) are not supported")
        try:
            degradation = from_deepinv(physics, noise=False)  # the noise sets the fusion, not the task
            x = self._native(y, physics, degradation)
            self.last_path = "native"
        except DeepinvMappingError as exc:
            x = self._generic(y, physics)
            self.last_path = f"generic ({exc})"
        return x

    # ----- the native ganprior path ---------------------------------------------------------------
    def _native(self, y: torch.Tensor, physics: Any, degradation: Any) -> torch.Tensor:
        import ganprior
        from ganprior.degradations import Colorization, Compose, Inpainting

        ops = list(degradation.ops)
        masks = [op for op in ops if isinstance(op, Inpainting)]
        if masks and not all(isinstance(op, (Inpainting, Colorization)) for op in ops):
            # restore fits masks to the canvas only for task strings; those name ganprior's own operators
            raise DeepinvMappingError("inpainting composed with a filter operator has no task string")
        fused = self._fused(physics)
        noisy = noise_sigma(physics) != 0.0
        outputs, self.last_results = [], []
        for i in range(y.shape[0]):
            obs = y[i:i + 1].detach().to(self.device)
            if obs.shape[1] == 1:
                obs = obs.expand(-1, 3, -1, -1)
            if noisy:  # noise may leave [0, 1]; restore reads the data as [0, 1]
                obs = obs.clamp(0, 1)
            settings: dict[str, Any] = dict(value_range=(0.0, 1.0), progress=self.progress, seed=self.seed,
                                            steps=self.steps, preset=self.preset, class_index=self.class_index,
                                            options=self.options or None)
            if masks:
                mask = masks[0].mask
                settings["mask"] = mask[i:i + 1] if mask.shape[0] > 1 else mask
                task: Any = "+".join(op.name for op in ops)
            else:
                task = Compose(ops)
            result = ganprior.restore(obs, task=task, method=self.method, model=self.prior, **settings)
            self.last_results.append(result)
            outputs.append(result.image if fused else result.generator_output)
        x = (torch.cat(outputs) + 1) / 2
        expected = tuple(physics.A_adjoint(y).shape)
        if tuple(x.shape) != expected:
            raise DeepinvMappingError(f"ganprior's restoration is {tuple(x.shape)} but the physics' images are {expected}")
        return x

    # ----- any other linear physics ---------------------------------------------------------------
    def _generic(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        from ganprior.api import _method_options
        from ganprior.methods import get_method_class

        prior = self.prior
        R = prior.resolution
        outputs, self.last_results = [], []
        for i in range(y.shape[0]):
            yi = y[i:i + 1].detach().to(self.device)
            shape = tuple(physics.A_adjoint(yi).shape)
            if len(shape) != 4 or shape[-2:] != (R, R) or shape[1] != 3:
                raise DeepinvMappingError(f"{type(physics).__name__} has no exact ganprior operator and its images are "
                                          f"{shape}; the generic path needs [1, 3, {R}, {R}] (the generator's size)")
            image_like = yi.ndim == 4 and yi.shape[1] in (1, 3) and min(yi.shape[-2:]) > 1
            options = dict(self.options)
            method_cls = get_method_class(self.method)
            if not image_like:
                if "perceptual_weight" not in method_cls.defaults:
                    raise DeepinvMappingError(f"{self.method} compares images perceptually; {type(physics).__name__}'s "
                                              "measurements are not images")
                options["perceptual_weight"] = 0.0
                if not options.get("l2_weight", method_cls.defaults.get("l2_weight")):
                    options["l2_weight"] = 1.0  # the MSE on the measurements is then the whole loss
            chosen = _method_options(self.method, self.preset, "custom", getattr(prior, "family", None), None,
                                     options, self.steps)
            runner = method_cls(**chosen)
            op = _PhysicsOperator(physics)
            target = op.as_image(yi)
            class_index = self.class_index if isinstance(self.class_index, int) else None
            result = runner.run(prior, op, target, weight=None, class_index=class_index, seed=self.seed,
                                progress=self.progress)
            self.last_results.append(result)
            x = ((result.image + 1) / 2).detach()
            outputs.append(project_consistent(physics, x, yi) if self._fused(physics) else x)
        return torch.cat(outputs)


class _PhysicsOperator(torch.nn.Module):
    """A deepinv physics as the observation model of a ganprior method: [-1, 1] images in, ``A`` of their
    [0, 1] version out, shaped as an image ``[N, C, h, w]`` or, for vector measurements, ``[N, 1, 1, m]``."""

    name = "deepinv"

    def __init__(self, physics: Any) -> None:
        super().__init__()
        self.physics = physics

    @staticmethod
    def as_image(y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 4:
            return y
        return y.reshape(y.shape[0], 1, 1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.as_image(self.physics.A((x + 1) / 2))


@torch.no_grad()
def project_consistent(physics: Any, x: torch.Tensor, y: torch.Tensor, rounds: int = GENERIC_FUSE_ROUNDS,
                       tolerance: float = 2.5e-5) -> torch.Tensor:
    """``x + A⁺(y − A x)`` alternated with clamping to [0, 1] until the clamp moves nothing above ``tolerance``."""
    for _ in range(rounds):
        fused = x + physics.A_dagger(y - physics.A(x))
        x = fused.clamp(0, 1)
        if float((fused - x).abs().max()) <= tolerance:
            break
    return x
