"""The user path without the remaining traps (issue 28, items 3-9): threads that survive contention, every
argument checked before the model loads, the model named by its registry name, one run folder per method,
manipulations that start from the user's restoration, a defined bench consistency column, and the small
warnings and hints.

Everything runs on a tiny native StyleGAN2 file with 1-step restorations, except the DGP selection check,
which needs a discriminator (the embedded emoji32)."""

from __future__ import annotations

import gc
import json
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganprior.cli.main import cli
from ganprior.images import load_image, save_image
from ganprior.loading import save_native
from ganprior.models.stylegan2 import StyleGAN2Prior

H, W = 20, 24

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("userpath_more")
    torch.manual_seed(0)
    prior = StyleGAN2Prior(dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, mapping_kwargs=dict(num_layers=2),
                                synthesis_kwargs=dict(channel_base=256, channel_max=32))).eval()
    save_native(prior, root / "tiny.safetensors")
    photo = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1)) * 2 - 1
    save_image(photo, root / "photo.png")
    Image.open(root / "photo.png").save(root / "photo.gif")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "no_hole.png")
    return root


@pytest.fixture(autouse=True)
def _cache(files, monkeypatch):
    monkeypatch.setenv("GANPRIOR_CACHE", str(files / "cache"))
    monkeypatch.setenv("GANPRIOR_OFFLINE", "1")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def restore_cli(files, out, *extra, method="wplus"):
    return invoke("restore", files / "photo.png", "--model", files / "tiny.safetensors", "--out", out, "--steps", 1,
                  "--preset", "fast", "--perceptual", "mse", "--method", method, *extra)


# ----- 3: threads --------------------------------------------------------------------------------
def test_threads_leave_the_busy_cores_alone(monkeypatch):
    from ganprior.cli import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert threads.choose_threads() == 3  # one core is taken by someone else
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (10.0, 0.0, 0.0))
    assert threads.choose_threads() == 1
    assert threads.choose_threads(2) == 2  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose_threads() == 2
    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_demo_takes_threads():
    result = invoke("demo", "--help")
    assert "--threads" in result.output and "load" in result.output


def test_dgp_selection_respects_steps_and_shows_progress(capsys):
    from ganprior import restore
    from ganprior.api import load_prior
    from ganprior.cli.demo import restore_options

    prior = load_prior("emoji32")
    y = torch.zeros(1, 3, 32, 32)
    result = restore(y, "colorize", "dgp", prior, value_range=(-1, 1), steps=2, progress=True,
                     **restore_options(prior, "dgp", "colorize"))
    assert result.result.extras["selection"]["candidates"] == 2
    assert "dgp selection" in capsys.readouterr().err


# ----- 4: every argument before the model -------------------------------------------------------
PROBE = """
import json, sys, time
from pathlib import Path
from ganprior.cli.main import cli
out, times = Path(sys.argv[1]), {}
for args in json.loads(sys.argv[2]):
    started = time.perf_counter()
    try:
        cli(["restore", *args, "--out", str(out)])
    except SystemExit as exit:
        times[" ".join(args[1:])] = [exit.code, time.perf_counter() - started, out.exists()]
print(json.dumps({"torch": "torch" in sys.modules, "runs": times}))
"""


def test_typos_answer_before_torch_and_leave_no_folder(files, tmp_path):
    photo = str(files / "photo.png")
    typos = [[photo, "--task", "colourise"], [photo, "--task", "colorize", "--model", "stylegan9"],
             [photo, "--task", "inpaint", "--mask", "box:1,2"], [photo, "--task", "inpaint", "--mask", "box:0,0,99,5"],
             [photo, "--task", "colorize", "--device", "cuda:7"], [photo, "--task", "colorize", "--device", "tpu"]]
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "out"), json.dumps(typos)],
                          capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["torch"], proc.stderr  # so each answers in well under a second, not after the model
    assert all(code != 0 and not left for code, _, left in report["runs"].values()), report
    for words in ("'--task'", "'--model'", "box spec must be", "outside the 24x20 image", "'--device'"):
        assert words in proc.stderr, proc.stderr


def test_a_run_refused_after_the_checks_leaves_no_folder(files, tmp_path):
    result = restore_cli(files, tmp_path / "out", "--task", "colorize", "--option", "no_such_option=1")
    assert result.exit_code != 0 and not (tmp_path / "out").exists()


