"""A user path without traps (issue 10, part B): one mask convention for restore / score / bench / API,
resuming that cannot lie, outputs a person can read, fast errors in CLI words, and the API's inputs.

Everything runs on a tiny native StyleGAN2 file with 1-step restorations, except the two checks that are
about the embedded model itself (its registry name, ``convert emoji32``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganprior.cli.main import cli
from ganprior.images import load_image, load_mask, make_sheet, save_image
from ganprior.loading import save_native
from ganprior.models.stylegan2 import StyleGAN2Prior

H, W = 20, 24
HOLE = (slice(6, 14), slice(8, 18))  # rows, columns


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("userpath")
    torch.manual_seed(0)
    prior = StyleGAN2Prior(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, mapping_kwargs=dict(num_layers=2),
                                synthesis_kwargs=dict(channel_base=256, channel_max=32))).eval()
    save_native(prior, root / "tiny.safetensors")
    clean = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1)) * 2 - 1
    save_image(clean, root / "clean.png")
    observed = clean.clone()
    observed[..., HOLE[0], HOLE[1]] = 0.0  # the hole's content is lost
    save_image(observed, root / "photo.png")
    white_holes = np.zeros((H, W), np.uint8)
    white_holes[HOLE] = 255
    Image.fromarray(white_holes).save(root / "holes_white.png")
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(root / "all_hole.png")  # white everywhere
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "no_hole.png")
    Image.fromarray(np.pad(white_holes, ((0, 3), (0, 0)))).save(root / "wrong_size.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    (root / "a_file").write_text("not a folder")
    return root


@pytest.fixture(autouse=True)
def _cache(files, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(files / "cache"))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def restore_cli(files, out, *extra, image=None):
    return invoke("restore", image or files / "photo.png", "--model", files / "tiny.safetensors", "--out", out,
                  "--steps", 1, "--preset", "fast", "--perceptual", "mse", "--method", "wplus", *extra)


def inpaint_file(files):
    return ["--task", "inpaint", "--mask", files / "holes_white.png", "--mask-hole-value", "white"]


# ----- one mask convention -------------------------------------------------------------------------
def test_restore_then_score_with_one_mask_file(files, tmp_path):
    out = tmp_path / "out"
    assert restore_cli(files, out, *inpaint_file(files)).exit_code == 0
    run = out / "photo"

    def score(mask, hole_value):
        result = invoke("score", run / "restored.png", "--ref", files / "clean.png", "--mask", mask,
                        "--mask-hole-value", hole_value)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["metrics"]

    metrics = score(files / "holes_white.png", "white")
    # the observed pixels are kept exactly, so all of the error is in the hole
    assert np.isfinite(metrics["psnr_hole"]) and metrics["psnr_hole"] < metrics["psnr"]
    from ganprior.metrics.psnr_ssim import psnr

    hole = torch.zeros(1, 1, H, W)
    hole[..., HOLE[0], HOLE[1]] = 1
    expected = psnr(load_image(run / "restored.png"), load_image(files / "clean.png"), region=hole).item()
    assert metrics["psnr_hole"] == pytest.approx(expected, abs=1e-4)
    # the run folder's own mask.png reads back to the same hole
    assert score(run / "mask.png", "black")["psnr_hole"] == pytest.approx(expected, abs=1e-4)


def test_score_refuses_a_mask_file_without_hole_value(files):
    result = invoke("score", files / "photo.png", "--ref", files / "clean.png", "--mask", files / "holes_white.png")
    assert result.exit_code != 0 and "--mask-hole-value" in result.output and "Traceback" not in result.output


def test_bench_reads_a_mask_file_with_the_same_option(files):
    from ganprior.bench.protocols import TaskSpec
    from ganprior.bench.runner import make_degraded

    spec = TaskSpec.from_string("inpaint", str(files / "holes_white.png"), "white")
    degraded = make_degraded(spec, load_image(files / "clean.png"), seed=0)
    assert torch.equal(degraded.mask, load_mask(files / "holes_white.png", hole_value="white"))
    result = invoke("bench", "--tasks", "inpaint", "--mask", files / "holes_white.png", "--images", files,
                    "--model", files / "tiny.safetensors", "--out", files / "bench")
    assert result.exit_code != 0 and "--mask-hole-value" in result.output


def test_api_mask_file_needs_a_hole_value(files):
    import ganprior

    with pytest.raises(ValueError, match="mask_hole_value="):
        ganprior.restore(files / "photo.png", "inpaint", "wplus", files / "tiny.safetensors",
                         mask=str(files / "holes_white.png"), steps=1, perceptual="mse", progress=False)


# ----- resume that cannot lie ----------------------------------------------------------------------
def test_a_run_folder_is_reused_only_for_the_same_run(files, tmp_path):
    out = tmp_path / "out"
    assert restore_cli(files, out, "--task", "colorize").exit_code == 0
    again = restore_cli(files, out, "--task", "colorize")
    assert again.exit_code == 0 and "skip" in again.output
    other = restore_cli(files, out, "--task", "inpaint", "--mask", "center")
    assert other.exit_code == 0 and "redo" in other.output and "task" in other.output and "skip" not in other.output
    assert json.loads((out / "photo" / "run.json").read_text())["config"]["task"] == "inpaint"
    reseeded = restore_cli(files, out, "--task", "inpaint", "--mask", "center", "--seed", 3)
    assert "redo" in reseeded.output and "seed" in reseeded.output


def test_api_fingerprint_is_what_restore_records(files):
    from ganprior.api import load_prior, restore, restore_fingerprint

    prior = load_prior(files / "tiny.safetensors")
    args = dict(task="inpaint", method="wplus", model=prior, mask="center", steps=1, perceptual="mse", seed=2)
    result = restore(files / "photo.png", progress=False, **args)
    assert result.config["fingerprint"] == restore_fingerprint(files / "photo.png", **args)
    assert restore_fingerprint(files / "photo.png", **{**args, "steps": 2})["digest"] != result.config["fingerprint"]["digest"]


def test_stale_partial_folders_are_removed(files, tmp_path):
    out = tmp_path / "out"
    stale = out / ".photo.k9x2.partial"
    stale.mkdir(parents=True)
    (stale / "restored.png").write_bytes(b"half")
    result = restore_cli(files, out, "--task", "colorize")
    assert result.exit_code == 0 and not stale.exists() and (out / "photo" / "run.json").is_file()


HOLDER = """
import sys, time
from ganprior.resume import claim
with claim(sys.argv[1]):
    print("claimed", flush=True)
    time.sleep(60)
