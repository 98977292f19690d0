"""Jitter, morphing and category transfer on DGP reconstructions (BigGAN) and StyleGAN2/XL inversions,
plus the run-directory round trip and the three CLI commands."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from ganprior.degradations import parse_task
from ganprior.manipulation import (
    ManipulationError,
    Reconstruction,
    jitter,
    morph,
    render,
    save_animation,
    transfer,
    tuned_prior,
)
from ganprior.methods.dgp import DGP
from ganprior.models.biggan import BigGANPrior
from ganprior.models.stylegan2 import StyleGAN2Prior
from test_dgp import tiny_biggan

R = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prior() -> BigGANPrior:
    return tiny_biggan()


def generated(prior, seed: int, cls: int) -> torch.Tensor:
    z = 0.5 * torch.randn(1, prior.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return prior.synthesis(z[:, None], prior.class_matrix(cls, 1))


@pytest.fixture(scope="module")
def recs(prior):
    """Two short DGP reconstructions with the manipulation schedule (paper Table 11, no IN)."""
    out = []
    for seed, cls in ((5, 3), (6, 7)):
        target = generated(prior, seed, cls)
        method = DGP(schedule="manipulation", table="fast", select_num=16, max_stage_steps=10, update_embed=True,
                     returned_image="final")  # the image of the saved state (official: one update earlier)
        result = method.run(prior, parse_task("reconstruct"), target, class_index=cls, progress=False)
        out.append((Reconstruction.from_result(result), result, target))
    return out


def test_morph_endpoints_reproduce_both_reconstructions(prior, recs):
    (a, result_a, _), (b, result_b, _) = recs
    assert "G.shared.weight" in a.generator_delta  # the embedding table was tuned and is interpolated too
    frames = morph(prior, a, b, frames=5, order="a-to-b")  # DGP's own order starts at B
    assert frames.shape == (5, 3, R, R)
    assert (frames[0] - result_a.image[0]).abs().max() < 1e-4
    assert (frames[-1] - result_b.image[0]).abs().max() < 1e-4
    middle = frames[2]
    assert (middle - frames[0]).abs().mean() > 0.01 and (middle - frames[-1]).abs().mean() > 0.01
    with pytest.raises(ManipulationError, match="at least 2"):
        morph(prior, a, b, frames=1)


def test_jitter_variants_differ_and_stay_close_to_the_observation(prior, recs):
    a, result, target = recs[0]
    variants = jitter(prior, a, n=4, stds=(0.3,), seed=1)
    assert variants.shape == (4, 3, R, R)
    pairwise = [(variants[i] - variants[j]).abs().mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(pairwise) > 1e-3
    random_images = torch.cat([generated(prior, 100 + i, i) for i in range(4)])
    close = (variants - target).abs().mean()
    assert close < 0.6 * (random_images - target).abs().mean()
    again = jitter(prior, a, n=4, stds=(0.3,), seed=1)
    assert torch.equal(variants, again)
    assert not torch.equal(variants, jitter(prior, a, n=4, stds=(0.3,), seed=2))


def test_category_transfer_changes_the_class_embedding_only(prior, recs):
    a, result, _ = recs[0]
    images = transfer(prior, a, [3, 0, 9])
    assert (images[0] - result.image[0]).abs().max() < 1e-4  # its own class: the reconstruction itself
    tuned = tuned_prior(prior, a)
    with torch.no_grad():
        expected = tuned.render(a.latent[:, 0].expand(2, -1), tuned.class_embedding(torch.tensor([0, 9]))).clamp(-1, 1)
    assert (images[1:] - expected).abs().max() < 1e-5  # same z, same tuned weights, other embedding
    assert (images[1] - images[0]).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="out of range"):
        transfer(prior, a, [10])
    in_rec = Reconstruction(a.latent, a.class_index, a.generator_delta, instance_norm=True)
    with pytest.raises(ManipulationError, match="BN->IN"):
        transfer(prior, in_rec, [1], own_norm=True)  # DGP itself renders IN reconstructions with BN


def test_run_directory_round_trip(prior, recs, tmp_path):
    from ganprior.api import restore

    out = restore(recs[0][2], task="reconstruct", method="dgp", model=prior, class_index=3, preset="fast", steps=2,
                  progress=False, options={"select_num": 4, "schedule": "manipulation", "returned_image": "final"})
    run_dir = out.save(tmp_path / "run")
    loaded = Reconstruction.load(run_dir)
    assert torch.equal(loaded.latent, out.latent) and loaded.class_index == 3
    assert loaded.generator_delta.keys() == out.result.generator_delta.keys()
    assert (render(prior, loaded) - out.result.image).abs().max() < 1e-4
    with pytest.raises(ManipulationError, match="run directory"):
        Reconstruction.load(tmp_path)


def test_animation_is_a_looping_gif(tmp_path, recs):
    from PIL import Image

    frames = torch.rand(4, 3, 8, 8) * 2 - 1
    written = save_animation(frames, tmp_path / "morph.gif")
    assert written[0].name == "morph.gif"
    with Image.open(written[0]) as gif:
        assert gif.n_frames == 6  # 4 forth + 2 back (boomerang)


def tiny_stylegan2(c_dim: int = 3) -> StyleGAN2Prior:
    torch.manual_seed(0)
    generator = dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=256, channel_max=32))
    return StyleGAN2Prior(generator).eval()


def fake_inversion(prior, seed: int, cls: int | None) -> Reconstruction:
    """A W+ latent and a small tuned-weight delta on the first synthesis block, as PTI/CRI leave them."""
    g = torch.Generator().manual_seed(seed)
    c = prior.class_matrix(cls, 1) if prior.c_dim else None
    with torch.no_grad():
        ws = prior.mapping(torch.randn(1, prior.z_dim, generator=g), c)
    key = "G.synthesis.b4.conv1.weight"
    delta = {key: 0.05 * torch.randn(prior.state_dict()[key].shape, generator=g)}
    return Reconstruction(ws, cls, delta)


def test_stylegan2_inversions_morph_jitter_and_transfer():
    sg2 = tiny_stylegan2()
    a, b = fake_inversion(sg2, 1, 0), fake_inversion(sg2, 2, 2)
    frames = morph(sg2, a, b, frames=3, order="a-to-b")
    assert (frames[0] - render(sg2, a)[0]).abs().max() < 1e-5
    assert (frames[-1] - render(sg2, b)[0]).abs().max() < 1e-5
    variants = jitter(sg2, a, n=3, stds=(0.5,))
    assert (variants[0] - variants[1]).abs().mean() > 1e-3
    moved = transfer(sg2, a, [0, 1])
    assert (moved[0] - render(sg2, a)[0]).abs().max() < 1e-5  # own class: unchanged
    assert (moved[1] - moved[0]).abs().mean() > 1e-3
    with pytest.raises(ManipulationError, match="class-conditional"):
        transfer(tiny_stylegan2(c_dim=0), fake_inversion(tiny_stylegan2(c_dim=0), 1, None), [0])
    with pytest.raises(ManipulationError, match="latent is"):
        render(sg2, Reconstruction(torch.zeros(1, 1, 5), 0))


def test_stylegan_xl_category_transfer_moves_between_class_centres(official_dir):
    from ganprior.loading.safe_pickle import load_official_pickle
    from ganprior.models import stylegan_xl

    data = load_official_pickle(official_dir / "sgxl_16" / "network-snapshot.stripped.pkl")
    xl = stylegan_xl.from_official(data).eval()
    source, target = 3, 207
    centre = xl.w_avg(xl.class_matrix(source, 1))[:, None].expand(1, xl.num_ws, -1)
    rec = Reconstruction(centre.clone(), source)
    moved = transfer(xl, rec, [target])
    with torch.no_grad():
        expected = xl.synthesis(xl.w_avg(xl.class_matrix(target, 1))[:, None].expand(1, xl.num_ws, -1)).clamp(-1, 1)
    assert (moved - expected).abs().max() < 1e-4
    other = Reconstruction(centre + 0.3, source)
    frames = morph(xl, rec, other, frames=3, order="a-to-b")
    assert (frames[0] - render(xl, rec)[0]).abs().max() < 1e-5
    assert (frames[-1] - render(xl, other)[0]).abs().max() < 1e-5


def test_cli_restore_then_jitter_morph_transfer(prior, tmp_path):
    from ganprior.cli.main import cli
    from ganprior.images import save_image
    from ganprior.loading.native import save_native

    model = save_native(prior, tmp_path / "tiny.safetensors")
    for name, seed in (("a", 5), ("b", 6)):
        save_image(generated(prior, seed, 3), tmp_path / f"{name}.png")
    runner = CliRunner()
    common = ["--steps", "1", "--preset", "fast"]
    res = runner.invoke(cli, ["restore", str(tmp_path / "a.png"), "--method", "dgp", "--task", "reconstruct",
                              "--model", str(model), "--class", "3", "--out", str(tmp_path / "runs"), "--schedule",
                              "manipulation", *common])
    assert res.exit_code == 0, res.output
    run_a = tmp_path / "runs" / "a"
    res = runner.invoke(cli, ["jitter", str(run_a), "--n", "2", "--std", "0.3", "--model", str(model),
                              "--out", str(tmp_path / "jit")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "jit" / "jitter_sheet.png").is_file() and (tmp_path / "jit" / "jitter_001.png").is_file()
    res = runner.invoke(cli, ["morph", str(run_a), str(tmp_path / "b.png"), "--frames", "3", "--model", str(model),
                              "--class", "3", "--out", str(tmp_path / "mor"), *common])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mor" / "morph.gif").is_file() and (tmp_path / "mor" / "reconstruction_b" / "run.json").is_file()
    res = runner.invoke(cli, ["transfer", str(run_a), "--classes", "0-2,9", "--model", str(model),
                              "--out", str(tmp_path / "tr")])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "tr").glob("class_*.png"))) == 4
    res = runner.invoke(cli, ["restore", str(tmp_path / "a.png"), "--task", "colorize", "--method", "cri",
                              "--early-stop-mse", "0.01", "--model", str(model), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "only apply to --method dgp" in res.output
