"""Batched pivotal tuning (per-image weights under vmap) equals one-at-a-time pivotal tuning with the same
seeds: bit-identical at batch 1, to float rounding at batch 3; a non-finite image stops alone. PTI's and
CRI's batched entries give what ``method.run`` gives."""

from __future__ import annotations

import pytest
import torch

from ganprior.degradations import parse_task
from ganprior.loading import load_model, load_official
from ganprior.methods import get_method_class
from ganprior.methods.base import RunRecorder
from ganprior.methods.batched_tuning import (cri_tune_batch, pivotal_tuning_batch, pti_batch, render_with_weights,
                                             tuned_parameter_names, tuned_results)
from ganprior.methods.pti import generator_delta, pivotal_tuning
from trajectories import assert_same_trajectory

pytestmark = pytest.mark.usefixtures("one_thread")

TUNING = dict(steps=3, lr=3e-4, reg_weight=1.0, reg_alpha=30.0, reg_perceptual_weight=10.0, reg_l2_weight=1.0)
SEEDS = [11, 12, 13]


@pytest.fixture(scope="module")
def setup():
    prior = load_model("emoji32").requires_grad_(False)
    degradation = parse_task("sr4", image_size=(32, 32))
    method = get_method_class("pti")(perceptual="feature-net", l2_weight=1.0, n_samples=200, w_avg_samples=200)
    with torch.no_grad():
        clean = prior.sample(3, classes=[0, 4, 7], seed=3)
        observations = [degradation(clean[i:i + 1]) for i in range(3)]
        pivots = prior.mapping(torch.randn(3, prior.z_dim, generator=torch.Generator().manual_seed(5)),
                               prior.class_matrix([0, 4, 7], 3), truncation_psi=0.7)
    runs = [method.start(prior, degradation, obs, None, cls, seed, False, 0)
            for obs, cls, seed in zip(observations, [0, 4, 7], SEEDS)]
    return prior, degradation, observations, method, pivots, runs


def _fresh(runs):
    for run in runs:
        run.recorder = RunRecorder(progress=False)
    return runs


def _alone(prior, pivots, runs, k, **options):
    tuned = pivotal_tuning(prior, pivots[k:k + 1], runs[k].c, runs[k].loss, runs[k].recorder, seed=SEEDS[k],
                           **{**TUNING, **options})
    return tuned, runs[k].recorder


def _assert_close_weights(got, tuned, steps=TUNING["steps"]):
    """Equal to 1e-5 but for the few Adam sign flips (see test_batch_of_three_equals_one_at_a_time)."""
    own = dict(tuned.named_parameters()) if isinstance(tuned, torch.nn.Module) else tuned
    diffs = torch.cat([(value - own[name]).abs().flatten() for name, value in got.items()])
    assert diffs.max() <= 2 * TUNING["lr"] * steps and (diffs > 1e-5).float().mean() <= 0.005


def _batched(prior, pivots, runs, seeds=SEEDS, **options):
    c = torch.cat([run.c for run in runs])
    return pivotal_tuning_batch(prior, pivots, c, [run.loss for run in runs], [run.recorder for run in runs],
                                seeds, **{**TUNING, **options})


def test_batch_of_one_is_bit_identical(setup):
    prior, _, _, method, pivots, runs = setup
    got, = _batched(prior, pivots[1:2], _fresh(runs[1:2]), SEEDS[1:2])
    batched_losses = runs[1].recorder.losses
    alone, recorder = _alone(prior, pivots, _fresh(runs), 1)
    assert [e["loss"] for e in batched_losses] == [e["loss"] for e in recorder.losses]
    assert batched_losses[-1].keys() == recorder.losses[-1].keys() >= {"perceptual", "l2", "locality"}
    own = dict(alone.named_parameters())
    assert got.keys() and all(torch.equal(value, own[name]) for name, value in got.items())