"""


def test_two_processes_cannot_claim_one_image(files, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / "photo")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        blocked = restore_cli(files, out, "--task", "colorize")
        assert f"being restored by process {holder.pid}" in blocked.output
        assert not (out / "photo").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed owner leaves the lock file, but not the lock
        holder.wait()
    assert (out / ".photo.lock").exists()
    done = restore_cli(files, out, "--task", "colorize")
    assert done.exit_code == 0 and (out / "photo" / "run.json").is_file() and not (out / ".photo.lock").exists()


def test_claim_is_exclusive_within_one_process_too(tmp_path):
    from ganprior.resume import ClaimedError, claim

    with claim(tmp_path / "run"):
        with pytest.raises(ClaimedError, match=str(os.getpid())):
            with claim(tmp_path / "run"):
                pass
    with claim(tmp_path / "run"):  # released
        pass


# ----- outputs a person can read -------------------------------------------------------------------
def test_inpainting_outputs_show_the_holes(files, tmp_path):
    out = tmp_path / "out"
    assert restore_cli(files, out, *inpaint_file(files)).exit_code == 0
    run = out / "photo"
    record = json.loads((run / "run.json").read_text())
    assert record["mask"]["file"] == "mask.png" and record["mask"]["hole_value"] == "black"
    assert record["mask"]["hole_pixels"] == 8 * 10
    saved = load_mask(run / record["mask"]["file"], hole_value=record["mask"]["hole_value"])
    assert torch.equal(saved, load_mask(files / "holes_white.png", hole_value="white"))
    sheet = np.asarray(Image.open(run / "sheet.png").convert("RGB"))
    magenta = (sheet == (255, 0, 255)).all(axis=2)
    assert magenta.sum() >= 8 * 10  # the holes, enlarged in the sheet
    assert not (np.asarray(Image.open(run / "degraded.png").convert("RGB")) == (255, 0, 255)).all(axis=2).any()


def test_config_names_the_registry_model():
    from ganprior.api import load_prior, restore

    prior = load_prior()
    image = torch.zeros(1, 3, 32, 32)
    result = restore(image, "colorize", "wplus", prior, value_range=(-1, 1), steps=1, perceptual="mse",
                     progress=False, class_index=0)
    assert result.config["model"] == "emoji32"


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664)])
def test_outputs_respect_the_umask(files, tmp_path, umask, folder, file):
    old = os.umask(umask)
    try:
        # PTI: the run folder also holds the tuned generator's delta (safetensors)
        assert restore_cli(files, tmp_path / "out", *inpaint_file(files), "--method", "pti").exit_code == 0
    finally:
        os.umask(old)
    run = tmp_path / "out" / "photo"
    assert run.stat().st_mode & 0o777 == folder
    modes = {p.name: p.stat().st_mode & 0o777 for p in run.iterdir()}
    assert "generator_delta.safetensors" in modes
    assert set(modes.values()) == {file}, modes


def test_sheet_captions_are_not_clipped():
    from PIL import ImageDraw, ImageFont

    caption = "degraded (holes: magenta) of a long file name"
    sheet = make_sheet([[torch.zeros(1, 3, 32, 32)]], [caption])
    width = ImageDraw.Draw(sheet).textlength(caption, font=ImageFont.load_default())
    assert sheet.width >= width + 8


# ----- fail fast, in CLI words ---------------------------------------------------------------------
PROBE = """
import sys
from ganprior.cli.main import cli
try:
    cli(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize("extra, words", [
    (["{d}/broken.png", "--task", "colorize"], "cannot load"),
    (["{d}/photo.png", "--task", "colorize", "--max-pixels", "100"], "raise --max-pixels"),
    (["{d}/photo.png", "--task", "inpaint", "--mask", "{d}/wrong_size.png", "--mask-hole-value", "white"],
     "--mask {d}/wrong_size.png is 24x23"),
    (["{d}/photo.png", "--task", "inpaint", "--mask", "{d}/holes_white.png"], "--mask-hole-value black, white"),
    (["{d}/photo.png", "--task", "inpaint", "--mask", "{d}/all_hole.png", "--mask-hole-value", "white"],
     "marks every pixel as a hole"),
    (["{d}/photo.png", "--task", "colorize", "--out", "{d}/a_file/out"], "--out"),
    (["{d}/photo.png", "--task", "colorize", "--out", "{d}/a_file"], "--out"),
    (["{d}/photo.png"], "missing option '--task'"),
])
def test_bad_input_fails_before_torch_loads(files, extra, words):
    args = [a.format(d=files) for a in extra]
    if "--out" not in args:
        args += ["--out", str(files / "never")]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, "restore", *args, "--model", str(files / "tiny.safetensors")],
                          capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert "Traceback" not in proc.stderr, proc.stderr
    assert words.format(d=files).lower() in proc.stderr.lower(), proc.stderr
    assert "NO-TORCH" in proc.stderr and not proc.stderr.strip().endswith(" 0"), (proc.stderr, seconds)
    assert not (files / "never").exists()


