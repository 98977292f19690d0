"""Perceptual distances between images, each returning one distance per sample.

All distances take two ``[N, C, H, W]`` batches in ``[-1, 1]`` and return a ``[N]`` tensor, so the
methods can sum them, weight them or pick the smallest one (centroid selection) the same way.

Which paper used which:
  * CRI and StyleGAN-XL inversion: NVIDIA's TorchScript VGG16-LPIPS (``nvidia-vgg16``), images
    area-reduced to 256² when larger; XL's pivotal tuning adds an MSE and a locality regulariser.
  * PTI (original repository): the ``lpips`` package with AlexNet (``lpips-alex``).
  * DGP: the BigGAN discriminator's own features (``discriminator``), L1 over the last k features.
  * PULSE: no perceptual term at all (pixel L2 + GeoCross), i.e. ``mse``.
"""

from __future__ import annotations

from pathlib import Path
import torch
import torch.nn.functional as F
from torch import nn

from ganprior.loading.registry import cache_dir, offline

NVIDIA_VGG16_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"


class PerceptualUnavailableError(RuntimeError):
    """The requested perceptual network (or its weights) is not available on this machine."""


class PerceptualDistance(nn.Module):
    """Base class: ``forward(a, b) -> [N]`` distances; frozen, never trained."""

    name: str = "abstract"
    #: smallest image side the network accepts (0 = any). Smaller observations (super-resolution) are
    #: compared after upsampling to the generator resolution (``methods.base.ReconstructionLoss``).
    min_size: int = 0

    def __init__(self) -> None:
        super().__init__()

    def prepare(self, prior: nn.Module | None) -> "PerceptualDistance":
        """Hook for distances that need the prior (its discriminator, its shipped feature net)."""
        return self


class MSEDistance(PerceptualDistance):
    """Plain per-sample mean squared error: a dependency-free stand-in (tests, PULSE)."""

    name = "mse"

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).square().flatten(1).mean(1)


def _normalize_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.square().sum(1, keepdim=True).sqrt() + eps)


class FeatureNetDistance(PerceptualDistance):
    """LPIPS-style distance on any network returning a list of feature maps (unit-normalised
    channels, squared difference averaged over space, summed over layers).

    The embedded model ships such a network as ``prior.feature_net``; pass ``net=`` to use another.
    """

    name = "feature-net"

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net

    def prepare(self, prior: nn.Module | None) -> "FeatureNetDistance":
        if self.net is None:
            shipped = getattr(prior, "feature_net", None)
            if shipped is None:
                raise PerceptualUnavailableError(
                    "perceptual 'feature-net' needs a model that ships a feature network "
                    "(attribute `feature_net`) or an explicit network: choose another --perceptual"
                )
            self.net = shipped
        self.net.eval().requires_grad_(False)
        return self

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = self.net(a), self.net(b)
        total = a.new_zeros(a.shape[0])
        for x, y in zip(fa, fb):
            diff = (_normalize_channels(x) - _normalize_channels(y)).square().sum(1)
            total = total + diff.flatten(1).mean(1)
        return total


def _has_batch_statistics(prior: nn.Module) -> bool:
    from ganprior.models.stylegan2 import MinibatchStdLayer

    d = getattr(prior, "D", None)
    return isinstance(d, nn.Module) and any(isinstance(m, MinibatchStdLayer) for m in d.modules())


