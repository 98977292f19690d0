"""The one generator interface every method uses, whatever the GAN family.

Methods (CRI, projections, PTI, PULSE, DGP) only talk to a :class:`GenerativePrior`.
Each family file (``stylegan2.py``, ``stylegan3.py``, ``stylegan_xl.py``, ``biggan.py``)
provides a subclass that wraps its networks.

Tensor conventions (shared with ``ganprior.degradations``):
  * images are ``[N, C, H, W]`` float32 in the nominal range ``[-1, 1]``;
  * ``c`` is a one-hot / soft class matrix ``[N, c_dim]`` (``[N, 0]`` or ``None`` when unconditional);
  * latents handed to ``synthesis`` are "ws": ``[N, num_ws, w_dim]``. StyleGAN families use their
    W+ space; BigGAN uses ``num_ws = 1`` and ``w_dim = z_dim`` (its latent is z itself, the class
    enters ``synthesis`` through ``c``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import nn


class GenerativePrior(nn.Module, ABC):
    """A pretrained generator (plus its discriminator when one is available)."""

    family: str = "abstract"
    #: StyleGAN families have a mapping network and a W space; BigGAN does not.
    has_mapping: bool = True

    def __init__(self) -> None:
        super().__init__()

    # ----- shapes ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def resolution(self) -> int: ...

    @property
    def img_channels(self) -> int:
        return 3

    @property
    @abstractmethod
    def z_dim(self) -> int: ...

    @property
    @abstractmethod
    def w_dim(self) -> int: ...

    @property
    @abstractmethod
    def c_dim(self) -> int: ...

    @property
    @abstractmethod
    def num_ws(self) -> int: ...

    # ----- generation -----------------------------------------------------------------------
    @abstractmethod
    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z ``[N, z_dim]`` (+ class) -> ws ``[N, num_ws, w_dim]``."""

    @abstractmethod
    def synthesis(
        self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "const"
    ) -> torch.Tensor:
        """ws ``[N, num_ws, w_dim]`` -> image ``[N, C, R, R]`` in about ``[-1, 1]``."""

    @abstractmethod
    def w_avg(self, c: torch.Tensor | None = None) -> torch.Tensor:
        """The average latent ``[N, w_dim]`` (per class for class-conditional XL; zeros for BigGAN)."""

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi), c, noise_mode=noise_mode)

    # ----- conveniences ---------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def class_matrix(self, classes: int | Sequence[int] | torch.Tensor | None, n: int) -> torch.Tensor:
        """Turn a class index / list / one-hot into the ``[n, c_dim]`` matrix the networks expect."""
        if self.c_dim == 0:
            return torch.zeros(n, 0, device=self.device)
        if classes is None:
            raise ValueError(f"this {self.family} model is class-conditional ({self.c_dim} classes): give a class")
        if isinstance(classes, torch.Tensor) and classes.ndim == 2:
            if classes.shape[1] != self.c_dim:
                raise ValueError(f"class matrix has {classes.shape[1]} columns, model has {self.c_dim} classes")
            return classes.to(self.device, torch.float32).expand(n, -1) if classes.shape[0] == 1 else classes
        idx = torch.as_tensor(classes, dtype=torch.long).reshape(-1)
        if idx.numel() == 1:
            idx = idx.expand(n)
        if idx.numel() != n:
            raise ValueError(f"got {idx.numel()} class indices for a batch of {n}")
        bad = idx[(idx < 0) | (idx >= self.c_dim)]
        if bad.numel():
            raise ValueError(f"class index {int(bad[0])} out of range: model has classes 0..{self.c_dim - 1}")
        return torch.nn.functional.one_hot(idx, self.c_dim).float().to(self.device)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.z_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        classes: int | Sequence[int] | torch.Tensor | None = None,
        seed: int = 0,
        truncation_psi: float = 1.0,
    ) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = self.sample_z(n, g)
        if self.c_dim and classes is None:
            classes = torch.randint(0, self.c_dim, (n,), generator=g)
        c = self.class_matrix(classes, n)
        return self(z, c, truncation_psi=truncation_psi)

    # ----- structure used by progressive fine-tuning (DGP) and PTI ---------------------------
    @abstractmethod
    def blocks(self) -> list[nn.Module]:
        """Generator pieces ordered from the latent input (shallow) to the image output (deep)."""

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Parameters that pivotal tuning updates (everything that turns ws into pixels)."""
        return [p for b in self.blocks() for p in b.parameters()]

    # ----- discriminator ----------------------------------------------------------------------
    @property
    def has_discriminator(self) -> bool:
        return False

    def discriminator_features(self, img: torch.Tensor, c: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Intermediate discriminator activations, ordered shallow to deep (DGP's feature loss)."""
        raise NotImplementedError(f"{self.family} model was loaded without a discriminator")

    def config(self) -> dict:
        """Everything needed to rebuild this model from a state dict (our safetensors format)."""
        raise NotImplementedError
