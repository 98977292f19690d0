"""Denoise, JPEG and blur restorations keep to what was observed (issue 28, items 1-2).

A "generator image" that has nothing to do with the photo (a flat brown, or a texture) stands in for a
prior that cannot explain it; the fused output must still be within the observation's noise / inside the
file's quantisation intervals / consistent without rings, and never worse than the degraded input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganprior.api import CONSISTENT_FUSION
from ganprior.consistency import calibrate, consistent_fuse, observation_report
from ganprior.degradations import (
    Blur,
    DegradationError,
    Denoising,
    QuantisationBox,
    estimate_noise_sigma,
    parse_task,
    tables_from_file,
)
from ganprior.images import from_uint8, to_uint8


def _photo(h: int = 72, w: int = 104) -> torch.Tensor:
    from skimage import data

    return from_uint8(np.ascontiguousarray(data.chelsea()[60:60 + h, 150:150 + w]))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4.0 / float((a.double() - b.double()).square().mean()))


def _brown(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([0.2, -0.1, -0.4]).view(1, 3, 1, 1).expand_as(like).clone()


def _noisy(clean: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
    return from_uint8(to_uint8((clean + sigma * noise).clamp(-1, 1)))  # a user's 8-bit file


def test_denoise_output_stays_within_the_noise_level_and_is_not_the_generator_image():
    clean = _photo()
    sigma = 2 * 25 / 255
    y = _noisy(clean, sigma)
    op = parse_task(f"denoise{sigma}", **CONSISTENT_FUSION)
    generator = _brown(clean)
    fused = consistent_fuse(op, generator, y)
    assert float((fused - y).double().norm()) <= sigma * math.sqrt(y.numel()) * (1 + 1e-6)
    assert _psnr(fused, clean) > _psnr(y, clean) + 3  # a real denoising, not the input given back
    assert _psnr(fused, generator) < _psnr(fused, clean) - 10  # and nothing like the flat generator image


def test_denoise_lets_a_prior_that_explains_the_photo_through():
    """The SURE weight is not a constant 0: a prior close to the clean image gets most of the say."""
    clean = _photo()
    sigma = 2 * 25 / 255
    y = _noisy(clean, sigma, seed=1)
    op = parse_task(f"denoise{sigma}", **CONSISTENT_FUSION)
    good = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    fused = consistent_fuse(op, good, y)
    assert op[0].last_fusion["prior_weight"] > 0.7
    assert _psnr(fused, clean) > _psnr(op[0].classical_estimate(y), clean)


def test_noise_sigma_is_estimated_when_not_given_and_recorded():
    clean = _photo()
    y = _noisy(clean, 2 * 15 / 255)
    assert estimate_noise_sigma(y) * 127.5 == pytest.approx(15, rel=0.15)
    op = parse_task("denoise", **CONSISTENT_FUSION)
    calibrate(op, y)
    described = op.describe()["ops"][0]
    assert described["sigma_source"] == "estimated" and described["sigma"] * 127.5 == pytest.approx(15, rel=0.15)
    with pytest.raises(DegradationError, match="needs a sigma"):
        Denoising(None).degrade(clean)


def _jpeg_file(clean: torch.Tensor, path, **options) -> torch.Tensor:
    Image.fromarray(to_uint8(clean)).save(path, format="JPEG", **options)
    with Image.open(path) as pil:
        return from_uint8(np.asarray(pil.convert("RGB")))


def test_jpeg_output_coefficients_lie_in_the_files_quantisation_intervals(tmp_path):
    clean = _photo()
    y = _jpeg_file(clean, tmp_path / "photo.jpg", quality=30)
    tables = tables_from_file(tmp_path / "photo.jpg")
    box = QuantisationBox(y, tables)
    # the stored integers recovered from the decoded pixels are the clean image's (model of libjpeg)
    agree = [float((torch.round(c) == k).double().mean()) for c, k in zip(box.coefficients(clean), box.bins)]
    assert min(agree) > 0.99
    op = parse_task("jpeg30", **CONSISTENT_FUSION)
    calibrate(op, y, tmp_path / "photo.jpg")
    fused = consistent_fuse(op, _brown(clean), y)
    for c, k in zip(box.coefficients(fused), box.bins):
        assert float((c - k).abs().max()) <= 0.5 + 0.02  # in quantisation steps
    assert _psnr(fused, clean) >= _psnr(y, clean) - 0.3


def test_jpeg_uses_the_files_own_tables_and_subsampling(tmp_path):
    clean = _photo()
    luma = [min(255, 2 + i) for i in range(64)]
    chroma = [min(255, 40 + 2 * i) for i in range(64)]
    y = _jpeg_file(clean, tmp_path / "custom.jpg", qtables=[luma, chroma], subsampling=0)
    op = parse_task("jpeg75", **CONSISTENT_FUSION)
    calibrate(op, y, str(tmp_path / "custom.jpg"))
    jpeg = op[0]
    assert jpeg.describe()["tables"] == "the file's own tables" and jpeg.tables.subsampling == (1, 1)
    assert jpeg.tables.luma.flatten().tolist() == luma and jpeg.tables.chroma.flatten().tolist() == chroma
    fused = consistent_fuse(op, _brown(clean), y)
    box = QuantisationBox(y, jpeg.tables)
    assert all(float((c - k).abs().max()) <= 0.52 for c, k in zip(box.coefficients(fused), box.bins))


def test_blur_output_has_no_rings_and_explains_the_photo_to_its_noise():
    clean = _photo()
    y = from_uint8(to_uint8(Blur(2.0)(clean)))
    op = parse_task("blur2", **CONSISTENT_FUSION)
    calibrate(op, y)
    texture = torch.rand(clean.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1  # a wrong prior
    for generator in (_brown(clean), texture):
        fused = consistent_fuse(op, generator, y)
        sigma = op[0].noise_sigma
        assert float((op(fused) - y).double().square().mean().sqrt()) <= sigma * 1.05
        assert _psnr(fused, clean) >= _psnr(y, clean) - 0.3  # rings would cost several dB
    assert op.describe()["ops"][0]["sigma_source"] == "estimated"


def test_a_sharp_photo_given_to_blur_is_refused_in_one_line():
    clean = _photo()
    op = parse_task("blur2", **CONSISTENT_FUSION)
    with pytest.raises(DegradationError, match="sharper than blur2") as caught:
        calibrate(op, clean)
    assert "\n" not in str(caught.value)
    for y in (from_uint8(to_uint8(Blur(2.0)(clean))), _noisy(Blur(2.0)(clean), 2 * 5 / 255)):
        calibrate(parse_task("blur2", **CONSISTENT_FUSION), y)  # really blurred photos pass, noisy or not


def test_observation_report_compares_output_prior_and_classical_and_warns():
    clean = _photo()
    sigma = 2 * 25 / 255
    y = _noisy(clean, sigma)
    op = parse_task(f"denoise{sigma}", **CONSISTENT_FUSION)
    generator = _brown(clean)
    fused = consistent_fuse(op, generator, y)
    with pytest.warns(UserWarning, match="prior explains the photo less well than the classical non-local means"):
        report = observation_report(op, fused, generator, y)
    assert report["prior_weaker"] and report["prior_weight"] < 0.5
    assert report["psnr_output_vs_input"] == pytest.approx(_psnr(fused, y))
    assert {"psnr_output_vs_classical", "psnr_classical_vs_input", "observed_psnr", "noise_sigma"} <= set(report)


@pytest.mark.parametrize("task,baseline", [("denoise", "nlm"), ("jpeg30", "deblock"), ("blur2", "wiener")])
def test_bench_has_a_classical_baseline_for_each_task_that_beats_the_input(task, baseline):
    from ganprior.bench.baselines import applicable_baselines, run_baseline

    clean = _photo()
    op = parse_task(task)
    y = _noisy(clean, 2 * 15 / 255) if task == "denoise" else op.degrade(clean)
    size = tuple(clean.shape[-2:])
    assert baseline in applicable_baselines(op, size)
    assert baseline not in applicable_baselines(parse_task(f"sr2+{task}"), size)  # single-operator tasks only
    assert _psnr(run_baseline(baseline, y, op, size), clean) > _psnr(y, clean) + 0.2


def test_restore_records_the_estimated_sigma_and_the_observation_report_in_run_json(tmp_path):
    import json

    import ganprior
    from ganprior.models.stylegan2 import StyleGAN2Prior

    torch.manual_seed(0)
    prior = StyleGAN2Prior(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, mapping_kwargs=dict(num_layers=2),
                                synthesis_kwargs=dict(channel_base=256, channel_max=32))).eval()
    clean = _photo(40, 56)
    photo = to_uint8(_noisy(clean, 2 * 20 / 255))
    with pytest.warns(UserWarning, match="less well than the classical"):
        result = ganprior.restore(photo, task="denoise", method="wplus", model=prior, steps=1, perceptual="mse",
                                  preset="fast", progress=False)
    record = json.loads((result.save(tmp_path / "run") / "run.json").read_text())
    described = record["config"]["degradation"]["ops"][0]
    assert described["sigma_source"] == "estimated" and 10 < described["sigma"] * 127.5 < 30
    observation = record["config"]["observation"]
    assert observation["prior_weaker"] is True and observation["psnr_output_vs_input"] > 20
    assert observation["psnr_output_vs_classical"] > observation["psnr_classical_vs_input"]
    assert _psnr(result.image, clean) > _psnr(from_uint8(photo), clean) + 3


@pytest.mark.parametrize("task", ["jpeg30", "blur2"])
def test_a_prior_that_explains_the_photo_beats_the_classical_estimate(task, tmp_path):
    """The weight is not stuck at 0: a restoration close to the clean image is kept (and checked by y)."""
    clean = _photo()
    op = parse_task(task, **CONSISTENT_FUSION)
    if task == "jpeg30":
        y = _jpeg_file(clean, tmp_path / "photo.jpg", quality=30)
        calibrate(op, y, tmp_path / "photo.jpg")
    else:
        y = from_uint8(to_uint8(Blur(2.0)(clean)))
        calibrate(op, y)
    good = clean + 0.005 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(4))
    fused = consistent_fuse(op, good, y)
    assert op[0].last_fusion["prior_weight"] > 0.5
    assert _psnr(fused, clean) > _psnr(op[0].classical_estimate(y), clean) + 1


def test_a_photo_not_compressed_with_the_stated_quality_is_refused_for_jpeg(tmp_path):
    clean = _photo(96, 128)
    sharp = from_uint8(to_uint8(clean))
    with pytest.raises(DegradationError, match="not JPEG-compressed with IJG quality 30") as caught:
        calibrate(parse_task("jpeg30", **CONSISTENT_FUSION), sharp)
    assert "\n" not in str(caught.value)
    q75 = _jpeg_file(clean, tmp_path / "q75.jpg", quality=75)
    with pytest.raises(DegradationError, match="off that grid"):
        calibrate(parse_task("jpeg30", **CONSISTENT_FUSION), q75)  # the wrong quality stated, a PNG of it
    calibrate(parse_task("jpeg75", **CONSISTENT_FUSION), q75)  # the right one passes
    calibrate(parse_task("jpeg30", **CONSISTENT_FUSION), q75, tmp_path / "q75.jpg")  # the file's tables win
