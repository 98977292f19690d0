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


def test_filtered_lrelu_recomputation_gives_the_same_gradients(monkeypatch):
    from ganprior.ops import filtered_lrelu as op

    g = torch.Generator().manual_seed(0)
    x0, b0 = torch.randn(2, 4, 12, 12, generator=g), torch.randn(4, generator=g)
    fu = fd = torch.tensor([0.1, 0.4, 0.4, 0.1])

    def grads(threshold: int):
        monkeypatch.setattr(op, "RECOMPUTE_NUMEL", threshold)
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = op.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=3, clamp=2.0)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        return y.detach(), x.grad, b.grad

    stored, recomputed = grads(2**40), grads(1)
    for a, b in zip(stored, recomputed):
        assert torch.equal(a, b)


def test_scoring_chunks_shrink_with_resolution():
    from ganprior.methods.centroids import render_chunk

    assert render_chunk(8, 32) == 8 and render_chunk(8, 128) == 8
    assert render_chunk(8, 256) == 2 and render_chunk(8, 512) == 1 and render_chunk(8, 1024) == 1
