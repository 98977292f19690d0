"""The emoji-feature-net: the small CNN the embedded emoji prior ships in place of an ImageNet network.

It plays two roles for the 32 px emoji prior, the ones DeiT and VGG-LPIPS play for StyleGAN-XL:

* class estimator of a *degraded* input (CRI step 1): it is trained on emoji with random
  grayscale, holes (``x * mask``, holes = 0 like ``Inpainting``), x4 down/up-sampling and noise;
* learned perceptual distance: its intermediate feature maps, compared LPIPS-style (unit-normalised
  channels, squared differences, spatial mean, summed over layers) by
  ``ganprior.losses.perceptual.FeatureNetDistance``. It is *not* LPIPS: no linear heads, no
  human-judgement calibration; call it "emoji-feature-net distance".

Inputs of any size are resized to the training resolution first (bilinear up, area down), the same
way ``methods.centroids.classifier_class`` upsamples an x4 observation before classifying it.
Stored as safetensors with its config in the metadata (no pickle), like our generators.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ganprior.degradations import resize, to_gray

NAME = "emoji-feature-net"
FORMAT_NAME = "ganprior-feature-net"
FORMAT_VERSION = "1"


class FeatureNetFormatError(ValueError):
    """A file that is not a valid emoji-feature-net (bad header, missing or broken config)."""


def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2),
    )


class EmojiFeatureNet(nn.Module):
    """Four conv stages (32, 16, 8, 4 px at the training size), global pooling, linear classifier.

    ``forward(x)`` returns the feature maps (the perceptual-distance interface); ``classify(x)`` the
    class logits; ``features_and_logits(x)`` both from one pass. ``x`` is ``[N, 1|3, H, W]`` in [-1, 1].
    """

    name = NAME

    def __init__(self, num_classes: int, channels: tuple[int, ...] = (16, 32, 64, 128), resolution: int = 32,
                 classes: tuple[str, ...] = ()) -> None:
        super().__init__()
        if num_classes < 1 or not channels:
            raise ValueError("a feature net needs at least one class and one stage")
        if classes and len(classes) != num_classes:
            raise ValueError(f"{len(classes)} class names for {num_classes} classes")
        self.num_classes, self.channels, self.resolution = num_classes, tuple(channels), resolution
        self.classes = tuple(classes)
        widths = (3, *self.channels)
        self.stages = nn.ModuleList(_stage(widths[i], widths[i + 1], 1 if i == 0 else 2) for i in range(len(channels)))
        self.head = nn.Linear(self.channels[-1], num_classes)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{NAME} expects images [N, 1 or 3, H, W], got {tuple(x.shape)}")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        h, w = x.shape[-2:]
        if (h, w) == (self.resolution, self.resolution):
            return x
        mode = "area" if h > self.resolution and w > self.resolution else "bilinear"
        options = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(x, size=(self.resolution, self.resolution), mode=mode, **options)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self._input(x.to(self.head.weight.device))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return self.head(x.mean((2, 3))), features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.features_and_logits(x)[1]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, num_classes]``, on ``x``'s device (the net may live elsewhere)."""
        return self.features_and_logits(x)[0].to(x.device)

    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "channels": list(self.channels), "resolution": self.resolution,
                "classes": list(self.classes)}


# ----- degradation augmentation -------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """Each degradation is applied independently with probability ``p`` (so some inputs stay clean)."""

    p_gray: float = 0.35
    p_holes: float = 0.35
    p_sr4: float = 0.35
    p_noise: float = 0.3
    max_noise: float = 0.2
    max_shift: int = 2