def test_batch_of_three_equals_one_at_a_time(setup):
    """Two steps: the loss curves agree to 1e-5 (relative). Adam's first updates are about ±lr whatever
    the gradient's size, so an element whose gradient is near zero can flip sign on rounding: a few
    weights (~0.1 %) then differ by up to 2·lr per step, the rest agree to 1e-5, and the tuned images
    by about 1e-5 (measured 1.06e-5 on an Intel CPU, 3.6e-5 on an AMD EPYC: the kernels round
    differently; bound 1e-4, under 1 % of what the two steps changed)."""
    prior, _, _, method, pivots, runs = setup
    steps = 2
    got = _batched(prior, pivots, _fresh(runs), steps=steps)
    curves = [[e["loss"] for e in run.recorder.losses] for run in runs]
    for k in range(3):
        alone, recorder = _alone(prior, pivots, _fresh(runs), k, steps=steps)
        assert curves[k] == pytest.approx([e["loss"] for e in recorder.losses], rel=1e-5, abs=1e-7)
        _assert_close_weights(got[k], alone, steps)
        with torch.no_grad():
            image = alone.synthesis(pivots[k:k + 1], runs[k].c).clamp(-1, 1)
        result, = tuned_results(method, prior, pivots[k:k + 1], runs[k:k + 1], [got[k]])
        with torch.no_grad():
            untuned = prior.synthesis(pivots[k:k + 1], runs[k].c).clamp(-1, 1)
        assert (result.image - image).abs().max() <= min(1e-4, 0.01 * (image - untuned).abs().max())
        assert result.generator_delta.keys() == generator_delta(prior, alone).keys()


def test_non_finite_image_stops_alone(setup):
    """A NaN pivot makes image 1 non-finite at step 0: it keeps the original weights (no delta), and the
    other images equal their batch-of-two run without it."""
    prior, _, _, method, pivots, runs = setup
    poisoned = pivots.clone()
    poisoned[1] = float("nan")
    got = _batched(prior, poisoned, _fresh(runs))
    assert runs[1].recorder.stopped.startswith("non-finite loss") and runs[1].recorder.losses == []
    results = tuned_results(method, prior, poisoned, runs, got)
    assert results[1].generator_delta == {} and results[0].generator_delta
    for k in (0, 2):
        assert runs[k].recorder.stopped is None and len(runs[k].recorder.losses) == TUNING["steps"]
    healthy = [runs[0], runs[2]]
    curves = [[e["loss"] for e in run.recorder.losses] for run in healthy]
    pair = pivotal_tuning_batch(prior, pivots[[0, 2]], torch.cat([r.c for r in healthy]),
                                [r.loss for r in healthy], [r.recorder for r in _fresh(healthy)], [SEEDS[0], SEEDS[2]],
                                **TUNING)
    for k, other in zip((0, 2), pair):
        _assert_close_weights(got[k], other)
    assert curves == [pytest.approx([e["loss"] for e in r.recorder.losses], rel=1e-5) for r in healthy]


def test_callback_stop_is_per_image(setup):
    """Image 0's callback stops it at its second step (back to its best weights, as one-at-a-time tuning
    does) while image 2 runs to the end."""
    prior, _, _, _, pivots, runs = setup

    def stop_at_second_step(step, stage, loss, preview):
        return step < 1

    pair = _fresh([runs[0], runs[2]])
    pair[0].recorder.callback = stop_at_second_step
    got = _batched(prior, pivots[[0, 2]], pair, [SEEDS[0], SEEDS[2]])
    assert pair[0].recorder.interrupted and len(pair[0].recorder.losses) == 2
    assert pair[1].recorder.stopped is None and len(pair[1].recorder.losses) == TUNING["steps"]
    _fresh(runs)[0].recorder.callback = stop_at_second_step
    alone, recorder = _alone(prior, pivots, runs, 0)
    assert recorder.interrupted and len(recorder.losses) == 2
    _assert_close_weights(got[0], alone)


