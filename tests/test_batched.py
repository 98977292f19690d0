"""Batched W / W+ projection, CRI's offset stage, PULSE and DGP's candidate selection equal one-at-a-time
runs with the same seeds (per-image Adam, classes, starts, results), and an image whose loss turns
non-finite stops alone while the others go on."""

from __future__ import annotations

import pytest
import torch

from ganprior.degradations import parse_task
from ganprior.loading import load_model
from ganprior.methods import get_method_class
from ganprior.methods.batched import project_batch
from ganprior.methods.dgp import DGPLoss, select_latent, select_latents
from ganprior.methods.dgp_presets import schedule_for_task
from trajectories import TRAJECTORY_RTOL, assert_same_trajectory

OPTIONS = dict(steps=6, n_samples=200, w_avg_samples=200, perceptual="mse", l2_weight=1.0)
#: the stacked loop's PULSE (the generator's own noise maps, no eps rule); the official options run per image
PULSE = dict(steps=6, fit_samples=500, n_samples=200, noise="const", eps=0.0)
DGP = dict(table="fast", schedule=schedule_for_task("sr4"), select_num=10, select_chunk=4, max_stage_steps=1)
FAST = {"wplus": OPTIONS, "pulse": PULSE, "dgp": DGP}


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


def test_batched_cri_equals_sequential(setup):
    """CRI: per-image centroid start and offset regulariser in the stacked offset stage, then per-image
    pivotal tuning with per-image weights give what one-at-a-time runs give."""
    prior, degradation, observations = setup
    method = get_method_class("cri")(offset_steps=6, tuning_steps=2, n_samples=200, n_clusters=4,
                                     perceptual="mse", l2_weight=1.0, cache=False)
    classes, seeds = [0, 4, None], [11, 12, 13]
    batched = project_batch(method, prior, degradation, observations, class_indices=classes, seeds=seeds)
    for obs, cls, seed, got in zip(observations, classes, seeds, batched):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert got.class_index == alone.class_index and got.class_source == alone.class_source
        assert got.extras["centroid_index"] == alone.extras["centroid_index"]
        assert got.extras["offset_norm"] == pytest.approx(alone.extras["offset_norm"], rel=TRAJECTORY_RTOL)
        assert got.extras["offset_norm"] > 0
        assert_same_trajectory(got, alone)
        assert got.generator_delta.keys() == alone.generator_delta.keys() and got.generator_delta
        # Adam's first updates are about ±lr whatever the gradient's size, so rounding (grouped vs plain
        # convolutions, 1e-7 pivot differences) flips some weights' updates: bound those by Adam's step
        diffs = torch.cat([(value - alone.generator_delta[key]).abs().flatten()
                           for key, value in got.generator_delta.items()])
        assert diffs.max() <= 2 * method.options["tuning_lr"] * method.options["tuning_steps"]
        offsets = [e["offset_norm"] for e in got.losses if e["stage"] == "offset"]
        assert len(offsets) == 6 and offsets == pytest.approx(
            [e["offset_norm"] for e in alone.losses if e["stage"] == "offset"], rel=TRAJECTORY_RTOL, abs=1e-7)


@pytest.mark.parametrize("name, options", [("wplus", dict(OPTIONS, steps=20)),
                                           ("cri", dict(offset_steps=20, tuning_steps=0, n_samples=200,
                                                        n_clusters=4, perceptual="mse", l2_weight=1.0, cache=False)),
                                           ("pulse", dict(PULSE, steps=20)),
                                           ("dgp", dict(DGP, max_stage_steps=2))])
def test_batch_of_one_is_bit_identical_to_sequential(setup, name, options):
    """The batched loop is the sequential one: only batch-size-dependent kernel rounding differs."""
    prior, degradation, observations = setup
    method = get_method_class(name)(**options)
    got, = project_batch(method, prior, degradation, observations[1:2], class_indices=[4], seeds=[12])
    alone = method.run(prior, degradation, observations[1], class_index=4, seed=12, progress=False)
    assert torch.equal(got.latent, alone.latent) and torch.equal(got.image, alone.image)
    assert [e["loss"] for e in got.losses] == [e["loss"] for e in alone.losses]


def test_batched_pulse_equals_sequential(setup):
    """Stacked spherical latents: per-image Gaussian fit, GEOCROSS and radii (renormalised row by row)."""
    prior, degradation, observations = setup
    method = get_method_class("pulse")(**PULSE)
    classes, seeds = [0, 4, None], [11, 12, 13]
    batched = project_batch(method, prior, degradation, observations, class_indices=classes, seeds=seeds)
    for obs, cls, seed, got in zip(observations, classes, seeds, batched):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert got.class_index == alone.class_index and got.class_source == alone.class_source
        assert_same_trajectory(got, alone)  # a leaky-ReLU kink flip moved image 0 by 1e-3 here (AMD EPYC)
        for key in ("l2", "geocross"):
            assert [e[key] for e in got.losses] == pytest.approx([e[key] for e in alone.losses],
                                                                 rel=TRAJECTORY_RTOL, abs=1e-7)
        assert len(got.losses) == 6 and got.stopped is None


