"""DGP: restoration of an image generated from a known latent/class, class selection, the progressive
schedule (frozen groups stay bit-identical), presets, stopping rules, the API/run-directory path."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganprior.degradations import LambdaDegradation, center_box_mask, parse_task, resize, rgb_to_lab, to_gray
from ganprior.methods import get_method_class, preset_options
from ganprior.methods.base import RunRecorder
from ganprior.methods.dgp import DGP, DGPError, DGPLoss, fine_tune, parameter_groups, tunable_copy
from ganprior.methods.dgp_presets import Stage, resolve_schedule, schedule_for_task
from ganprior.models.biggan import BigGANConfig, BigGANPrior
from ganprior.models.stylegan2 import StyleGAN2Prior

R = 32
TRUE_CLASS = 3
QUICK = dict(table="fast", select_num=24, max_stage_steps=16)


def tiny_biggan(seed: int = 0) -> BigGANPrior:
    torch.manual_seed(seed)
    return BigGANPrior(BigGANConfig(resolution=R, G_ch=8, D_ch=8, dim_z=20, shared_dim=16, n_classes=10,
                                    G_attn="0", D_attn="0"))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prior() -> BigGANPrior:
    return tiny_biggan()


@pytest.fixture(scope="module")
def clean(prior) -> torch.Tensor:
    """An image the prior can make exactly: z ~ N(0, 0.5²), class 3."""
    z = 0.5 * torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return prior.synthesis(z[:, None], prior.class_matrix(TRUE_CLASS, 1))


def chroma(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_lab((x.clamp(-1, 1) + 1) / 2)[:, 1:]


def run(prior, task: str, clean: torch.Tensor, class_index=TRUE_CLASS, **options):
    mask = None
    if "inpaint" in task:
        size = R // 2 if task.startswith("sr2") else R
        mask = center_box_mask((size, size))
    degradation = parse_task(task, mask=mask)
    observation = degradation(clean)
    weight = degradation.valid_mask((R, R))
    method = DGP(schedule=schedule_for_task(task), **{**QUICK, **options})
    result = method.run(prior, degradation, observation, weight=weight, class_index=class_index, progress=False)
    return result, degradation, observation, mask


def test_colorization_recovers_chroma(prior, clean):
    result, _, observation, _ = run(prior, "colorize", clean)
    restored = chroma(result.image) - chroma(clean)
    grey = chroma(observation) - chroma(clean)
    assert restored.abs().mean() < 0.5 * grey.abs().mean()
    assert result.extras["schedule"] == "colorize" and result.stopped is None


def test_inpainting_fills_the_hole(prior, clean):
    result, _, observation, mask = run(prior, "inpaint", clean)
    hole = (mask == 0).expand(1, 3, -1, -1)
    restored = (result.image - clean)[hole].abs().mean()
    degraded = (observation - clean)[hole].abs().mean()
    assert restored < 0.3 * degraded


def test_super_resolution_beats_bicubic(prior, clean):
    result, _, observation, _ = run(prior, "sr4", clean)
    bicubic = resize(observation, (R, R), "bicubic")
    assert (result.image - clean).abs().mean() < 0.8 * (bicubic - clean).abs().mean()
    assert result.extras["schedule"] == "sr-d"


def test_hybrid_restores_colour_and_hole(prior, clean):
    result, degradation, observation, _ = run(prior, "sr2+colorize+inpaint", clean)
    assert result.extras["schedule"] == "hybrid"
    baseline = resize(observation, (R, R), "bicubic")  # grey, blurry, with a mid-grey hole
    assert (chroma(result.image) - chroma(clean)).abs().mean() < 0.6 * (chroma(baseline) - chroma(clean)).abs().mean()
    assert (result.image - clean).abs().mean() < 0.7 * (baseline - clean).abs().mean()


def test_unknown_class_is_selected_and_reported(prior, clean):
    result, *_ = run(prior, "colorize", clean, class_index=None, max_stage_steps=1)
    assert result.class_source == "dgp-selection"
    assert 0 <= result.class_index < prior.c_dim
    assert math.isfinite(result.class_score)
    assert result.extras["selection"]["class_sampled"] is True
    given, *_ = run(prior, "colorize", clean, max_stage_steps=1)
    assert given.class_index == TRUE_CLASS and given.class_source == "given" and given.class_score is None


def test_same_seed_same_result(prior, clean):
    a, *_ = run(prior, "inpaint", clean, max_stage_steps=3)
    b, *_ = run(prior, "inpaint", clean, max_stage_steps=3)
    assert torch.equal(a.image, b.image) and torch.equal(a.latent, b.latent)
    assert a.generator_delta.keys() == b.generator_delta.keys()
    assert all(torch.equal(a.generator_delta[k], b.generator_delta[k]) for k in a.generator_delta)


@pytest.mark.parametrize("frozen_adam_state", [False, True])
def test_each_stage_changes_only_its_scheduled_groups(prior, clean, frozen_adam_state):
    degradation = parse_task("colorize")
    loss = DGPLoss(prior, degradation, degradation(clean))
    tuned = tunable_copy(prior)
    c = prior.class_matrix(TRUE_CLASS, 1)
    latent = torch.zeros(1, 1, prior.z_dim)
    untouched = {k: v.clone() for k, v in tuned.G.output_layer.state_dict().items()}
    groups = parameter_groups(tuned)
    assert len(groups) == len(prior.blocks())
    for tuned_groups in (1, 2, 4):
        before = [[p.detach().clone() for p in g] for g in groups]
        stage = Stage(iterations=3, tuned_groups=tuned_groups, d_weight=1, mse_weight=1, g_lr=1e-3, z_lr=1e-2)
        with torch.enable_grad():
            latent = fine_tune(tuned, latent, c, loss, [stage], RunRecorder(False), 0.02,
                               frozen_adam_state=frozen_adam_state, groups=groups).latent
        for i, (old, new) in enumerate(zip(before, groups)):
            same = all(torch.equal(a, b) for a, b in zip(old, new))
            assert same == (i >= tuned_groups), f"group {i} after a stage tuning {tuned_groups} groups"
    assert all(torch.equal(v, tuned.G.output_layer.state_dict()[k]) for k, v in untouched.items())
    assert torch.equal(tuned.G.shared.weight, prior.G.shared.weight)  # update_embed off


def test_generator_delta_rebuilds_the_result(prior, clean):
    # "final": the image of the final parameters (the official one, "last-forward", is one update earlier)
    result, *_ = run(prior, "colorize", clean, max_stage_steps=2, returned_image="final")
    assert result.generator_delta and all(k.startswith("G.") for k in result.generator_delta)
    rebuilt = tunable_copy(prior)
    state = rebuilt.state_dict()
    for k, v in result.generator_delta.items():
        state[k].add_(v)
    with torch.no_grad():
        again = rebuilt.synthesis(result.latent, prior.class_matrix(TRUE_CLASS, 1)).clamp(-1, 1)
    assert (again - result.image).abs().max() < 1e-4
    assert prior.D.blocks[0][0].conv1.weight.requires_grad  # the user's D flags are restored


def test_non_finite_loss_stops_and_keeps_the_best_state(prior, clean):
    calls = {"n": 0}

    def poisoned(x):
        calls["n"] += 1
        return x * float("nan") if calls["n"] > 30 else x  # after selection and a few steps

    degradation = LambdaDegradation(poisoned, name="poison")
    method = DGP(schedule="reconstruct", table="fast", select_num=4, max_stage_steps=20,
                 stage_instance_norm=[False] * 5)
    result = method.run(prior, degradation, clean, class_index=TRUE_CLASS, progress=False)
    assert result.stopped and "non-finite" in result.stopped
    assert torch.isfinite(result.image).all() and torch.isfinite(result.latent).all()


def test_early_stop_mse_is_the_defence_mode(prior, clean):
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    method = DGP(table="fast", select_num=4, early_stop_mse=10.0, early_stop_ends="run")  # met at once
    result = method.run(prior, parse_task("reconstruct"), noisy, class_index=None, progress=False)
    assert result.extras["schedule"] == "defence"
    assert result.extras["early_stop"]["stage"] == 1 and result.extras["early_stop"]["step"] == 0
    assert [st["d_weight"] for st in result.extras["stages"]] == [0, 0]
    # stopped before any update: only the IN affine values set by the BN->IN swap differ
    assert result.generator_delta and all(".in1." in k or ".in2." in k for k in result.generator_delta)


def test_instance_norm_schedule_runs_on_biggan(prior, clean):
    result, *_ = run(prior, "inpaint", clean, max_stage_steps=2)  # Table 7 swaps BN for IN
    assert result.extras["instance_norm"] is True
    assert any(".in1." in k for k in result.generator_delta)


def test_presets_follow_the_paper_tables_and_the_code():
    paper = resolve_schedule("paper", "colorize")
    assert [s.tuned_groups for s in paper["stages"]] == [2, 3, 4, 5, 6]  # blocks num 1..5 + G.linear
    assert [s.iterations for s in paper["stages"]] == [200, 200, 300, 400, 300]
    assert [s.z_lr for s in paper["stages"]] == [2e-3, 1e-3, 5e-4, 5e-5, 2e-5]
    assert paper["select_num"] == 500 and paper["select_std"] == 0.5
    code = resolve_schedule("code", "colorize")
    assert [s.lr_ratio for s in code["stages"]] == [0.7, 0.7, 0.8, 0.9, 1.0]
    assert {s.d_features for s in code["stages"]} == {7}
    assert [s.mse_weight for s in resolve_schedule("paper", "sr-mse")["stages"]] == [1, 1, 1, 50, 100]
    assert [s.mse_weight for s in resolve_schedule("code", "sr-mse")["stages"]] == [10, 10, 10, 50, 100]
    assert resolve_schedule("code", "manipulation")["latent_weight"] == 0.2
    assert [s.iterations for s in resolve_schedule("paper", "inpaint")["stages"]] == [400, 200, 200, 200]
    assert {schedule_for_task(t) for t in ("sr4", "colorize", "inpaint", "sr2+colorize+inpaint", "reconstruct")} \
        == {"sr-d", "colorize", "inpaint", "hybrid", "reconstruct"}
    assert preset_options("dgp", "code", "colorize") == {"table": "code", "schedule": "colorize"}
    assert get_method_class("dgp") is DGP


def test_bad_options_give_one_clear_error(prior, clean):
    with pytest.raises(DGPError, match="one value per stage"):
        DGP(stage_g_lr=[1e-4, 1e-4])
    with pytest.raises(DGPError, match="also give"):
        DGP(stage_iterations=[1, 1])
    with pytest.raises(DGPError, match="unknown DGP schedule"):
        DGP(schedule="dance")
    with pytest.raises(ValueError, match="no option"):
        DGP(lr=0.1)
    generator_only = BigGANPrior(prior.arch_config, with_discriminator=False)
    with pytest.raises(DGPError, match="discriminator"):  # and no usable distance to stand in for it
        DGP(perceptual="no-such-distance", **QUICK).run(generator_only, parse_task("colorize"), to_gray(clean).expand(-1, 3, -1, -1), progress=False)


def tiny_stylegan2() -> StyleGAN2Prior:
    torch.manual_seed(0)
    generator = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=256, channel_max=32))
    discriminator = dict(c_dim=0, img_resolution=16, channel_base=256, channel_max=32, mbstd_group_size=4)
    return StyleGAN2Prior(generator, discriminator).eval()


def test_same_code_runs_on_stylegan2_blocks_and_discriminator():
    sg2 = tiny_stylegan2()
    with torch.no_grad():
        target = sg2(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)))
    degradation = parse_task("colorize")
    method = DGP(schedule="colorize", table="fast", select_num=8, max_stage_steps=4,
                 stage_tuned_groups=[1, 1, 1, 1, 1])
    result = method.run(sg2, degradation, degradation(target), progress=False)
    assert result.latent.shape == (1, sg2.num_ws, sg2.w_dim) and result.class_index is None
    assert result.generator_delta and all(k.startswith("G.synthesis.b4.") for k in result.generator_delta)


def test_dgp_without_a_discriminator_uses_a_perceptual_stand_in_and_tunes_a_frozen_loaded_model():
    """StyleGAN-XL has no discriminator, and StyleGAN3/XL load with frozen weights: DGP still runs and tunes."""
    sg2 = tiny_stylegan2()
    sg2.D = None
    sg2.requires_grad_(False)
    with torch.no_grad():
        target = sg2(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)))
    degradation = parse_task("colorize")
    result = DGP(schedule="colorize", table="fast", select_num=4, max_stage_steps=2, perceptual="mse").run(
        sg2, degradation, degradation(target), progress=False)
    assert any("'mse' distance instead of DGP's discriminator" in note for note in result.extras["notes"])
    assert result.generator_delta and not any(p.requires_grad for p in sg2.parameters())
    with pytest.raises(DGPError, match="no discriminator"):
        DGP(schedule="colorize", perceptual="no-such-distance", **QUICK).run(
            sg2, degradation, degradation(target), progress=False)


@pytest.mark.parametrize("schedule", ["inpaint", "reconstruct", "sr-mse", "defence"])
def test_every_schedule_runs_on_stylegan2_skipping_the_batch_norm_swap_with_a_note(schedule):
    """BigGAN-only parts of a schedule (BN->IN, class-embedding tuning) are skipped, and run.json says so."""
    sg2 = tiny_stylegan2()
    with torch.no_grad():
        target = sg2(torch.randn(1, 16, generator=torch.Generator().manual_seed(3)))
    degradation = parse_task("inpaint", mask=center_box_mask((16, 16)))
    result = DGP(schedule=schedule, table="fast", select_num=4, max_stage_steps=2).run(
        sg2, degradation, degradation(target), progress=False)
    assert result.stopped is None and result.latent.shape == (1, sg2.num_ws, sg2.w_dim)
    assert any("batch norm" in note for note in result.extras["notes"])
    assert result.extras["instance_norm"] is False and result.generator_delta


def test_restore_api_with_method_dgp(prior, clean, tmp_path):
    from ganprior.api import restore

    grey = to_gray(clean).expand(-1, 3, -1, -1)
    out = restore(grey, task="colorize", method="dgp", model=prior, class_index=TRUE_CLASS, preset="fast",
                  steps=2, progress=False, options={"select_num": 4})
    assert out.result.extras["schedule"] == "colorize" and out.result.options["max_stage_steps"] == 2
    grey_error = lambda x: float((to_gray(x) - grey[:, :1]).abs().mean()) * 127.5  # noqa: E731 (0..255)
    assert grey_error(out.image) <= 1.0  # keeps the input's Rec.601 grey
    assert grey_error(out.generator_output) > 2.0  # which the raw output does not
    run_dir = out.save(tmp_path / "run")
    written = {p.name for p in run_dir.iterdir()}
    assert {"restored.png", "latent.pt", "generator_delta.safetensors", "run.json"} <= written
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["config"]["method"] == "dgp" and summary["class"]["index"] == TRUE_CLASS
    assert summary["extras"]["schedule"] == "colorize"
