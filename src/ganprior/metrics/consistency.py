"""Task-level checks of a restoration: does it explain the observation, and is it recognisable?

* Degradation consistency: degrade the restoration with the same operator ``A`` and compare with
  the observation ``y``. A restoration can look plausible yet contradict what was observed; this
  measures exactly that. ``A`` is any callable on ``[N, C, H, W]`` tensors (every
  ``ganprior.degradations`` operator qualifies).
* Classifier accuracy: top-k accuracy of a classifier on restored images, for priors that ship one.
"""

from __future__ import annotations

from typing import Callable

import torch

from .images import MetricInputError, check_images, check_region
from .psnr_ssim import psnr_from_mse

#: nominal span of project images ([-1, 1])
SIGNAL_RANGE = 2.0


def degradation_consistency(restored: torch.Tensor, observed: torch.Tensor,
                            degrade: Callable[[torch.Tensor], torch.Tensor], *,
                            weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image distance between ``degrade(restored)`` and ``observed``, both in ``[-1, 1]``.

    ``weight`` (``[N, 1, h, w]`` on the observation grid, 1 = observed) limits the comparison to
    trustworthy pixels, e.g. an operator's ``valid_mask``. Returns ``{"mse": [N], "psnr": [N]}``;
    the PSNR uses the nominal range 2 of ``[-1, 1]`` images (no quantisation: the observation may
    be off the uint8 grid).
    """
    check_images(restored, "restored")
    check_images(observed, "observed")
    with torch.no_grad():
        predicted = degrade(restored)
    if not isinstance(predicted, torch.Tensor) or predicted.shape != observed.shape:
        shape = tuple(predicted.shape) if isinstance(predicted, torch.Tensor) else type(predicted).__name__
        raise MetricInputError(f"degrade(restored) gives {shape}, the observation is {tuple(observed.shape)}")
    squared = (predicted.double() - observed.double()) ** 2
    if weight is None:
        mse = squared.mean(dim=(1, 2, 3))
    else:
        w = check_region(weight, observed).expand_as(squared)
        total = w.sum(dim=(1, 2, 3))
        if (total == 0).any():
            raise MetricInputError("the consistency weight is zero everywhere for at least one image")
        mse = (squared * w).sum(dim=(1, 2, 3)) / total
    return {"mse": mse, "psnr": psnr_from_mse(mse, SIGNAL_RANGE)}


def classifier_accuracy(classifier: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                        labels: torch.Tensor, *, top_k: int = 1, batch_size: int = 64) -> float:
    """Fraction of ``images`` whose true label is among the classifier's ``top_k`` logits.

    ``classifier`` maps ``[B, C, H, W]`` images (as given) to logits ``[B, num_classes]``;
    ``labels`` are integer class indices ``[N]``.
    """
    check_images(images)
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
        raise MetricInputError(f"labels must be integer class indices [{images.shape[0]}], got "
                               f"{labels.dtype} {tuple(labels.shape)}")
    if top_k < 1:
        raise MetricInputError(f"top_k must be >= 1, got {top_k}")
    hits = 0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            logits = classifier(images[start:start + batch_size])
            if logits.ndim != 2 or logits.shape[0] != min(batch_size, images.shape[0] - start):
                raise MetricInputError(f"classifier must return logits [B, num_classes], got {tuple(logits.shape)}")
            if top_k > logits.shape[1]:
                raise MetricInputError(f"top_k={top_k} exceeds the {logits.shape[1]} classes")
            top = logits.topk(top_k, dim=1).indices.cpu()
            hits += (top == labels[start:start + batch_size, None].cpu()).any(dim=1).sum().item()
    return hits / images.shape[0]