@pytest.mark.parametrize("name", ["pti", "cri"])
def test_method_batches_equal_method_runs(setup, name):
    """``pti_batch`` and ``cri_tune_batch`` (after CRI's stacked offset stage) against ``method.run``."""
    from ganprior.methods.batched import StackedStage, _optimize_stacked
    from ganprior.methods.base import stylegan_lr_ramp
    from ganprior.methods.projection import broadcast_ws

    prior, degradation, observations, _, _, _ = setup
    common = dict(tuning_steps=2, n_samples=200, perceptual="mse", l2_weight=1.0)
    method = get_method_class(name)(**common, **(dict(projection_steps=4, w_avg_samples=200) if name == "pti" else
                                                 dict(offset_steps=4, n_clusters=4, cache=False)))
    classes = [0, 4, 7]
    runs = [method.start(prior, degradation, obs, None, cls, seed, False, 0)
            for obs, cls, seed in zip(observations, classes, SEEDS)]
    if name == "pti":
        batched = pti_batch(method, prior, runs, SEEDS)
    else:
        base = torch.cat([method.centroid_start(prior, run, seed) for run, seed in zip(runs, SEEDS)])
        stage = StackedStage("offset", 4, stylegan_lr_ramp(method.options["offset_lr"]),
                             lambda latent: base + broadcast_ws(latent, prior.num_ws),
                             ("offset_norm", 1.0, lambda k, latent, ws: torch.linalg.vector_norm(latent[k])))
        pivots = _optimize_stacked(prior, runs, torch.cat([r.c for r in runs]), torch.zeros_like(base), stage)
        batched = cri_tune_batch(method, prior, base, pivots, runs, SEEDS)
    for obs, cls, seed, got in zip(observations, classes, SEEDS, batched):
        alone = method.run(prior, degradation, obs, class_index=cls, seed=seed, progress=False)
        assert_same_trajectory(got, alone)
        assert got.generator_delta.keys() == alone.generator_delta.keys() and got.generator_delta
        assert got.extras.keys() == alone.extras.keys() and got.stopped is None


@pytest.mark.parametrize("case", ["sg3_t_64", "sgxl_16"])
def test_stylegan3_and_xl_synthesis_batch_per_image_weights(official_dir, case):
    """vmap over per-image weights renders what each image's own copy renders (SynthesisInput builds its
    transform out of place, which vmap needs)."""
    prior = load_official(official_dir / case / "network-snapshot.stripped.pkl").requires_grad_(False)
    c = prior.class_matrix([1, 2], 2) if prior.c_dim else torch.zeros(2, 0)
    ws = prior.mapping(torch.randn(2, prior.z_dim, generator=torch.Generator().manual_seed(0)),
                       c if prior.c_dim else None)
    own = dict(prior.named_parameters())
    g = torch.Generator().manual_seed(1)
    weights = {name: own[name].detach() * (1 + 0.01 * torch.randn(2, *own[name].shape, generator=g))
               for name in tuned_parameter_names(prior)}
    with torch.no_grad():
        batched = render_with_weights(prior, weights, ws[:, None], c[:, None])[:, 0]
        for k in range(2):
            copy = load_official(official_dir / case / "network-snapshot.stripped.pkl")
            mine = dict(copy.named_parameters())
            for name, value in weights.items():
                mine[name].copy_(value[k])
            assert (batched[k] - copy.synthesis(ws[k:k + 1], c[k:k + 1])[0]).abs().max() <= 1e-5


def test_two_pass_locality_equals_one_pass(setup, monkeypatch):
    """Above ``JOINT_RENDER_PIXELS`` (full-size networks) the locality latent gets its own forward and
    backward before the pivot renders: the same loss curve and weights as the one-pass batch of two, to
    float rounding (same Adam sign-flip bound as the batched tests)."""
    from ganprior.methods import pti

    prior, _, _, _, pivots, runs = setup
    batches = []
    synthesis = type(prior).synthesis

    def counted(self, ws, *args, **kwargs):
        if torch.is_grad_enabled():  # the tuned generator's renders (the original's run under no_grad)
            batches.append(ws.shape[0])
        return synthesis(self, ws, *args, **kwargs)

    monkeypatch.setattr(type(prior), "synthesis", counted)
    joint, joint_rec = _alone(prior, pivots, _fresh(runs), 2)
    assert batches == [2] * TUNING["steps"]  # one batch of two per step
    batches.clear()
    monkeypatch.setattr(pti, "JOINT_RENDER_PIXELS", 0)
    split, split_rec = _alone(prior, pivots, _fresh(runs), 2)
    assert batches == [1, 1] * TUNING["steps"]  # w_r, then the pivot, each alone
    joint_curve = torch.tensor([e["loss"] for e in joint_rec.losses])
    split_curve = torch.tensor([e["loss"] for e in split_rec.losses])
    assert len(split_curve) == TUNING["steps"] and split_rec.losses[-1].keys() >= {"locality"}
    torch.testing.assert_close(split_curve, joint_curve, rtol=1e-5, atol=0)
    _assert_close_weights(dict(split.named_parameters()), joint)
    moved = max((a - b).abs().max() for a, b in zip(split.synthesis_parameters(), prior.synthesis_parameters()))
    assert moved > 1e-4  # the tuning did move the weights, so the comparison means something
