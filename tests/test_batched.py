"""Batched W / W+ projection equals one-at-a-time runs with the same seeds (per-image Adam, classes,
results), and an image whose loss turns non-finite stops alone while the others go on."""

from __future__ import annotations

import pytest
import torch

from ganprior.degradations import parse_task
from ganprior.loading import load_model
from ganprior.methods import get_method_class
from ganprior.methods.batched import project_batch

OPTIONS = dict(steps=6, n_samples=200, w_avg_samples=200, perceptual="mse", l2_weight=1.0)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    prior = load_model("emoji32").requires_grad_(False)
    degradation = parse_task("sr4", image_size=(32, 32))
    with torch.no_grad():
        clean = prior.sample(3, classes=[0, 4, 7], seed=3)
        observations = [degradation(clean[i:i + 1]) for i in range(3)]
    return prior, degradation, observations


@pytest.mark.parametrize("name", ["w", "wplus"])
def test_batched_equals_sequential(setup, name):
    prior, degradation, observations = setup
    method = get_method_class(name)(**OPTIONS)
    classes, seeds = [0, 4, 7], [11, 12, 13]
    batched = project_batch(method, prior, degradation, observations, class_indices=classes, seeds=seeds)
    for obs, cls, seed, got in zip(observations, classes, seeds, batched):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert got.class_index == alone.class_index == cls
        assert (got.latent - alone.latent).abs().max() <= 1e-5
        assert (got.image - alone.image).abs().max() <= 1e-5
        assert [e["loss"] for e in got.losses] == pytest.approx([e["loss"] for e in alone.losses], rel=1e-5, abs=1e-7)
        assert got.stopped is None


def test_non_finite_image_stops_alone(setup):
    prior, degradation, observations = setup
    bad = [observations[0], observations[1] * float("nan")]
    method = get_method_class("wplus")(**OPTIONS)
    good, broken = project_batch(method, prior, degradation, bad, class_indices=[0, 4], seeds=[11, 12])
    alone = method.run(prior, degradation, observations[0], class_index=0, seed=11, progress=False)
    assert broken.stopped and "non-finite" in broken.stopped and good.stopped is None
    assert (good.latent - alone.latent).abs().max() <= 1e-5
    assert torch.isfinite(broken.latent).all()
