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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ganprior.atomic import atomic_path
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


class ModelFormatError(ValueError):
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
    with atomic_path(path, fsync=True) as tmp:
        save_file(_detached_tensors(prior), str(tmp), metadata=metadata)
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


def read_native_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of a native file: ``{"config": {...}, "source": {...} | None}``."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ModelFormatError(f"{path} is not a safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path} is a safetensors file but not a ganprior model "
                               f"(metadata 'format' is {meta.get('format')!r}, expected {FORMAT_NAME!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path} uses native format version {meta.get('format_version')!r}; "
                               f"this ganprior reads version {FORMAT_VERSION}")
    try:
        config = json.loads(meta["config"])
        source = json.loads(meta["source"]) if "source" in meta else None
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path} has a missing or malformed config in its metadata: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("family"), str):
        raise ModelFormatError(f"{path}: config must be a JSON object with a 'family' string")
    return {"config": config, "source": source}


def load_native(path: str | Path, device: str | torch.device = "cpu") -> GenerativePrior:
    """Rebuild a prior from a native file (no pickle involved), in eval mode on ``device``."""
    path = Path(path)
    config = read_native_metadata(path)["config"]
    module = family_module(config["family"])
    state_dict = load_file(str(path), device="cpu")
    try:
        prior = module.from_config(config, state_dict)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{path}: tensors/config do not fit the {config['family']} model: {exc}") from exc
    return prior.to(device).eval()
