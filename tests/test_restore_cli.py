"""``ganprior restore`` end to end on a tiny native StyleGAN2 file: odd sizes, every task, batches,
resuming, run directories, and one clear message (no partial output) for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganprior.cli.main import cli
from ganprior.degradations import Blur
from ganprior.images import load_image, save_image
from ganprior.loading import save_native
from ganprior.models.stylegan2 import StyleGAN2Prior

W, H = 45, 29  # odd, non-square


def _tiny(c_dim: int = 0) -> StyleGAN2Prior:
    torch.manual_seed(0)
    return StyleGAN2Prior(dict(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=32, mapping_kwargs=dict(num_layers=2),
                               synthesis_kwargs=dict(channel_base=256, channel_max=32))).eval()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    save_native(_tiny(), root / "tiny.safetensors")
    save_native(_tiny(c_dim=3), root / "tiny_cond.safetensors")
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(1, 3, H, W, generator=g) * 2 - 1, root / "photo.png")
    save_image(Blur(2.0)(torch.rand(1, 3, H, W, generator=g) * 2 - 1), root / "blurred.png")  # deblur refuses sharp
    Image.open(root / "photo.png").save(root / "compressed.jpg", quality=75)  # jpeg refuses an uncompressed photo
    return root


@pytest.fixture(autouse=True)
def _cache(workdir, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(workdir / "cache"))


def run(workdir, *args):
    result = CliRunner().invoke(cli, ["restore", *map(str, args)], catch_exceptions=False)
    return result


def base_args(workdir, out, method="wplus"):
    return ["--model", workdir / "tiny.safetensors", "--out", out, "--steps", 2, "--preset", "fast",
            "--perceptual", "mse", "--method", method]


@pytest.mark.parametrize("task, extra, factor", [
    ("colorize", [], 1),
    ("inpaint", ["--mask", "center"], 1),
    ("sr", ["--scale", 2], 2),
    ("denoise", [], 1),
    ("deblur", [], 1),
    ("jpeg", [], 1),
    ("sr4+colorize+inpaint", ["--mask", "center"], 4),
])
def test_every_task_returns_the_photo_size_times_scale(workdir, tmp_path, task, extra, factor):
    out = tmp_path / "out"
    name, suffix = {"deblur": ("blurred", "png"), "jpeg": ("compressed", "jpg")}.get(task, ("photo", "png"))
    result = run(workdir, workdir / f"{name}.{suffix}", "--task", task, *extra, *base_args(workdir, out))
    assert result.exit_code == 0, result.output
    restored = load_image(out / name / "restored.png")
    assert restored.shape[-2:] == (H * factor, W * factor)
    assert load_image(out / name / "degraded.png").shape[-2:] == (H, W)


def test_cri_run_directory_contents_and_resume(workdir, tmp_path):
    out = tmp_path / "out"
    second = workdir / "second.png"
    save_image(torch.zeros(1, 3, 20, 33), second)
    args = [workdir / "photo.png", second, "--task", "colorize", "--video", *base_args(workdir, out, "cri")]
    result = run(workdir, *args)
    assert result.exit_code == 0, result.output
    run_dir = out / "photo"
    names = {p.name for p in run_dir.iterdir()}
    assert {"restored.png", "degraded.png", "sheet.png", "latent.pt", "run.json", "optimisation.gif",
            "generator_delta.safetensors"} <= names
    record = json.loads((run_dir / "run.json").read_text())
    assert record["seed"] == 0 and record["config"]["method"] == "cri"
    assert {"offset", "pivotal-tuning", "centroids", "total"} <= set(record["timings"])
    assert [e["stage"] for e in record["losses"]] == ["offset"] * 2 + ["pivotal-tuning"] * 2
    assert torch.load(run_dir / "latent.pt").shape == (1, 8, 8)
    assert load_image(out / "second" / "restored.png").shape[-2:] == (20, 33)
    again = run(workdir, *args)
    assert again.exit_code == 0 and again.output.count("skip") == 2


def _assert_one_clear_error(result, pattern, out):
    assert result.exit_code != 0
    assert pattern in result.output.lower(), result.output
    assert "Traceback" not in result.output
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert not leftovers, leftovers


def test_corrupt_image_is_one_clear_error_without_output(workdir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    _assert_one_clear_error(run(workdir, bad, "--task", "colorize", *base_args(workdir, out)), "cannot load", out)


def test_mask_of_the_wrong_size_is_one_clear_error(workdir, tmp_path):
    mask = tmp_path / "mask.png"
    save_image(torch.ones(1, 3, 10, 10), mask)
    out = tmp_path / "out"
    result = run(workdir, workdir / "photo.png", "--task", "inpaint", "--mask", mask, "--mask-hole-value", "black",
                 *base_args(workdir, out))
    _assert_one_clear_error(result, "but the image is", out)


def test_unknown_task_is_one_clear_error(workdir, tmp_path):
    out = tmp_path / "out"
    result = run(workdir, workdir / "photo.png", "--task", "sharpen", *base_args(workdir, out))
    _assert_one_clear_error(result, "unknown task", out)


def test_unknown_model_is_one_clear_error(workdir, tmp_path):
    out = tmp_path / "out"
    args = base_args(workdir, out)
    args[1] = "no-such-model"
    _assert_one_clear_error(run(workdir, workdir / "photo.png", "--task", "colorize", *args), "unknown model", out)


def test_class_out_of_range_is_one_clear_error(workdir, tmp_path):
    out = tmp_path / "out"
    args = base_args(workdir, out)
    args[1] = workdir / "tiny_cond.safetensors"
    _assert_one_clear_error(run(workdir, workdir / "photo.png", "--task", "colorize", "--class", 7, *args), "out of range",
                            out)


def test_unknown_perceptual_is_one_clear_error(workdir, tmp_path):
    out = tmp_path / "out"
    args = base_args(workdir, out)
    args[args.index("--perceptual") + 1] = "nope"
    _assert_one_clear_error(run(workdir, workdir / "photo.png", "--task", "colorize", *args), "unknown perceptual", out)