def discriminator_features(prior: nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """The prior's discriminator features of ``img`` with no class (DGP calls D without y; the class
    only enters the logit).

    A StyleGAN2 D mixes the images of a batch (minibatch-std layer), so a batch is then run with
    groups of one: every image gets its batch-1 features however it is batched, in one pass.
    """
    c = torch.zeros(img.shape[0], prior.c_dim, device=img.device) if prior.c_dim else None
    if img.shape[0] > 1 and _has_batch_statistics(prior):
        return prior.discriminator_features(img, c, mbstd_group_size=1)
    return prior.discriminator_features(img, c)


class DiscriminatorDistance(PerceptualDistance):
    """DGP's feature-matching loss: sum over the last ``num_features`` discriminator activations of
    the mean absolute difference (``None`` = all of them). The discriminator only takes images at the
    generator resolution (``min_size``)."""

    name = "discriminator"

    def __init__(self, num_features: int | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self._prior: nn.Module | None = None

    def prepare(self, prior: nn.Module | None) -> "DiscriminatorDistance":
        if prior is None or not getattr(prior, "has_discriminator", False):
            raise PerceptualUnavailableError(
                "perceptual 'discriminator' needs a model loaded with its discriminator; "
                "this model has none: choose another --perceptual"
            )
        self._prior = prior
        self.min_size = int(prior.resolution)
        return self

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert self._prior is not None, "call prepare(prior) first"
        fa, fb = discriminator_features(self._prior, a), discriminator_features(self._prior, b)
        k = self.num_features or len(fa)
        total = a.new_zeros(a.shape[0])
        for x, y in zip(fa[-k:], fb[-k:]):
            total = total + (x - y).abs().flatten(1).mean(1)
        return total


class LpipsPackageDistance(PerceptualDistance):
    """The ``lpips`` package (v0.1 linear heads) on a VGG or AlexNet backbone.

    Refuses to download anything: the torchvision backbone weights must already be in the torch
    hub cache (``$TORCH_HOME/hub/checkpoints``), otherwise one clear error says which file is missing.
    """

    BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}
    #: VGG's conv5 needs 16 px after four 2x poolings; AlexNet's stride-4 conv and two 3x3/2 poolings need 31
    MIN_SIZES = {"vgg": 16, "alex": 31}

    def __init__(self, net: str) -> None:
        super().__init__()
        self.name = f"lpips-{net}"
        self.min_size = self.MIN_SIZES[net]
        try:
            import lpips
        except ImportError as exc:
            raise PerceptualUnavailableError(
                f"perceptual '{self.name}' needs the `lpips` package: pip install 'ganprior[metrics]'"
            ) from exc
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        backbone = checkpoints / self.BACKBONE_FILES[net]
        if not backbone.exists():
            raise PerceptualUnavailableError(
                f"perceptual '{self.name}' needs the torchvision backbone weights {backbone.name} in "
                f"{checkpoints} (set TORCH_HOME to another cache location if you keep them elsewhere)"
            )
        self.model = lpips.LPIPS(net=net, verbose=False).eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a, b, normalize=False).flatten(1).sum(1)


class NvidiaVGG16Distance(PerceptualDistance):
    """NVIDIA's TorchScript VGG16-LPIPS used by the StyleGAN/XL projectors and CRI.

    Call convention of the official projectors: RGB in [0, 255], images larger than 256² area-reduced
    to 256², distance = squared Euclidean distance of the returned LPIPS embeddings.
    """

    name = "nvidia-vgg16"
    file_name = "vgg16.pt"
    min_size = 16  # conv5 after four 2x poolings

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        path = Path(path) if path else self._fetch()
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def _fetch(self) -> Path:
        target = cache_dir() / "networks" / self.file_name
        if target.exists():
            return target
        if offline():
            raise PerceptualUnavailableError(
                f"perceptual 'nvidia-vgg16' needs {self.file_name}: place it at {target} "
                f"(download from {NVIDIA_VGG16_URL}); GANPRIOR_OFFLINE is set, so it is not fetched")
        import pooch

        try:
            return Path(pooch.retrieve(NVIDIA_VGG16_URL, known_hash=None, fname=self.file_name,
                                       path=target.parent, progressbar=False))
        except Exception as exc:  # network errors come in many types; all mean the same here
            raise PerceptualUnavailableError(
                f"perceptual 'nvidia-vgg16' needs {self.file_name}: place it at {target} "
                f"(download from {NVIDIA_VGG16_URL}); fetching it failed: {exc}"
            ) from exc

    def _embed(self, img: torch.Tensor) -> torch.Tensor:
        img = (img + 1) * (255 / 2)
        if img.shape[-1] > 256 or img.shape[-2] > 256:
            img = F.interpolate(img, size=(256, 256), mode="area")
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return self.net(img, resize_images=False, return_lpips=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self._embed(a) - self._embed(b)).square().flatten(1).sum(1)