def test_batched_official_pulse_runs_each_image_alone(setup):
    """PULSE's noise maps and eps rule are per image: the batch runs them one image at a time."""
    prior, degradation, observations = setup
    method = get_method_class("pulse")(steps=3, fit_samples=500, n_samples=200)
    assert method.runs_alone(prior)
    got = project_batch(method, prior, degradation, observations[:2], class_indices=[0, 4], seeds=[11, 12])
    for obs, cls, seed, g in zip(observations, [0, 4], [11, 12], got):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert torch.equal(g.latent, alone.latent) and g.extras["pulse"] == alone.extras["pulse"]


def test_batched_dgp_selection_picks_what_one_at_a_time_picks(setup):
    """Candidates of all images scored together (chunks straddle images): each picks the same draw, class
    and start latent as alone; its stages then run one image at a time."""
    prior, degradation, observations = setup
    losses = [DGPLoss(prior, degradation, obs) for obs in observations]
    classes, seeds = [0, None, 7], [11, 12, 13]
    together = select_latents(prior, losses, classes, n=10, std=0.5, chunk=4, seeds=seeds)
    for loss, cls, seed, got in zip(losses, classes, seeds, together):
        alone = select_latent(prior, loss, cls, n=10, std=0.5, chunk=4, seed=seed)
        assert (got.candidate, got.class_index, got.class_sampled) == (alone.candidate, alone.class_index,
                                                                       alone.class_sampled)
        assert torch.equal(got.latent, alone.latent)
        assert got.score == pytest.approx(alone.score, rel=1e-5)
    assert len({s.candidate for s in together}) > 1 or len({s.class_index for s in together}) > 1
    method = get_method_class("dgp")(**DGP)
    batched = project_batch(method, prior, degradation, observations, class_indices=classes, seeds=seeds)
    for obs, cls, seed, got in zip(observations, classes, seeds, batched):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert got.extras["selection"] == pytest.approx(alone.extras["selection"], rel=1e-5)
        assert got.class_index == alone.class_index and got.class_source == alone.class_source
        assert (got.latent - alone.latent).abs().max() <= 1e-5
        assert (got.image - alone.image).abs().max() <= 1e-5
        assert [e["loss"] for e in got.losses] == pytest.approx([e["loss"] for e in alone.losses], rel=1e-5)
        assert got.generator_delta.keys() == alone.generator_delta.keys() and got.generator_delta


@pytest.mark.parametrize("name", ["wplus", "pulse", "dgp"])
def test_non_finite_image_stops_alone(setup, name):
    prior, degradation, observations = setup
    bad = [observations[0], observations[1] * float("nan")]
    method = get_method_class(name)(**FAST[name])
    good, broken = project_batch(method, prior, degradation, bad, class_indices=[0, 4], seeds=[11, 12])
    alone = method.run(prior, degradation, observations[0], class_index=0, seed=11, progress=False)
    assert broken.stopped and "non-finite" in broken.stopped and good.stopped is None
    assert (good.latent - alone.latent).abs().max() <= 1e-5
    assert torch.isfinite(broken.latent).all()


def test_tuning_groups_fall_back_to_one_image_at_a_time_when_stacked_weights_would_not_fit(setup, monkeypatch):
    """Full-size networks (4.7 GB of stacked tuning state per image for StyleGAN-XL-512) tune one image at a
    time on a generator copy: bit-identical to sequential runs."""
    import ganprior.methods.batched as batched

    prior, degradation, observations = setup
    per_image = 5 * 4 * sum(p.numel() for p in prior.synthesis_parameters())
    monkeypatch.setattr(batched, "TUNING_GROUP_BYTES", 2 * per_image)
    assert batched.tuning_groups(prior, 5) == [range(0, 2), range(2, 4), range(4, 5)]
    monkeypatch.setattr(batched, "TUNING_GROUP_PIXELS", 3 * prior.resolution**2 + 1)
    monkeypatch.setattr(batched, "TUNING_GROUP_BYTES", 10 * per_image)
    assert batched.tuning_groups(prior, 4) == [range(0, 3), range(3, 4)]
    monkeypatch.setattr(batched, "TUNING_GROUP_BYTES", per_image - 1)
    assert batched.tuning_groups(prior, 3) == [range(0, 1), range(1, 2), range(2, 3)]
    method = get_method_class("pti")(projection_steps=3, tuning_steps=2, w_avg_samples=200, perceptual="mse",
                                     n_samples=200)
    got = project_batch(method, prior, degradation, observations[:2], class_indices=[0, 4], seeds=[1, 2])
    for obs, cls, seed, result in zip(observations[:2], [0, 4], [1, 2], got):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert torch.equal(result.image, alone.image) and torch.equal(result.latent, alone.latent)
