"""``--compile``: torch.compile'd synthesis equals eager (and the official fixture) to 1e-4, keeps the
state-dict keys, and a deep copy (pivotal tuning's tuned generator) renders with its own weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ganprior.loading import load_official
from ganprior.models.compiled import compile_prior, is_compiled

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_compiled_synthesis_matches_eager_and_official(official_dir):
    case = official_dir / "sg2_uncond_32"
    ref = np.load(case / "reference.npz")
    eager = load_official(case / "network-snapshot.stripped.pkl").requires_grad_(False)
    keys = list(eager.state_dict())
    compiled = compile_prior(copy.deepcopy(eager))
    assert is_compiled(compiled.G.synthesis) and is_compiled(compiled.D, "forward_with_features")
    assert list(compiled.state_dict()) == keys
    ws = torch.from_numpy(ref["w_psi1"])
    with torch.no_grad():
        out, expected = compiled.synthesis(ws), eager.synthesis(ws)
        assert (out - expected).abs().max() <= 1e-4
        assert (out - torch.from_numpy(ref["img_const_psi1"])).abs().max() <= 1e-4

        tuned = copy.deepcopy(compiled)  # what pivotal tuning does
        for p in tuned.G.synthesis.parameters():
            p.mul_(1.1)
        assert is_compiled(tuned.G.synthesis) and tuned.G.synthesis.forward.__self__ is tuned.G.synthesis
        moved = tuned.synthesis(ws)
        assert (moved - out).abs().max() > 1e-2  # the copy's own weights, not the original's
        reference = copy.deepcopy(eager)
        for p in reference.G.synthesis.parameters():
            p.mul_(1.1)
        assert (moved - reference.synthesis(ws)).abs().max() <= 1e-4
