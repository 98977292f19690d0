"""Uncertainty, hallucination and calibration maps (issue: K restorations, what is known and what invented).

The maps are checked on the real task operators with synthetic "samples" that differ arbitrarily and are
then fused with one observation, exactly as restore fuses every result: so the tests say what the maps
guarantee for any method's samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganprior.api import CONSISTENT_FUSION
from ganprior.consistency import consistent_fuse
from ganprior.degradations import parse_task, to_gray
from ganprior.samples.calibration import sparsification
from ganprior.samples.maps import determined_part, hallucination, sample_spread
from ganprior.samples.render import heatmap, samples_sheet, save_map


def _fused_samples(task: str, k: int = 4, size: int = 32, mask=None):
    torch.manual_seed(0)
    clean = torch.rand(1, 3, size, size) * 2 - 1
    op = parse_task(task, mask=mask, image_size=(size, size), **CONSISTENT_FUSION)
    y = op(clean)
    raw = torch.rand(k, 3, size, size) * 2 - 1  # K arbitrary restorations
    fused = torch.cat([consistent_fuse(op, raw[i:i + 1], y) for i in range(k)])
    return op, y, fused


def test_inpainting_std_is_zero_on_observed_pixels_and_positive_in_the_hole():
    op, _, samples = _fused_samples("inpaint", mask="center")
    _, std = sample_spread(samples)
    observed = op.ops[0].mask.bool().expand_as(std)
    assert float(std[observed].abs().max()) == 0.0
    assert float(std[~observed].min()) > 0.0


def test_colorization_samples_agree_on_the_grey_channel():
    _, y, samples = _fused_samples("colorize")
    _, grey_std = sample_spread(to_gray(samples))
    assert float(grey_std.max()) <= 0.5  # grey levels: the fused greys differ by 8-bit-level rounding at most
    _, colour_std = sample_spread(samples)
    assert float(colour_std.mean()) > 10.0  # ... while the colours differ


def test_sr_every_sample_reproduces_the_observation():
    op, y, samples = _fused_samples("sr4")
    for sample in samples:
        assert float((op(sample[None]) - y).abs().max()) * 127.5 <= 1.0


def test_hallucination_is_the_hole_for_inpainting_and_the_chroma_for_colorization():
    op, _, samples = _fused_samples("inpaint", mask="center")
    x = samples[:1]
    h = hallucination(op, x)
    observed = op.ops[0].mask.bool()
    assert float(h[observed.expand_as(h)].max()) == 0.0
    assert torch.allclose(h[~observed.expand_as(h)], (x.pow(2).mean(1, keepdim=True).sqrt() * 127.5)[~observed])

    op, _, samples = _fused_samples("colorize")
    x = samples[:1]
    grey = to_gray(x).expand(-1, 3, -1, -1)
    assert float((determined_part(op, x) - grey).abs().max()) * 127.5 <= 1.0  # A⁺A x is the grey photo
    assert float(hallucination(op, grey).max()) <= 1.0  # a grey image holds nothing the observation lacks


def test_hallucination_for_sr_is_the_detail_above_the_observed_band():
    op, _, samples = _fused_samples("sr4")
    x = samples[:1]
    smooth = determined_part(op, x)
    assert float((op(smooth) - op(x)).abs().max()) * 127.5 <= 1.0  # same observation ...
    assert float(hallucination(op, smooth).max()) <= 1.0  # ... and nothing invented in the smooth one
    assert float(hallucination(op, x).mean()) > 10.0  # random detail is all invented


def test_sparsification_ranks_a_perfect_map_at_zero_and_chance_well_above():
    rng = np.random.default_rng(1)
    error = rng.random(4096)
    perfect = sparsification(error * 3.0, error)
    assert perfect["ause"] == pytest.approx(0.0, abs=1e-12)
    assert perfect["pearson"] == pytest.approx(1.0)
    assert perfect["ause_random"] > 0.1
    noise = sparsification(rng.random(4096), error)
    assert noise["ause"] > 0.5 * noise["ause_random"]  # an unrelated map is no better than chance
    assert abs(noise["pearson"]) < 0.1


def test_maps_render(tmp_path):
    op, y, samples = _fused_samples("inpaint", mask="center")
    mean, std = sample_spread(samples)
    h = hallucination(op, samples[:1])
    colour = heatmap(std)
    assert colour.shape == (1, 3, 32, 32) and float(colour.min()) >= -1 and float(colour.max()) <= 1
    save_map(std, tmp_path / "uncertainty.png", "uncertainty")
    sheet = samples_sheet(y, list(samples.split(1)), std, h, mean, op.ops[0].mask, tmp_path / "sheet.png")
    assert (tmp_path / "uncertainty.png").stat().st_size > 1000 and sheet.width > 6 * 128
