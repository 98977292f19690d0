"""Shared helpers for the parity tests against the official fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganprior.loading.safe_pickle import load_official_pickle


def load_case(official_dir: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """The case's safely-parsed pickle and its reference arrays (as tensors)."""
    data = load_official_pickle(official_dir / name / "network-snapshot.stripped.pkl")
    ref = np.load(official_dir / name / "reference.npz")
    return data, {k: torch.from_numpy(ref[k]) for k in ref.files}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()
