"""Loading models: :func:`load_model` is the one public entry point.

``load_model()`` accepts a registered model name (``ganprior models`` lists them; no name = the embedded
``emoji32`` prior), an official checkpoint (StyleGAN2-ADA / StyleGAN3 / StyleGAN-XL network pickle, DGP
BigGAN ``G_ema_*.pth`` + ``D_*.pth``), or one of our native ``.safetensors`` files. Official pickles are
parsed without executing anything they contain; after the first load of a downloaded checkpoint its
native conversion is cached next to it, so later loads read no pickle at all.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from ganprior.loading import integrity
from ganprior.loading.errors import (
    CheckpointError,
    CheckpointLimitError,
    CorruptCheckpointError,
    IntegrityError,
    UnsafeCheckpointError,
    UnsafePathError,
    UnsupportedCheckpointError,
)
from ganprior.loading.native import (
    FamilyNotAvailableError,
    ModelFormatError,
    load_native,
    read_native_metadata,
    save_native,
)
from ganprior.loading.official import (
    OfficialKind,
    biggan_pair,
    detect_family,
    is_biggan_path,
    load_official,
)
from ganprior.loading.registry import (
    EMBEDDED_BANKS_FILE,
    EMBEDDED_FEATURE_NET_FILE,
    REGISTRY,
    ChecksumMismatchError,
    ModelNotAvailableError,
    ModelSpec,
    UnknownModelError,
    cache_dir,
    embedded_dir,
    get_spec,
    resolve,
)
from ganprior.models.prior import GenerativePrior

NATIVE_SUFFIX = ".safetensors"

#: What a bad model argument can raise (unknown name, missing/corrupt/hostile/unsupported file); the CLI turns
#: these into a one-line message. Every malformed file raises a :class:`CheckpointError` subclass.
LOAD_ERRORS: tuple[type[Exception], ...] = (CheckpointError, ValueError, OSError, pickle.UnpicklingError,
                                            FamilyNotAvailableError)


def is_native_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix == NATIVE_SUFFIX


def converted_path(path: str | os.PathLike) -> Path:
    """Where the cached native conversion of an official checkpoint lives (next to it)."""
    path = Path(path)
    if is_biggan_path(path):
        path = biggan_pair(path)[0]
    return path.with_name(f"{path.stem}.native{NATIVE_SUFFIX}")


def source_fingerprint(path: str | os.PathLike) -> dict:
    """Name, size and mtime of the checkpoint file(s): cheap staleness check for the conversion cache."""
    path = Path(path)
    files = [p for p in biggan_pair(path) if p is not None] if is_biggan_path(path) else [path]
    return {"files": [{"name": p.name, "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in files]}


def _fresh_conversion(path: Path) -> Path | None:
    cached = converted_path(path)
    if not cached.is_file() or cached.is_symlink():
        return None
    try:
        source = read_native_metadata(cached)["source"]
    except CheckpointError:
        return None
    return cached if source == source_fingerprint(path) else None


def _verify_cached(path: Path, name: str | None) -> None:
    """Files in the cache must still have the SHA-256 recorded for them (and the registry's pin, if any)."""
    cache = cache_dir()
    files = [p for p in biggan_pair(path) if p is not None] if is_biggan_path(path) and path.is_file() else [path]
    pins = {}
    if name is not None and name in REGISTRY:
        pins = {f.filename: f.sha256 for f in get_spec(name).files}
    for file in files:
        if _inside(file, cache):
            integrity.verify(file, cache, pins.get(file.name))


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Official checkpoint (or registered name) -> native file; returns ``dst``."""
    path = resolve(src)
    return save_native(load_official(path), dst, source=source_fingerprint(path))


def attach_embedded_extras(prior: GenerativePrior, directory: Path) -> GenerativePrior:
    """Give the embedded prior what ships beside it: its 9 category names (``prior.class_names``), the
    emoji-feature-net (``prior.feature_net`` for the "feature-net" perceptual distance, ``prior.classifier``
    for CRI's class estimate) and the CRI centroid banks of every class (``prior.centroid_banks``), so
    restoration needs no ImageNet network and no k-means.

    The net is kept out of the prior's state dict (plain attribute), so fingerprints and ``save_native`` see
    the generator only; banks computed for other weights are ignored with a warning.
    """
    from ganprior.methods.centroids import SHIPPED_BANKS_ATTR, BankFileError, load_banks, model_fingerprint
    from ganprior.models.feature_net import load_feature_net

    net_file, bank_file = directory / EMBEDDED_FEATURE_NET_FILE, directory / EMBEDDED_BANKS_FILE
    from ganprior.class_names import emoji_class_names

    object.__setattr__(prior, "class_names", emoji_class_names())  # --class by name; `ganprior models`
    if net_file.is_file():
        net = load_feature_net(net_file, prior.device)
        object.__setattr__(prior, "feature_net", net)
        object.__setattr__(prior, "classifier", net.classify)
    if bank_file.is_file():
        try:
            object.__setattr__(prior, SHIPPED_BANKS_ATTR, load_banks(bank_file, model_fingerprint(prior)))
        except BankFileError as exc:
            warnings.warn(f"ignoring the shipped centroid banks: {exc}", stacklevel=3)
    return prior


def load_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    native_cache: bool | None = None,
) -> GenerativePrior:
    """THE public loader: a name, an official checkpoint or a native file -> prior in eval mode on ``device``.

    ``native_cache``: store/reuse the native conversion next to an official checkpoint. Default: on for
    files inside the ganprior download cache, off for files elsewhere (we do not write beside user files
    unless asked).
    """
    path = resolve(name_or_path, weights)
    _verify_cached(path, None if weights is not None or name_or_path is None else str(name_or_path))
    if is_native_path(path):
        prior = load_native(path, device)
        if weights is None and path.resolve().parent == embedded_dir().resolve():
            attach_embedded_extras(prior, path.parent)
        return prior
    path = path.resolve()  # a symlink into the cache must not make us write next to the link
    use_cache = _inside(path, cache_dir()) if native_cache is None else native_cache
    if use_cache and (cached := _fresh_conversion(path)) is not None:
        integrity.verify(cached, cache_dir())
        return load_native(cached, device)
    prior = load_official(path)
    target = converted_path(path)
    if use_cache and native_cache is None and not _inside(target, cache_dir()):
        use_cache = False  # writes stay inside the cache
    if use_cache:
        try:
            save_native(prior, target, source=source_fingerprint(path))
            integrity.record(target, cache_dir(), f"conversion of {path.name}")
        except OSError as exc:
            warnings.warn(f"could not cache the native conversion of {path}: {exc}", stacklevel=2)
    return prior.to(device)


__all__ = [
    "LOAD_ERRORS", "REGISTRY", "CheckpointError", "CheckpointLimitError", "ChecksumMismatchError",
    "CorruptCheckpointError", "FamilyNotAvailableError", "IntegrityError", "UnsafePathError",
    "ModelFormatError", "ModelNotAvailableError", "ModelSpec", "OfficialKind", "UnknownModelError",
    "UnsafeCheckpointError", "UnsupportedCheckpointError", "attach_embedded_extras", "cache_dir", "convert",
    "converted_path",
    "detect_family", "load_model", "load_native", "load_official", "resolve", "save_native",
]
