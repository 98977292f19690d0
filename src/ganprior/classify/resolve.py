"""From what the user gave as the class (nothing, an index, ``auto``, ``topk:K``, a list) to what a
method receives (an index, :class:`ClassCandidates`, or ``None`` = the method's own search)."""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from torch import nn

from ganprior.classify.choice import ClassCandidates, ClassOptionError, ClassRequest, parse_class_option
from ganprior.classify.deit import ClassifierUnavailable, predict_classes

IMAGENET_CLASSES = 1000
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def choose_class(
    c_dim: int,
    requested: int | str | ClassCandidates | None,
    observation: torch.Tensor,
    net: nn.Module | None = None,
    preprocess: str = "timm",
    warn: Callable[[str], None] = _warn_once,
) -> tuple[int | ClassCandidates | None, dict[str, Any]]:
    """``(class for the method, record for run.json)``. Without a class, ImageNet-conditional models
    (1,000 classes) take DeiT's top-1 on the degraded ``observation``; other models keep their own
    search. If DeiT is unavailable the message says why and the method's centroid search runs."""
    if c_dim == 0 or isinstance(requested, (ClassCandidates, int)):
        return requested, {}
    request = ClassRequest("auto") if requested is None else parse_class_option(requested)
    if not request.needs_classifier:
        return request.given(), {}
    if c_dim != IMAGENET_CLASSES:
        if request.kind == "topk":
            raise ClassOptionError(f"--class {requested}: DeiT predicts ImageNet's 1,000 classes; this model has "
                                   f"{c_dim}. Give a class index or list instead")
        return None, {}  # auto on another dataset: the model's own classifier or the centroid search
    try:
        candidates, mass = predict_classes(observation, request.k, net, preprocess)
    except ClassifierUnavailable as exc:
        warn(f"{exc}. Falling back to the centroid search over all {c_dim} classes (slow on large models; "
             "--class I,J,... restricts it to a list)")
        return None, {"classifier": "unavailable", "reason": str(exc)}
    candidates = ClassCandidates(candidates.indices, candidates.weights, f"deit-top{request.k}")
    record = {"classifier": "deit_base_distilled_patch16_224", "preprocess": preprocess,
              "top_k": candidates.describe(), "top_k_softmax_mass": mass}
    return candidates, record
