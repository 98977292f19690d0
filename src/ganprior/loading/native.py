"""Our own model format: one ``.safetensors`` file, config in its metadata, no pickle anywhere.

Layout of a native file:
  * tensors: every entry of ``prior.state_dict()`` (generator under ``G.``, discriminator under ``D.``);
  * metadata (string -> string, part of the safetensors header):
      - ``"format"``: ``"ganprior-native"``, ``"format_version"``: ``"1"``;
      - ``"config"``: ``json.dumps(prior.config())`` — contains ``"family"`` plus every constructor argument;
      - optional ``"source"``: JSON describing the file this was converted from (used by the conversion cache).

One file instead of a sidecar ``config.json`` so a model can never be separated from its config.
Loading goes through ``models.<family>.from_config(config, state_dict)``.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors.torch import save_file

from ganprior.atomic import atomic_path
from ganprior.loading.errors import CorruptCheckpointError
from ganprior.loading.guards import build_network, open_regular, validate_config
from ganprior.loading.native_check import DIGEST_KEY, NotSafetensorsError, read_header, read_tensors, tensor_digest
from ganprior.models.prior import GenerativePrior

FORMAT_NAME = "ganprior-native"
FORMAT_VERSION = "1"

#: family name (``GenerativePrior.family``) -> module that implements it.
FAMILY_MODULES = {
    "stylegan2": "ganprior.models.stylegan2",
    "stylegan3": "ganprior.models.stylegan3",
    "stylegan_xl": "ganprior.models.stylegan_xl",
    "biggan": "ganprior.models.biggan",
}


class ModelFormatError(CorruptCheckpointError):
    """A file that is not a valid ganprior native model (bad header, missing or broken config)."""


class FamilyNotAvailableError(ImportError):
    """The checkpoint belongs to a model family this installation does not implement."""


def family_module(family: str) -> ModuleType:
    """Import the module implementing ``family``; one clear error when it is unknown or missing."""
    if family not in FAMILY_MODULES:
        raise FamilyNotAvailableError(f"unknown model family {family!r}; known: {', '.join(FAMILY_MODULES)}")
    try:
        return importlib.import_module(FAMILY_MODULES[family])
    except ModuleNotFoundError as exc:
        if exc.name != FAMILY_MODULES[family]:
            raise
        raise FamilyNotAvailableError(f"model family {family!r} is not implemented in this installation "
                                      f"(module {FAMILY_MODULES[family]} is missing)") from exc


def _detached_tensors(prior: GenerativePrior) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors; a tensor sharing memory with an earlier one is copied (safetensors refuses aliases)."""
    seen_storages: set[int] = set()
    tensors = {}
    for name, t in prior.state_dict().items():
        t = t.detach().cpu().contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in seen_storages:
            t = t.clone()
        seen_storages.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    return tensors


def save_native(prior: GenerativePrior, path: str | Path, *, source: dict[str, Any] | None = None) -> Path:
    """Write ``prior`` as one safetensors file, atomically (temp file, fsync, rename)."""
    path = Path(path)
    config = prior.config()
    if config.get("family") != prior.family:
        raise ModelFormatError(f"{type(prior).__name__}.config() must contain family={prior.family!r}")
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": json.dumps(config)}
    if source is not None:
        metadata["source"] = json.dumps(source)
    tensors = _detached_tensors(prior)
    metadata[DIGEST_KEY] = tensor_digest(tensors)  # checked on load: flipped bits are refused
    with atomic_path(path, fsync=True) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not possible on every OS/filesystem; best effort there)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_metadata(fh, path: Path) -> tuple[list, dict[str, str], dict[str, Any]]:
    size = os.fstat(fh.fileno()).st_size
    try:
        entries, meta = read_header(fh, size, str(path))
    except NotSafetensorsError as exc:
        raise ModelFormatError(str(exc)) from exc
    if meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path} is a safetensors file but not a ganprior model "
                               f"(metadata 'format' is {meta.get('format')!r}, expected {FORMAT_NAME!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path} uses native format version {meta.get('format_version')!r}; "
                               f"this ganprior reads version {FORMAT_VERSION}")
    try:
        config = json.loads(meta["config"], parse_constant=_refuse_constant)
        source = json.loads(meta["source"], parse_constant=_refuse_constant) if "source" in meta else None
    except (KeyError, ValueError, RecursionError) as exc:
        raise ModelFormatError(f"{path} has a missing or malformed config in its metadata: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("family"), str):
        raise ModelFormatError(f"{path}: config must be a JSON object with a 'family' string")
    validate_config(config, str(path))
    return entries, meta, {"config": config, "source": source}


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a config may hold")


def read_native_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of a native file: ``{"config": {...}, "source": {...} | None}``."""
    path = Path(path)
    with open_regular(path, "model file") as fh:
        return _read_metadata(fh, path)[2]


def load_native(path: str | Path, device: str | torch.device = "cpu") -> GenerativePrior:
    """Rebuild a prior from a native file (no pickle involved), in eval mode on ``device``.

    The header is checked against the file before any tensor is read; the tensor digest, when the file
    has one (files written before it was introduced do not), must match."""
    path = Path(path)
    with open_regular(path, "model file") as fh:
        entries, meta, decoded = _read_metadata(fh, path)
        state_dict = read_tensors(fh, entries, meta, str(path))
    config = decoded["config"]
    module = family_module(config["family"])
    carried = sum(t.numel() for t in state_dict.values())
    prior = build_network(lambda: module.from_config(config, state_dict), carried, str(path),
                          f"tensors/config do not fit the {config['family']} model", ModelFormatError)
    return prior.to(device).eval()
