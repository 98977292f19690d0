"""Batched restoration through the API, ``ganprior restore --batch-size`` and ``bench --batch-size``:
every image gets what a one-at-a-time run gives it (latent ≤ 1e-5, run.json, class, saved image), its
own run folder, lock, resume check and callback; methods without a batched version fall back to one at a
time with a note; batched bench cells equal one-at-a-time cells and resume alike."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import ganprior
import ganprior.methods.batched
from ganprior.api import load_prior
from ganprior.bench import BenchConfig, TaskSpec, run_benchmark
from ganprior.cli.main import cli
from ganprior.degradations import parse_task
from ganprior.images import load_image, save_image
from ganprior.resume import claim

#: short runs: the optimisation is chaotic (a 1e-6 change of the input moves a 30-step sequential W+ latent by
#: ~3e-3), so batch-size-dependent kernel rounding (~3e-6 per forward) stays under 1e-5 only for a few steps;
#: a batch of one is bit-identical to a sequential run at any length (test_batched.py)
FAST = {"wplus": dict(steps=4, w_avg_samples=200, n_samples=200),
        "cri": dict(offset_steps=4, tuning_steps=2, n_samples=200, n_clusters=4, cache=False),
        "pulse": dict(steps=4, fit_samples=500, n_samples=200),
        "dgp": dict(table="fast", select_num=8, max_stage_steps=1)}
#: CRI's offset starts at exactly 0, where Adam's first steps (m/sqrt(v) ~ sign(g)) turn the rounding of
#: near-zero gradients into up to ~4e-5 (and its per-image pivotal tuning carries that into the image).
#: PULSE's schedule has no warm-up (lr 0.04 at step 0), so Adam's second step already amplifies that
#: rounding: on the letterboxed 36x28 emoji its ws differ by up to ~2e-5 (a 1e-6 change of the input moves
#: the sequential run by 2e-5-7e-5); on unpadded ×4 SR it stays under 1e-5 (test_batched.py)
TOLERANCE = {"wplus": 1e-5, "cri": 1e-4, "pulse": 1e-4, "dgp": 1e-5}
SIZES = [(32, 32), (24, 40), (36, 28)]  # different letterbox weights per image


@pytest.fixture(scope="module")
def prior():
    torch.set_num_threads(1)
    return load_prior("emoji32")


@pytest.fixture(scope="module")
def photos(prior, tmp_path_factory):
    """Inpainting observations of emoji at three sizes, as files."""
    root = tmp_path_factory.mktemp("batch")
    with torch.no_grad():
        clean = prior.sample(3, classes=[0, 4, 7], seed=3)
    paths = []
    for i, size in enumerate(SIZES):
        image = torch.nn.functional.interpolate(clean[i:i + 1], size=size, mode="bilinear", align_corners=False)
        degraded = parse_task("inpaint", mask="center", image_size=size)(image)
        paths.append(root / f"emoji{i}.png")
        save_image(degraded, paths[-1])
    return paths


def _latent(folder):
    return torch.load(folder / "latent.pt")


def _config(folder):
    config = json.loads((folder / "run.json").read_text())["config"]
    return {k: v for k, v in config.items() if k != "input"}  # the file's path differs between the two runs


@pytest.mark.parametrize("method", ["wplus", "cri", "pulse", "dgp"])
def test_api_batch_saves_what_one_at_a_time_saves(prior, photos, tmp_path, method):
    settings = dict(task="inpaint", method=method, model=prior, mask="center", options=FAST[method], progress=False)
    batched = ganprior.restore_batch(photos, batch_size=3, **settings)
    for i, (photo, got) in enumerate(zip(photos, batched)):
        alone = ganprior.restore(photo, **settings)
        got.save(tmp_path / "batched" / photo.stem)
        alone.save(tmp_path / "alone" / photo.stem)
        a, b = tmp_path / "batched" / photo.stem, tmp_path / "alone" / photo.stem
        assert (_latent(a) - _latent(b)).abs().max() <= TOLERANCE[method]
        assert (got.result.image - alone.result.image).abs().max() <= TOLERANCE[method]
        assert _config(a) == _config(b)  # fingerprint, class choice, options, perceptual
        assert got.class_index == alone.class_index
        restored_a, restored_b = load_image(a / "restored.png"), load_image(b / "restored.png")
        assert restored_a.shape[-2:] == SIZES[i]
        assert (restored_a - restored_b).abs().max() <= 2 / 255 + 1e-6  # one 8-bit level ([-1, 1] scale)
        assert [e["loss"] for e in got.losses] == pytest.approx([e["loss"] for e in alone.losses], rel=1e-5)


def test_api_batch_callbacks_are_per_image(prior, photos):
    seen: list[list[int]] = [[], [], []]

    def watcher(k, stop_at=None):
        def callback(step, stage, loss, preview):
            seen[k].append(step)
            return stop_at is None or step < stop_at
        return callback

    settings = dict(task="inpaint", method="wplus", model=prior, mask="center", options=FAST["wplus"],
                    progress=False)
    got = ganprior.restore_batch(photos, batch_size=3, callbacks=[watcher(0), watcher(1, stop_at=2), watcher(2)],
                                 **settings)
    assert seen == [[0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3]]
    assert got[1].stopped and got[1].result.interrupted and got[0].stopped is None and got[2].stopped is None
    alone = ganprior.restore(photos[2], **settings)
    assert (got[2].latent - alone.latent).abs().max() <= 1e-5


def _restore(*args):
    return CliRunner().invoke(cli, ["restore", *map(str, args)], catch_exceptions=False)


def _cli_args(photos, out, method="wplus", batch_size=1):
    options = [x for k, v in FAST[method].items() for x in ("--option", f"{k}={json.dumps(v)}")]
    return [*photos, "--task", "inpaint", "--mask", "center", "--method", method, "--out", out,
            "--batch-size", batch_size, *options]


@pytest.mark.parametrize("method", ["wplus", "pulse"])
def test_cli_batch_size_equals_one_at_a_time_and_resumes(photos, tmp_path, method):
    one = _restore(*_cli_args(photos, tmp_path / "one", method))
    many = _restore(*_cli_args(photos, tmp_path / "many", method, batch_size=3))
    assert one.exit_code == 0 and many.exit_code == 0, many.stderr
    assert "note:" not in many.stderr  # fully batched
    for photo in photos:
        a, b = tmp_path / "one" / photo.stem, tmp_path / "many" / photo.stem
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert (_latent(a) - _latent(b)).abs().max() <= TOLERANCE[method]
        assert _config(a) == _config(b)
        assert (load_image(a / "restored.png") - load_image(b / "restored.png")).abs().max() <= 2 / 255 + 1e-6
    again = _restore(*_cli_args(photos, tmp_path / "many", method, batch_size=3))
    assert again.exit_code == 0 and again.stdout.count("is already complete for this run") == 3


def test_cli_batch_skips_a_locked_image_and_restores_the_others(photos, tmp_path):
    out = tmp_path / "out"
    with claim(out / photos[1].stem):
        result = _restore(*_cli_args(photos, out, batch_size=3))
    assert result.exit_code == 0
    assert f"skip {photos[1]}" in result.stderr and "is being restored by process" in result.stderr
    assert (out / photos[0].stem / "run.json").exists() and (out / photos[2].stem / "run.json").exists()
    assert not (out / photos[1].stem).exists()


def test_cli_dgp_batches_its_selection_and_says_what_runs_one_at_a_time(photos, tmp_path):
    one = _restore(*_cli_args(photos, tmp_path / "one", "dgp"))
    many = _restore(*_cli_args(photos, tmp_path / "many", "dgp", batch_size=3))
    assert one.exit_code == 0 and many.exit_code == 0, many.stderr
    note = "note: --method dgp batches all but its progressive fine-tuning, which runs one image at a time"
    assert note in many.stderr and note not in one.stderr
    for photo in photos:
        a, b = tmp_path / "one" / photo.stem, tmp_path / "many" / photo.stem
        assert _config(a) == _config(b) and (_latent(a) - _latent(b)).abs().max() <= 1e-5
        assert json.loads((a / "run.json").read_text())["extras"]["selection"] == pytest.approx(
            json.loads((b / "run.json").read_text())["extras"]["selection"], rel=1e-5)


def test_cli_batch_size_batches_pti_and_names_what_stays_per_image(photos, tmp_path, capsys):
    from ganprior.cli.restore import _effective_batch_size

    out = tmp_path / "pti"
    result = _restore(*photos[:2], "--task", "inpaint", "--mask", "center", "--method", "pti", "--out", out,
                      "--batch-size", 2, "--steps", 1, "--option", "w_avg_samples=200", "--option", "n_samples=200")
    assert result.exit_code == 0, result.stderr
    assert "note:" not in result.stderr
    assert all((out / p.stem / "run.json").exists() for p in photos[:2])
    assert _effective_batch_size(4, "wplus", faces=True) == 1
    assert _effective_batch_size(4, "dgp", faces=False) == 4
    notes = capsys.readouterr().err
    assert "note: --faces has no batched version: --batch-size 4 runs its images one at a time" in notes
    assert "note: --method dgp batches all but its progressive fine-tuning" in notes


def test_bench_batch_size_gives_the_same_cells_and_resumes(tmp_path, monkeypatch):
    from test_methods import tiny_prior

    monkeypatch.setenv("GANPRIOR_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    prior = tiny_prior()
    config = dict(methods=("cri", "wplus", "pulse", "dgp", "pti"), tasks=(TaskSpec.from_string("inpaint"),),
                  images="emoji-test", limit=2, steps=2, perceptual="mse", fid_min_images=50, baselines=False,
                  method_options={"dgp": {"select_num": 16}, "pulse": {"fit_samples": 500}})
    batches = []
    real = ganprior.methods.batched.project_batch
    monkeypatch.setattr(ganprior.methods.batched, "project_batch",
                        lambda method, *a, **k: batches.append((method.name, len(a[2]))) or real(method, *a, **k))
    one = run_benchmark(BenchConfig(out=str(tmp_path / "one"), **config), prior=prior, progress=False)
    assert batches == []
    many = run_benchmark(BenchConfig(out=str(tmp_path / "many"), **config), prior=prior, progress=False,
                         batch_size=3)
    assert sorted(batches) == [("cri", 2), ("dgp", 2), ("pti", 2), ("pulse", 2), ("wplus", 2)]
    key = lambda r: (r["task"], r["column"], r["image"])  # noqa: E731
    rows_one, rows_many = sorted(one["rows"], key=key), sorted(many["rows"], key=key)
    assert [key(r) for r in rows_one] == [key(r) for r in rows_many] and len(rows_one) == 10
    for a, b in zip(rows_one, rows_many):
        assert a["class_index"] == b["class_index"] and a["values"].keys() == b["values"].keys()
        # CRI's pivotal tuning amplifies the batched offset stage's ~1e-7 pivot differences (Adam's first
        # updates are ±lr whatever the gradient's size): a cell's ssim_hole has moved by 1.3e-4
        assert b["values"] == pytest.approx(a["values"], rel=1e-4, abs=3e-4), key(a)
    computed = []
    run_benchmark(BenchConfig(out=str(tmp_path / "many"), **config), prior=prior, progress=False, batch_size=3,
                  after_cell=computed.append)
    assert computed == []
