"""The degradation-operator contract, composition, and user-supplied operators.

An operator ``A`` plays two roles in GAN-prior restoration:

* ``A(x)`` (``forward``) is the differentiable observation model. It is applied once to make a
  test input and, every optimisation step, to the generator output inside the loss.
* ``A.fuse(x_restored, y)`` turns the restoration into a final image that agrees with what was
  actually observed (paste back the known pixels, keep the observed lightness, ...).

``A.degrade(x)`` makes a realistic test observation; it equals ``forward`` unless the operator
has a stochastic or non-differentiable real-world path (noise, real JPEG, quantised resize).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Size = tuple[int, int]


class DegradationError(ValueError):
    """A degradation was configured or called with inputs it cannot handle."""


def check_image(x: torch.Tensor, what: str = "image") -> None:
    """Refuse anything that is not an ``[N, C, H, W]`` floating tensor, with one clear message."""
    if not isinstance(x, torch.Tensor):
        raise DegradationError(f"{what} must be a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise DegradationError(f"{what} must be [N, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DegradationError(f"{what} must be a floating tensor in [-1, 1], got dtype {x.dtype}")


def _min_pool_to(weight: torch.Tensor, size: Size) -> torch.Tensor:
    """Shrink a pixel-weight map so an output pixel counts only if every input pixel under it did."""
    if tuple(weight.shape[-2:]) == tuple(size):
        return weight
    return -F.adaptive_max_pool2d(-weight, size)


class Degradation(nn.Module):
    """Base class of every observation model; subclasses override ``forward`` and maybe ``fuse``."""

    #: short identifier used in file names and run.json
    name: str = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Make a test observation from a clean image (no gradient needed)."""
        return self(x)

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Final image consistent with the observation ``y``; by default the restoration itself."""
        return x_restored

    def observed_size(self, hw: Sequence[int]) -> Size:
        """Spatial size of the observation made from an input of size ``hw``."""
        return int(hw[0]), int(hw[1])

    def project_observation(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` moved into what this operator can observe (``A(A⁺ y)``); identity by default.

        A colour photo given to colorization becomes its grey, pixels in inpainting holes become 0,
        so the loss never chases values ``A(G(w))`` cannot produce and the fusion uses the true grey.
        """
        return y

    def propagate_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Map a per-pixel weight of the input onto the observation (and apply this operator's own).

        ``weight`` is ``[N, 1, H, W]``; the result is ``[N, 1, *observed_size]``. Size-changing
        operators keep an output pixel only where all the input pixels under it were valid.
        """
        return _min_pool_to(weight, self.observed_size(weight.shape[-2:]))

    def valid_mask(self, hw: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
        """Per-pixel loss weight of the observation ``[1, 1, h, w]`` (1 = trustworthy, 0 = unknown)."""
        ones = torch.ones(1, 1, int(hw[0]), int(hw[1]), device=device)
        return self.propagate_weight(ones)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for run.json."""
        return {"name": self.name, "type": type(self).__name__}

    def to_deepinv(self) -> Any:
        """The equal deepinv physics (extra ``ganprior[deepinv]``; :func:`ganprior.deepinv.to_deepinv`)."""
        from ganprior.deepinv import to_deepinv

        return to_deepinv(self)

    def __add__(self, other: "Degradation") -> "Compose":
        return compose(self, other)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.describe().items() if k not in ("type",))


class Compose(Degradation):
    """``Compose([A1, A2])(x) = A2(A1(x))``; fusion runs in reverse order through the intermediates.

    Fusing ``y = A2(A1(x))``: first ``x1' = A2.fuse(A1(x), y)`` (an estimate of A1's output that
    agrees with ``y``), then ``A1.fuse(x, x1')``. So e.g. ``sr + colorize + inpaint`` pastes the
    observed pixels at low resolution, then keeps their lightness, then returns the full-size image.
    """

    def __init__(self, ops: Iterable[Degradation]) -> None:
        super().__init__()
        flat: list[Degradation] = []
        for op in ops:
            if not isinstance(op, Degradation):
                raise DegradationError(
                    f"Compose takes Degradation operators, got {type(op).__name__}; "
                    "wrap plain functions with LambdaDegradation(fn)"
                )
            flat.extend(op.ops if isinstance(op, Compose) else [op])
        self.ops = nn.ModuleList(flat)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(op.name for op in self.ops) if len(self.ops) else "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op(x)
        return x

    def degrade(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for op in self.ops:
            x = op.degrade(x, generator=generator)
        return x

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        inputs = [x_restored]
        for op in self.ops[:-1]:
            inputs.append(op(inputs[-1]))
        target = y
        for op, x_in in zip(reversed(self.ops), reversed(inputs)):
            target = op.fuse(x_in, target)
        return target

    def observed_size(self, hw: Sequence[int]) -> Size:
        size = (int(hw[0]), int(hw[1]))
        for op in self.ops:
            size = op.observed_size(size)
        return size

    def project_observation(self, y: torch.Tensor) -> torch.Tensor:
        """Each operator's projection in order (every one acts channel- or pixel-wise on ``y``)."""
        for op in self.ops:
            y = op.project_observation(y)
        return y

    def propagate_weight(self, weight: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            weight = op.propagate_weight(weight)
        return weight

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "Compose", "ops": [op.describe() for op in self.ops]}

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    def __getitem__(self, i: int) -> Degradation:
        return self.ops[i]


def compose(*ops: Degradation) -> Compose:
    """``compose(A1, A2, ...)``: apply ``A1`` first. Nested compositions are flattened."""
    return Compose(ops)


class LambdaDegradation(Degradation):
    """Wrap a user function ``fn(x) -> y`` (differentiable if it should be used in a loss)."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        fuse: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        name: str = "custom",
        observed_size: Callable[[Size], Size] | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise DegradationError(f"LambdaDegradation needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.fuse_fn = fuse
        self.size_fn = observed_size
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def fuse(self, x_restored: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x_restored if self.fuse_fn is None else self.fuse_fn(x_restored, y)

    def observed_size(self, hw: Sequence[int]) -> Size:
        if self.size_fn is not None:
            h, w = self.size_fn((int(hw[0]), int(hw[1])))
            return int(h), int(w)
        probe = self.fn(torch.zeros(1, 3, int(hw[0]), int(hw[1])))
        return int(probe.shape[-2]), int(probe.shape[-1])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": "LambdaDegradation", "fn": getattr(self.fn, "__name__", repr(self.fn))}
