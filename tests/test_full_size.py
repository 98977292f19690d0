"""Full-size readiness, quick version: the released architectures at 1/16 width and 32² (BigGAN at
128²) run every method that applies, one step per stage, through ``ganprior.restore``; the full-size
configurations themselves are checked against the registry (bench/full_size.py measures them)."""

from __future__ import annotations

import math

import pytest
import torch

from ganprior.bench import full_size

pytestmark = pytest.mark.usefixtures("one_thread")


def test_full_size_xl_schedule_has_the_papers_37_ws():
    synthesis = full_size.stylegan_xl_synthesis(512)
    assert len(synthesis["layers"]) + 1 == 37
    assert synthesis["img_resolution"] == 512
    assert max(layer["out_channels"] for layer in synthesis["layers"]) == 1024


@pytest.mark.parametrize("name", list(full_size.ARCHITECTURES))
def test_reduced_architecture_runs_every_method(name):
    prior = full_size.build(name, width=1 / 16, resolution=32)
    assert prior.resolution == (128 if name.startswith("biggan") else 32)
    for method in full_size.ARCHITECTURES[name][1]:
        out = full_size.run_method(prior, method, steps=1, perceptual="vgg16-random")
        assert out["stopped"] is None, (method, out["stopped"])
        assert out["s_per_step"] and all(math.isfinite(v) and v > 0 for v in out["s_per_step"].values())


def test_step_measures_batches():
    prior = full_size.build("stylegan2-ffhq-1024x1024", width=1 / 16, resolution=32)
    one, two = full_size.run_step(prior, 1), full_size.run_step(prior, 2)
    assert one["batch"] == 1 and two["batch"] == 2 and two["s_per_step"] > 0


def test_random_vgg_reduces_large_images_like_nvidia_vgg16():
    distance = full_size.RandomVGG16Distance(width=1 / 16)
    a, b = torch.rand(2, 3, 512, 512) * 2 - 1, torch.rand(2, 3, 512, 512) * 2 - 1
    taps = distance._taps(a)
    assert taps[0].shape[-1] == 256  # area-reduced to 256² first
    d = distance(a, b)
    assert d.shape == (2,) and torch.all(d > 0) and torch.allclose(distance(a, a), torch.zeros(2), atol=1e-6)
