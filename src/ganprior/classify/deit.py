"""ImageNet class inference with DeiT, as the official StyleGAN-XL and CRI inversion scripts do.

Those scripts run timm's ``deit_base_distilled_patch16_224`` on the *degraded* target and take the
top-1 (CRI) or draw the classes of ``w_avg`` from its softmax (StyleGAN-XL). Two input pipelines:

* ``"timm"`` (default): DeiT's own evaluation transform from its timm config: bicubic (antialiased)
  resize of the short side to ``int(224 / crop_pct)`` = 248, centre crop 224, ``[0, 1]``, ImageNet
  mean/std. This is the input the network was trained and evaluated on.
* ``"stylegan-xl"``: exactly what the scripts feed it: the ``[-1, 1]`` image resized to 224×224 with
  ``F.interpolate``'s default (nearest), *no* ImageNet normalisation, whatever the aspect ratio.

Weights come from timm's own cache (the Hugging Face hub cache). Offline, or without timm,
:class:`ClassifierUnavailable` names the file, where it goes and how to get it.
"""

from __future__ import annotations

import functools
import os
import socket

import torch
import torch.nn.functional as F
from torch import nn

from ganprior.classify.choice import ClassCandidates

DEIT_ARCH = "deit_base_distilled_patch16_224"
DEIT_HUB_REPO = "timm/deit_base_distilled_patch16_224.fb_in1k"
DEIT_FILE = "model.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
CROP_PCT = 0.9  # timm's pretrained_cfg for this model
PREPROCESS_MODES = ("timm", "stylegan-xl")


class ClassifierUnavailable(RuntimeError):
    """DeiT cannot be used here (timm missing, or weights not cached and no network)."""


def hub_cache_dir() -> str:
    """Where timm (through huggingface_hub) keeps downloaded weights."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    return str(HF_HUB_CACHE)


def _timm():
    try:
        import timm
    except ImportError:
        raise ClassifierUnavailable(f"ImageNet class inference needs timm (pip install 'ganprior[classify]') and "
                                    f"DeiT's weights {DEIT_FILE} of {DEIT_HUB_REPO} in timm's cache "
                                    f"({hub_cache_dir()})") from None
    return timm


def cached_weights() -> str | None:
    """Path of the cached DeiT weights, or ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(DEIT_HUB_REPO, DEIT_FILE, cache_dir=hub_cache_dir())
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _online(host: str = "huggingface.co") -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def offline_message() -> str:
    return (f"DeiT weights {DEIT_FILE} of {DEIT_HUB_REPO} are not in timm's cache ({hub_cache_dir()}) and "
            f"huggingface.co cannot be reached. With internet, run once: python -c \"import timm; "
            f"timm.create_model('{DEIT_ARCH}', pretrained=True)\"")


def build_deit(pretrained: bool = True) -> nn.Module:
    """DeiT-B distilled in eval mode; ``pretrained=False`` builds the same architecture untrained."""
    timm = _timm()
    if not pretrained:
        return timm.create_model(DEIT_ARCH, pretrained=False).eval().requires_grad_(False)
    local = cached_weights()
    if local is None and not _online():
        raise ClassifierUnavailable(offline_message())
    overlay = {"file": local} if local else None
    try:
        net = timm.create_model(DEIT_ARCH, pretrained=True, pretrained_cfg_overlay=overlay)
    except (OSError, RuntimeError) as exc:
        raise ClassifierUnavailable(f"{offline_message()} ({type(exc).__name__}: {exc})") from exc
    return net.eval().requires_grad_(False)


@functools.lru_cache(maxsize=1)
def pretrained_deit() -> nn.Module:
    """The pretrained DeiT, built once per process."""
    return build_deit(pretrained=True)


def preprocess(observation: torch.Tensor, mode: str = "timm") -> torch.Tensor:
    """``[N, 1|3, H, W]`` in ``[-1, 1]`` -> DeiT input ``[N, 3, 224, 224]`` (see the module docstring)."""
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"unknown DeiT preprocessing {mode!r}; choose one of {', '.join(PREPROCESS_MODES)}")
    x = observation.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if mode == "stylegan-xl":
        return F.interpolate(x, INPUT_SIZE)
    h, w = x.shape[-2:]
    short = int(INPUT_SIZE / CROP_PCT)
    size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)  # torchvision's rounding
    x = (x + 1) / 2
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    top, left = int(round((size[0] - INPUT_SIZE) / 2.0)), int(round((size[1] - INPUT_SIZE) / 2.0))
    x = x[..., top:top + INPUT_SIZE, left:left + INPUT_SIZE]
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def class_probabilities(net: nn.Module, observation: torch.Tensor, mode: str = "timm") -> torch.Tensor:
    """Softmax over the 1,000 ImageNet classes, ``[N, 1000]`` (distilled DeiT averages its two heads)."""
    param = next(net.parameters())
    logits = net(preprocess(observation.to(param.device), mode))
    return logits.float().softmax(-1)


def predict_classes(observation: torch.Tensor, k: int = 1, net: nn.Module | None = None,
                    mode: str = "timm") -> tuple[ClassCandidates, float]:
    """The ``k`` most likely classes of one observation with their softmax weights renormalised over
    the ``k``, and the probability mass those ``k`` hold before renormalising."""
    if observation.shape[0] != 1:
        raise ValueError(f"classify one image at a time, got a batch of {observation.shape[0]}")
    probs = class_probabilities(pretrained_deit() if net is None else net, observation, mode)[0]
    top = probs.topk(min(int(k), probs.numel()))
    mass = float(top.values.sum())
    weights = tuple(float(v) / mass for v in top.values)
    return ClassCandidates(tuple(int(i) for i in top.indices), weights, "deit-topk"), mass
