"""CRI's centroid banks: k-means centres of mapped latents per (model, class), cached on disk, plus
the choices built on them (nearest centroid to an observation, class estimation).

A bank is N centres (default 10) of M latents ``w = mapping(z, c)`` (default 10,000, z seeded) found by
scikit-learn's k-means. It is computed once and stored under ``<cache>/centroids/`` with a key made
of the model's weight hash, the class, N, M and the seed, so a second restoration with the same model
and class does no clustering.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.cluster import KMeans

from ganprior.atomic import atomic_path
from ganprior.classify.choice import ClassCandidates
from ganprior.losses import cache_dir
from ganprior.models.prior import GenerativePrior

MAPPING_CHUNK = 1000


def model_fingerprint(prior: GenerativePrior) -> str:
    """SHA-256 of the generator's weights and buffers (names, shapes, bytes): the bank cache key."""
    digest = hashlib.sha256(prior.family.encode())
    for name, tensor in sorted(prior.state_dict().items()):
        if name.startswith("D."):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def sample_w(prior: GenerativePrior, c: torch.Tensor, n: int, seed: int, chunk: int = MAPPING_CHUNK) -> torch.Tensor:
    """``n`` mapped latents ``[n, w_dim]`` for class rows ``c`` (``[1, c_dim]`` or ``[n, c_dim]``)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = torch.randn(m, prior.z_dim, generator=g).to(prior.device)
        cc = c.expand(m, -1) if c.shape[0] == 1 else c[start:start + m]
        out.append(prior.mapping(z, cc)[:, 0].float())
    return torch.cat(out)


def bank_path(fingerprint: str, class_index: int | None, n_clusters: int, n_samples: int, seed: int,
              root: Path | None = None) -> Path:
    key = f"{fingerprint[:32]}-c{'none' if class_index is None else class_index}-n{n_clusters}-m{n_samples}-s{seed}"
    return (root or cache_dir() / "centroids") / f"{key}.safetensors"


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def centroid_bank(
    prior: GenerativePrior,
    class_index: int | None,
    n_clusters: int = 10,
    n_samples: int = 10_000,
    seed: int = 0,
    cache: bool = True,
    cache_root: Path | None = None,
    fingerprint: str | None = None,
) -> torch.Tensor:
    """The ``[n_clusters, w_dim]`` k-means centres for one class (computed once, then read from disk)."""
    if n_samples < n_clusters:
        raise ValueError(f"need at least as many samples ({n_samples}) as clusters ({n_clusters})")
    shipped = getattr(prior, SHIPPED_BANKS_ATTR, None) or {}
    if (class_index, n_clusters, n_samples, seed) in shipped:
        return shipped[(class_index, n_clusters, n_samples, seed)].to(prior.device)
    path = None
    if cache:
        path = bank_path(fingerprint or model_fingerprint(prior), class_index, n_clusters, n_samples, seed, cache_root)
        if path.exists():
            return load_file(str(path))["centroids"].to(prior.device)
    c = prior.class_matrix(class_index, 1)
    w = sample_w(prior, c, n_samples, seed).cpu().double().numpy()
    km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=1).fit(w)
    centroids = torch.from_numpy(np.asarray(km.cluster_centers_, dtype=np.float32))
    if path is not None:
        meta = {"class": json.dumps(class_index), "n_clusters": str(n_clusters), "n_samples": str(n_samples),
                "seed": str(seed), "family": prior.family}
        _atomic_save({"centroids": centroids.contiguous()}, path, meta)
    return centroids.to(prior.device)


# ----- banks shipped with a model (the embedded prior carries one per class) --------------------
#: attribute of a prior holding banks it ships: ``{(class, n_clusters, n_samples, seed): [N, w_dim]}``
SHIPPED_BANKS_ATTR = "centroid_banks"


class BankFileError(ValueError):
    """A shipped centroid-bank file that is unreadable or belongs to other generator weights."""


def save_banks(banks: dict[int | None, torch.Tensor], path: Path, *, fingerprint: str, n_clusters: int,
               n_samples: int, seed: int) -> Path:
    """All classes' banks in one safetensors file (tensor ``class_<k>``), settings and model hash as metadata."""
    tensors = {f"class_{'none' if k is None else k}": v.detach().float().cpu().contiguous() for k, v in banks.items()}
    meta = {"fingerprint": fingerprint, "n_clusters": str(n_clusters), "n_samples": str(n_samples), "seed": str(seed)}
    _atomic_save(tensors, Path(path), meta)
    return Path(path)