def test_an_unwritable_out_after_the_restoration_is_one_clear_error(files, tmp_path, monkeypatch):
    from ganprior.results import RestorationResult

    def refuse(self, directory, video=False):
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(RestorationResult, "save", refuse)
    result = restore_cli(files, tmp_path / "out", "--task", "colorize")
    assert result.exit_code != 0 and "--out" in result.output and "Permission denied" in result.output


@pytest.mark.parametrize("device", ["nonsense", "cuda:7"])
def test_a_device_that_is_not_here_is_one_clear_error(files, tmp_path, device):
    result = restore_cli(files, tmp_path / "out", "--task", "colorize", "--device", device)
    assert result.exit_code != 0 and "'--device'" in result.output and "Traceback" not in result.output


def test_a_mask_without_holes_is_warned_about(files, tmp_path):
    result = restore_cli(files, tmp_path / "out", "--task", "inpaint", "--mask", files / "no_hole.png",
                         "--mask-hole-value", "white")
    assert result.exit_code == 0 and "has no hole" in result.output


# ----- the API's inputs ----------------------------------------------------------------------------
def test_api_accepts_paths_pil_numpy_and_tensors(files):
    from ganprior.inputs import load_observation

    path = files / "photo.png"
    reference, _ = load_observation(path)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    as_float = torch.from_numpy(pixels).permute(2, 0, 1).float()
    for image, value_range in [(Image.open(path), None), (pixels, None), (torch.from_numpy(pixels).permute(2, 0, 1), None),
                               (as_float / 255, (0, 1)), (as_float, (0, 255)), (as_float[None] / 127.5 - 1, (-1, 1))]:
        x, _ = load_observation(image, value_range)
        assert x.shape == (1, 3, H, W) and torch.allclose(x, reference, atol=1e-6), type(image)