# ----- 5: the registry name, and text as text in the UI -------------------------------------------
def test_manipulations_load_the_model_by_its_registry_name():
    from ganprior.cli.jitter import load_model_for

    assert load_model_for([], None, None, "cpu").model_name == "emoji32"


def test_the_ui_names_the_model_and_shows_labels_as_text(tmp_path):
    from ganprior.ui.handlers import Studio, as_text, error_text
    from ganprior.ui.inputs import editor_value
    from test_methods import tiny_prior

    text = "the output is 75x113 px (W x H) but <StyleGAN2Prior in memory> makes 32 px images"
    assert "<" not in as_text(text) and "&lt;StyleGAN2Prior in memory&gt;" in as_text(text)
    assert "<" not in error_text(ValueError(text))
    studio = Studio(tiny_prior(discriminator=True), "tiny-model", tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    final = list(studio.run("s", editor_value(image), ["colorize"], 4, "wplus", "fast", 1, 0, None, image))[-1]
    run = json.loads((tmp_path / final["status"].rsplit(" ", 1)[-1] / "run.json").read_text())
    assert run["config"]["model"] == "tiny-model" and "<" not in final["summary"]
    before = final["compare"][0]
    assert (before[..., 0] == before[..., 1]).all() and (before[..., 1] == before[..., 2]).all()  # 9: the grey


# ----- 6: one run folder per method ---------------------------------------------------------------
def test_a_second_method_does_not_overwrite_the_first(files, tmp_path):
    out = tmp_path / "out"
    assert restore_cli(files, out, "--task", "colorize", method="wplus").exit_code == 0
    second = restore_cli(files, out, "--task", "colorize", method="w")
    assert second.exit_code == 0 and "redo" not in second.output
    assert json.loads((out / "photo" / "run.json").read_text())["config"]["method"] == "wplus"
    assert json.loads((out / "photo-w" / "run.json").read_text())["config"]["method"] == "w"
    again = restore_cli(files, out, "--task", "colorize", method="w")
    assert "skip" in again.output and sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["photo", "photo-w"]


# ----- 7: manipulations start from the restoration -------------------------------------------------
def test_jitter_and_morph_start_from_the_users_restoration(files, tmp_path):
    out = tmp_path / "out"
    assert restore_cli(files, out, "--task", "colorize", method="pti").exit_code == 0
    assert restore_cli(files, out, "--task", "colorize", "--seed", 3, method="wplus").exit_code == 0
    a, b = out / "photo", out / "photo-wplus"
    restored_a, restored_b = load_image(a / "restored.png"), load_image(b / "restored.png")
    result = invoke("jitter", a, "--n", 1, "--std", 0, "--std", 0.5, "--out", tmp_path / "jitter")
    assert result.exit_code == 0, result.output
    same = load_image(tmp_path / "jitter" / "jitter_000.png")  # std 0: the restoration itself, at its size
    levels = 3 / 127.5  # 8-bit files on both sides, a float16 delta
    assert same.shape == restored_a.shape and float((same - restored_a).abs().max()) <= levels
    result = invoke("morph", a, b, "--frames", 3, "--out", tmp_path / "morph")
    assert result.exit_code == 0, result.output
    first, last = (load_image(tmp_path / "morph" / f"morph_{i:03d}.png") for i in (0, 2))
    assert float((first - restored_a).abs().max()) <= levels and float((last - restored_b).abs().max()) <= levels


# ----- 8: the bench's consistency column ----------------------------------------------------------
def test_bench_consistency_is_restores_formula_and_says_why_it_differs(files):
    from ganprior import restore
    from ganprior.bench.scoring import MEASURES, ImageScorer
    from ganprior.bench.table import render_report
    from ganprior.degradations import parse_task

    clean = load_image(files / "photo.png")[..., :16, :16]
    paper = parse_task("sr4", image_size=(16, 16))  # the bench's own fusion (none)
    y = paper.degrade(clean, generator=torch.Generator().manual_seed(0))
    result = restore(y, paper, "wplus", str(files / "tiny.safetensors"), value_range=(-1, 1), steps=1,
                     preset="fast", perceptual="mse", progress=False)
    scorer = ImageScorer(("consistency",))
    value = scorer(result.image, clean, y, paper, None)["consistency"]
    assert value == pytest.approx(result.consistency_rmse, rel=1e-4)
    note = MEASURES["consistency"].note
    assert "consistency_rmse" in note and "not projected" in note
    results = {"model": {"name": "m", "family": "f", "resolution": 32}, "images": [0], "seed": 0,
               "tasks": [{"name": "sr4", "measures": ["psnr", "consistency"]}], "columns": {"sr4": ["w"]},
               "aggregates": {"sr4": {"w": {"psnr": {"mean": 20.0}, "consistency": {"mean": 27.0}}}}}
    assert note in render_report(results)


# ----- 9: smaller traps ---------------------------------------------------------------------------
def _png_header_only(path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def test_a_900_megapixel_file_gets_the_max_pixels_hint(tmp_path):
    from ganprior.image_files import CLI_NAMES, ImageLoadError, image_size

    _png_header_only(tmp_path / "huge.png", 30_000, 30_000)
    with pytest.raises(ImageLoadError, match="raise --max-pixels"):
        image_size(tmp_path / "huge.png", names=CLI_NAMES)
    with pytest.raises(ImageLoadError) as raised:  # raised past it: Pillow's own limit no longer answers first
        image_size(tmp_path / "huge.png", max_pixels=10**9, names=CLI_NAMES)
    assert "DecompressionBomb" not in str(raised.value)


def test_the_no_hole_warning_is_printed_once(files, tmp_path):
    result = restore_cli(files, tmp_path / "out", "--task", "inpaint", "--mask", files / "no_hole.png",
                         "--mask-hole-value", "white")
    assert result.exit_code == 0 and result.output.count("has no hole") == 1, result.output


def test_a_gif_input_is_closed(files):
    from ganprior.image_files import open_image

    gc.collect()  # files left open by earlier tests in this process warn now, not inside the check below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = open_image(files / "photo.gif")
        gc.collect()
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning) and "photo.gif" in str(w.message)]
    assert image.size == (W, H) and not unclosed