def load_banks(path: Path, fingerprint: str | None = None) -> dict[tuple, torch.Tensor]:
    """Read :func:`save_banks` output as the ``SHIPPED_BANKS_ATTR`` dict; refuses banks of other weights."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
        settings = int(meta["n_clusters"]), int(meta["n_samples"]), int(meta["seed"])
    except (SafetensorError, KeyError, ValueError) as exc:
        raise BankFileError(f"{path} is not a centroid-bank file: {exc}") from exc
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise BankFileError(f"{path} was computed for other generator weights (fingerprint mismatch)")
    banks = {}
    for name, tensor in tensors.items():
        label = name.removeprefix("class_")
        banks[(None if label == "none" else int(label), *settings)] = tensor
    return banks


#: images × pixels one scoring chunk may render at once: 8 images at 128². One 512² StyleGAN-XL
#: forward alone holds ~5 GB of intermediates, so 8 at a time would need ~40 GB.
RENDER_PIXEL_BUDGET = 8 * 128 * 128


def render_chunk(chunk: int, resolution: int) -> int:
    """``chunk`` capped so that a chunk renders at most :data:`RENDER_PIXEL_BUDGET` pixels (at least 1)."""
    return max(1, min(int(chunk), RENDER_PIXEL_BUDGET // (resolution * resolution)))


@torch.no_grad()
def score_latents(
    prior: GenerativePrior,
    w_rows: torch.Tensor,
    c: torch.Tensor,
    loss_fn,
    chunk: int = 8,
) -> torch.Tensor:
    """Loss of each W-space row (broadcast to all layers) against the observation, ``[K]``.

    Rendered ``chunk`` at a time so that big banks never hold all images in memory; at high
    resolution fewer (:func:`render_chunk`).
    """
    scores = []
    chunk = render_chunk(chunk, prior.resolution)
    for start in range(0, w_rows.shape[0], chunk):
        rows = w_rows[start:start + chunk]
        ws = rows[:, None, :].expand(-1, prior.num_ws, -1)
        img = prior.synthesis(ws, c.expand(rows.shape[0], -1))
        scores.append(loss_fn(img).float())
    return torch.cat(scores)


def classifier_class(prior: GenerativePrior, observation: torch.Tensor,
                     weight: torch.Tensor | None = None) -> tuple[int, float]:
    """Class from the classifier a model may ship (``prior.classifier(img[-1,1]) -> logits``).

    ``weight`` (``[1, 1, h, w]``, 0 = not observed: holes, letterbox padding) fills the unobserved
    pixels with neutral mid-grey, so the estimate depends only on what was observed.
    """
    img = observation.expand(-1, 3, -1, -1) if observation.shape[1] == 1 else observation
    if weight is not None:
        img = torch.where(weight > 0, img, torch.zeros_like(img))
    img = torch.nn.functional.interpolate(img, size=(prior.resolution, prior.resolution), mode="bilinear",
                                          align_corners=False)
    with torch.no_grad():
        probs = prior.classifier(img).softmax(-1)[0]
    idx = int(probs.argmax())
    return idx, float(probs[idx])


def search_class(
    prior: GenerativePrior,
    loss_fn,
    n_clusters: int,
    n_samples: int,
    seed: int,
    chunk: int = 8,
    classes: Sequence[int] | None = None,
) -> tuple[int, float, dict[int, float]]:
    """Class whose best centroid is nearest to the observation: ``(class, distance, per-class best)``,
    over ``classes`` (default: all of the model's)."""
    fingerprint = model_fingerprint(prior)
    best: dict[int, float] = {}
    for k in (range(prior.c_dim) if classes is None else classes):
        bank = centroid_bank(prior, k, n_clusters, n_samples, seed, fingerprint=fingerprint)
        best[k] = float(score_latents(prior, bank, prior.class_matrix(k, 1), loss_fn, chunk).min())
    chosen = min(best, key=best.get)
    return chosen, best[chosen], best


def resolve_class(
    prior: GenerativePrior,
    class_index: int | ClassCandidates | None,
    observation: torch.Tensor,
    loss_fn,
    n_clusters: int,
    n_samples: int,
    seed: int,
    chunk: int = 8,
) -> tuple[int | None, float | None, str | None, dict]:
    """``(class, score, source, extras)``: given, else classifier (probability), else centroid search
    (distance of the best centroid). Candidates (a classifier's top-K or a user's list) restrict the
    centroid search to their classes. Unconditional models give ``(None, None, None, {})``."""
    if prior.c_dim == 0:
        if class_index is not None:
            raise ValueError(f"this {prior.family} model is unconditional: do not give a class")
        return None, None, None, {}
    if isinstance(class_index, ClassCandidates):
        return _search_candidates(prior, class_index, loss_fn, n_clusters, n_samples, seed, chunk)
    if class_index is not None:
        prior.class_matrix(class_index, 1)  # validates the range with a clear message
        return int(class_index), None, "given", {}
    if getattr(prior, "classifier", None) is not None:
        idx, p = classifier_class(prior, observation, getattr(loss_fn, "weight", None))  # the loss's observed area
        return idx, p, "classifier", {}
    idx, dist, per_class = search_class(prior, loss_fn, n_clusters, n_samples, seed, chunk)
    ranked = sorted(per_class, key=per_class.get)[:5]
    return idx, dist, "centroid-search", {"class_candidates": {str(k): per_class[k] for k in ranked}}


def _search_candidates(prior: GenerativePrior, candidates: ClassCandidates, loss_fn, n_clusters: int,
                       n_samples: int, seed: int, chunk: int) -> tuple[int, float | None, str, dict]:
    """A single candidate is taken as is; several are ranked by their best centroid's distance."""
    prior.class_matrix(list(candidates.indices), len(candidates.indices))  # validates the range
    weights = candidates.describe()
    if len(candidates.indices) == 1:
        return candidates.indices[0], candidates.weights[0], candidates.source, {"class_weights": weights}
    idx, dist, per_class = search_class(prior, loss_fn, n_clusters, n_samples, seed, chunk, candidates.indices)
    extras = {"class_weights": weights, "class_candidates": {str(k): per_class[k] for k in candidates.indices}}
    return idx, dist, f"{candidates.source}+centroid-search", extras


def start_classes(prior: GenerativePrior, class_index: int | ClassCandidates | None, c: torch.Tensor, n: int,
                  seed: int) -> torch.Tensor:
    """Class rows for the ``n`` latents of an average-latent start: drawn from the candidates' weights
    (StyleGAN-XL's projector draws them from DeiT's softmax), else the chosen class ``c`` ``[1, c_dim]``."""
    if not isinstance(class_index, ClassCandidates) or len(class_index.indices) == 1 or prior.c_dim == 0:
        return c
    drawn = class_index.draw(n, torch.Generator().manual_seed(seed + 1))
    return prior.class_matrix(drawn, n)
