"""Resumable training checkpoints: one ``torch.save`` file written atomically, read without pickle code.

A crash or a kill in the middle of a save must never leave a truncated ``ckpt.pt`` behind (the
run would then lose hours), so we write a temporary file in the same folder, fsync it and rename.
Loading uses ``weights_only=True``: a checkpoint holds only tensors, numbers, strings and dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganprior.atomic import atomic_path


class CheckpointError(RuntimeError):
    """A training checkpoint is missing, unreadable, or does not belong to this kind of run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically write ``state`` (tensors, numbers, strings, lists and dicts of them) to ``path``."""
    path = Path(path)
    with atomic_path(path, fsync=True) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt/foreign files
        raise CheckpointError(f"{path} is not a readable training checkpoint: {err}") from err
    if not isinstance(state, dict) or "iteration" not in state:
        raise CheckpointError(f"{path} is not a ganprior training checkpoint")
    return state