def test_the_generator_delta_is_stored_in_half_precision(files, tmp_path):
    from safetensors.torch import load_file

    assert restore_cli(files, tmp_path / "out", "--task", "colorize", method="pti").exit_code == 0
    delta = load_file(str(tmp_path / "out" / "photo" / "generator_delta.safetensors"))
    assert delta and all(t.dtype == torch.float16 for t in delta.values())


def test_the_method_name_is_checked_first_in_any_case(files):
    from ganprior import restore
    from ganprior.inputs import RestorationInputError

    with pytest.raises(RestorationInputError, match="unknown method 'nope'"):
        restore(files / "not_there.png", "colorize", "nope")  # the method is refused before the file is read
    result = restore(files / "photo.png", "colorize", "WPlus", str(files / "tiny.safetensors"), steps=1,
                     preset="fast", perceptual="mse", progress=False)
    assert result.config["method"] == "wplus"


def test_a_finished_rerun_does_not_load_the_model(files, tmp_path, monkeypatch):
    assert restore_cli(files, tmp_path / "out", "--task", "colorize").exit_code == 0

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a run that is already complete")

    monkeypatch.setattr("ganprior.api.load_prior", no_model)
    result = restore_cli(files, tmp_path / "out", "--task", "colorize")
    assert result.exit_code == 0 and "already complete" in result.output
    with pytest.raises(AssertionError, match="already complete"):  # a different run still needs the model
        restore_cli(files, tmp_path / "out", "--task", "colorize", "--seed", 5)


def test_the_ui_manipulations_are_shown_as_the_restoration(tmp_path):
    from ganprior.ui.handlers import Studio
    from ganprior.ui.inputs import editor_value
    from test_methods import tiny_prior

    studio = Studio(tiny_prior(c_dim=3, discriminator=True), "tiny", tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    final = list(studio.run("s", editor_value(image), ["colorize"], 4, "wplus", "fast", 1, 0, 1, image))[-1]
    images, status = studio.manipulate("jitter", final["state"], n=2, std=0.0, seed=0)
    assert images[0].shape == final["result"].shape, status  # the photo, displayed like the result
    assert np.abs(images[0].astype(int) - final["result"].astype(int)).max() <= 3
