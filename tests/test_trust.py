"""Restorations a user can trust (issue 10, part A), through ``ganprior.restore`` on the embedded model:
outputs that reproduce the observation, colour photos given to colorization, honest resolution
limits, a class estimate that sees only observed pixels, a frozen generator in latent-only stages,
``--option`` and class names."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import ganprior
from ganprior.class_names import ClassNameError, class_index_for, class_names, imagenet_class_names
from ganprior.consistency import RestorationWarning, resolution_note
from ganprior.data.emoji import load_emoji_test
from ganprior.degradations import center_box_mask, to_gray
from ganprior.images import from_uint8, to_uint8
from ganprior.loading import load_model
from ganprior.methods.options import MethodOptionError, parse_method_options

QUICK = dict(steps=3, progress=False, value_range=(-1, 1))


@pytest.fixture(scope="module")
def emoji32():
    torch.set_num_threads(1)
    return load_model("emoji32")


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    return from_uint8(load_emoji_test(32).images[7])


@pytest.fixture(scope="module")
def grey(clean) -> torch.Tensor:
    return to_gray(clean).expand(-1, 3, -1, -1).contiguous()


def _rmse_255(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().mean().sqrt()) * 127.5


@pytest.mark.parametrize("task", ["sr4", "sr2", "blur2", "sr4+colorize", "sr4+colorize+inpaint", "colorize"])
def test_restored_output_reproduces_the_observation(emoji32, clean, task):
    """A(output) = y for every linear task, recorded as consistency_rmse; the raw generator output does not."""
    from ganprior.api import CONSISTENT_FUSION
    from ganprior.degradations import parse_task

    mask = "center" if "inpaint" in task else None
    op = parse_task(task, mask=mask, image_size=(32, 32), **CONSISTENT_FUSION)
    y = from_uint8(to_uint8(op(clean)))  # what an 8-bit file of the observation holds
    result = ganprior.restore(y, task=task, mask=mask, model=emoji32, class_index=0, **QUICK)
    assert result.consistency_rmse is not None and result.consistency_rmse <= 1.0
    assert _rmse_255(op(result.image), y) <= 1.0
    assert _rmse_255(op(result.generator_output), y) > 3.0  # the fusion did the work
    assert result.summary()["consistency_rmse"] == result.consistency_rmse


def test_sr_of_a_photo_is_not_worse_than_bicubic(emoji32):
    """x4 SR of a photo far bigger than the 32 px prior: the fused output keeps what was observed."""
    from PIL import Image
    from skimage.data import astronaut

    clean = astronaut()[0:160, 180:280]
    low = np.array(Image.fromarray(clean).resize((25, 40), Image.BICUBIC))
    bicubic = np.asarray(Image.fromarray(low).resize((100, 160), Image.BICUBIC)).astype(np.float64)
    with pytest.warns(RestorationWarning, match="makes 32 px images"):
        result = ganprior.restore(low, task="sr4", model=emoji32, steps=2, progress=False, class_index=0)
    out = ((result.image[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
    psnr = lambda a: 10 * np.log10(255**2 / np.mean((a - clean) ** 2))  # noqa: E731
    assert psnr(out) >= psnr(bicubic) - 0.5


def test_colour_photo_given_to_colorize_keeps_its_true_grey_with_a_warning(emoji32, clean):
    for method, extra in (("cri", {}), ("dgp", {"preset": "fast", "options": {"select_num": 4}})):
        with pytest.warns(RestorationWarning, match="has colour"):
            result = ganprior.restore(clean, task="colorize", method=method, model=emoji32, class_index=0,
                                      **QUICK, **extra)
        grey_error = float((to_gray(result.image) - to_gray(clean)).abs().mean()) * 127.5
        assert grey_error <= 1.0, method  # mean |grey(output) - grey(input)| on 0..255
        assert torch.allclose(result.observation, to_gray(clean).expand(-1, 3, -1, -1))


def test_grey_photo_to_colorize_gives_no_warning(emoji32, grey):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RestorationWarning)
        ganprior.restore(grey, task="colorize", model=emoji32, class_index=0, **QUICK)


def test_resolution_note_names_registry_models_that_fit():
    assert resolution_note((32, 32), 32, "emoji32") is None
    note = resolution_note((452, 300), 32, "emoji32")
    assert "emoji32 makes 32 px" in note and "stylegan_xl-imagenet512" in note
    assert "no registered model" in resolution_note((5000, 10), 32, "emoji32")


def test_class_estimate_ignores_what_is_in_the_holes(emoji32, clean):
    """Changing only the hole content of the photo must not move the class or its probability."""
    mask = center_box_mask((32, 32))
    noisy_hole = torch.where(mask.bool(), clean, torch.rand(clean.shape, generator=torch.Generator().manual_seed(1))
                             * 2 - 1)
    scores = []
    for photo in (clean, noisy_hole):
        result = ganprior.restore(photo, task="inpaint", mask=mask, model=emoji32, method="wplus", **QUICK)
        assert result.result.class_source == "classifier"
        scores.append((result.class_index, result.result.class_score))
    assert scores[0] == scores[1]


def test_classifier_fills_unobserved_pixels_neutrally(emoji32, clean):
    from ganprior.methods.centroids import classifier_class

    weight = center_box_mask((32, 32))
    other = torch.where(weight.bool(), clean, -clean)
    assert classifier_class(emoji32, clean, weight) == classifier_class(emoji32, other, weight)
    assert classifier_class(emoji32, clean) != classifier_class(emoji32, other)  # the fill is what matters


@pytest.mark.parametrize("method", ["wplus", "w", "cri", "pti", "pulse"])
def test_latent_stages_compute_no_generator_weight_gradient(emoji32, grey, method):
    for p in emoji32.parameters():
        p.requires_grad_(True)  # as a loader may hand it out
        p.grad = None
    fit = {"options": {"fit_samples": 2000}} if method == "pulse" else {}  # the official preset fits 1 M samples
    ganprior.restore(grey, task="colorize", method=method, model=emoji32, class_index=0, **QUICK, **fit)
    assert sum(p.grad is not None for p in emoji32.parameters()) == 0
    assert all(p.requires_grad for p in emoji32.parameters())  # the flags come back


def test_method_options_from_the_command_line_are_checked_against_the_defaults():
    assert parse_method_options(["l2_weight=10", "perceptual=mse", "cache=false"], "cri") == \
        {"l2_weight": 10.0, "perceptual": "mse", "cache": False}
    assert parse_method_options(["stage_instance_norm=[false,false]"], "dgp") == \
        {"stage_instance_norm": [False, False]}
    with pytest.raises(MethodOptionError, match="--option l2_weigth: .*did you mean l2_weight"):
        parse_method_options(["l2_weigth=3"], "cri")
    with pytest.raises(MethodOptionError, match="--option offset_steps=many: 'cri' expects a whole number"):
        parse_method_options(["offset_steps=many"], "cri")
    with pytest.raises(MethodOptionError, match="KEY=VALUE"):
        parse_method_options(["steps"], "wplus")


def test_class_names_of_the_embedded_model_and_imagenet(emoji32):
    names = class_names(emoji32)
    assert len(names) == emoji32.c_dim == 9 and names[2] == "Animals & Nature"
    assert class_index_for("animals & nature", names, 9) == 2 and class_index_for("4", names, 9) == 4
    with pytest.raises(ClassNameError, match="closest: 'Flags' \\(8\\)"):
        class_index_for("flag", names, 9)
    imagenet = imagenet_class_names()
    assert len(imagenet) == 1000 and class_index_for("golden retriever", imagenet, 1000) == 207
    assert class_index_for("crane", imagenet, 1000) == 517 and class_index_for("crane bird", imagenet, 1000) == 134
    with pytest.raises(ClassNameError, match="closest: 'golden retriever' \\(207\\)"):
        class_index_for("golden retreiver", imagenet, 1000)
    with pytest.raises(ClassNameError, match="several classes \\(0, 1\\)"):
        class_index_for("a", ("a", "A"), 2)


def test_class_by_name_through_the_api(emoji32, grey):
    result = ganprior.restore(grey, task="colorize", model=emoji32, class_index="Animals & Nature", **QUICK)
    assert result.class_index == 2 and result.result.class_source == "given"
    with pytest.raises(ValueError, match="closest: 'Animals & Nature'"):
        ganprior.restore(grey, task="colorize", model=emoji32, class_index="animal", **QUICK)


def _cli(*args):
    from click.testing import CliRunner

    from ganprior.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_option_and_class_name_errors_speak_cli(tmp_path, grey, clean):
    from ganprior.images import save_image

    photo, colour = tmp_path / "grey.png", tmp_path / "colour.png"
    save_image(grey, photo)
    save_image(clean, colour)
    warned = _cli("restore", colour, "--task", "colorize", "--steps", "0", "--out", tmp_path / "o1")
    lines = [line for line in warned.output.splitlines() if "has colour" in line]
    assert warned.exit_code == 0 and len(lines) == 1 and lines[0].startswith(f"warning: {colour}: the photo has colour")
    bad = _cli("restore", photo, "--task", "colorize", "--option", "l2_wieght=3", "--out", tmp_path / "out")
    assert bad.exit_code == 2 and "--option l2_wieght" in bad.output and "did you mean l2_weight" in bad.output
    bad = _cli("restore", photo, "--task", "colorize", "--class", "animal", "--steps", "0", "--out", tmp_path / "o2")
    assert bad.exit_code != 0 and "closest: 'Animals & Nature' (2)" in bad.output and "Traceback" not in bad.output
    good = _cli("restore", photo, "--task", "colorize", "--class", "Animals & Nature", "--steps", "1",
                "--option", "n_samples=200", "--out", tmp_path / "o3")
    assert good.exit_code == 0, good.output
    summary = json.loads((tmp_path / "o3" / "grey" / "run.json").read_text())
    assert summary["class"]["index"] == 2 and summary["config"]["options"]["n_samples"] == 200
    assert summary["consistency_rmse"] <= 1.0 and (tmp_path / "o3" / "grey" / "generator.png").is_file()


def test_models_table_shows_the_embedded_class_count():
    table = _cli("models").output.splitlines()
    row = next(line for line in table if line.startswith("emoji32 "))
    assert row.split()[3] == "9"


def test_bench_option_is_checked_per_method(tmp_path):
    from ganprior.bench import BenchConfig
    from ganprior.cli.bench import _with_method_options

    config = BenchConfig(methods=("cri", "wplus"))
    merged = _with_method_options(config, ("cri.l2_weight=10", "wplus.steps=5"))
    assert merged.method_options == {"cri": {"l2_weight": 10.0}, "wplus": {"steps": 5}}
    bad = _cli("bench", "--methods", "cri", "--option", "cri.l2_wieght=1", "--out", tmp_path / "b")
    assert bad.exit_code == 2 and "did you mean l2_weight" in bad.output
    bad = _cli("bench", "--methods", "cri", "--option", "pti.steps=1", "--out", tmp_path / "b")
    assert bad.exit_code == 2 and "'pti' is not benchmarked here" in bad.output
