"""StyleGAN2's training objectives: non-saturating logistic GAN loss and the R1 penalty on reals."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating loss: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic loss: mean softplus(D(fake)) + mean softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(critic: Critic, reals: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample squared gradient norm of D's logits w.r.t. the (un-augmented) real images.

    Returns ``(penalty [N], logits [N, 1])``; the caller scales the penalty by gamma / 2 (and the
    lazy-regularisation interval).
    """
    reals = reals.detach().requires_grad_(True)
    logits = critic(reals, c)
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3]), logits