def test_api_restores_a_pil_image(files):
    import ganprior

    result = ganprior.restore(Image.open(files / "photo.png"), "colorize", "wplus", files / "tiny.safetensors",
                              steps=1, perceptual="mse", progress=False)
    assert result.image.shape == (1, 3, H, W)


@pytest.mark.parametrize("scale, value_range, words", [
    (1.0, None, "ambiguous"),  # [0, 1] data must say so
    (255.0, None, "ambiguous"),
    (255.0, (-1, 1), "outside value_range"),
    (1.0, (0, 0.5), "outside value_range"),  # twice the range
    (1.0, (-1, -0.5), "outside value_range"),
])
def test_api_refuses_ambiguous_or_out_of_range_tensors(files, scale, value_range, words):
    from ganprior.inputs import RestorationInputError, load_observation

    with pytest.raises(RestorationInputError, match=words):
        load_observation(torch.rand(1, 3, 8, 8) * scale, value_range)


def test_api_refuses_an_all_hole_mask_and_warns_on_a_no_hole_mask(files):
    import ganprior
    from ganprior.consistency import RestorationWarning

    args = dict(task="inpaint", method="wplus", model=files / "tiny.safetensors", steps=1, perceptual="mse",
                progress=False, mask_hole_value="white")
    with pytest.raises(ValueError, match="every pixel as a hole"):
        ganprior.restore(files / "photo.png", mask=str(files / "all_hole.png"), **args)
    with pytest.warns(RestorationWarning, match="no hole"):
        ganprior.restore(files / "photo.png", mask=str(files / "no_hole.png"), **args)


# ----- smaller ones --------------------------------------------------------------------------------
def test_convert_of_the_embedded_name_copies_the_native_file(tmp_path):
    result = invoke("convert", "emoji32", tmp_path / "emoji.safetensors")
    assert result.exit_code == 0, result.output
    assert "already in ganprior's native format" in result.output
    from ganprior.loading import load_native

    assert load_native(tmp_path / "emoji.safetensors").c_dim == 9


def test_score_warns_when_fid_has_too_few_images(files, tmp_path, monkeypatch):
    import ganprior.cli.score as score

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            save_image(torch.zeros(1, 3, 8, 8) + i / 10, tmp_path / name / f"{i}.png")
    monkeypatch.setattr(score, "inception_stats", lambda folder, **kw: folder)
    monkeypatch.setattr(score, "fid", lambda a, b: 1.0)
    monkeypatch.setattr(score, "kid", lambda a, b: (0.1, 0.01))
    result = CliRunner().invoke(score.command, [str(tmp_path / "a"), "--ref", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert any("only 3 images" in w for w in json.loads(result.stdout)["warnings"])


def test_cli_names_match_the_registries():
    from ganprior import names
    from ganprior.methods import PRESETS, available_methods
    from ganprior.methods.dgp_presets import SCHEDULES

    assert names.METHODS == tuple(available_methods()) and names.PRESETS == PRESETS
    assert names.DGP_SCHEDULES == SCHEDULES