def random_hole_mask(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, 1, size, size]`` binary masks (1 = kept): 1-3 random boxes, or random missing pixels."""
    ys, xs = torch.arange(size).view(1, size, 1), torch.arange(size).view(1, 1, size)
    mask = torch.ones(n, size, size)
    for _ in range(3):
        use = torch.rand(n, generator=generator) < 0.6
        hw = torch.randint(size // 5, size // 2 + 1, (n, 2), generator=generator)
        y0 = (torch.rand(n, generator=generator) * (size - hw[:, 0] + 1)).long()
        x0 = (torch.rand(n, generator=generator) * (size - hw[:, 1] + 1)).long()
        box = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + hw[:, 0]).view(-1, 1, 1))
               & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + hw[:, 1]).view(-1, 1, 1)))
        mask[box & use.view(-1, 1, 1)] = 0
    pixels = torch.rand(n, 1, 1, generator=generator) < 0.3
    missing = torch.rand(n, 1, 1, generator=generator) * 0.6 + 0.2
    mask = torch.where(pixels, (torch.rand(n, size, size, generator=generator) >= missing).float(), mask)
    return mask[:, None]


def degrade_randomly(x: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Random flips/shifts, then the restoration tasks' degradations, each with its probability."""
    n, _, h, w = x.shape

    def chosen(p: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) < p).view(n, 1, 1, 1)

    x = torch.where(chosen(0.5), x.flip(3), x)
    if config.max_shift:
        s = config.max_shift
        padded = F.pad(x, (s, s, s, s), mode="replicate")
        dy, dx = torch.randint(0, 2 * s + 1, (2,), generator=generator).tolist()
        x = padded[..., dy:dy + h, dx:dx + w]
    x = torch.where(chosen(config.p_sr4), F.interpolate(resize(x, (h // 4, w // 4), "bicubic"), size=(h, w),
                                                        mode="bilinear", align_corners=False), x)
    x = torch.where(chosen(config.p_gray), to_gray(x).expand(-1, 3, -1, -1), x)
    sigma = torch.rand(n, 1, 1, 1, generator=generator) * config.max_noise
    x = torch.where(chosen(config.p_noise), x + sigma * torch.randn(x.shape, generator=generator), x)
    x = torch.where(chosen(config.p_holes), x * random_hole_mask(n, h, generator), x)
    return x.clamp(-1, 1)


# ----- training and evaluation -------------------------------------------------------------------
def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 15
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0


def train_feature_net(
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    settings: TrainSettings = TrainSettings(),
    channels: tuple[int, ...] = (16, 32, 64, 128),
    augment: AugmentConfig = AugmentConfig(),
    progress: bool = True,
) -> tuple[EmojiFeatureNet, list[dict[str, float]]]:
    """Train on uint8 ``[N, H, W, 3]`` images with degradation augmentation; returns (net in eval mode, log).

    AdamW with a one-cycle schedule; the loss weights classes by 1/sqrt(frequency) (the "People & Body"
    class is four times the median), so a degraded smiley is not guessed as a person by default.
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need matching, non-empty images and labels, got {len(images)} and {len(labels)}")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    x_all, y_all = _to_tensor(images), torch.as_tensor(labels, dtype=torch.long)
    net = EmojiFeatureNet(len(classes), channels, images.shape[1], classes).train()
    counts = torch.bincount(y_all, minlength=len(classes)).float().clamp(min=1)
    class_weight = (counts.mean() / counts).sqrt()
    steps_per_epoch = math.ceil(len(x_all) / settings.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.epochs * steps_per_epoch)
    log = []
    for epoch in tqdm(range(settings.epochs), desc=f"train {NAME}", unit="epoch", disable=not progress):
        order = torch.randperm(len(x_all), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), settings.batch):
            idx = order[start:start + settings.batch]
            x, y = degrade_randomly(x_all[idx], generator, augment), y_all[idx]
            logits, _ = net.features_and_logits(x)
            loss = F.cross_entropy(logits, y, weight=class_weight, label_smoothing=settings.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        log.append({"epoch": epoch + 1, "loss": total_loss / len(x_all), "train_acc_augmented": correct / len(x_all)})
    return net.eval(), log


@torch.no_grad()
def accuracy(net: EmojiFeatureNet, images: torch.Tensor, labels: np.ndarray | torch.Tensor,
             batch: int = 256) -> dict[str, float]:
    """Top-1 accuracy and class-balanced accuracy on ``[N, 3, H, W]`` images in [-1, 1]."""
    y = torch.as_tensor(labels, dtype=torch.long)
    pred = torch.cat([net.classify(images[i:i + batch]).argmax(1).cpu() for i in range(0, len(images), batch)])
    hits = (pred == y).float()
    per_class = [float(hits[y == k].mean()) for k in range(net.num_classes) if bool((y == k).any())]
    return {"top1": float(hits.mean()), "balanced": float(np.mean(per_class))}


# ----- storage -------------------------------------------------------------------------------------
def save_feature_net(net: EmojiFeatureNet, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """One safetensors file: weights + ``config`` (and optional ``info``, e.g. accuracies) as JSON metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": NAME,
                "config": json.dumps(net.config()), "info": json.dumps(info or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_feature_net_info(path: str | Path) -> dict[str, Any]:
    """``{"config": ..., "info": ...}`` from the file header (no weights read)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except SafetensorError as exc:
        raise FeatureNetFormatError(f"{path} is not a safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise FeatureNetFormatError(f"{path} is not a {NAME} file (format {meta.get('format')!r} "
                                    f"v{meta.get('format_version')!r}, expected {FORMAT_NAME!r} v{FORMAT_VERSION})")
    try:
        return {"config": json.loads(meta["config"]), "info": json.loads(meta.get("info", "{}"))}
    except (KeyError, json.JSONDecodeError) as exc:
        raise FeatureNetFormatError(f"{path} has a missing or malformed config: {exc}") from exc


def load_feature_net(path: str | Path, device: str | torch.device = "cpu") -> EmojiFeatureNet:
    """Rebuild the net from its file (no pickle), frozen, in eval mode on ``device``."""
    config = read_feature_net_info(path)["config"]
    try:
        net = EmojiFeatureNet(config["num_classes"], tuple(config["channels"]), config["resolution"],
                              tuple(config.get("classes", ())))
        net.load_state_dict(load_file(str(path)), strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise FeatureNetFormatError(f"{path}: weights/config do not fit {NAME}: {exc}") from exc
    return net.to(device).eval().requires_grad_(False)


__all__ = [
    "NAME", "AugmentConfig", "EmojiFeatureNet", "FeatureNetFormatError", "TrainSettings", "accuracy",
    "degrade_randomly", "load_feature_net", "random_hole_mask", "read_feature_net_info", "save_feature_net",
    "train_feature_net",
]
