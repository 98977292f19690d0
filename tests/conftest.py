"""Shared test fixtures: where the official parity fixtures live, and a fast torch setup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GANPRIOR_SHARED", REPO.parent / "shared"))
OFFICIAL = SHARED / "fixtures" / "official"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def official_dir() -> Path:
    """The official-network fixtures; tests that need them skip cleanly when ../shared is absent."""
    if not (OFFICIAL / "manifest.json").exists():
        pytest.skip(f"official parity fixtures not found at {OFFICIAL} (set GANPRIOR_SHARED or place ../shared)")
    return OFFICIAL


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run fastest (and fairest on a shared CPU) on one thread; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
